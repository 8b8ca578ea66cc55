"""VIP update latency (API call -> kernel state applied) with 1,000 VIPs configured.

Needs root. Builds the agent test network (namespaces ``lba*``), starts a real agent, creates
1,000 multi-DIP VIPs with flow tracking, then times PUTs that change one VIP's DIP set. A PUT
returns only after its ``nft -f`` transaction was applied, so the client-side time is the
API-to-kernel latency. Target: p50 <= 75 ms (Ananta's median VIP configuration time).
"""

from __future__ import annotations

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
    load0 = f"{os.getloadavg()[0]:.1f}"
    vips = [ipaddress.ip_address("192.0.2.0") + i for i in range(1, 255)]
    vips += [ipaddress.ip_address("198.18.128.0") + i for i in range(VIPS - len(vips))]
    with network(dips=3) as net:
        dips = [addr(d) for d in net.dip4.values()]
        with net.client() as c:
            t0 = time.perf_counter()
            for v in vips:
                c.put_vip(v, mode=Mode.MULTI, dips=dips, flow_tracking=True)
            create = time.perf_counter() - t0
            sum0, n0 = apply_stats(c)
            rnd = random.Random(4242)
            lat: list[float] = []
            for _ in range(UPDATES):
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
        restart0 = time.perf_counter()
        net.stop_agent()
        net.start_agent(timeout=180)  # restoring 1,000 VIPs: 15-21 s measured, more when busy
        restart = time.perf_counter() - restart0
    ms = [x * 1000 for x in lat]
    print(f"VIPs configured: {len(vips)} (3 DIPs, tracking on, M=401 buckets each)")
    print(f"create {len(vips)} VIPs: {create:.1f} s ({create / len(vips) * 1000:.1f} ms/VIP)")
    print(f"update latency over {UPDATES} PUTs: p50 {statistics.median(ms):.1f} ms, "
          f"p90 {pct(ms, 90):.1f} ms, p99 {pct(ms, 99):.1f} ms, max {max(ms):.1f} ms "
          f"(target p50 <= 75 ms)")  # fmt: skip
    print(f"of which nft transaction (agent side, mean): {(sum1 - sum0) / (n1 - n0) * 1000:.1f} ms")
    print(f"load average during the run: {load0} -> {os.getloadavg()[0]:.1f} (2 cores shared)")
    print(f"GET /v1/vips with {len(vips)} VIPs: {list_s * 1000:.0f} ms")
    print(f"agent restart + reconcile of {len(vips)} VIPs (to healthy): {restart:.1f} s")


if __name__ == "__main__":
    main()
