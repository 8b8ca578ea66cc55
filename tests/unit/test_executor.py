"""The executor against hand-written fakes: order, batching, undo, drain waits, journal."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from lbauto.core.model import AgentVip, Drain, IPAddress, Mode, ObservedState, StaticRoute, Transit
from lbauto.core.plan import Action, Kind, Plan, RouterChange, Step, Transition, VipState
from lbauto.errors import JournalError, TransitionError
from lbauto.orchestrate.executor import Executor
from lbauto.orchestrate.journal import Journal, JournalEvent, read_journal
from tests.unit.fakes import FakeAgent, FakeRouters

ip = ipaddress.ip_address
VIP1, VIP2 = ip("192.0.2.10"), ip("192.0.2.11")
D1, D2, D3 = ip("198.51.100.21"), ip("198.51.100.22"), ip("198.51.100.23")
AGENT = ip("198.51.100.10")


def lb_route(vip: IPAddress) -> StaticRoute:
    return StaticRoute(ipaddress.ip_network(vip), AGENT, 200, 4242)


def bypass(vip: IPAddress, dip: IPAddress) -> StaticRoute:
    return StaticRoute(ipaddress.ip_network(vip), dip, 1, 4242)


def enable(name: str, vip: IPAddress, keep: IPAddress, drop: list[IPAddress]) -> Transition:
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
    events = [
        (e.event, e.action)
        for e in read_journal(tmp_path)
        if e.vip == "web" or (e.data and "web" in e.data.get("vips", []))
    ]
    assert events == [
        ("start", "agent.set_vip"),
        ("end", "agent.set_vip"),
        ("start", "agent.wait_drain"),
        ("end", "agent.wait_drain"),
        ("start", "router.push"),
        ("commit", "router.push"),  # committed and verified, before the confirm
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
    real = agent.flows_per_dip_many

    def draining(addresses):  # type: ignore[no-untyped-def]
        nonlocal polls
        polls += 1
        if polls == 4:
            agent.flows_of[VIP1] = {D2: 0}
        return real(addresses)

    agent.flows_per_dip_many = draining  # type: ignore[method-assign]
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
    # run-start (with every transition's target), 5 x (start, end), the push's commit, run-end
    assert len(machine) == len(human) == 13
    assert machine[0]["data"]["transitions"]["web"]["to"]["mode"] == "single"
    assert machine[1]["event"] == "start" and machine[1]["action"] == "agent.set_vip"
    assert "START vip=web step=0 agent.set_vip" in human[1]


# ------------------------------------------------------------------ journal before every step


class FullAfter(Journal):
    """A journal whose disk fills up after ``n`` events (the integration tests fill a real
    tmpfs; here only the executor's reaction is under test)."""

    def __init__(self, path: Path, n: int) -> None:
        super().__init__(path)
        self.left = n

    def record(self, event: str, **fields: object) -> JournalEvent:
        if self.left <= 0:
            raise JournalError("cannot write the journal: No space left on device")
        self.left -= 1
        return super().record(event, **fields)


@pytest.mark.parametrize("n", range(1, 12))
def test_a_step_whose_journal_entry_cannot_be_written_does_not_run(tmp_path: Path, n: int) -> None:
    """Whenever the journal fills up, the VIP ends where it started (steps done are undone,
    the next one never runs), and the error names the journal."""
    vips = {VIP1: multi(VIP1, D1, D2)}
    agent, routers, _, clock = setup(tmp_path, vips)
    before_objects = {k: set(v) for k, v in routers.objects.items()}
    journal = FullAfter(tmp_path, n)
    ex = Executor(
        [agent],
        routers,
        journal,
        ObservedState(agents={"lb1": dict(vips)}),
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(TransitionError, match=r"on (journal|routers): .*cannot write the journal"):
        ex.execute(Plan((enable("web", VIP1, D1, [D2]),)))
    v = agent.vips[VIP1]
    assert (v.mode, v.dips, v.flow_tracking) == (Mode.MULTI, (D1, D2), True)
    assert routers.objects == before_objects
    written = list(read_journal(tmp_path))
    # every step that acted was journalled before it acted
    started = {e.step for e in written if e.event == "start"}
    assert len(written) == n and all(
        e.step in started for e in written if e.event in ("end", "commit") and e.step is not None
    )


def test_a_full_journal_at_start_changes_nothing(tmp_path: Path) -> None:
    vips = {VIP1: multi(VIP1, D1, D2)}
    agent, routers, _, _clock = setup(tmp_path, vips)
    ex = Executor([agent], routers, FullAfter(tmp_path, 0), ObservedState(agents={"lb1": vips}))
    with pytest.raises(JournalError, match="No space left"):
        ex.execute(Plan((enable("web", VIP1, D1, [D2]),)))
    assert agent.calls == [] and routers.pushes == []


def test_a_truncated_last_line_is_skipped_on_read(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.record("run-start")
    j.record("start", vip="web", step=0, action="agent.set_vip")
    with (tmp_path / "journal.jsonl").open("a") as fh:
        fh.write('{"ts": 1.0, "run": "x", "event": "st')  # cut short by a full disk
    assert [e.event for e in read_journal(tmp_path)] == ["run-start", "start"]
    j.record("end", vip="web", step=0, action="agent.set_vip")  # starts on a fresh line
    assert [e.event for e in read_journal(tmp_path)] == ["run-start", "start", "end"]


def test_a_commit_that_cannot_be_journalled_is_rolled_back(tmp_path: Path) -> None:
    vips = {VIP1: multi(VIP1, D1, D2)}
    agent, routers, _, clock = setup(tmp_path, vips)
    before_objects = {k: set(v) for k, v in routers.objects.items()}
    # run-start, 2 x set_vip, 2 x wait_drain, push start: then the disk is full
    ex = Executor(
        [agent],
        routers,
        FullAfter(tmp_path, 6),
        ObservedState(agents={"lb1": dict(vips)}),
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(TransitionError, match=r"router.push failed.*push not confirmed"):
        ex.execute(Plan((enable("web", VIP1, D1, [D2]),)))
    assert routers.objects == before_objects and not routers.pending
    assert agent.vips[VIP1].mode is Mode.MULTI
