"""VIP update latency (API call -> kernel state applied) with 1,000 VIPs configured.

Needs root. Builds the agent test network (namespaces ``lba*``), starts a real agent, creates
1,000 multi-DIP VIPs with flow tracking, then times PUTs that change one VIP's DIP set. A PUT
returns only after its ``nft -f`` transaction was applied, so the client-side time is the
API-to-kernel latency. Target: p50 <= 75 ms (Ananta's median VIP configuration time).
Then a restart of the agent (reconcile of the 1,000 VIPs, to healthy) and, with ``--damaged``,
a restart with the state file damaged (the VIPs read back from the kernel:
bench_agent_recover.py's last figure, without building its 1,000 VIPs a second time).

``--seed 950`` writes the first 950 VIPs into the agent's state file before it starts (the
start is timed: a reconcile of 950 VIPs into an empty kernel) and creates the last 50 by PUT,
instead of 1,000 PUTs (40-odd seconds); the updates then run on the same 1,000 VIPs. With it,
``--no-restart`` leaves out the plain restart: the timed start is the same reconcile of every
VIP (``render_vip`` of each, in chunks), into an empty kernel rather than a full one.

    sudo .venv/bin/python bench/bench_agent_update.py [--updates 200] [--damaged] [--seed N]
        [--no-restart]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lbauto.agent.client import HttpAgentClient
from lbauto.agent.store import StateStore, VipRecord
from lbauto.core.model import Mode
from tests.integration.agent_net import addr, network

VIPS = 1000
UPDATES = 200


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def apply_stats(c: HttpAgentClient) -> tuple[float, float]:
    text = c._http.get("/metrics").text
    total = re.search(r"^lbauto_agent_apply_seconds_sum (\S+)", text, re.M)
    count = re.search(r"^lbauto_agent_apply_seconds_count (\S+)", text, re.M)
    assert total and count
    return float(total.group(1)), float(count.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--updates", type=int, default=UPDATES, help="timed PUTs (200)")
    ap.add_argument("--damaged", action="store_true", help="also restart on a damaged state file")
    ap.add_argument("--seed", type=int, default=0, metavar="N",
                    help="the first N VIPs from a state file written before the agent starts "
                    "(its start timed), the rest created by PUT")  # fmt: skip
    ap.add_argument("--no-restart", action="store_true", help="no plain restart (see above)")
    args = ap.parse_args()
    load0 = f"{os.getloadavg()[0]:.1f}"
    vips = [ipaddress.ip_address("192.0.2.0") + i for i in range(1, 255)]
    vips += [ipaddress.ip_address("198.18.128.0") + i for i in range(VIPS - len(vips))]
    seeded = vips[: args.seed]
    with network(dips=3, agent=not seeded) as net:
        dips = [addr(d) for d in net.dip4.values()]
        start_s = None
        if seeded:
            StateStore(net.dir / "state.json").save({
                v: VipRecord(v, Mode.MULTI, tuple(dips), True, generation=1).with_marks()
                for v in seeded
            })  # fmt: skip
            t0 = time.perf_counter()
            net.start_agent(timeout=180)
            start_s = time.perf_counter() - t0
        with net.client() as c:
            t0 = time.perf_counter()
            for v in vips[len(seeded) :]:
                c.put_vip(v, mode=Mode.MULTI, dips=dips, flow_tracking=True)
            create = time.perf_counter() - t0
            sum0, n0 = apply_stats(c)
            rnd = random.Random(4242)
            lat: list[float] = []
            for _ in range(args.updates):
                v = rnd.choice(vips)
                k = rnd.choice([1, 2, 3])
                subset = rnd.sample(dips, k)
                mode = Mode.SINGLE if k == 1 else Mode.MULTI
                t = time.perf_counter()
                c.put_vip(v, mode=mode, dips=subset, flow_tracking=k > 1)
                lat.append(time.perf_counter() - t)
            sum1, n1 = apply_stats(c)
            t = time.perf_counter()
            c.list_vips()
            list_s = time.perf_counter() - t
        restart = None
        if not args.no_restart:
            restart0 = time.perf_counter()
            net.stop_agent()
            net.start_agent(timeout=180)  # restoring 1,000 VIPs: 15-21 s quiet, more when busy
            restart = time.perf_counter() - restart0
        recovered = None
        if args.damaged:
            net.stop_agent(kill=True)
            (net.dir / "state.json").write_bytes(b"damaged")
            t = time.perf_counter()
            net.start_agent(timeout=180)
            recovered = time.perf_counter() - t
            with net.client() as c:
                seen, status = len(c.list_vips()), c.health()["status"]
    ms = [x * 1000 for x in lat]
    print(f"VIPs configured: {len(vips)} (3 DIPs, tracking on, M=401 buckets each)")
    if start_s is not None:
        print(f"agent start with {len(seeded)} VIPs in its state file (empty kernel, to "
              f"healthy): {start_s:.1f} s")  # fmt: skip
    made = len(vips) - len(seeded)
    print(f"create {made} VIPs (from {len(seeded)} configured): {create:.1f} s "
          f"({create / made * 1000:.1f} ms/VIP)")  # fmt: skip
    print(f"update latency over {args.updates} PUTs: p50 {statistics.median(ms):.1f} ms, "
          f"p90 {pct(ms, 90):.1f} ms, p99 {pct(ms, 99):.1f} ms, max {max(ms):.1f} ms "
          f"(target p50 <= 75 ms)")  # fmt: skip
    print(f"of which nft transaction (agent side, mean): {(sum1 - sum0) / (n1 - n0) * 1000:.1f} ms")
    print(f"load average during the run: {load0} -> {os.getloadavg()[0]:.1f} (2 cores shared)")
    print(f"GET /v1/vips with {len(vips)} VIPs: {list_s * 1000:.0f} ms")
    if restart is not None:
        print(f"agent restart + reconcile of {len(vips)} VIPs (to healthy): {restart:.1f} s")
    if recovered is not None:
        print(f"restart with a damaged state file (read back {seen} VIPs from the kernel, "
              f"untouched; health {status}): {recovered:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
