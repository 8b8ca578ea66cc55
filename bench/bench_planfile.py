"""Saved plans and PR comments at scale (no root): for an inventory of N single-DIP VIPs and
R FRR routers planned from nothing, the time of ``plan_document``, writing and reading the plan
file (``plan --out`` / ``apply PLAN``'s load), the stale check on an unchanged state, and
``-o markdown`` within GitHub's limit; the plan file's size.

    .venv/bin/python bench/bench_planfile.py [--vips 2000] [--routers 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lbauto.cli.present import plan_markdown
from lbauto.core.model import ObservedState
from lbauto.core.plan import PlanOptions
from lbauto.core.planner import make_plan
from lbauto.inventory import load_inventory
from lbauto.orchestrate.plandoc import plan_document
from lbauto.orchestrate.planfile import (
    build_plan_file,
    inventory_changes,
    load_plan_file,
    state_changes,
    state_digest,
    write_plan_file,
)


def inventory(root: Path, vips: int, routers: int) -> Path:
    inv = root / "inv"
    inv.mkdir()
    (inv / "agents.yaml").write_text(
        "agents:\n  - name: lb1\n    api: http://127.0.0.1:9/\n    address: 198.51.100.10\n"
        "    token_env: LBAUTO_BENCH_TOKEN\n"
    )
    (inv / "hosts.yaml").write_text(
        "".join(
            f"r{i}:\n  hostname: 203.0.113.{i}\n  platform: frr\n" for i in range(1, routers + 1)
        )
    )
    lines = ["vips:"]
    for i in range(vips):
        lines.append(
            f"  - name: t{i:06d}\n    address: 198.18.{i // 250}.{i % 250 + 1}\n"
            f"    dips: [198.19.{i // 250}.{i % 250 + 1}]"
        )
    (inv / "vips.yaml").write_text("\n".join(lines) + "\n")
    return inv


def timed(label: str, fn, *args, **kw):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn(*args, **kw)
    print(f"  {label:<34} {time.perf_counter() - t:8.3f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vips", type=int, default=2000)
    ap.add_argument("--routers", type=int, default=4)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inv = load_inventory(inventory(root, a.vips, a.routers))
        observed = ObservedState()
        print(f"{a.vips} VIPs x {a.routers} FRR routers, planned from nothing:")
        plan = timed("make_plan", make_plan, inv, observed, PlanOptions())
        doc = timed("plan_document (renders lines)", plan_document, plan, inv, observed)
        pf = timed(
            "build plan file (digests)",
            build_plan_file,
            plan_doc=doc,
            inv=inv,
            inventory_given=inv.path,
            observed=observed,
            source="empty",
            state_file=None,
            options=PlanOptions(),
            limit=[],
            only=None,
        )
        out = root / "plan.lbauto"
        timed("write plan file", write_plan_file, out, pf)
        print(f"  {'plan file size':<34} {out.stat().st_size / 1e6:8.2f} MB")
        back = timed("load + validate plan file", load_plan_file, out)
        timed("inventory digest check", inventory_changes, back, inv)
        timed(
            "state digest + diff",
            lambda: (state_digest(observed), state_changes(observed, observed)),
        )
        md = timed("markdown (65536-char limit)", plan_markdown, doc)
        print(f"  {'markdown size':<34} {len(md):8d} chars (truncated: {'Truncated' in md})")


if __name__ == "__main__":
    main()
