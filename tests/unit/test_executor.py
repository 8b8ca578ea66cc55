"""The executor against hand-written fakes: order, batching, undo, drain waits, journal."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from lbauto.core.model import AgentVip, Drain, Mode, ObservedState, StaticRoute, Transit
from lbauto.core.plan import Action, Kind, Plan, RouterChange, Step, Transition, VipState
from lbauto.errors import TransitionError
from lbauto.orchestrate.executor import Executor
from lbauto.orchestrate.journal import Journal, read_journal
from tests.unit.fakes import FakeAgent, FakeRouters

ip = ipaddress.ip_address
VIP1, VIP2 = ip("192.0.2.10"), ip("192.0.2.11")
D1, D2, D3 = ip("198.51.100.21"), ip("198.51.100.22"), ip("198.51.100.23")
AGENT = ip("198.51.100.10")


def lb_route(vip: ipaddress.IPv4Address) -> StaticRoute:
    return StaticRoute(ipaddress.ip_network(vip), AGENT, 200, 4242)


def bypass(vip: ipaddress.IPv4Address, dip: ipaddress.IPv4Address) -> StaticRoute:
    return StaticRoute(ipaddress.ip_network(vip), dip, 1, 4242)


def enable(name: str, vip: ipaddress.IPv4Address, keep, drop) -> Transition:  # type: ignore[no-untyped-def]
    change = (
        RouterChange("r1", add=(bypass(vip, keep),)),
        RouterChange("r2", add=(bypass(vip, keep),)),
    )
    steps = [
        Step(
            Action.SET_VIP,
            mode=Mode.SINGLE,
            dips=(keep,),
            flow_tracking=True,
            drain=Drain(tuple(drop), 5.0),
        )
    ]
    steps.append(Step(Action.WAIT_DRAIN, drain=Drain(tuple(drop), 5.0)))
    steps += [
        Step(Action.ROUTER_PUSH, routers=change),
        Step(Action.ROUTER_VERIFY, routers=change),
        Step(Action.FLOW_TRACKING, flow_tracking=False),
    ]
    return Transition(
        name,
        vip,
        Kind.BYPASS_ENABLE,
        VipState(Mode.MULTI, (keep, *drop)),
        VipState(Mode.SINGLE, (keep,)),
        tuple(steps),
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def setup(tmp_path: Path, vips: dict) -> tuple[FakeAgent, FakeRouters, Executor, Clock]:  # type: ignore[type-arg]
    agent = FakeAgent("lb1", vips=dict(vips))
    routers = FakeRouters(
        objects={"r1": {lb_route(v) for v in vips}, "r2": {lb_route(v) for v in vips}}
    )
    observed = ObservedState(agents={"lb1": dict(vips)})
    clock = Clock()
    ex = Executor([agent], routers, Journal(tmp_path), observed, clock=clock, sleep=clock.sleep)
    return agent, routers, ex, clock


def multi(vip, *dips) -> AgentVip:  # type: ignore[no-untyped-def]
    return AgentVip(vip, Mode.MULTI, tuple(dips), True, generation=7)


def test_bypass_enable_runs_every_step_in_order(tmp_path: Path) -> None:
    agent, routers, ex, _ = setup(tmp_path, {VIP1: multi(VIP1, D1, D2)})
    res = ex.execute(Plan((enable("web", VIP1, D1, [D2]),)))
    assert res.completed == ["web"] and not res.failed
    v = agent.vips[VIP1]
    assert (v.mode, v.dips, v.flow_tracking) == (Mode.SINGLE, (D1,), False)
    assert bypass(VIP1, D1) in routers.objects["r1"] and bypass(VIP1, D1) in routers.objects["r2"]
    assert agent.calls == ["put_vip", "flows_per_dip", "put_vip"]
    assert routers.commits == {"r1": 1, "r2": 1}
    events = [(e.event, e.action) for e in read_journal(tmp_path) if e.vip == "web"]
    assert events == [
        ("start", "agent.set_vip"),
        ("end", "agent.set_vip"),
        ("start", "agent.wait_drain"),
        ("end", "agent.wait_drain"),
        ("start", "router.push"),
        ("end", "router.push"),
        ("start", "router.verify"),
        ("end", "router.verify"),
        ("start", "agent.flow_tracking"),
        ("end", "agent.flow_tracking"),
    ]


def test_router_push_failure_undoes_the_agent_side(tmp_path: Path) -> None:
    agent, routers, ex, _ = setup(tmp_path, {VIP1: multi(VIP1, D1, D2)})
    routers.fail_push = {"r2"}
    before_objects = {k: set(v) for k, v in routers.objects.items()}
    with pytest.raises(TransitionError) as err:
        ex.execute(Plan((enable("web", VIP1, D1, [D2]),)))
    msg = str(err.value)
    assert "VIP web" in msg and "router.push" in msg and "router r2" in msg and "injected" in msg
    v = agent.vips[VIP1]
    assert (v.mode, v.dips, v.flow_tracking) == (Mode.MULTI, (D1, D2), True)
    assert routers.objects == before_objects
    kinds = [e.event for e in read_journal(tmp_path) if e.vip == "web"]
    assert "fail" in kinds and kinds.count("undo") == 2  # wait_drain and set_vip


def test_verify_failure_inverts_the_push(tmp_path: Path) -> None:
    agent, routers, ex, _ = setup(tmp_path, {VIP1: multi(VIP1, D1, D2)})
    routers.fail_verify = {"r1"}
    before_objects = {k: set(v) for k, v in routers.objects.items()}
    with pytest.raises(TransitionError, match=r"router\.verify failed on router r1"):
        ex.execute(Plan((enable("web", VIP1, D1, [D2]),)))
    assert routers.objects == before_objects
    assert agent.vips[VIP1].mode is Mode.MULTI


def test_agent_failure_touches_no_router(tmp_path: Path) -> None:
    agent, routers, ex, _ = setup(tmp_path, {VIP1: multi(VIP1, D1, D2)})
    agent.fail_on = {"put_vip"}
    with pytest.raises(TransitionError, match=r"agent\.set_vip failed on agent lb1"):
        ex.execute(Plan((enable("web", VIP1, D1, [D2]),)))
    assert routers.pushes == []


def test_router_steps_of_many_vips_are_one_commit_per_router(tmp_path: Path) -> None:
    _agent, routers, ex, _ = setup(tmp_path, {VIP1: multi(VIP1, D1, D2), VIP2: multi(VIP2, D2, D3)})
    plan = Plan((enable("web", VIP1, D1, [D2]), enable("api", VIP2, D3, [D2])))
    res = ex.execute(plan)
    assert sorted(res.completed) == ["api", "web"]
    assert routers.commits == {"r1": 1, "r2": 1}
    assert res.router_commits == {"r1": 1, "r2": 1}
    assert {bypass(VIP1, D1), bypass(VIP2, D3)} <= routers.objects["r1"]


def test_one_failing_vip_does_not_stop_the_others(tmp_path: Path) -> None:
    agent, _routers, ex, _ = setup(tmp_path, {VIP1: multi(VIP1, D1, D2)})
    # VIP2 is unknown to the agent, and its If-Match-free create works; make VIP1 conflict.
    agent.vips[VIP1] = multi(VIP1, D1, D2)
    agent.vips[VIP1] = AgentVip(VIP1, Mode.MULTI, (D1, D2), True, generation=99)  # moved on
    create = Transition(
        "api",
        VIP2,
        Kind.CREATE,
        VipState(None),
        VipState(Mode.MULTI, (D2, D3)),
        (Step(Action.SET_VIP, mode=Mode.MULTI, dips=(D2, D3), flow_tracking=True),),
    )
    with pytest.raises(TransitionError, match="generation mismatch"):
        ex.execute(Plan((enable("web", VIP1, D1, [D2]), create)))
    assert agent.vips[VIP2].dips == (D2, D3)
    assert agent.vips[VIP1].generation == 99  # someone else's change was not overwritten


def test_drain_wait_ends_when_flows_are_gone(tmp_path: Path) -> None:
    agent, _routers, ex, clock = setup(tmp_path, {VIP1: multi(VIP1, D1, D2)})
    agent.flows_of[VIP1] = {D2: 3}
    polls = 0
    real = agent.flows_per_dip

    def draining(address):  # type: ignore[no-untyped-def]
        nonlocal polls
        polls += 1
        if polls == 4:
            agent.flows_of[VIP1] = {D2: 0}
        return real(address)

    agent.flows_per_dip = draining  # type: ignore[method-assign]
    ex.execute(Plan((enable("web", VIP1, D1, [D2]),)))
    assert polls == 4 and 0.5 <= clock.now < 5.0
    ends = [
        e.detail
        for e in read_journal(tmp_path)
        if e.action == "agent.wait_drain" and e.event == "end"
    ]
    assert ends == ["drained"]


def test_drain_wait_is_bounded_by_its_timeout(tmp_path: Path) -> None:
    agent, _routers, ex, clock = setup(tmp_path, {VIP1: multi(VIP1, D1, D2)})
    agent.flows_of[VIP1] = {D2: 5}
    ex.execute(Plan((enable("web", VIP1, D1, [D2]),)))
    assert 5.0 <= clock.now < 5.5
    ends = [
        e.detail
        for e in read_journal(tmp_path)
        if e.action == "agent.wait_drain" and e.event == "end"
    ]
    assert ends == ["timeout with 5 flow(s) left"]


def test_bypass_disable_sends_the_transit_pin(tmp_path: Path) -> None:
    single = AgentVip(VIP1, Mode.SINGLE, (D1,), False, generation=3)
    agent, routers, ex, _ = setup(tmp_path, {VIP1: single})
    routers.objects["r1"].add(bypass(VIP1, D1))
    change = (RouterChange("r1", remove=(bypass(VIP1, D1),)),)
    t = Transition(
        "web",
        VIP1,
        Kind.BYPASS_DISABLE,
        VipState(Mode.SINGLE, (D1,)),
        VipState(Mode.MULTI, (D1, D2, D3)),
        (
            Step(
                Action.SET_VIP,
                mode=Mode.MULTI,
                dips=(D1, D2, D3),
                flow_tracking=True,
                transit=Transit(D1, 60.0),
            ),
            Step(Action.ROUTER_PUSH, routers=change),
            Step(Action.ROUTER_VERIFY, routers=change),
        ),
    )
    ex.execute(Plan((t,)))
    v = agent.vips[VIP1]
    assert v.transit == Transit(D1, 60.0) and v.flow_tracking and v.mode is Mode.MULTI
    assert bypass(VIP1, D1) not in routers.objects["r1"]


def test_journal_has_machine_and_human_lines(tmp_path: Path) -> None:
    _agent, _routers, ex, _ = setup(tmp_path, {VIP1: multi(VIP1, D1, D2)})
    ex.execute(Plan((enable("web", VIP1, D1, [D2]),)))
    machine = [json.loads(x) for x in (tmp_path / "journal.jsonl").read_text().splitlines()]
    human = (tmp_path / "journal.log").read_text().splitlines()
    assert len(machine) == len(human) == 12  # run-start, 5 x (start, end), run-end
    assert machine[1]["event"] == "start" and machine[1]["action"] == "agent.set_vip"
    assert "START vip=web step=0 agent.set_vip" in human[1]
