"""Pool failover: how fast 2 routers stop sending to a failed agent, and what breaks.

Needs root. Builds the BGP lab ``bgbn`` (2 routers x 3 agents, ``lbauto lab up --bgp``,
converged by ``lbauto apply`` with ``lbauto_lb_route: bgp``), four multi-DIP VIPs (two IPv4,
two IPv6) with the same DIPs on every agent, and 200 long-lived TCP connections through both
routers. Per run: kill -9 of agent a1 and its restart (rejoin), a1's
cable cut with BFD (100 ms x 3) and restored, and the same cut with BFD off and BGP timers
keepalive 1 / hold 3 s (the shortest hold FRR allows). Detection = time from the fault until
the last router's FIB has no next hop to the agent for any VIP (FIB sampled every ~10-20 ms);
rejoin = until both routers have it again for every VIP. Prints median and range per figure.
``--plain-runs N`` measures the plain-BGP cut in the first N runs only (its detection is the
hold timer by construction, and each run restarts the agent twice: the costliest fault).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lbauto.lab import Lab, LabSpec, down
from lbauto.lab.pool import (
    Run,
    agent_hops,
    apply,
    measure,
    plain_bgp,
    set_link,
    wait_group,
    write_inventory,
)
from lbauto.lab.spec import LabAgent

NAME = "bgbn"
VIPS = ["192.0.2.40", "192.0.2.41", "2001:db8:40::40", "2001:db8:40::41"]
PER_VIP = 50
KILL = "kill -9 of the agent"
CUT = "link cut, BFD 100 ms x 3"
TARGETED = (KILL, CUT)


def _dips(lab: Lab, vip: str) -> list[str]:
    return [str(d.address6 if ":" in vip else d.address) for d in lab.dips]


def _run(lab: Lab, agent: LabAgent, fault: Callable[[], object], gone: bool) -> Run:
    traffic = {v: PER_VIP for v in VIPS}
    return measure(lab, agent_hops(lab, agent), traffic, VIPS, fault, gone=gone, settle=2.0)


def _kill(lab: Lab, agent: LabAgent) -> None:
    pid = lab.agent_pid(agent.name)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)


def one_round(lab: Lab, figures: dict[str, list[tuple[float, int]]], plain: bool = True) -> None:
    a1 = lab.agent("a1")

    def add(key: str, run: Run) -> None:
        figures.setdefault(key, []).append((run.detection.seconds, run.broken()))

    add(KILL, _run(lab, a1, lambda: _kill(lab, a1), gone=True))
    a1.pid_file.unlink(missing_ok=True)
    add("rejoin after kill -9", _run(lab, a1, lambda: lab.start_agent(a1.name), gone=False))
    try:
        add(CUT, _run(lab, a1, lambda: set_link(lab, a1, False), True))
        add("link restored, BFD", _run(lab, a1, lambda: set_link(lab, a1, True), False))
    finally:
        set_link(lab, a1, True)
    if not plain:
        return
    with plain_bgp(lab, a1, keepalive=1, hold=3):
        try:
            cut = _run(lab, a1, lambda: set_link(lab, a1, False), True)
            add("link cut, plain BGP (no BFD), hold 3 s", cut)
        finally:
            set_link(lab, a1, True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--plain-runs",
        type=int,
        help="runs of the plain-BGP cut (default --runs): each restarts the agent twice",
    )
    args = parser.parse_args()
    load0 = os.getloadavg()[0]
    lab = Lab.up(LabSpec(name=NAME, routers=2, agents=3, dips=3, bgp=True))
    figures: dict[str, list[tuple[float, int]]] = {}
    try:
        for agent in lab.agents:
            lab.start_agent(agent.name)
        with tempfile.TemporaryDirectory(prefix="bgbn-") as tmp:
            apply(write_inventory(lab, {v: _dips(lab, v) for v in VIPS}, Path(tmp) / "inv"))
        for agent in lab.agents:
            wait_group(lab, agent_hops(lab, agent), VIPS, present=True)
        plain = args.runs if args.plain_runs is None else args.plain_runs
        for i in range(args.runs):
            one_round(lab, figures, plain=i < plain)
    finally:
        down(NAME)
    print(
        f"2 routers x 3 agents, {len(VIPS)} VIPs (2 IPv4, 2 IPv6), {len(VIPS) * PER_VIP} "
        f"long-lived TCP connections, {args.runs} runs, load {load0:.1f} -> "
        f"{os.getloadavg()[0]:.1f}"
    )
    print()
    print("| fault | runs | detection s median | range | broken (sum over runs) | target |")
    print("| --- | --- | --- | --- | --- | --- |")
    for key, values in figures.items():
        secs = [s for s, _ in values]
        broken = sum(b for _, b in values)
        target = "-"
        if key in TARGETED:
            ok = statistics.median(secs) < 1.0 and broken == 0
            target = f"{'met' if ok else 'missed'} (< 1 s, 0 broken)"
        print(
            f"| {key} | {len(secs)} | {statistics.median(secs):.3f} "
            f"| {min(secs):.3f}-{max(secs):.3f} | {broken} | {target} |"
        )


if __name__ == "__main__":
    main()
