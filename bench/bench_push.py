"""Push latency over SSH against real FRR routers in namespace labs (run as root).

Prints: push + verify + confirm latency of one router (p50, p99 over --iterations pushes, each
a full pipeline run: connect, load, diff, commit with revert_in, verify, confirm), and the
wall-clock total for 1, 5 and 20 routers pushed in parallel (median of --rounds).
Target: 20 routers <= 2 x one router.

    .venv/bin/python bench/bench_push.py [--iterations 40] [--rounds 5] [--keep]
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import shutil
import statistics
import time
from collections.abc import Sequence

from lbauto.core.model import Router, StaticRoute
from lbauto.inventory import load_inventory
from lbauto.lab import Lab, LabSpec, down
from lbauto.push.pipeline import RouterPush, push
from lbauto.push.verify import Expectation

VIP = ipaddress.ip_network("192.0.2.10/32")
DIP = ipaddress.ip_address("198.51.100.21")
BYPASS = StaticRoute(VIP, DIP, 1, 4242)
ADD = f"ip route {VIP} {DIP} tag 4242\n"
REMOVE = f"no ip route {VIP} {DIP}\n"
#: Labs hold at most 9 routers: 20 routers come from three labs.
LABS = (("lbpb1", 7), ("lbpb2", 7), ("lbpb3", 6))


def one_push(routers: Sequence[Router], add: bool) -> float:
    expect = Expectation(present=(BYPASS,)) if add else Expectation(absent=(BYPASS,))
    jobs = [RouterPush(r, ADD if add else REMOVE, expect) for r in routers]
    start = time.perf_counter()
    result = push(jobs, revert_in=60)
    elapsed = time.perf_counter() - start
    assert result.ok and all(r.status.value == "changed" for r in result.results), result
    return elapsed


def reset(routers: Sequence[Router]) -> None:
    """Start from routers without the bypass (a previous run may have been interrupted)."""
    push([RouterPush(r, REMOVE, Expectation(absent=(BYPASS,))) for r in routers])


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


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))
    return ordered[k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="leave the labs up afterwards")
    args = ap.parse_args()

    t0 = time.perf_counter()
    labs = [Lab.up(LabSpec(name=n, routers=k, agents=1, dips=1)) for n, k in LABS]
    routers = [
        dataclasses.replace(r, name=f"{lab.name}-{r.name}")  # router names repeat across labs
        for lab in labs
        for r in load_inventory(lab.inventory_dir).routers
    ]
    print(f"labs up: {len(routers)} routers in {time.perf_counter() - t0:.1f} s")
    netns = {r.netns for lab in labs for r in lab.routers}
    try:
        reset(routers)
        single = [one_push(routers[:1], add=i % 2 == 0) for i in range(args.iterations)]
        if args.iterations % 2:
            one_push(routers[:1], add=False)
        print(
            f"one router, push+verify+confirm over SSH ({args.iterations} pushes): "
            f"p50 {statistics.median(single):.3f} s  p99 {percentile(single, 99):.3f} s  "
            f"min {min(single):.3f} s  max {max(single):.3f} s"
        )
        totals: dict[int, float] = {}
        for n in (1, 5, 20):
            runs = []
            cpu0, rcpu0 = time.process_time(), router_cpu(netns)
            for _ in range(args.rounds):
                runs.append(one_push(routers[:n], add=True))
                runs.append(one_push(routers[:n], add=False))
            cpu = (time.process_time() - cpu0) / len(runs)
            rcpu = (router_cpu(netns) - rcpu0) / len(runs)
            totals[n] = statistics.median(runs)
            print(
                f"{n:>2} router(s) in parallel: median total {totals[n]:.3f} s "
                f"(min {min(runs):.3f}, max {max(runs):.3f}, {len(runs)} pushes); "
                f"CPU per push: lbauto {cpu:.3f} s, routers {rcpu:.3f} s"
            )
        ratio = totals[20] / totals[1]
        verdict = "OK" if ratio <= 2 else "MISSED"
        print(f"20 routers / 1 router = {ratio:.2f} (target <= 2): {verdict}")
    finally:
        if not args.keep:
            for name, _ in LABS:
                down(name)
            for r in routers:  # the FRR driver's working files on each router
                pathspace = r.optional_args.get("pathspace")
                shutil.rmtree(f"/var/tmp/napalm-frr/{pathspace}", ignore_errors=True)


if __name__ == "__main__":
    main()
