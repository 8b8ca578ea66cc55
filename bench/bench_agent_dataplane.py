"""Agent data plane, side by side in one run on the same namespaces (needs root and iperf3):

- TCP throughput (iperf3, one flow, 5 s) and new TCP connections per second (a Python client,
  connect + one line + close) for three paths to the same DIP:
  the router's direct path (the bypass), through the agent with flow tracking on, and through
  the agent with flow tracking off;
- flow-table memory per tracked flow: kernel slab growth when 200,000 entries are added to one
  VIP's flow map.

Figures on a shared 2-core machine are noisy: run it on a quiet machine, read the ratios.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lbauto.agent.client import HttpAgentClient
from lbauto.agent.dataplane import suffix
from lbauto.core.model import Mode
from tests.integration.agent_net import Net, addr, network, sh

VIP = "192.0.2.10"
SECONDS = 5
FLOWS = 200_000


def iperf(net: Net) -> float:
    out = sh(
        "ip", "netns", "exec", net.ns_cli, "iperf3", "-c", VIP, "-t", str(SECONDS), "-J"
    ).stdout
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9


def cps(net: Net, seconds: float = 3.0) -> float:
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        seen = net.short_conns(VIP, 50)
        assert set(seen) == {"d1"}, seen
        n += 50
    return n / (time.perf_counter() - t0)


def slab_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Slab:"):
            return int(line.split()[1])
    raise RuntimeError("no Slab in /proc/meminfo")


def flow_memory(net: Net) -> float:
    """Bytes of kernel slab per flow entry (added from user space in batches)."""
    fmap = f"f{suffix(addr(VIP))}"
    net.nft("flush", "map", "netdev", "lbauto", fmap)
    time.sleep(0.5)
    before = slab_kb()
    batch = 20_000
    for start in range(0, FLOWS, batch):
        elems = ", ".join(
            f"{1024 + i % 60000} . 80 . 203.0.{(i // 60000) % 256}.{1 + i // 15_360_000} : 1"
            for i in range(start, start + batch)
        )
        cmd = f"add element netdev lbauto {fmap} {{ {elems} }}\n"
        subprocess.run(
            ["ip", "netns", "exec", net.ns_agt, "nft", "-f", "-"], input=cmd, text=True, check=True
        )
    time.sleep(0.5)
    after = slab_kb()
    t0 = time.perf_counter()
    with HttpAgentClient(net.api, token=net.token, timeout=300) as c:
        total = c.flows(addr(VIP)).total
    print(f"GET /flows with {total} entries: {time.perf_counter() - t0:.1f} s")
    net.nft("flush", "map", "netdev", "lbauto", fmap)
    return (after - before) * 1024 / max(total, 1)


def main() -> None:
    if not shutil.which("iperf3"):
        sys.exit("iperf3 is not installed (apt-get install iperf3)")
    with network(dips=1) as net:
        d1 = net.dip4["d1"]
        net.add_vip(VIP)
        server = subprocess.Popen(
            ["ip", "netns", "exec", net.ns_dip("d1"), "iperf3", "-s"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            rows = []
            with net.client() as c:
                net.route(VIP, d1)
                rows.append(("direct (router bypass)", iperf(net), cps(net)))
                c.put_vip(addr(VIP), mode=Mode.MULTI, dips=[addr(d1)], flow_tracking=True)
                net.route(VIP, "198.51.100.10")
                rows.append(("agent, tracking on", iperf(net), cps(net)))
                c.put_vip(addr(VIP), mode=Mode.SINGLE, dips=[addr(d1)], flow_tracking=False)
                rows.append(("agent, tracking off", iperf(net), cps(net)))
                c.put_vip(addr(VIP), mode=Mode.MULTI, dips=[addr(d1)], flow_tracking=True)
                per_flow = flow_memory(net)
        finally:
            server.kill()
            server.wait()
    direct = rows[0]
    print(f"{'path':<24} {'Gbit/s':>8} {'x direct':>9} {'conn/s':>8} {'x direct':>9}")
    for name, gbps, rate in rows:
        print(f"{name:<24} {gbps:8.2f} {gbps / direct[1]:9.2f} {rate:8.0f} {rate / direct[2]:9.2f}")
    print(f"flow table: {per_flow:.0f} bytes of kernel slab per tracked flow "
          f"({FLOWS} entries; {per_flow * 1e6 / 2**20:.0f} MiB per million flows)")  # fmt: skip


if __name__ == "__main__":
    main()
