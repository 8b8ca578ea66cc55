"""The executor's rounds over many VIPs: one agent request per agent per round, drain polls
of every VIP in one request, a VIP an agent refuses fails alone, and the journal (each
round's starts, then its ends, with one write each) says what it said step by step."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from lbauto.core.model import AgentVip, IPAddress, Mode, ObservedState
from lbauto.core.plan import Action, Kind, Plan, Step, Transition, VipState
from lbauto.errors import AgentError, TransitionError
from lbauto.orchestrate.executor import Executor
from lbauto.orchestrate.journal import Journal, read_journal
from tests.unit.fakes import FakeAgent, FakeRouters
from tests.unit.test_executor import D1, D2, Clock, bypass, enable, lb_route, multi

ip = ipaddress.ip_address
N = 40
VIPS = [ip("192.0.2.100") + i for i in range(N)]


def names(vips: list[IPAddress]) -> dict[IPAddress, str]:
    return {v: f"b{i:03d}" for i, v in enumerate(vips)}


def fleet(
    tmp_path: Path, agents: int = 2, vips: list[IPAddress] = VIPS
) -> tuple[list[FakeAgent], FakeRouters, Executor, Clock]:
    have = {v: multi(v, D1, D2) for v in vips}
    fakes = [FakeAgent(f"lb{k}", vips=dict(have)) for k in range(agents)]
    routers = FakeRouters(
        objects={"r1": {lb_route(v) for v in vips}, "r2": {lb_route(v) for v in vips}}
    )
    observed = ObservedState(agents={a.name: dict(have) for a in fakes})
    clock = Clock()
    ex = Executor(fakes, routers, Journal(tmp_path), observed, clock=clock, sleep=clock.sleep)
    return fakes, routers, ex, clock


def enables(vips: list[IPAddress] = VIPS) -> Plan:
    return Plan(tuple(enable(names(vips)[v], v, D1, [D2]) for v in vips))


def test_a_round_of_many_vips_is_one_request_per_agent(tmp_path: Path) -> None:
    agents, routers, ex, _ = fleet(tmp_path)
    res = ex.execute(enables())
    assert sorted(res.completed) == sorted(names(VIPS).values()) and not res.failed
    for a in agents:
        # set_vip, one drain poll (no flows), tracking off: three requests for 40 VIPs
        assert a.batches == [("change_vips", N), ("flows_per_dip_many", N), ("change_vips", N)]
        assert a.calls == ["put_vip"] * N + ["flows_per_dip"] * N + ["put_vip"] * N
        for v in VIPS:
            got = a.vips[v]
            assert (got.mode, got.dips, got.flow_tracking) == (Mode.SINGLE, (D1,), False)
    assert routers.commits == {"r1": 1, "r2": 1}
    assert all(bypass(v, D1) in routers.objects["r1"] for v in VIPS)


def test_the_journal_has_each_steps_start_before_its_end_one_write_per_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    _, _, ex, _ = fleet(tmp_path)
    seen: list[tuple[str, str, str]] = []
    ex.on_event = lambda vip, action, event: seen.append((vip, action, event))
    monkeypatch.setattr(os, "fsync", fsync)
    ex.execute(enables())
    events = list(read_journal(tmp_path))
    # run-start, 5 rounds x (starts, ends), the push's commit, run-end
    assert len(synced) == 1 + 5 * 2 + 1 + 1
    assert len(events) == 1 + 5 * 2 * N + 1 + 1
    for v in names(VIPS).values():
        mine = [(e.event, e.step, e.action) for e in events if e.vip == v]
        assert mine == [
            (ev, k, a.value)
            for k, a in enumerate(
                (
                    Action.SET_VIP,
                    Action.WAIT_DRAIN,
                    Action.ROUTER_PUSH,
                    Action.ROUTER_VERIFY,
                    Action.FLOW_TRACKING,
                )
            )
            for ev in ("start", "end")
        ]
    # a round's starts all come before any of its ends; the hook sees the journal's order
    kinds = [(e.step, e.event) for e in events if e.event in ("start", "end")]
    assert kinds == [(k, ev) for k in range(5) for ev in ("start", "end") for _ in range(N)]
    assert [(vip, ev) for vip, _, ev in seen] == [
        (e.vip, e.event) for e in events if e.event in ("start", "end")
    ]


def test_a_vip_one_agent_refuses_fails_alone_and_is_undone_on_every_agent(
    tmp_path: Path,
) -> None:
    agents, routers, ex, _ = fleet(tmp_path)
    bad = VIPS[7]
    agents[1].refuse = {bad}
    with pytest.raises(TransitionError, match=r"VIP b007: .*agent lb1.*refused \(injected\)"):
        ex.execute(enables())
    for a in agents:
        assert a.vips[bad].mode is Mode.MULTI and a.vips[bad].dips == (D1, D2)
        others = [a.vips[v] for v in VIPS if v != bad]
        assert all(v.mode is Mode.SINGLE and not v.flow_tracking for v in others)
    # lb1 got the batch twice (refused whole, then without b007); lb0 once
    assert agents[0].batches[0] == ("change_vips", N)
    assert agents[1].batches[:2] == [("change_vips", N), ("change_vips", N - 1)]
    assert bypass(bad, D1) not in routers.objects["r1"]
    assert all(bypass(v, D1) in routers.objects["r1"] for v in VIPS if v != bad)
    fails = [e for e in read_journal(tmp_path) if e.event == "fail"]
    assert [(e.vip, e.device) for e in fails] == [("b007", "agent lb1")]


def test_a_stale_generation_fails_only_that_vip(tmp_path: Path) -> None:
    agents, _, ex, _ = fleet(tmp_path, agents=1)
    moved = VIPS[3]
    agents[0].vips[moved] = AgentVip(moved, Mode.MULTI, (D1, D2), True, generation=99)
    with pytest.raises(TransitionError, match=r"b003: .*HTTP 412.*changed meanwhile"):
        ex.execute(enables())
    assert agents[0].vips[moved].generation == 99  # someone else's change is kept
    assert all(agents[0].vips[v].mode is Mode.SINGLE for v in VIPS if v != moved)


class KernelRefuses(FakeAgent):
    """An agent whose kernel refuses any transaction that holds ``poison`` (HTTP 500 for
    the whole request, no entry named), as nft does."""

    poison: IPAddress | None = None

    def change_vips(self, changes):  # type: ignore[no-untyped-def]
        if any(c.address == self.poison for c in changes):
            self.batches.append(("change_vips", len(changes)))
            raise AgentError("data plane error: nft transaction failed", self.name, 500)
        return super().change_vips(changes)


def test_a_batch_the_kernel_refuses_is_sent_again_one_vip_at_a_time(tmp_path: Path) -> None:
    vips = VIPS[:5]
    have = {v: multi(v, D1, D2) for v in vips}
    agent = KernelRefuses("lb0", vips=dict(have))
    agent.poison = vips[2]
    routers = FakeRouters(objects={"r1": {lb_route(v) for v in vips}})
    clock = Clock()
    ex = Executor(
        [agent],
        routers,
        Journal(tmp_path),
        ObservedState(agents={"lb0": dict(have)}),
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(TransitionError, match=r"b002: .*nft transaction failed"):
        ex.execute(enables(vips))
    assert agent.batches[:6] == [("change_vips", 5)] + [("change_vips", 1)] * 5
    assert agent.vips[vips[2]].mode is Mode.MULTI
    assert all(agent.vips[v].mode is Mode.SINGLE for v in vips if v != vips[2])


def test_an_unreachable_agent_fails_the_round_with_one_request(tmp_path: Path) -> None:
    agents, routers, ex, _ = fleet(tmp_path)

    def gone(changes):  # type: ignore[no-untyped-def]  # no answer at all: no HTTP status
        agents[1].batches.append(("change_vips", len(changes)))
        raise AgentError("POST /v1/batch: cannot reach http://lb1", "lb1")

    agents[1].change_vips = gone  # type: ignore[method-assign]
    with pytest.raises(TransitionError, match=r"cannot reach .*\(and 39 more\)"):
        ex.execute(enables())
    assert agents[1].batches == [("change_vips", N)]  # not once per VIP
    for a in agents:  # lb0 changed, then put back
        assert all(a.vips[v].mode is Mode.MULTI for v in VIPS)
    assert routers.pushes == []


def test_removals_and_sets_of_one_round_share_the_request(tmp_path: Path) -> None:
    agents, _, ex, _ = fleet(tmp_path, agents=1, vips=VIPS[:4])
    gone = [
        Transition(
            f"b{i:03d}",
            v,
            Kind.DELETE,
            VipState(Mode.MULTI, (D1, D2)),
            VipState(None),
            (Step(Action.REMOVE_VIP),),
        )
        for i, v in enumerate(VIPS[:2])
    ]
    kept = [enable(f"b{i:03d}", v, D1, [D2]) for i, v in enumerate(VIPS[2:4], start=2)]
    ex.execute(Plan((*gone, *kept)))
    assert agents[0].batches[0] == ("change_vips", 4)
    assert set(agents[0].vips) == set(VIPS[2:4])
    assert agents[0].calls[:4] == ["put_vip", "put_vip", "delete_vip", "delete_vip"]


def test_drain_polls_ask_for_every_pending_vip_at_once(tmp_path: Path) -> None:
    agents, _, ex, clock = fleet(tmp_path)
    slow = VIPS[:3]
    for a in agents:
        for v in slow:
            a.flows_of[v] = {D2: 2}
    real = agents[0].flows_per_dip_many  # the first agent asked in each poll
    asked: list[int] = []

    def counting(addresses):  # type: ignore[no-untyped-def]
        asked.append(len(addresses))
        if len(asked) == 3:  # the last flows end on the third poll
            for a in agents:
                for v in slow:
                    a.flows_of[v] = {D2: 0}
        return real(addresses)

    agents[0].flows_per_dip_many = counting  # type: ignore[method-assign]
    ex.execute(enables())
    assert asked == [N, 3, 3]  # the drained VIPs leave the poll
    ends = {
        e.vip: e.detail
        for e in read_journal(tmp_path)
        if e.action == "agent.wait_drain" and e.event == "end"
    }
    assert set(ends.values()) == {"drained"} and len(ends) == N
    assert 0.5 <= clock.now < 1.0
