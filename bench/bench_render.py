#!/usr/bin/env python3
"""Benchmark: render (full config and change lines) and parse for many routers.

Objects are built directly (the planner is timed by bench_core.py): 70 % single-DIP VIPs,
5 % IPv6, two agents (two LB routes per VIP), routers spread over the five platforms, one in
five using PBR. Each router gets its own object instances, as ``desired_objects`` gives them.

Times are CPU seconds of this process (``time.process_time``), so a busy machine does not
inflate them; wall time on an idle machine is about the same.

Usage: ``python bench/bench_render.py [--vips 10000] [--routers 100]``
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo's tests package

from lbauto.core.model import (
    Method,
    OwnedObject,
    PbrBinding,
    PbrRule,
    Router,
    StaticRoute,
)
from lbauto.platforms import PLATFORMS, parse_owned
from lbauto.platforms.render import render_changes, render_config
from tests.builders import ingress

PLATFORM_NAMES = list(PLATFORMS)


def objects_for(router: Router, n_vips: int, seed: int = 42) -> frozenset[OwnedObject]:
    rnd = random.Random(seed)
    agents4 = [ipaddress.IPv4Address("198.51.100.10"), ipaddress.IPv4Address("198.51.100.11")]
    agents6 = [ipaddress.IPv6Address("2001:db8:100::10"), ipaddress.IPv6Address("2001:db8:100::11")]
    out: set[OwnedObject] = set()
    seq = 0
    versions: set[int] = set()
    for i in range(n_vips):
        v6 = i % 20 == 7
        vip = (
            ipaddress.IPv6Network(f"2001:db8:10::{i + 1:x}/128")
            if v6
            else ipaddress.IPv4Network((int(ipaddress.IPv4Address("198.19.0.0")) + i + 1, 32))
        )
        agents = agents6 if v6 else agents4
        out.update(StaticRoute(vip, a, router.lb_distance, router.tag) for a in agents)
        if rnd.random() < 0.7:
            dip = (
                ipaddress.IPv6Address("2001:db8:100::") + rnd.randint(1, 30000)
                if v6
                else ipaddress.IPv4Address("198.18.128.0") + rnd.randint(1, 30000)
            )
            limit = 700 if router.platform == "frr" else 65535
            if router.method is Method.PBR and seq < limit:
                seq += 1
                out.add(PbrRule(seq, vip, dip))
                versions.add(vip.version)
            else:
                out.add(StaticRoute(vip, dip, router.bypass_distance, router.tag))
    out.update(PbrBinding(i, v) for i in router.ingress for v in versions)
    return frozenset(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vips", type=int, default=10_000)
    ap.add_argument("--routers", type=int, default=100)
    args = ap.parse_args()
    routers = []
    for i in range(args.routers):
        platform = PLATFORM_NAMES[i % len(PLATFORM_NAMES)]
        method = Method.PBR if i % 5 == 1 else Method.STATIC
        routers.append(Router(f"r{i}", f"r{i}", platform, method, ingress=(ingress(platform),)))
    t0 = time.process_time()
    objs = [objects_for(r, args.vips) for r in routers]
    # Millions of long-lived objects: keep the cyclic GC from rescanning them on every
    # collection (the planner's objects are in the same situation in a real run).
    gc.collect()
    gc.freeze()
    t1 = time.process_time()
    texts = [render_config(r, o) for r, o in zip(routers, objs, strict=True)]
    t2 = time.process_time()
    changes = [render_changes(r, (), list(o)) for r, o in zip(routers, objs, strict=True)]
    t3 = time.process_time()
    parsed = [parse_owned(r.platform, t, r.tag) for r, t in zip(routers, texts, strict=True)]
    t4 = time.process_time()
    assert parsed == objs, "parse(render(x)) != x"
    n_obj = sum(map(len, objs))
    n_lines = sum(t.count("\n") for t in texts)
    n_change = sum(map(len, changes))
    print(f"routers {args.routers}, VIPs {args.vips}: {n_obj} objects, {n_lines} config lines")
    print(f"build objects      {t1 - t0:6.2f} s (not lbauto code)")
    print(f"render_config      {t2 - t1:6.2f} s  ({(t2 - t1) / n_lines * 1e6:.2f} us/line)")
    print(f"render_changes     {t3 - t2:6.2f} s  ({n_change} lines)")
    print(f"parse_owned        {t4 - t3:6.2f} s")
    per = {}
    for r, o in zip(routers[:10], objs[:10], strict=True):
        s = time.process_time()
        render_config(r, o)
        per[f"{r.platform}/{r.method.value}"] = time.process_time() - s
    print("one router (ms):", ", ".join(f"{k} {v * 1e3:.0f}" for k, v in sorted(per.items())))


if __name__ == "__main__":
    main()
