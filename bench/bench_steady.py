#!/usr/bin/env python3
"""Benchmark: ``lbauto plan --state FILE`` on a deployed fleet, end to end (issue 16 item 1).

Builds bench_core's synthetic inventory (100 routers over the five platforms, a fifth PBR) and a
state file as a perfect ``apply`` would leave it (every router has its intended objects, every
agent its VIPs), optionally with drift on a share of the VIPs, then runs the real command in a
fresh process, output to a file, and reports what the process used: CPU time (user + system,
from ``wait4``'s rusage, so other jobs on the shared cores do not count), wall time and peak RSS.
Runs of the sizes alternate (``--runs N`` rounds), so load changes hit every size alike.

Drift (``--drift 0.01``): of the drifted VIPs, a third lost their objects on one router, a third
have an extra DIP on the agents, a third lost a router object and an agent alike.

Usage: ``python bench/bench_steady.py [--vips 1000,10000] [--routers 100] [--drift 0,0.01]
[--runs 3] [--profile]``. Target: under 2 s for 10,000 VIPs x 100 routers, deployed and with
1 % drift, cost linear in VIPs x routers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import write_inventory

LBAUTO = [sys.executable, "-m", "lbauto"]


def write_state(
    inv_dir: Path, out: Path, drift: float, seed: int = 7, compact: bool = False
) -> int:
    """Write the deployed state of ``inv_dir`` (with ``drift`` of its VIPs drifted) to ``out``;
    returns the number of router objects."""
    from lbauto.core.intent import desired_objects
    from lbauto.core.model import AgentVip, Mode, ObservedRouter, ObservedState
    from lbauto.inventory import load_inventory
    from lbauto.inventory.statefile import state_to_compact_json, state_to_json

    inv = load_inventory(inv_dir)
    rnd = random.Random(seed)
    drifted = set(rnd.sample(range(len(inv.vips)), round(len(inv.vips) * drift)))
    routers: dict[str, set[Any]] = {
        r.name: set(desired_objects(inv, r, frozenset())) for r in inv.routers
    }
    agents: dict[str, dict[Any, AgentVip]] = {a.name: {} for a in inv.agents}
    extra_dip = inv.vips[0].dips[0]
    for i, vip in enumerate(inv.vips):
        dips = tuple(vip.dips)
        how = i % 3 if i in drifted else -1
        if how in (0, 2):
            router = inv.routers[rnd.randrange(len(inv.routers))].name
            mine = [o for o in routers[router] if getattr(o, "prefix", None) is not None]
            # sorted: set order follows str hashes, which differ from process to process
            gone = sorted((o for o in mine if o.prefix.network_address == vip.address), key=repr)
            if gone:
                routers[router].discard(gone[0])
        if how in (1, 2) and extra_dip.version == vip.address.version and extra_dip not in dips:
            dips = (*dips, extra_dip)
        single = vip.mode is Mode.SINGLE
        for vips in agents.values():
            vips[vip.address] = AgentVip(
                address=vip.address,
                mode=vip.mode,
                dips=dips,
                flow_tracking=not single,
                name=vip.name,
            )
    shared: dict[frozenset[Any], frozenset[Any]] = {}  # equal routers, one set: one sort
    state = ObservedState(
        agents=agents,
        routers={
            n: ObservedRouter(n, shared.setdefault(frozenset(objs), frozenset(objs)))
            for n, objs in routers.items()
        },
    )
    # The runs read the compact form `lbauto state` writes (the first form is 246 MB at 10k x
    # 100); tests/unit/test_steady_sharing.py holds the first form's reader to the models.
    doc = state_to_compact_json(state) if compact else state_to_json(state)
    out.write_text(json.dumps(doc, separators=(",", ":")))
    return sum(len(o) for o in routers.values())


def library_peer(inv_dir: Path) -> None:
    """The peer, in a process of its own: the same fleet planned from nothing through the
    library (validate + plan + every router's change lines, bench_core's "plan path"). The
    command's table of a from-nothing plan prints 7 million lines at 10k VIPs (minutes, GBs:
    issue 16 item 0), which would time the presentation, not the planning."""
    from lbauto.cli import tune_gc
    from lbauto.core.model import ObservedState
    from lbauto.core.planner import make_plan
    from lbauto.inventory import load_inventory
    from lbauto.platforms.render import render_changes

    tune_gc()
    inv = load_inventory(inv_dir)
    plan = make_plan(inv, ObservedState())
    lines = 0
    for rp in plan.routers:
        lines += len(render_changes(inv.router(rp.router), rp.remove, rp.add, observed=frozenset()))
    print(lines)


def run_plan(inv_dir: Path, state: Path, out: Path, extra: list[str]) -> dict[str, float]:
    """One ``lbauto plan`` process: CPU s (user+sys), wall s, peak RSS MB, exit code."""
    cmd = [*LBAUTO, "plan", "-i", str(inv_dir), "--state", str(state), "--detailed-exitcode"]
    if str(state) == "empty":  # the peer (see library_peer)
        cmd = [sys.executable, __file__, "--library-peer", str(inv_dir)]
    t0 = time.perf_counter()
    with out.open("wb") as fh:
        proc = subprocess.Popen([*cmd, *extra], stdout=fh, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    rc = os.waitstatus_to_exitcode(status)
    if rc not in (0, 2):
        raise SystemExit(f"lbauto plan failed ({rc}): {err}")
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": wall,
        "peak_mb": usage.ru_maxrss / 1024,
        "rc": rc,
        "out_mb": out.stat().st_size / 1e6,
    }


def drift_text(drift: float) -> str:
    return "from nothing (library)" if drift < 0 else f"deployed, {drift:.0%} drift"


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vips", default="1000,10000")
    ap.add_argument("--routers", type=int, default=100)
    ap.add_argument("--drift", default="0,0.01")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--output", default="table", help="plan -o value (table, json, markdown)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument(
        "--peer", action="store_true", help="also plan each fleet from nothing (library path)"
    )
    ap.add_argument("--profile", action="store_true", help="cProfile one run of the largest size")
    ap.add_argument("--library-peer", help=argparse.SUPPRESS)
    ap.add_argument("--write-state", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.library_peer:
        library_peer(Path(args.library_peer))
        return
    if args.write_state:
        inv_dir, state, drift = args.write_state
        print(write_state(Path(inv_dir), Path(state), float(drift), compact=True))
        return
    sizes = [int(x) for x in args.vips.split(",")]
    drifts = [float(x) for x in args.drift.split(",")]
    with tempfile.TemporaryDirectory(prefix="lbauto-pf-steady-") as tmp:
        root = Path(tmp)
        cases: list[tuple[int, float, Path, Path, int]] = []
        for n in sizes:
            inv_dir = root / f"inv{n}"
            inv_dir.mkdir()
            write_inventory(inv_dir, n, args.routers)
            if args.peer:
                # The peer: the same fleet planned from nothing (every VIP a create).
                cases.append((n, -1.0, inv_dir, Path("empty"), 0))
            for d in drifts:
                state = root / f"state{n}-{d}.json"
                # In a child: a child's peak RSS starts at its parent's (Linux keeps maxrss
                # across fork and exec), and building a 10k state takes this process to 1.5 GB.
                made = subprocess.run(
                    [sys.executable, __file__, "--write-state", str(inv_dir), str(state), str(d)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                cases.append((n, d, inv_dir, state, int(made.stdout)))
        if args.profile:
            _n, _d, inv_dir, state, _ = max(cases, key=lambda c: (c[0], c[1]))
            prof = root / "plan.prof"
            cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "lbauto", "plan"]
            with (root / "out.txt").open("wb") as fh:
                subprocess.run(
                    [*cmd, "-i", str(inv_dir), "--state", str(state)], stdout=fh, check=False
                )
            import pstats

            pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(40)
            return
        extra = ["-o", args.output] if args.output != "table" else []
        results: dict[tuple[int, float], list[dict[str, float]]] = {}
        for _ in range(args.runs):  # rounds: every case once per round, in alternation
            for n, d, inv_dir, state, _objs in cases:
                res = run_plan(inv_dir, state, root / "out.txt", extra)
                results.setdefault((n, d), []).append(res)
    rows = []
    for n, d, _inv, _state, objs in cases:
        rs = results[(n, d)]
        cpu = [r["cpu_s"] for r in rs]
        rows.append(
            {
                "vips": n,
                "routers": args.routers,
                "drift": d,
                "router_objects": objs,
                "runs": len(rs),
                "cpu_s": cpu,
                "wall_s": [r["wall_s"] for r in rs],
                "peak_mb": max(r["peak_mb"] for r in rs),
                "out_mb": rs[0]["out_mb"],
                "exit": rs[0]["rc"],
                "us_per_object": statistics.median(cpu) / objs * 1e6 if objs else None,
            }
        )
    if args.json:
        print(json.dumps({"rows": rows, "loadavg": os.getloadavg()}))
        return
    print(f"load average {os.getloadavg()[0]:.1f}, {args.runs} run(s), output {args.output}")
    print("VIPs | routers | drift | router objects | CPU s median (range) | wall s | peak MB | rc")
    for r in rows:
        print(
            f"{r['vips']} | {r['routers']} | {drift_text(r['drift'])} | {r['router_objects']} | "
            f"{spread(r['cpu_s'])} | {spread(r['wall_s'])} | {r['peak_mb']:.0f} | {r['exit']}"
        )


if __name__ == "__main__":
    main()
