"""CPU seconds of lbauto and of the devices in a namespace lab, for the benchmarks that split
a transition's or a push's cost between them (bench_e2e.py, bench_push.py)."""

from __future__ import annotations

import os
import resource


def own_cpu() -> float:
    """This process's CPU seconds (user + system, every thread)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def router_cpu(netns: set[str]) -> float:
    """CPU seconds used so far by the processes in the routers' namespaces (sshd and what it
    ran, reaped into its counters; FRR daemons): the routers' share of the lab host's CPU."""
    inodes = {os.stat(f"/run/netns/{n}").st_ino for n in netns}
    ticks = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino not in inodes:
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")
