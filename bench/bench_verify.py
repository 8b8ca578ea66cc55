#!/usr/bin/env python3
"""Benchmark: verifying a 100-VIP batch on a real FRR router, batched against per prefix.

Builds a one-router lab (``pfvb``), installs ``--vips`` bypass routes on it, then times
``lbauto.push.verify.check`` (one look, as each poll of ``router.verify`` does) over a connected
NAPALM driver: the batched read (``show ip route static json``, one SSH exchange) and the
generic one (``get_route_to`` per prefix), in alternation, ``--runs`` times each. Prints wall
time and lbauto's own CPU time per check (the router's vtysh and sshd run in other processes:
their CPU is not lbauto's). Target (issue 16): a 100-VIP batch verify under 0.5 s on FRR.

    .venv/bin/python bench/bench_verify.py [--vips 100] [--runs 5] [--json]   (root)
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import statistics
import subprocess
import time

from lbauto.core.model import StaticRoute
from lbauto.inventory import load_inventory
from lbauto.lab import Lab, LabSpec, down
from lbauto.push.drivers import open_driver
from lbauto.push.verify import Expectation, check

LAB = "pfvb"
DIP = ipaddress.ip_address("198.51.100.21")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vips", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    prefixes = [ipaddress.ip_network(f"192.0.2.{i}/32") for i in range(1, args.vips + 1)]
    lab = Lab.up(LabSpec(name=LAB, routers=1, agents=1, dips=1))
    try:
        router = lab.router("r1")
        argv = ["vtysh", "-N", router.pathspace, "-c", "configure terminal"]
        for p in prefixes:
            argv += ["-c", f"ip route {p} {DIP} tag 4242"]
        subprocess.run(argv, check=True, capture_output=True)
        inv = load_inventory(lab.inventory_dir)
        driver = open_driver(inv.router("r1"))
        try:
            expect = Expectation(present=tuple(StaticRoute(p, DIP, 1, 4242) for p in prefixes))
            deadline = time.monotonic() + 10
            while check(driver, "frr", expect) and time.monotonic() < deadline:
                time.sleep(0.1)  # zebra installs asynchronously
            times: dict[str, list[tuple[float, float]]] = {"batched": [], "per prefix": []}
            for _ in range(args.runs):
                for name, batched in (("batched", True), ("per prefix", False)):
                    c0, t0 = time.process_time(), time.perf_counter()
                    problems = check(driver, "frr", expect, batched=batched)
                    times[name].append((time.perf_counter() - t0, time.process_time() - c0))
                    if problems:
                        raise SystemExit(f"{name}: not verified: {problems[:3]}")
        finally:
            driver.close()
    finally:
        down(LAB)
    rows: dict[str, dict[str, list[float]]] = {
        name: {"wall_s": [w for w, _ in v], "cpu_s": [c for _, c in v]} for name, v in times.items()
    }
    if args.json:
        print(json.dumps({"vips": args.vips, "rows": rows, "loadavg": os.getloadavg()}))
        return
    load = os.getloadavg()[0]
    print(f"{args.vips}-VIP verify, {args.runs} runs each in alternation, load {load:.1f}")
    print("path | wall s median (range) | lbauto CPU s median")
    for name, r in rows.items():
        w = r["wall_s"]
        print(
            f"{name} | {statistics.median(w):.3f} ({min(w):.3f}-{max(w):.3f}) | "
            f"{statistics.median(r['cpu_s']):.3f}"
        )


if __name__ == "__main__":
    main()
