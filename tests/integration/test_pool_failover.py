"""An agent pool behind BGP ECMP: failover and rejoin keep connections (issue 17).

Lab: 2 routers x 3 agents (``lbauto lab up --bgp``); every agent announces its VIPs over BGP
with BFD (100 ms x 3) to both routers, the client spreads its connections over both routers,
and each router over the agents. 200 long-lived connections over four multi-DIP VIPs (two
IPv4, two IPv6). Every agent has the same DIPs per VIP, so the same Maglev table: a flow that
ECMP moves to another agent meets the same DIP there, although that agent has no flow state
for it. Faults are real: kill -9 of an agent, its cable cut on the lab switch.

Controls: a VIP whose DIP set differs on the killed agent breaks connections (the test sees
breaks); with BFD off (hold timer 3 s) the routers need longer than the 1 s target.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lbauto.lab import Lab
from lbauto.lab.host import alive, read_pid
from lbauto.lab.pool import (
    Run,
    agent_client,
    agent_hops,
    apply,
    bgp_status,
    flow_total,
    measure,
    plain_bgp,
    put_vip,
    set_link,
    wait_group,
    write_inventory,
)
from lbauto.lab.spec import LabAgent

pytestmark = [pytest.mark.integration]

V4 = ["192.0.2.40", "192.0.2.41"]
V6 = ["2001:db8:40::40", "2001:db8:40::41"]
VIPS = V4 + V6
#: Control VIP: its DIP set on a1 differs from the other agents' (as if changed on a1 only).
CTL = "192.0.2.49"
PER_VIP = 50  # x 4 VIPs = 200 long-lived connections
TARGET = 1.0  # seconds until the routers stop sending to a dead agent (BFD)


def dips_of(lab: Lab, vip: str) -> list[str]:
    return [str(d.address6 if ":" in vip else d.address) for d in lab.dips]


def summary(run: Run) -> str:
    parts = [f"detect {run.detection.per_router}"]
    for vip, rep in run.reports.items():
        reasons = sorted({b.reason for b in rep.broken})
        parts.append(
            f"{vip}: broken {rep.counts.broken} {reasons} failed {rep.counts.long_lived_failed} "
            f"final {rep.distribution.get('final')}"
        )
    return "; ".join(parts)


@pytest.fixture(scope="module")
def pool(make_lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:  # type: ignore[no-untyped-def]
    """The pool converged by ``lbauto apply`` (agents get the VIPs, routers the BGP side from
    ``lbauto_lb_route: bgp``), with a3 then taken out and emptied, to join later."""
    lab = make_lab("bgfo", routers=2, agents=3, dips=3, bgp=True)
    for agent in lab.agents:
        lab.start_agent(agent.name)
    vips = {v: dips_of(lab, v) for v in [*VIPS, CTL]}
    inventory = write_inventory(lab, vips, tmp_path_factory.mktemp("inventory"))
    apply(inventory)
    a1, a2, a3 = lab.agents
    for agent in (a1, a2, a3):
        wait_group(lab, agent_hops(lab, agent), VIPS, present=True)
    forget(lab, a3)
    wait_group(lab, agent_hops(lab, a3), VIPS, present=False)
    lab.start_agent(a3.name)  # up, BGP sessions established, no VIP held: announces nothing
    yield Pool(lab, inventory)


@dataclass(frozen=True)
class Pool:
    lab: Lab
    inventory: Path


def forget(lab: Lab, agent: LabAgent) -> None:
    """Stop the agent and remove every trace of its VIPs (a fresh agent host)."""
    lab.stop_agent(agent.name)
    for path in agent.state_file.parent.glob(agent.state_file.name + "*"):
        path.unlink()  # the state file and its previous copy
    lab.run(agent.netns, "nft", "delete", "table", "netdev", "lbauto", check=False)


def _traffic(vips: list[str] = VIPS, extra: dict[str, int] | None = None) -> dict[str, int]:
    return {v: PER_VIP for v in vips} | (extra or {})


@pytest.mark.slow
def test_agent_added_under_traffic_breaks_nothing(pool: Pool) -> None:
    lab = pool.lab
    a3 = lab.agent("a3")

    assert bgp_status(a3)["announced"] == []

    def join() -> None:  # what an operator runs after adding the agent to the inventory
        apply(pool.inventory)

    run = lab_measure(lab, a3, join, gone=False)
    print(f"agent added: {summary(run)}")
    assert run.detection.per_router.keys() == {"r1", "r2"}, summary(run)
    assert run.broken() == 0, summary(run)
    status = bgp_status(a3)
    assert status["healthy"] and len(status["announced"]) == len(VIPS) + 1, status
    assert {n["state"] for n in status["neighbors"]} == {"Established"}, status
    assert {n["bfd_state"] for n in status["neighbors"]} == {"up"}, status
    # the pool really spreads: the new agent carries flows of every VIP
    assert all(flow_total(a3, v) > 0 for v in VIPS), summary(run)


def lab_measure(
    lab: Lab, agent: LabAgent, fault: Callable[[], object], gone: bool, ctl: bool = False
) -> Run:
    traffic = _traffic(extra={CTL: PER_VIP} if ctl else None)
    return measure(lab, agent_hops(lab, agent), traffic, VIPS, fault, gone=gone)


@pytest.mark.slow
def test_kill9_agent_routers_move_off_within_a_second_and_nothing_breaks(pool: Pool) -> None:
    lab = pool.lab
    a1 = lab.agent("a1")
    frr_pids = [read_pid(p) for p in (a1.config_file.parent / "frr").glob("*.pid")]
    assert len(frr_pids) == 3 and all(p and alive(p) for p in frr_pids)
    before = {v: flow_total(a1, v) for v in VIPS}
    # control: a2 and a3 disagree with a1 on CTL's DIPs (as if a change had reached a1 only)
    for agent in (lab.agent("a2"), lab.agent("a3")):
        put_vip(agent, CTL, dips_of(lab, CTL)[:2])

    def crash() -> None:
        pid = lab.agent_pid(a1.name)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

    run = lab_measure(lab, a1, crash, gone=True, ctl=True)
    a1.pid_file.unlink(missing_ok=True)
    print(f"kill -9: {summary(run)}")
    assert all(n > 0 for n in before.values()), f"a1 carried no flows: {before}"
    assert run.detection.seconds < TARGET, summary(run)
    assert run.broken(VIPS) == 0, summary(run)
    # control: the VIP whose DIPs differ on a1 loses connections (the test can see breaks)
    assert run.broken([CTL]) > 0, summary(run)
    # the speaker died with the agent: nothing left to announce VIPs nobody serves
    time.sleep(0.2)
    assert not any(p and alive(p) for p in frr_pids)


@pytest.mark.slow
def test_killed_agent_rejoins_and_nothing_breaks(pool: Pool) -> None:
    lab = pool.lab
    a1 = lab.agent("a1")
    assert lab.agent_pid(a1.name) is None

    run = lab_measure(lab, a1, lambda: lab.start_agent(a1.name), gone=False)
    print(f"rejoin: {summary(run)}")
    assert run.detection.per_router.keys() == {"r1", "r2"}, summary(run)
    assert run.broken() == 0, summary(run)


@pytest.mark.slow
def test_cut_link_routers_move_off_within_a_second_and_nothing_breaks(pool: Pool) -> None:
    lab = pool.lab
    a2 = lab.agent("a2")
    try:
        run = lab_measure(lab, a2, lambda: set_link(lab, a2, up=False), gone=True)
        print(f"link cut: {summary(run)}")
        assert run.detection.seconds < TARGET, summary(run)
        assert run.broken() == 0, summary(run)
        # link back: the agent rejoins (BFD and BGP come back), again nothing breaks
        back = lab_measure(lab, a2, lambda: set_link(lab, a2, up=True), gone=False)
        print(f"link restored: {summary(back)}")
        assert back.broken() == 0, summary(back)
    finally:
        set_link(lab, a2, up=True)


@pytest.mark.slow
def test_control_without_bfd_detection_takes_the_hold_time(pool: Pool) -> None:
    lab = pool.lab
    a3 = lab.agent("a3")
    with plain_bgp(lab, a3, keepalive=1, hold=3):
        try:
            run = lab_measure(lab, a3, lambda: set_link(lab, a3, up=False), gone=True)
        finally:
            set_link(lab, a3, up=True)
    print(f"link cut without BFD: {summary(run)}")
    assert run.detection.seconds > TARGET, summary(run)
    assert run.detection.seconds < 3 + 1.5, summary(run)


@pytest.mark.slow
def test_unhealthy_agent_and_removed_vip_are_withdrawn(pool: Pool) -> None:
    lab = pool.lab
    a1 = lab.agent("a1")
    hops = agent_hops(lab, a1)
    # VIP removed on one agent: only that agent leaves that VIP's ECMP group
    with agent_client(a1) as c:
        assert c.delete(f"/v1/vips/{V4[0]}").status_code == 204
    wait_group(lab, hops, [V4[0]], present=False, timeout=5)
    wait_group(lab, hops, VIPS[1:], present=True, timeout=5)
    put_vip(a1, V4[0], dips_of(lab, V4[0]))
    wait_group(lab, hops, VIPS, present=True, timeout=5)
    # the agent's own health check fails (its nftables table is gone): every VIP withdrawn
    lab.run(a1.netns, "nft", "delete", "table", "netdev", "lbauto")
    wait_group(lab, hops, VIPS, present=False, timeout=5)
    status = bgp_status(a1)
    assert not status["healthy"] and status["announced"] == [], status
    # a restart reconciles the table from the state file: announced again
    lab.stop_agent(a1.name)
    lab.start_agent(a1.name)
    wait_group(lab, hops, VIPS, present=True)


@pytest.mark.slow
def test_dead_bgpd_is_restarted_and_the_agent_rejoins(pool: Pool) -> None:
    lab = pool.lab
    a2 = lab.agent("a2")
    hops = agent_hops(lab, a2)
    pid = read_pid(a2.config_file.parent / "frr" / "bgpd.pid")
    assert pid is not None and alive(pid)
    os.kill(pid, signal.SIGKILL)
    # the sessions close with bgpd; the speaker restarts its daemons and announces again
    wait_group(lab, hops, VIPS, present=False, timeout=5)
    wait_group(lab, hops, VIPS, present=True, timeout=20)
    new = read_pid(a2.config_file.parent / "frr" / "bgpd.pid")
    assert new is not None and new != pid and alive(new)
    assert bgp_status(a2)["daemons_running"]
