"""The shared apply lock in a real etcd (no root; needs Debian's ``etcd-server``): how long
``apply`` spends taking and releasing the lock, against the local ``flock``, and how long a
run killed with SIGKILL keeps the next one out (the lease expiry takeover time).

    .venv/bin/python bench/bench_etcd_lock.py [--runs 5] [--iterations 20] [--ttls 3,10]

Acquire = entering ``backend.lock()`` (probe ``/version``, local flock, lease grant, the
put-if-absent transaction, the keepalive thread started); release = leaving it (thread
stopped, lease revoked). A journal event = one event written to the state directory's
two files (fsynced) and, with etcd, put under the lock's lease. Takeover = from the
holder's SIGKILL to the next lock taken, polling every 50 ms.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lbauto.core.model import EtcdBackend
from lbauto.errors import LockedError
from lbauto.orchestrate.backends import StateBackend
from lbauto.orchestrate.backends.etcd import EtcdStateBackend
from lbauto.orchestrate.backends.local import LocalBackend
from tests.integration.etcd_server import etcd_missing, etcd_server

HOLDER = """
import sys
from pathlib import Path
from lbauto.core.model import EtcdBackend
from lbauto.orchestrate.backends.etcd import EtcdStateBackend
cfg = EtcdBackend(endpoints=(sys.argv[1],), prefix=sys.argv[2], lease_ttl=int(sys.argv[3]))
with EtcdStateBackend(cfg, Path(sys.argv[4])).lock("bench holder"):
    print("held", flush=True)
    sys.stdin.read()
"""


def ms(xs: list[float]) -> str:
    lo, mid, hi = (x * 1000 for x in (min(xs), statistics.median(xs), max(xs)))
    return f"median {mid:.1f} ms (range {lo:.1f}-{hi:.1f})"


def cycle(backend: StateBackend, n: int) -> tuple[float, float]:
    """Median acquire and release time over ``n`` lock cycles."""
    acq: list[float] = []
    rel: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        cm = backend.lock("bench")
        cm.__enter__()
        t1 = time.perf_counter()
        cm.__exit__(None, None, None)
        t2 = time.perf_counter()
        acq.append(t1 - t0)
        rel.append(t2 - t1)
    return statistics.median(acq), statistics.median(rel)


def appends(backend: StateBackend, n: int) -> float:
    """Median time of one journal event (local fsynced files, plus etcd's fenced put)."""
    with backend.lock("bench"):
        journal = backend.journal()
        times: list[float] = []
        for i in range(n):
            t0 = time.perf_counter()
            journal.record("end", vip="web", step=i, action="agent.set_vip")
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def takeover(url: str, prefix: str, ttl: int, tmp: Path) -> float:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, prefix, str(ttl), str(tmp / "holder")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    holder.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    holder.wait()
    for stream in (holder.stdin, holder.stdout):
        if stream is not None:
            stream.close()
    nxt = EtcdStateBackend(EtcdBackend(endpoints=(url,), prefix=prefix, lease_ttl=ttl), tmp)
    while True:
        try:
            with nxt.lock("bench next"):
                return time.monotonic() - killed
        except LockedError:
            time.sleep(0.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--ttls", default="3,10")
    args = ap.parse_args()
    reason = etcd_missing()
    if reason:
        print(f"skipped: {reason}")
        return 0
    with etcd_server("et-bench") as server, tempfile.TemporaryDirectory(prefix="et-") as t:
        tmp = Path(t)
        print(f"etcd {server.version()} on loopback, {args.runs} runs")
        etcd = EtcdStateBackend(
            EtcdBackend(endpoints=(server.url,), prefix="/lbauto/bench"), tmp / "e"
        )
        local = LocalBackend(tmp / "l")
        for name, backend in (("etcd", etcd), ("local flock", local)):
            runs = [cycle(backend, args.iterations) for _ in range(args.runs)]
            print(
                f"{name:12} acquire {ms([a for a, _ in runs])}, release "
                f"{ms([r for _, r in runs])} (each run: median of {args.iterations} cycles)"
            )
        for name, backend in (("etcd", etcd), ("local files", local)):
            per_run = [appends(backend, args.iterations) for _ in range(args.runs)]
            print(f"{name:12} journal event {ms(per_run)} (each run: median of {args.iterations})")
        for ttl in (int(x) for x in args.ttls.split(",")):
            times = [takeover(server.url, f"/lbauto/bench-ttl{ttl}-{i}", ttl, tmp)
                     for i in range(args.runs)]  # fmt: skip
            print(
                f"takeover after SIGKILL, lease_ttl {ttl} s: median "
                f"{statistics.median(times):.2f} s (range {min(times):.2f}-{max(times):.2f}, "
                f"{args.runs} runs)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
