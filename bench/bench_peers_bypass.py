"""What bypass saves: the agent's packets, flow entries and CPU before and after a real ``apply``.

    sudo .venv/bin/python bench/bench_peers_bypass.py [--vips 20] [--rounds 3] [--json]

A lab (lbauto's own: FRR router over SSH, one agent, three DIPs with HTTP servers) with a
workload of mostly single-DIP VIPs (4 in 5 on one DIP, the rest on all three). "Before" is the
fleet with every VIP through the agent (``bypass: never`` in vips.yaml, converged by a real
``run_apply``); then ``bypass: never`` is removed and a real ``run_apply`` moves the single-DIP
VIPs to router bypasses (timed). The same workload runs in both states, ``--rounds`` times
each, alternating (before, after, before, ...: each switch is a real apply):

- the agent's packets: the per-VIP counters of its verdict map (``nft``), summed;
- flow entries the agent holds right after the workload (netlink count, every VIP);
- CPU: the client's kernel time per request (wrk's system time: this kernel has no IRQ time
  accounting, so forwarding a sent packet through the router, the bridge and the agent, done
  in softirq on the sender's CPU, is charged to the sender: the agent's hop shows there), and
  the agent's data-plane share estimated as packets x the per-packet cost of the agent path
  over the direct path (``bench/bench_dataplane.py``'s ``us/pkt``, given as
  ``--us-per-packet``). The machine's busy time is not used: other jobs fill it.

Workload: ``wrk`` with ``Connection: close`` (one request per new connection) for
``--seconds``, one per VIP, every VIP at once.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lbauto.agent.dataplane import NftDataplane, suffix
from lbauto.core.plan import PlanOptions
from lbauto.inventory import load_inventory
from lbauto.lab import Lab, LabSpec, down
from lbauto.lab.host import netns_argv
from lbauto.orchestrate.apply import ApplyOutcome, run_apply
from lbauto.orchestrate.live import live_devices

NAME = "dpbyp"
OPTIONS = PlanOptions(transit_seconds=5, drain_timeout=0)


def vip_list(n: int) -> list[tuple[str, str, list[str]]]:
    """(name, address, DIP names): 4 in 5 single-DIP."""
    out = []
    for i in range(n):
        dips = ["d1", "d2", "d3"] if i % 5 == 4 else [f"d{1 + i % 3}"]
        out.append((f"t{i}", f"192.0.2.{100 + i}", dips))
    return out


def write_vips(lab: Lab, vips: list[tuple[str, str, list[str]]], never: bool) -> None:
    lines = ["vips:\n"]
    for name, address, dips in vips:
        addrs = ", ".join(str(lab.dip(d).address) for d in dips)
        lines.append(f"  - name: {name}\n    address: {address}\n    dips: [{addrs}]\n")
        if never:
            lines.append("    bypass: never\n")
    (lab.inventory_dir / "vips.yaml").write_text("".join(lines), encoding="utf-8")


def converge(lab: Lab) -> tuple[float, ApplyOutcome]:
    inv = load_inventory(lab.inventory_dir)
    devices = live_devices(inv)
    t0 = time.perf_counter()
    try:
        out = run_apply(inv, devices, options=OPTIONS, dry_run=False, confirm=lambda _: True)
    finally:
        devices.close()
    if out.converged is False:
        raise SystemExit(f"lab {NAME} does not converge: {out.remaining}")
    return time.perf_counter() - t0, out


def agent_view(lab: Lab, addresses: list[str]) -> tuple[int, int]:
    """(packets counted by the agent's verdict map, flow entries held) over ``addresses``."""
    agent = lab.agents[0]
    dp = NftDataplane(["ip", "netns", "exec", agent.netns, "nft"])
    counters = dp.counters("lbauto")
    packets = sum(counters[a].packets for a in addresses if a in counters)
    flows = 0
    for a in addresses:
        if a in counters:
            flows += sum(dp.flow_counts("lbauto", suffix(ipaddress.ip_address(a))).values())
    return packets, flows


def workload(lab: Lab, addresses: list[str], seconds: int) -> tuple[int, float]:
    """(requests done, each on a new connection; wrk's kernel CPU seconds).

    One ``wrk`` per VIP, all at once: the figures are per request (packets, flow entries,
    kernel time), so running the VIPs side by side gives them in one window instead of one
    window per VIP (20 s for 20 VIPs) at the same cost per request."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
    wrk = ["wrk", "-t1", "-c2", f"-d{seconds}s", "-H", "Connection: close"]
    procs = []
    for a in addresses:
        argv = netns_argv(lab.client.netns, [*wrk, f"http://{a}/"])
        procs.append(
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    done = 0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 30)
        if p.returncode != 0:
            raise SystemExit(f"wrk failed ({p.returncode}): {out}")
        for ln in out.splitlines():
            if "requests in" in ln:
                done += int(ln.split()[0])
    return done, resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime - r0


@contextmanager
def lab_up() -> Iterator[Lab]:
    down(NAME)
    lab = Lab.up(LabSpec(name=NAME, routers=1, agents=1, dips=3, start_agents=True))
    try:
        yield lab
    finally:
        lab.down()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vips", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=1)
    ap.add_argument("--us-per-packet", type=float, default=None,
                    help="agent path minus direct path, kernel us per packet")  # fmt: skip
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    vips = vip_list(args.vips)
    addresses = [a for _, a, _ in vips]
    res: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    load = [os.getloadavg()[0]]
    applies: list[float] = []
    with lab_up() as lab:
        for a in addresses:
            lab.add_vip(a)
        for _ in range(args.rounds):
            for state in ("before", "after"):
                write_vips(lab, vips, never=state == "before")
                took, _ = converge(lab)
                if state == "after":
                    applies.append(took)
                time.sleep(0.5)  # the transit pins' window is not what is measured
                p0, _ = agent_view(lab, addresses)
                t0 = time.perf_counter()
                done, sys_s = workload(lab, addresses, args.seconds)
                wall = time.perf_counter() - t0
                p1, flows = agent_view(lab, addresses)
                row = res[state]
                for k, x in (("requests", done), ("agent packets", p1 - p0),
                             ("agent packets per request", (p1 - p0) / max(done, 1)),
                             ("flow entries", flows),
                             ("client kernel us per request", sys_s / max(done, 1) * 1e6),
                             ("wall s", wall)):  # fmt: skip
                    row.setdefault(k, []).append(float(x))
            load.append(os.getloadavg()[0])
    doc: dict[str, Any] = {"vips": args.vips, "single": sum(len(d) == 1 for _, _, d in vips),
                           "rounds": args.rounds, "load": load, "apply_s": applies,
                           "results": res}  # fmt: skip
    print(f"{args.vips} VIPs ({doc['single']} single-DIP), {args.rounds} rounds, "
          f"load average {[round(x, 1) for x in load]}")  # fmt: skip
    print(f"{'':<30}{'before (all via agent)':>28}{'after apply (bypass)':>28}")
    for k in res["before"]:
        cells = []
        for state in ("before", "after"):
            xs = res[state][k]
            cells.append(f"{statistics.median(xs):12.1f} ({min(xs):.0f}-{max(xs):.0f})".rjust(28))
        print(f"{k:<30}" + "".join(cells))
    if args.us_per_packet is not None:
        for state in ("before", "after"):
            pk = statistics.median(res[state]["agent packets"])
            print(f"agent data-plane CPU ({state}, {args.us_per_packet} us/packet): "
                  f"{pk * args.us_per_packet / 1e6:.3f} s")  # fmt: skip
    print(f"apply before -> after (real, {args.rounds} runs): median "
          f"{statistics.median(applies):.2f} s ({min(applies):.2f}-"
          f"{max(applies):.2f})")  # fmt: skip
    if args.json:
        print(json.dumps(doc))


if __name__ == "__main__":
    main()
