"""Agent data plane, side by side in one run on the same namespaces (needs root and iperf3):

- TCP throughput (iperf3, one flow) and new TCP connections per second (a Python client,
  connect + one line + close with RST, so no client port waits in TIME_WAIT) for IPv4 and
  IPv6, each over three paths to the same DIP: the router's direct path (the bypass), through
  the agent with flow tracking on, and through the agent with flow tracking off;
- flow listing: 10k / 100k / 200k entries in one VIP's flow state (IPv4 map, IPv6 exact set),
  counted and listed over netlink (what the agent does), through the API, and with
  ``nft -j`` (the old way, for comparison);
- drain-wait end latency: from the close of the last connection on a draining DIP to the
  agent's open-flow count reaching 0 and to the drain ending (flow timeout 300 s: only the
  FINs can end it);
- flow-table memory per tracked flow (kernel slab growth for 200,000 IPv4 entries).

Figures on a shared 2-core machine are noisy: run it on a quiet machine, read the ratios.
``--quick`` skips iperf3/connection rates (flow listing and drain latency only: bench/run takes
the paths from bench_dataplane.py, which measures them in rounds); ``--sizes 10000,100000``
lists fewer flow-table sizes (the memory figure still fills 200,000 entries).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lbauto.agent.client import HttpAgentClient
from lbauto.agent.dataplane import NftDataplane, suffix
from lbauto.core.model import Drain, Mode
from tests.integration.agent_net import Net, addr, in_netns, network, sh

VIPS = {4: "192.0.2.10", 6: "2001:db8:10::10"}
AGENT = {4: "198.51.100.10", 6: "2001:db8:100::10"}
SECONDS = 5
SIZES = (10_000, 100_000, 200_000)
#: Flow entries of the memory figure, whatever ``--sizes`` lists: the slab is the machine's,
#: so fewer entries let other jobs' allocations weigh more (142 bytes per flow from 100k on a
#: busy machine against 101-108 from 200k)
MEMORY_ENTRIES = 200_000
T = TypeVar("T")


def iperf(net: Net, vip: str) -> float:
    out = sh(
        "ip", "netns", "exec", net.ns_cli, "iperf3", "-c", vip, "-t", str(SECONDS), "-J"
    ).stdout
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9


def cps(net: Net, vip: str, seconds: float = 3.0) -> float:
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        seen = net.short_conns(vip, 50, reset=True)
        assert set(seen) == {"d1"}, seen
        n += 50
    return n / (time.perf_counter() - t0)


def paths(net: Net, v: int) -> list[tuple[str, float, float]]:
    vip, d1 = VIPS[v], (net.dip4 if v == 4 else net.dip6)["d1"]
    rows = []
    with net.client() as c:
        net.route(vip, d1)
        rows.append((f"IPv{v} direct (router bypass)", iperf(net, vip), cps(net, vip)))
        c.put_vip(addr(vip), mode=Mode.MULTI, dips=[addr(d1)], flow_tracking=True)
        net.route(vip, AGENT[v])
        rows.append((f"IPv{v} agent, tracking on", iperf(net, vip), cps(net, vip)))
        c.put_vip(addr(vip), mode=Mode.SINGLE, dips=[addr(d1)], flow_tracking=False)
        rows.append((f"IPv{v} agent, tracking off", iperf(net, vip), cps(net, vip)))
    return rows


def slab_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Slab:"):
            return int(line.split()[1])
    raise RuntimeError("no Slab in /proc/meminfo")


def fill(net: Net, v: int, n: int) -> None:
    """``n`` flow entries (mark 1..3) added from user space, in batches."""
    sfx = suffix(addr(VIPS[v]))
    name = f"f{sfx}" if v == 4 else f"x{sfx}"
    net.nft("flush", "map" if v == 4 else "set", "netdev", "lbauto", name)
    batch = 20_000
    for start in range(0, n, batch):
        if v == 4:
            elems = ", ".join(
                f"{1024 + i % 60000} . 80 . 203.0.{(i // 60000) % 256}.{1 + i // 15_360_000}"
                f" : {1 + i % 3}"
                for i in range(start, min(n, start + batch))
            )
        else:
            elems = ", ".join(
                f"{1024 + i % 60000} . 80 . {1 + i % 3} . 2001:db8:203::{i // 60000:x}:1"
                for i in range(start, min(n, start + batch))
            )
        cmd = f"add element netdev lbauto {name} {{ {elems} }}\n"
        subprocess.run(
            ["ip", "netns", "exec", net.ns_agt, "nft", "-f", "-"], input=cmd, text=True, check=True
        )


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def listing(net: Net, sizes: tuple[int, ...]) -> list[tuple[str, int, float, float, float, float]]:
    """(family, entries, netlink count s, netlink list s, API count s, nft -j s)."""
    dp = NftDataplane()
    rows = []
    with HttpAgentClient(net.api, token=net.token, timeout=300) as c:
        for v in (4, 6):
            vip = VIPS[v]
            d = [addr((net.dip4 if v == 4 else net.dip6)[n]) for n in net.dip_names]
            c.put_vip(addr(vip), mode=Mode.MULTI, dips=d, flow_tracking=True)
            sfx = suffix(addr(vip))
            kind, name = ("map", f"f{sfx}") if v == 4 else ("set", f"x{sfx}")
            for n in sizes:
                fill(net, v, n)
                t_count, counts = in_netns(
                    net.ns_agt, partial(timed, partial(dp.flow_counts, "lbauto", sfx))
                )
                assert sum(counts.values()) == n, (n, sum(counts.values()))
                t_list, entries = in_netns(
                    net.ns_agt, partial(timed, partial(dp.flows, "lbauto", sfx))
                )
                assert len(entries) == n
                t_api, fc = timed(partial(c.flows, addr(vip)))
                assert fc.total == n, (n, fc.total)
                t_nft = float("nan")
                if n <= 100_000:
                    t_nft, _ = timed(partial(net.nft, "-j", "list", kind, "netdev", "lbauto", name))
                rows.append((f"IPv{v}", n, t_count, t_list, t_api, t_nft))
            net.nft("flush", "map" if v == 4 else "set", "netdev", "lbauto",
                    f"f{sfx}" if v == 4 else f"x{sfx}")  # fmt: skip
    return rows


def drain_latency(net: Net, v: int, runs: int = 5) -> tuple[list[float], list[float]]:
    """Seconds from the last close on the draining DIP to (count 0, drain ended)."""
    vip = VIPS[v]
    table = net.dip4 if v == 4 else net.dip6
    counted, ended = [], []
    with net.client() as c:
        for _ in range(runs):
            c.delete_vip(addr(vip))
            c.put_vip(addr(vip), mode=Mode.MULTI, dips=[addr(table["d1"]), addr(table["d2"])],
                      flow_tracking=True)  # fmt: skip
            net.route(vip, AGENT[v])
            conns = net.open_conns(vip, 40)
            on_d1 = [x for x in conns.conns if x.dip == "d1"]
            c.put_vip(addr(vip), mode=Mode.MULTI, dips=[addr(table["d2"])], flow_tracking=True,
                      drain=Drain((addr(table["d1"]),), 60))  # fmt: skip
            for x in on_d1:
                x.end()
            t0 = time.monotonic()
            t_count = t_end = None
            while time.monotonic() - t0 < 10 and (t_count is None or t_end is None):
                if t_count is None and not c.flows(addr(vip)).per_dip.get(addr(table["d1"])):
                    t_count = time.monotonic() - t0
                doc = c.get_vip(addr(vip))
                if t_end is None and doc is not None and doc.drain is None:
                    t_end = time.monotonic() - t0
                time.sleep(0.01)
            conns.close()
            counted.append(t_count if t_count is not None else float("inf"))
            ended.append(t_end if t_end is not None else float("inf"))
    return counted, ended


def flow_memory(net: Net, n: int) -> float:
    """Bytes of kernel slab per IPv4 flow entry (``n`` added from user space)."""
    with net.client() as c:
        d = addr(net.dip4["d1"])
        c.put_vip(addr(VIPS[4]), mode=Mode.MULTI, dips=[d], flow_tracking=True)
    fill(net, 4, 0)
    time.sleep(0.5)
    before = slab_kb()
    fill(net, 4, n)
    time.sleep(0.5)
    after = slab_kb()
    fill(net, 4, 0)
    return (after - before) * 1024 / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="no iperf3 / connection rates")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="flow-table sizes")
    args = ap.parse_args()
    quick = args.quick
    sizes = tuple(int(x) for x in args.sizes.split(","))
    if not quick and not shutil.which("iperf3"):
        sys.exit("iperf3 is not installed (apt-get install iperf3)")
    rows: list[tuple[str, float, float]] = []
    with network(dips=3) as net:
        for v in (4, 6):
            net.add_vip(VIPS[v])
        if not quick:
            server = subprocess.Popen(
                ["ip", "netns", "exec", net.ns_dip("d1"), "iperf3", "-s"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                time.sleep(0.5)
                for v in (4, 6):
                    rows += paths(net, v)
            finally:
                server.kill()
                server.wait()
        lists = listing(net, sizes)
        drains = {v: drain_latency(net, v) for v in (4, 6)}
        per_flow = flow_memory(net, MEMORY_ENTRIES)
    if rows:
        print(f"{'path':<30} {'Gbit/s':>8} {'x direct':>9} {'conn/s':>8} {'x direct':>9}")
        for i, (name, gbps, rate) in enumerate(rows):
            direct = rows[i - i % 3]
            print(f"{name:<30} {gbps:8.2f} {gbps / direct[1]:9.2f} {rate:8.0f} "
                  f"{rate / direct[2]:9.2f}")  # fmt: skip
    print(f"\n{'flows':<6} {'entries':>8} {'count s':>8} {'list s':>8} {'API count s':>12} "
          f"{'nft -j s':>9}")  # fmt: skip
    for fam, n, tc, tl, ta, tn in lists:
        print(f"{fam:<6} {n:>8} {tc:8.3f} {tl:8.3f} {ta:12.3f} {tn:9.2f}")
    print("\ndrain-wait end after the last close (5 runs; flow timeout 300 s, agent tick 0.3 s)")
    for v, (counted, ended) in drains.items():
        print(f"IPv{v}: open-flow count 0 after median {statistics.median(counted):.3f} s "
              f"(max {max(counted):.3f}); drain ended after median "
              f"{statistics.median(ended):.3f} s (max {max(ended):.3f})")  # fmt: skip
    print(f"\nflow table: {per_flow:.0f} bytes of kernel slab per tracked IPv4 flow "
          f"({MEMORY_ENTRIES} entries; {per_flow * 1e6 / 2**20:.0f} MiB per million "
          "flows)")  # fmt: skip


if __name__ == "__main__":
    main()
