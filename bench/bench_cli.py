#!/usr/bin/env python3
"""Benchmark: the commands users run at fleet size, end to end (issue 16 items 0 and 1).

Each case is a fresh ``lbauto`` process (process start to exit, output to a file), measured by
``os.wait4``: CPU time (user + system of that process only, so other jobs on the shared cores
count only through cache and frequency effects), wall time and peak RSS. Cases run in
alternation, one round after the other (``--runs N`` rounds), so load changes hit every case
alike. Fleets are bench_core's (100 routers over the five platforms, a fifth PBR); state files
are bench_steady's (a perfect apply, optionally with 1 % drift), in the compact form that
``lbauto state`` writes.

Cases per size: ``plan`` (table), ``plan -o json`` and ``plan -o markdown`` from nothing
(``--state empty``); ``plan --state FILE`` on the deployed fleet and with 1 % drift (table,
``--detailed-exitcode``). Targets at 10,000 VIPs x 100 routers: table and the two steady-state
plans under 2 s, JSON under 5 s, each under 500 MB.

Usage: ``python bench/bench_cli.py [--vips 1000,10000] [--runs 3] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
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
STEADY = Path(__file__).resolve().parent / "bench_steady.py"
#: case -> (extra arguments, state: "empty" | "deployed" | "drift", target CPU s at 10k)
CASES: dict[str, tuple[list[str], str, float]] = {
    "plan (table), from nothing": ([], "empty", 2.0),
    "plan -o json, from nothing": (["-o", "json"], "empty", 5.0),
    "plan -o markdown, from nothing": (["-o", "markdown"], "empty", 5.0),
    "plan --state, deployed": (["--detailed-exitcode"], "deployed", 2.0),
    "plan --state, 1 % drift": (["--detailed-exitcode"], "drift", 2.0),
}
RSS_TARGET_MB = 500.0


def run(cmd: list[str], out: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    with out.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    if rc not in (0, 2):
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} failed ({rc}): {err}")
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": wall,
        "peak_mb": usage.ru_maxrss / 1024,
        "out_mb": out.stat().st_size / 1e6,
        "rc": rc,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vips", default="1000,10000")
    ap.add_argument("--routers", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", help="comma-separated case numbers (0-4) to run")
    ap.add_argument("--json", action="store_true", help="print one JSON document last")
    args = ap.parse_args()
    sizes = [int(x) for x in args.vips.split(",")]
    names = list(CASES)
    if args.only:
        names = [names[int(i)] for i in args.only.split(",")]
    rows: dict[tuple[int, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="lbauto-fl-cli-") as tmp:
        root = Path(tmp)
        plans: list[tuple[int, str, list[str]]] = []
        for n in sizes:
            inv = root / f"inv{n}"
            inv.mkdir()
            write_inventory(inv, n, args.routers)
            states = {"empty": "empty"}
            for which, drift in (("deployed", "0"), ("drift", "0.01")):
                if not any(CASES[c][1] == which for c in names):
                    continue
                path = root / f"state{n}-{which}.json"
                # In a child: a child's peak RSS starts at its parent's (Linux keeps maxrss
                # across fork and exec), and building the state takes a process to GBs.
                subprocess.run(
                    [sys.executable, str(STEADY), "--write-state", str(inv), str(path), drift],
                    check=True,
                    capture_output=True,
                )
                states[which] = str(path)
            for case in names:
                extra, which, _ = CASES[case]
                cmd = [*LBAUTO, "plan", "-i", str(inv), "--state", states[which], *extra]
                plans.append((n, case, cmd))
        for _ in range(args.runs):
            for n, case, cmd in plans:
                rows.setdefault((n, case), []).append(run(cmd, root / "out.txt"))
    out: list[dict[str, Any]] = []
    for (n, case), rs in rows.items():
        cpu = [r["cpu_s"] for r in rs]
        target = CASES[case][2]
        peak = max(r["peak_mb"] for r in rs)
        out.append(
            {
                "vips": n,
                "routers": args.routers,
                "case": case,
                "runs": len(rs),
                "cpu_s": cpu,
                "wall_s": [r["wall_s"] for r in rs],
                "peak_mb": peak,
                "out_mb": rs[0]["out_mb"],
                "exit": rs[0]["rc"],
                "target_s": target if n >= 10_000 else None,
                "met": (statistics.median(cpu) < target and peak < RSS_TARGET_MB)
                if n >= 10_000
                else None,
            }
        )
    load = os.getloadavg()
    print(f"load average {load[0]:.1f}, {args.runs} run(s) per case, CPU s = user + system")
    print("VIPs | case | CPU s median (range) | wall s | peak MB | output MB | exit | target")
    for r in out:
        cpu = r["cpu_s"]
        mark = "-" if r["met"] is None else ("met" if r["met"] else "missed")
        print(
            f"{r['vips']} | {r['case']} | {statistics.median(cpu):.2f} ({min(cpu):.2f}-"
            f"{max(cpu):.2f}) | {statistics.median(r['wall_s']):.2f} | {r['peak_mb']:.0f} | "
            f"{r['out_mb']:.1f} | {r['exit']} | {mark}"
        )
    if args.json:
        print(json.dumps({"rows": out, "loadavg": load}))


if __name__ == "__main__":
    main()
