"""Agent start without a usable state file: recovery of 1,000 VIPs from the kernel.

Needs root. Builds the agent test network (namespaces ``ah*``), starts a real agent, creates
1,000 multi-DIP VIPs with flow tracking, then times: PUT latency (each PUT also replaces the
VIP's metadata element), a plain restart (state file good: reconcile), and a restart with the
state file damaged (the VIPs are read back with one ``nft -j list table`` and left untouched).
"""

from __future__ import annotations

import ipaddress
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lbauto.core.model import Mode
from tests.integration.agent_net import Net, addr, network

VIPS = 1000
UPDATES = 100


def start(net: Net) -> float:
    """Start the agent; seconds until it answers (it may need longer than the test helper's
    20 s wait with 1,000 VIPs on a loaded host)."""
    t = time.perf_counter()
    try:
        net.start_agent()
    except RuntimeError:
        while True:
            try:
                if httpx.get(f"{net.api}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
    return time.perf_counter() - t


def main() -> None:
    load0 = f"{os.getloadavg()[0]:.1f}"
    vips = [ipaddress.ip_address("192.0.2.0") + i for i in range(1, 255)]
    vips += [ipaddress.ip_address("198.18.128.0") + i for i in range(VIPS - len(vips))]
    with network(dips=3, prefix="ah") as net:
        dips = [addr(d) for d in net.dip4.values()]
        with net.client() as c:
            for v in vips:
                c.put_vip(v, mode=Mode.MULTI, dips=dips, flow_tracking=True, name="web")
            lat = []
            for i in range(UPDATES):
                t = time.perf_counter()
                c.put_vip(vips[i], mode=Mode.MULTI, dips=dips[: 2 + i % 2], flow_tracking=True)
                lat.append((time.perf_counter() - t) * 1000)
        net.stop_agent()
        plain = start(net)
        net.stop_agent(kill=True)
        (net.dir / "state.json").write_bytes(b"damaged")
        recovered = start(net)
        with net.client() as c:
            n = len(c.list_vips())
            status = c.health()["status"]
    print(f"PUT latency with {VIPS} VIPs over {UPDATES} PUTs (metadata element included): "
          f"p50 {statistics.median(lat):.1f} ms, max {max(lat):.1f} ms")  # fmt: skip
    print(f"restart with a good state file (reconcile {VIPS} VIPs, to healthy): {plain:.1f} s")
    print(f"restart with a damaged state file (read back {n} VIPs from the kernel, "
          f"untouched; health {status}): {recovered:.1f} s")  # fmt: skip
    print(f"load average: {load0} -> {os.getloadavg()[0]:.1f} (2 cores shared)")


if __name__ == "__main__":
    main()
