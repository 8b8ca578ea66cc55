#!/usr/bin/env python3
"""Benchmark: checking and check-running playbooks (no devices, no root).

- check: ``read_play`` of a playbook of N tasks against the example inventory (YAML with lines,
  pydantic models, Jinja syntax and names, arguments rendered and validated per loop item);
- check-run: ``lbauto play --check`` of ``playbooks/reconcile.yml`` and
  ``playbooks/dip-maintenance.yml`` from the example's state file (scratch inventory copy,
  in-memory devices, every transition executed against them).

Usage: ``python bench/bench_play.py [--tasks 100,1000] [--repeat 5]``; prints one line per figure.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from lbauto.play import TextReport, read_play, run_play

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "inventories" / "example"
STATE = EXAMPLE / "state.json"

TASK = """  - name: step {i} on {{{{ vip }}}}
    scale:
      vip: "{{{{ vip }}}}"
      add: "{{{{ item }}}}"
      drain_timeout: "{{{{ timeout }}}}"
    loop: ["198.51.100.{a}", "198.51.100.{b}"]
    when: "{i} > 0"
  - name: check {i}
    assert:
      vip: web
      mode: multi
      that: ["lbauto.vip.web.dips | length > 0"]
"""


def playbook(tasks: int, directory: Path) -> Path:
    body = "".join(TASK.format(i=i, a=100 + i % 100, b=200 + i % 50) for i in range(tasks // 2))
    path = directory / f"pb{tasks}.yml"
    path.write_text(f"name: bench\nvars:\n  vip: web\n  timeout: 5\ntasks:\n{body}")
    return path


def timed(fn: object, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="100,1000")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.tasks.split(",")):
            path = playbook(n, Path(tmp))
            s = timed(lambda p=path: read_play(p, inventory=EXAMPLE), args.repeat)
            print(f"check {n} tasks: {s * 1000:.0f} ms ({s / n * 1e6:.0f} us/task)")
    cases: list[tuple[str, Mapping[str, object]]] = [
        ("reconcile.yml", {}),
        ("dip-maintenance.yml", {"host": ["198.51.100.22"]}),
    ]
    for name, extra in cases:

        def run(name: str = name, extra: Mapping[str, object] = extra) -> None:
            play = read_play(
                ROOT / "playbooks" / name, inventory=EXAMPLE, extra_vars=extra, check=True
            )
            result = run_play(play, TextReport(io.StringIO()), check=True, observed_file=STATE)
            assert not result.failed

        s = timed(run, args.repeat)
        print(f"check-run {name} (example inventory, state file): {s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
