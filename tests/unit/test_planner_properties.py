"""Property tests for the planner over random inventories and messy observed states.

Observed states start from a perfect deployment of another random inventory (same routers and
agents, other VIPs) and are then damaged the way real networks are: objects deleted by hand,
stray routes (also to a retired agent), stray PBR rules and bindings, agents that disagree, a
VIP flagged single without its router bypass, tracking left on, drains still running.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbauto.core.intent import desired_objects
from lbauto.core.model import (
    Agent,
    AgentVip,
    BgpGroup,
    BgpPeer,
    BypassPolicy,
    Drain,
    Inventory,
    IPAddress,
    Method,
    Mode,
    ObservedRouter,
    ObservedState,
    OwnedObject,
    PbrBinding,
    PbrRule,
    Router,
    RouterObject,
    StaticRoute,
    Vip,
    host_prefix,
)
from lbauto.core.plan import Action, Kind, Plan, Transition
from lbauto.core.planner import make_plan
from lbauto.platforms import PLATFORMS
from tests.builders import agent
from tests.properties import examples
from tests.simulate import apply_plan, apply_steps

SETTINGS = settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The cheaper-to-break properties need fewer examples; keeps the unit suite fast.
LIGHT = settings(SETTINGS, max_examples=examples(100))

V4_VIPS = [ipaddress.ip_address(f"192.0.2.{i}") for i in range(10, 20)]
V6_VIPS = [ipaddress.ip_address(f"2001:db8:10::{i}") for i in range(10, 14)]
V4_DIPS = [ipaddress.ip_address(f"198.51.100.{i}") for i in range(21, 27)]
V6_DIPS = [ipaddress.ip_address(f"2001:db8:100::{i}") for i in range(21, 24)]
RETIRED_AGENT = ipaddress.ip_address("198.51.100.19")
PLATFORM_NAMES = list(PLATFORMS)


# Strategies are built once, here: building them anew inside every draw cost about half of
# a scenario's generation time (hypothesis validates and caches each new strategy). The draws,
# and so the scenarios, are the same.
_N_AGENTS = st.sampled_from([0, 1, 1, 2, 2, 3])
_BOOL = st.booleans()
_N_ROUTERS = st.integers(0, 4)
_PLATFORM = st.sampled_from(PLATFORM_NAMES)
_METHOD = st.sampled_from(list(Method))
_INGRESS = st.sampled_from([("eth1",), ("eth1", "eth2")])
_BYPASS_DISTANCE = st.sampled_from([1, 1, 5])
_VIP_ADDRESSES = {
    n: st.lists(st.sampled_from(V4_VIPS + V6_VIPS), unique=True, max_size=n) for n in (8, 12)
}
_DIPS = {
    4: st.lists(st.sampled_from(V4_DIPS), unique=True, max_size=3),
    6: st.lists(st.sampled_from(V6_DIPS), unique=True, max_size=3),
}
_BYPASS_POLICY = st.sampled_from([BypassPolicy.AUTO] * 3 + [BypassPolicy.NEVER])
_VIP_METHOD = st.sampled_from([None, None, Method.STATIC, Method.PBR])
_STRAY_ADDRESS = st.sampled_from(V4_VIPS + V6_VIPS)
_STRAY_HOP = {
    4: st.sampled_from([*V4_DIPS, RETIRED_AGENT, V4_DIPS[0]]),
    6: st.sampled_from(V6_DIPS),
}
_STRAY_KIND = st.sampled_from(["lb", "bypass", "rule", "binding"])
_STRAY_SEQ = st.integers(1, 6)
_STRAY_IFACE = st.sampled_from(["eth1", "eth2", "eth9"])
_DIGIT = st.integers(0, 9)
_N_STRAYS = st.integers(0, 3)


def _agents(draw: Any) -> tuple[Agent, ...]:
    n = draw(_N_AGENTS)
    out = []
    for i in range(n):
        v6 = draw(_BOOL) or i == 0
        out.append(agent(f"lb{i}", i, v6=v6))
    return tuple(out)


def _routers(draw: Any) -> tuple[Router, ...]:
    n = draw(_N_ROUTERS)
    out = []
    for i in range(n):
        out.append(
            Router(
                f"r{i}",
                f"198.18.0.{11 + i}",
                draw(_PLATFORM),
                draw(_METHOD),
                ingress=draw(_INGRESS),
                bypass_distance=draw(_BYPASS_DISTANCE),
            )
        )
    return tuple(out)


def _vips(draw: Any, max_size: int = 12) -> tuple[Vip, ...]:
    addresses = draw(_VIP_ADDRESSES[max_size])
    out = []
    for address in addresses:
        dips = draw(_DIPS[address.version])
        out.append(
            Vip(
                f"vip-{address}",
                address,
                tuple(dips),
                bypass=draw(_BYPASS_POLICY),
                method=draw(_VIP_METHOD),
            )
        )
    return tuple(out)


def _stray(draw: Any) -> OwnedObject:
    address = draw(_STRAY_ADDRESS)
    prefix = host_prefix(address)
    hop: IPAddress = draw(_STRAY_HOP[address.version])
    kind = draw(_STRAY_KIND)
    if kind == "lb":
        return StaticRoute(prefix, hop, 200, 4242)
    if kind == "bypass":
        return StaticRoute(prefix, hop, 1, 4242)
    if kind == "rule":
        return PbrRule(draw(_STRAY_SEQ), prefix, hop)
    return PbrBinding(draw(_STRAY_IFACE), address.version)


def _damage_router(draw: Any, objs: frozenset[OwnedObject]) -> frozenset[OwnedObject]:
    ordered = sorted(objs, key=repr)
    keep = [o for o in ordered if draw(_DIGIT) > 0]
    out = set(keep)
    for _ in range(draw(_N_STRAYS)):
        obj = _stray(draw)
        # a real router holds one PBR entry per seq
        if isinstance(obj, PbrRule) and any(
            isinstance(o, PbrRule) and o.seq == obj.seq for o in out
        ):
            continue
        out.add(obj)
    return frozenset(out)


def _damage_agent_vip(draw: Any, av: AgentVip) -> AgentVip | None:
    choice = draw(_DIGIT)
    if choice == 0:
        return None  # the agent lost it
    if choice == 1:
        return replace(av, mode=Mode.SINGLE, flow_tracking=draw(_BOOL))
    if choice == 2:
        return replace(av, flow_tracking=not av.flow_tracking)
    if choice == 3:
        return replace(av, dips=tuple(draw(_DIPS[av.address.version])))
    if choice == 4 and av.address.version == 4:
        return replace(av, drain=Drain((V4_DIPS[-1],), 5.0))
    return av


@st.composite
def scenarios(draw: Any) -> tuple[Inventory, ObservedState]:
    agents = _agents(draw)
    routers = _routers(draw)
    inv = Inventory(Path("inv"), routers, agents, _vips(draw))
    before = Inventory(Path("inv"), routers, agents, _vips(draw, 8))
    deployed = apply_plan(before, ObservedState(), make_plan(before, ObservedState()))
    routers_obs = {
        name: ObservedRouter(name, _damage_router(draw, r.objects))
        for name, r in sorted(deployed.routers.items())
    }
    for r in routers:
        if r.name not in routers_obs and draw(_BOOL):
            routers_obs[r.name] = ObservedRouter(r.name, _damage_router(draw, frozenset()))
    agents_obs: dict[str, dict[IPAddress, AgentVip]] = {}
    for name, vips in sorted(deployed.agents.items()):
        kept: dict[IPAddress, AgentVip] = {}
        for address, av in sorted(vips.items(), key=lambda kv: (kv[0].version, int(kv[0]))):
            damaged = _damage_agent_vip(draw, av)
            if damaged is not None:
                kept[address] = damaged
        agents_obs[name] = kept
    return inv, ObservedState(agents_obs, routers_obs)


# ---------------------------------------------------------------------------------- helpers

_CODES = {
    Action.SET_VIP: "S",
    Action.WAIT_DRAIN: "W",
    Action.FLOW_TRACKING: "F",
    Action.REMOVE_VIP: "R",
    Action.ROUTER_PUSH: "P",
    Action.ROUTER_VERIFY: "V",
}
_PATTERNS = {
    Kind.CREATE: r"S(PV)?F?",
    Kind.DELETE: r"(PV)?R?",
    Kind.BYPASS_ENABLE: r"SW?(PV)?F",
    Kind.BYPASS_DISABLE: r"S(PV)?",
    Kind.BYPASS_MOVE: r"S(PV)?W(PV)?SF",
    Kind.REBALANCE: r"S(PV)?",
    Kind.REPAIR: r"S?(PV)?",
    Kind.NONE: r"",
}


def _code(t: Transition) -> str:
    return "".join(_CODES[s.action] for s in t.steps)


def _assert_converged(inv: Inventory, state: ObservedState) -> None:
    again = make_plan(inv, state)
    assert [(t.vip, t.kind) for t in again.transitions if t.kind is not Kind.NONE] == []
    assert all(not r.remove and not r.add for r in again.routers)
    assert not again.has_changes


def _plan_json(plan: Plan) -> str:
    return json.dumps(
        [
            [t.vip, t.kind.value, t.from_.to_json(), t.to.to_json(), [s.to_json() for s in t.steps]]
            for t in plan.transitions
        ]
        + [[r.router, repr(r.remove), repr(r.add)] for r in plan.routers]
    )


# ------------------------------------------------------------------------------- properties


@SETTINGS
@given(scenarios())
def test_applying_a_plan_converges(scenario: tuple[Inventory, ObservedState]) -> None:
    inv, observed = scenario
    plan = make_plan(inv, observed)
    _assert_converged(inv, apply_plan(inv, observed, plan))


@LIGHT
@given(scenarios())
def test_steps_follow_the_pattern_of_their_kind(scenario: tuple[Inventory, ObservedState]) -> None:
    inv, observed = scenario
    plan = make_plan(inv, observed)
    for t in plan.transitions:
        code = _code(t)
        assert re.fullmatch(_PATTERNS[t.kind], code), (t.vip, t.kind, code)
        assert (t.kind is Kind.NONE) == (code == ""), (t.vip, t.kind)
        for s in t.steps:
            if s.action is Action.SET_VIP:
                assert s.flow_tracking is True  # tracking goes off only after the bypass
                assert s.mode is t.to.mode or (t.kind is Kind.BYPASS_MOVE and s is t.steps[0])
                if s.transit is not None:
                    assert s.transit.dip in s.dips or (
                        s.drain is not None and s.transit.dip in s.drain.dips
                    )
            if s.action is Action.WAIT_DRAIN:
                assert s.drain is not None and s.drain.dips
            if s.action in (Action.ROUTER_PUSH, Action.ROUTER_VERIFY):
                assert s.routers and all(not rc.empty for rc in s.routers)
                assert [rc.router for rc in s.routers] == sorted(rc.router for rc in s.routers)
        if t.kind is Kind.BYPASS_MOVE:
            first_set = t.steps[0]
            assert first_set.transit is not None and first_set.transit.dip == t.from_.dips[0]


@LIGHT
@given(scenarios())
def test_changes_stay_within_their_vip_and_never_remove_what_is_needed(
    scenario: tuple[Inventory, ObservedState],
) -> None:
    inv, observed = scenario
    plan = make_plan(inv, observed)
    wanted = {r.name: desired_objects(inv, r, observed.router_objects(r.name)) for r in inv.routers}
    for rp in plan.routers:
        assert not set(rp.remove) & wanted[rp.router]
        assert set(rp.add) <= wanted[rp.router]
    pushed: dict[str, tuple[list[RouterObject], list[RouterObject]]] = {
        rp.router: ([], []) for rp in plan.routers
    }
    for t in plan.transitions:
        prefix = host_prefix(t.address)
        for s in t.steps:
            if s.action is not Action.ROUTER_PUSH:
                continue
            for rc in s.routers:
                for obj in (*rc.remove, *rc.add):
                    assert (
                        isinstance(obj, PbrBinding | BgpPeer | BgpGroup) or obj.prefix == prefix
                    ), (
                        t.vip,
                        obj,
                    )
                pushed[rc.router][0].extend(rc.remove)
                pushed[rc.router][1].extend(rc.add)
    # every change of Plan.routers is made by exactly one transition step
    for rp in plan.routers:
        assert sorted(map(repr, pushed[rp.router][0])) == sorted(map(repr, rp.remove))
        assert sorted(map(repr, pushed[rp.router][1])) == sorted(map(repr, rp.add))


@LIGHT
@given(scenarios())
def test_plans_are_deterministic(scenario: tuple[Inventory, ObservedState]) -> None:
    inv, observed = scenario
    one, two = make_plan(inv, observed), make_plan(inv, observed)
    assert repr(one) == repr(two)
    assert _plan_json(one) == _plan_json(two)
    reordered = ObservedState(
        agents={
            k: dict(reversed(list(v.items()))) for k, v in reversed(list(observed.agents.items()))
        },
        routers=dict(reversed(list(observed.routers.items()))),
    )
    inv2 = replace(inv, vips=tuple(reversed(inv.vips)), routers=tuple(reversed(inv.routers)))
    assert _plan_json(make_plan(inv2, reordered)) == _plan_json(one)


@SETTINGS
@given(scenarios(), st.data())
def test_a_crash_at_any_step_converges_on_the_next_run(
    scenario: tuple[Inventory, ObservedState], data: st.DataObject
) -> None:
    inv, observed = scenario
    plan = make_plan(inv, observed)
    busy = [i for i, t in enumerate(plan.transitions) if t.steps]
    if not busy:
        return
    j = data.draw(st.sampled_from(busy))
    k = data.draw(st.integers(0, len(plan.transitions[j].steps) - 1))
    done = apply_plan(inv, observed, replace(plan, transitions=plan.transitions[:j]))
    crashed = apply_steps(inv, done, plan.transitions[j], k)
    rerun = make_plan(inv, crashed)
    _assert_converged(inv, apply_plan(inv, crashed, rerun))


@LIGHT
@given(scenarios(), st.data())
def test_only_touches_the_named_vips_and_converges_for_them(
    scenario: tuple[Inventory, ObservedState], data: st.DataObject
) -> None:
    inv, observed = scenario
    full = make_plan(inv, observed)
    if not full.transitions:
        return
    named = data.draw(st.lists(st.sampled_from([t.vip for t in full.transitions]), min_size=1))
    plan = make_plan(inv, observed, only=named)
    assert {t.vip for t in plan.transitions} == set(named)
    prefixes = {host_prefix(t.address) for t in plan.transitions}
    for rp in plan.routers:
        for obj in (*rp.remove, *rp.add):
            assert isinstance(obj, PbrBinding | BgpPeer | BgpGroup) or obj.prefix in prefixes, (
                rp.router,
                obj,
            )
    after = apply_plan(inv, observed, plan)
    still = {t.vip for t in make_plan(inv, after).transitions}  # deleted VIPs are gone now
    again = make_plan(inv, after, only=[n for n in named if n in still])
    assert not again.has_changes, [(t.vip, t.kind) for t in again.transitions]
