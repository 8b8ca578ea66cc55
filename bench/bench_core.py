#!/usr/bin/env python3
"""Benchmark: validate + plan + render on a synthetic inventory.

Builds inventories with a realistic mix (about 70 % single-DIP VIPs, the rest 2 to 50 DIPs, a
few IPv6, a few ``bypass: never``) and routers spread over all five platforms (a fifth of them
PBR), then times, each size in a fresh subprocess so peak memory is its own:

- validate: ``load_inventory`` (YAML parse + every check),
- plan: ``make_plan`` from an empty observed state (every VIP is a ``create``),
- render: the full intended config of every router plus the plan's change lines.

Usage: ``python bench/bench_core.py [--vips 1000,10000,100000] [--routers 100]``.
Target (issue 2): 10,000 VIPs x 100 routers in under 2 s, cost growing linearly. "plan
path" is validate + plan + the plan's change lines (what ``lbauto plan`` does); "render path"
is validate + intent + every router's full config (what ``lbauto render`` does). The
"`lbauto plan` path" is validate + plan + the plan's change lines (what `lbauto plan` does);
the "`lbauto render` path" is validate + intent + every router's full config.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLATFORMS = ["frr", "eos", "ios", "nxos", "junos"]


def write_inventory(root: Path, n_vips: int, n_routers: int, seed: int = 42) -> None:
    rnd = random.Random(seed)
    hosts = []
    for i in range(n_routers):
        platform = PLATFORMS[i % len(PLATFORMS)]
        pbr = i % 5 == 1
        ingress = {
            "frr": "eth1",
            "eos": "Ethernet1",
            "ios": "GigabitEthernet1",
            "nxos": "Ethernet1/1",
            "junos": "ge-0/0/1",
        }[platform]
        lb = f"    lbauto_method: {'pbr' if pbr else 'static'}\n"
        if pbr:
            lb += f"    lbauto_ingress: [{ingress}]\n"
        hosts.append(
            f"r{i}:\n  hostname: 198.18.{i // 250}.{i % 250 + 1}\n  platform: {platform}\n"
            f"  data:\n{lb}"
        )
    (root / "hosts.yaml").write_text("".join(hosts))
    (root / "agents.yaml").write_text(
        "agents:\n"
        "  - name: lb1\n    api: http://198.18.100.1:8080\n    address: 198.51.100.10\n"
        "    address6: 2001:db8:100::10\n    token_env: LBAUTO_TOKEN_LB1\n"
        "  - name: lb2\n    api: http://198.18.100.2:8080\n    address: 198.51.100.11\n"
        "    address6: 2001:db8:100::11\n    token_env: LBAUTO_TOKEN_LB2\n"
    )
    v4_vip = ipaddress.IPv4Address("198.18.0.0") + 65536  # 198.19.0.0/16 upwards
    v4_dip = ipaddress.IPv4Address("198.18.128.0")
    v6_vip = ipaddress.IPv6Address("2001:db8:10::")
    v6_dip = ipaddress.IPv6Address("2001:db8:100::")
    lines = ["vips:\n"]
    for i in range(n_vips):
        v6 = i % 20 == 7
        r = rnd.random()
        n = 1 if r < 0.7 else rnd.randint(2, 50)
        base_dip = v6_dip if v6 else v4_dip
        dips = sorted({base_dip + rnd.randint(1, 30000) for _ in range(n)}, key=int)
        vip = (v6_vip if v6 else v4_vip) + i + 1
        lines.append(f"  - name: vip{i}\n    address: {vip}\n")
        lines.append(f"    dips: [{', '.join(str(d) for d in dips)}]\n")
        if i % 50 == 3:
            lines.append("    bypass: never\n")
    (root / "vips.yaml").write_text("".join(lines))


def measure(path: Path) -> dict[str, float]:
    from lbauto.cli import tune_gc
    from lbauto.core.intent import desired_objects
    from lbauto.core.model import ObservedState
    from lbauto.core.planner import make_plan
    from lbauto.inventory import load_inventory
    from lbauto.platforms.render import render_changes, render_config

    tune_gc()  # what the `lbauto` process does before it plans (the library never does)
    t0 = time.perf_counter()
    inv = load_inventory(path)
    t1 = time.perf_counter()
    observed = ObservedState()
    plan = make_plan(inv, observed)
    t2 = time.perf_counter()
    lines = 0
    for router in inv.routers:
        objs = desired_objects(inv, router, frozenset())
        lines += render_config(router, objs, template_dir=inv.template_dir).count("\n")
    t3 = time.perf_counter()
    for rp in plan.routers:
        router = inv.router(rp.router)
        lines += len(render_changes(router, rp.remove, rp.add, observed=frozenset()))
    t4 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "vips": len(inv.vips),
        "routers": len(inv.routers),
        "validate_s": t1 - t0,
        "plan_s": t2 - t1,
        "render_full_s": t3 - t2,
        "render_changes_s": t4 - t3,
        "total_s": t4 - t0,
        "config_lines": lines,
        "peak_mb": peak_mb,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vips", default="1000,10000,100000")
    ap.add_argument("--routers", type=int, default=100)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child))))
        return
    rows = []
    for n in (int(x) for x in args.vips.split(",")):
        with tempfile.TemporaryDirectory(prefix="lbauto-bench-") as tmp:
            write_inventory(Path(tmp), n, args.routers)
            res = subprocess.run(
                [sys.executable, __file__, "--child", tmp],
                check=True,
                capture_output=True,
                text=True,
            )
            rows.append(json.loads(res.stdout))
    hdr = (
        "VIPs",
        "routers",
        "validate s",
        "plan s",
        "render s",
        "changes s",
        "plan path s",
        "render path s",
        "total s",
        "s per 1k VIPs",
        "lines",
        "peak MB",
    )
    print(" | ".join(hdr))
    for r in rows:
        print(
            " | ".join(
                [
                    f"{r['vips']}",
                    f"{r['routers']}",
                    f"{r['validate_s']:.3f}",
                    f"{r['plan_s']:.3f}",
                    f"{r['render_full_s']:.3f}",
                    f"{r['render_changes_s']:.3f}",
                    f"{r['validate_s'] + r['plan_s'] + r['render_changes_s']:.3f}",
                    f"{r['validate_s'] + r['render_full_s']:.3f}",
                    f"{r['total_s']:.3f}",
                    f"{r['total_s'] / r['vips'] * 1000:.3f}",
                    f"{r['config_lines']}",
                    f"{r['peak_mb']:.0f}",
                ]
            )
        )


if __name__ == "__main__":
    main()
