#!/usr/bin/env python3
"""Benchmark: ``load_inventory`` (YAML parse + every check) on synthetic inventories.

Usage: ``python bench/bench_inventory.py [--vips 1000,10000,100000] [--routers 100]``.
Target (issue 2): 10,000 VIPs load in well under 0.5 s. Prints one line per size (best of 5).
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import tempfile
import time
from pathlib import Path

from lbauto.core.addresses import parse_address
from lbauto.inventory import load_inventory

PLATFORMS = ["frr", "eos", "ios", "nxos", "junos"]


def write_inventory(root: Path, n_vips: int, n_routers: int, seed: int = 42) -> None:
    """~70 % single-DIP VIPs, the rest 2..50 DIPs, 5 % IPv6; routers on all platforms."""
    rnd = random.Random(seed)
    hosts = [
        f"r{i}:\n  hostname: 198.18.{i // 250}.{i % 250 + 1}\n"
        f"  platform: {PLATFORMS[i % 5]}\n  data:\n    lbauto:\n"
        + ("      method: pbr\n      ingress: [eth1]\n" if i % 5 == 1 else "      tag: 4242\n")
        for i in range(n_routers)
    ]
    (root / "hosts.yaml").write_text("".join(hosts))
    (root / "agents.yaml").write_text(
        "agents:\n  - name: lb1\n    api: http://198.18.100.1:8080\n    address: 198.51.100.10\n"
        "    address6: 2001:db8:100::10\n    token_env: LBAUTO_TOKEN_LB1\n"
    )
    v4_vip, v4_dip = ipaddress.ip_address("198.19.0.0"), ipaddress.ip_address("198.18.128.0")
    v6_vip, v6_dip = ipaddress.ip_address("2001:db8:10::"), ipaddress.ip_address("2001:db8:100::")
    lines = ["vips:\n"]
    for i in range(n_vips):
        v6 = i % 20 == 7
        n = 1 if rnd.random() < 0.7 else rnd.randint(2, 50)
        base = v6_dip if v6 else v4_dip
        dips = sorted({base + rnd.randint(1, 30000) for _ in range(n)}, key=int)
        lines.append(f"  - name: vip{i}\n    address: {(v6_vip if v6 else v4_vip) + i + 1}\n")
        lines.append(f"    dips: [{', '.join(map(str, dips))}]\n")
    (root / "vips.yaml").write_text("".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vips", default="1000,10000,100000")
    parser.add_argument("--routers", type=int, default=100)
    args = parser.parse_args()
    for n in (int(x) for x in args.vips.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            write_inventory(root, n, args.routers)
            wall = cpu = float("inf")
            for _ in range(5):
                parse_address.cache_clear()  # every run cold, as in a fresh process
                start, start_cpu = time.perf_counter(), time.process_time()
                inv = load_inventory(root)
                wall = min(wall, time.perf_counter() - start)
                cpu = min(cpu, time.process_time() - start_cpu)
            dips = sum(len(v.dips) for v in inv.vips)
            print(
                f"load_inventory: {n:>7} VIPs ({dips:>6} DIPs) x {args.routers} routers: "
                f"{wall * 1000:7.1f} ms wall, {cpu * 1000:7.1f} ms CPU (best of 5)"
            )


if __name__ == "__main__":
    main()
