"""Benchmark the namespace lab: `lab up`/`lab down` time and the measuring client's capacity.

Run as root: ``.venv/bin/python bench/bench_lab.py [--quick]``. Prints one line per figure.

1. ``Lab.up`` and ``down`` for 1 and 5 routers (median of a few runs; target: 1 router < 10 s).
2. ``run_traffic`` with N long-lived connections (each sends a line every 100 ms) over a router
   bypass to one DIP: answers checked per second against the ideal 10 x N, broken connections,
   and the CPU of the client and of the DIP's echo server (both Python, both outside the kernel
   path being measured: router forwarding and the DIP's TCP stack).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

from lbauto.lab import Lab, LabSpec, down, run_traffic
from lbauto.lab.host import read_pid
from lbauto.lab.servers import pid_file

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def bench_up_down(routers: int, runs: int) -> None:
    ups, downs = [], []
    for _ in range(runs):
        t = time.perf_counter()
        lab = Lab.up(LabSpec(name="lbtbench", routers=routers))
        ups.append(time.perf_counter() - t)
        t = time.perf_counter()
        lab.down()
        downs.append(time.perf_counter() - t)
    print(
        f"lab up   {routers} router(s): median {statistics.median(ups):.2f} s "
        f"(min {min(ups):.2f}, max {max(ups):.2f}, {runs} runs)"
    )
    print(
        f"lab down {routers} router(s): median {statistics.median(downs):.2f} s "
        f"(min {min(downs):.2f}, max {max(downs):.2f})"
    )


def bench_traffic(sizes: list[int], duration: float) -> None:
    lab = Lab.up(LabSpec(name="lbtbench", routers=1, dips=1))
    try:
        r1 = lab.router("r1")
        subprocess.run(
            [
                "vtysh",
                "-N",
                r1.pathspace,
                "-c",
                "conf t",
                "-c",
                "ip route 192.0.2.10/32 198.51.100.21",
            ],
            check=True,
            capture_output=True,
        )
        time.sleep(0.3)
        server = read_pid(pid_file(lab.state_dir, lab.dip("d1")))
        assert server is not None
        for n in sizes:
            before = cpu_seconds(server)
            report = run_traffic(lab, "192.0.2.10", connections=n, duration=duration)
            server_cpu = cpu_seconds(server) - before
            c = report.counts
            # Steady state: from the moment every connection had its first answer.
            steady = report.duration - (report.established_at or 0.0)
            rate = (c.exchanges - report.exchanges_at_established) / steady
            print(
                f"traffic {n:5d} long-lived: established in {report.established_at or 0:.2f} s, "
                f"{rate:7.0f} answers checked/s ({rate / (10 * n):4.0%} of 10/s each), "
                f"broken {c.broken}, client CPU {report.cpu_seconds / report.duration:4.0%}, "
                f"echo server CPU {server_cpu / report.duration:4.0%}"
            )
    finally:
        lab.down()


def main() -> None:
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller loads")
    args = parser.parse_args()
    down("lbtbench")
    runs = 3 if args.quick else 5  # 3: the fewest runs a median means anything over
    bench_up_down(1, runs)
    bench_up_down(5, runs)
    sizes = [100, 500] if args.quick else [100, 500, 1000, 2000, 3000, 4000]
    bench_traffic(sizes, duration=3 if args.quick else 8)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
