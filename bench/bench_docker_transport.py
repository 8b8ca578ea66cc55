#!/usr/bin/env python3
"""Benchmark: napalm_frr's docker transport against a real FRR container (issue 15).

Starts one container from ``lbauto-clab/frr`` (``make clab-images``; ``--network none``, the
topology's capabilities), then times, per round, ``open()``, ``load_merge_candidate`` +
``compare_config``, ``commit_config(revert_in=60)`` + ``confirm_commit`` and ``rollback()``,
and ``close()``. Wall-clock seconds (each step is ``docker exec`` round trips: process start
in the container dominates, not CPU here). Removes the container at the end. Root and a
running dockerd needed (``containerlab/dockerd.sh start``).

Usage: ``python bench/bench_docker_transport.py [--rounds 10]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import napalm

REPO = Path(__file__).resolve().parent.parent
IMAGE = "lbauto-clab/frr:latest"
NAME = "lbauto-bench-frr"
ROUTE = "ip route 192.0.2.99/32 198.51.100.99 tag 4242 200\n"


def start(tmp: Path) -> None:
    for f in ("daemons", "frr1.conf"):
        (tmp / f).write_text((REPO / "containerlab" / "frr" / f).read_text())
    subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
    subprocess.run(
        ["docker", "run", "-d", "--name", NAME, "--hostname", "frr1", "--network", "none",
         "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", "--cap-add", "SYS_ADMIN",
         "--sysctl", "net.ipv4.ip_forward=1",
         "-v", f"{tmp / 'daemons'}:/etc/frr/daemons",
         "-v", f"{tmp / 'frr1.conf'}:/etc/frr/frr.conf",
         IMAGE],
        check=True, capture_output=True,
    )  # fmt: skip
    for _ in range(100):
        ok = subprocess.run(["docker", "exec", NAME, "vtysh", "-c", "show version"],
                            capture_output=True, check=False)  # fmt: skip
        if ok.returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit("FRR did not answer vtysh in the container")


def timed(out: dict[str, list[float]], key: str, fn: Callable[[], Any]) -> Any:
    t = time.perf_counter()
    result = fn()
    out.setdefault(key, []).append(time.perf_counter() - t)
    return result


def one_round(out: dict[str, list[float]]) -> None:
    d = napalm.get_network_driver("frr")(
        "frr1", "root", "", optional_args={"transport": "docker", "container": NAME}
    )
    timed(out, "open", d.open)
    timed(out, "load + compare_config", lambda: (d.load_merge_candidate(config=ROUTE),
                                                 d.compare_config()))  # fmt: skip
    timed(out, "commit(revert_in) + confirm", lambda: (d.commit_config(revert_in=60),
                                                       d.confirm_commit()))  # fmt: skip
    timed(out, "rollback", d.rollback)
    timed(out, "close", d.close)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start(Path(tmp))
        try:
            out: dict[str, list[float]] = {}
            one_round({})  # warm-up (first docker exec, page cache)
            for _ in range(args.rounds):
                one_round(out)
        finally:
            subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
    print(f"docker transport, {args.rounds} rounds (wall seconds: median / max)")
    for key, values in out.items():
        print(f"  {key:30s} {statistics.median(values):6.3f} / {max(values):6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
