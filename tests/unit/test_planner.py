"""lbauto.core.planner: every transition kind with its exact steps, and the plan-wide rules."""

from __future__ import annotations

import json

import pytest

from lbauto.core.model import (
    Agent,
    BgpGroup,
    BgpPeer,
    BypassPolicy,
    Drain,
    Inventory,
    Method,
    Mode,
    ObservedRouter,
    ObservedState,
    PbrBinding,
    Router,
    RouterObject,
    Transit,
    Vip,
)
from lbauto.core.plan import Action, Kind, Plan, PlanOptions, RouterChange, Step, Transition
from lbauto.core.planner import make_plan
from lbauto.errors import InventoryError
from tests import builders
from tests.builders import agent, agent_vip, bypass, ip, lb, net, rule, state, vip
from tests.simulate import apply_plan, apply_steps

LB1 = agent("lb1", 0)
LB2 = agent("lb2", 1)
FRR = Router("r-frr", "198.18.0.11", "frr")
EOS = Router("r-eos", "198.18.0.12", "eos", Method.PBR, ingress=("Ethernet1",))
OPTS = PlanOptions(transit_seconds=45.0, drain_timeout=20.0)

A = "198.51.100.21"
B = "198.51.100.22"
C = "198.51.100.23"
D = "198.51.100.24"


def inventory(
    *vips: Vip,
    routers: tuple[Router, ...] = (FRR, EOS),
    agents: tuple[Agent, ...] = (LB1,),
) -> Inventory:
    return builders.inventory(vips, routers=routers, agents=agents)


def deployed(inv: Inventory) -> ObservedState:
    """The state after a perfect apply of the inventory on an empty network."""
    return apply_plan(inv, ObservedState(), make_plan(inv, ObservedState()))


def only_transition(plan: Plan, name: str) -> Transition:
    (t,) = [t for t in plan.transitions if t.vip == name]
    return t


def actions(t: Transition) -> list[str]:
    return [s.action.value for s in t.steps]


def changes(step: Step) -> dict[str, tuple[set[RouterObject], set[RouterObject]]]:
    return {rc.router: (set(rc.remove), set(rc.add)) for rc in step.routers}


def set_vip(
    mode: Mode,
    *dips: str,
    transit: Transit | None = None,
    drain: Drain | None = None,
) -> Step:
    return Step(
        Action.SET_VIP,
        mode=mode,
        dips=tuple(ip(d) for d in dips),
        flow_tracking=True,
        transit=transit,
        drain=drain,
    )


TRACKING_OFF = Step(Action.FLOW_TRACKING, flow_tracking=False)
PUSH_VERIFY = ["router.push", "router.verify"]

WEB = vip("web", "192.0.2.10", A, B)
API = vip("api", "192.0.2.11", D)


# ------------------------------------------------------------------------------------ create


def test_create_multi_adds_vip_then_lb_routes_on_every_router() -> None:
    t = only_transition(make_plan(inventory(WEB), ObservedState(), OPTS), "web")
    assert t.kind is Kind.CREATE
    assert t.from_.mode is None and t.to.mode is Mode.MULTI
    assert t.steps[0] == set_vip(Mode.MULTI, A, B)
    assert actions(t) == ["agent.set_vip", *PUSH_VERIFY]
    assert changes(t.steps[1]) == {
        "r-eos": (set(), {lb("192.0.2.10/32")}),
        "r-frr": (set(), {lb("192.0.2.10/32")}),
    }
    assert t.steps[2].routers == t.steps[1].routers


def test_create_single_keeps_tracking_on_until_the_bypass_is_verified() -> None:
    t = only_transition(make_plan(inventory(API), ObservedState(), OPTS), "api")
    assert t.kind is Kind.CREATE
    assert t.steps == (
        set_vip(Mode.SINGLE, D),
        t.steps[1],
        t.steps[2],
        TRACKING_OFF,
    )
    assert actions(t) == ["agent.set_vip", *PUSH_VERIFY, "agent.flow_tracking"]
    assert changes(t.steps[1]) == {
        "r-eos": (
            set(),
            {lb("192.0.2.11/32"), rule(1, "192.0.2.11/32", D), PbrBinding("Ethernet1", 4)},
        ),
        "r-frr": (set(), {lb("192.0.2.11/32"), bypass("192.0.2.11/32", D)}),
    }


def test_create_empty_vip() -> None:
    t = only_transition(make_plan(inventory(vip("idle", "192.0.2.12")), ObservedState()), "idle")
    assert t.kind is Kind.CREATE
    assert t.steps[0] == set_vip(Mode.EMPTY)
    assert actions(t) == ["agent.set_vip", *PUSH_VERIFY]


def test_create_without_routers_is_agent_only() -> None:
    plan = make_plan(inventory(API, routers=()), ObservedState())
    t = only_transition(plan, "api")
    assert actions(t) == ["agent.set_vip", "agent.flow_tracking"]
    assert plan.routers == ()


# ------------------------------------------------------------------------------------ delete


def test_delete_removes_router_objects_first_then_the_agent_vip() -> None:
    inv = inventory(WEB)
    observed = state(
        agents={"lb1": [agent_vip("192.0.2.18", Mode.SINGLE, C, name="old")]},
        routers={
            "r-frr": [lb("192.0.2.18/32"), bypass("192.0.2.18/32", C)],
            "r-eos": [lb("192.0.2.18/32"), rule(4, "192.0.2.18/32", C), PbrBinding("Ethernet1")],
        },
    )
    t = only_transition(make_plan(inv, observed, OPTS), "old")
    assert t.kind is Kind.DELETE
    assert t.from_.mode is Mode.SINGLE and t.to.mode is None
    assert actions(t) == [*PUSH_VERIFY, "agent.remove_vip"]
    # the last rule of the router goes, so its binding goes with it
    assert changes(t.steps[0]) == {
        "r-eos": (
            {lb("192.0.2.18/32"), rule(4, "192.0.2.18/32", C), PbrBinding("Ethernet1")},
            set(),
        ),
        "r-frr": ({lb("192.0.2.18/32"), bypass("192.0.2.18/32", C)}, set()),
    }


def test_stray_router_route_is_deleted_without_an_agent_step() -> None:
    observed = state(routers={"r-frr": [lb("192.0.2.99/32")]})
    t = only_transition(make_plan(inventory(), observed), "192.0.2.99")
    assert t.kind is Kind.DELETE
    assert actions(t) == PUSH_VERIFY


def test_vip_only_on_an_agent_is_deleted_from_the_agent() -> None:
    observed = state(agents={"lb1": [agent_vip("192.0.2.18", Mode.MULTI, A, name="old")]})
    t = only_transition(make_plan(inventory(), observed), "old")
    assert (t.kind, actions(t)) == (Kind.DELETE, ["agent.remove_vip"])


# ----------------------------------------------------------------------------- bypass-enable


def test_bypass_enable_drains_removed_dips_before_the_router_bypass() -> None:
    inv = inventory(vip("web", "192.0.2.10", A))
    observed = deployed(inventory(WEB))
    t = only_transition(make_plan(inv, observed, OPTS), "web")
    assert t.kind is Kind.BYPASS_ENABLE
    drain = Drain((ip(B),), 20.0)
    assert actions(t) == [
        "agent.set_vip",
        "agent.wait_drain",
        *PUSH_VERIFY,
        "agent.flow_tracking",
    ]
    assert t.steps[0] == set_vip(Mode.SINGLE, A, drain=drain)
    assert t.steps[1] == Step(Action.WAIT_DRAIN, drain=drain)
    assert changes(t.steps[2]) == {
        "r-eos": (set(), {rule(1, "192.0.2.10/32", A), PbrBinding("Ethernet1")}),
        "r-frr": (set(), {bypass("192.0.2.10/32", A)}),
    }
    assert t.steps[4] == TRACKING_OFF
    assert t.max_seconds == 20.0


def test_bypass_enable_without_removed_dips_has_no_drain() -> None:
    inv = inventory(vip("web", "192.0.2.10", A, bypass=BypassPolicy.NEVER))
    observed = deployed(inv)
    t = only_transition(make_plan(inventory(vip("web", "192.0.2.10", A)), observed), "web")
    assert t.kind is Kind.BYPASS_ENABLE
    assert t.steps[0] == set_vip(Mode.SINGLE, A)
    assert actions(t) == ["agent.set_vip", *PUSH_VERIFY, "agent.flow_tracking"]


def test_agent_single_without_router_bypass_counts_as_multi() -> None:
    # crash after the agent step of a bypass-enable: re-running enables the bypass again
    observed = deployed(inventory(vip("api", "192.0.2.11", D, bypass=BypassPolicy.NEVER)))
    observed = state(
        agents={"lb1": [agent_vip("192.0.2.11", Mode.SINGLE, D, tracking=True)]},
        routers={n: list(r.objects) for n, r in observed.routers.items()},
    )
    t = only_transition(make_plan(inventory(API), observed), "api")
    assert t.from_.mode is Mode.MULTI
    assert t.kind is Kind.BYPASS_ENABLE
    assert actions(t) == ["agent.set_vip", *PUSH_VERIFY, "agent.flow_tracking"]


def test_a_dip_still_draining_on_the_agent_is_waited_for_again() -> None:
    # crash during a bypass-move's drain wait: d1 no longer listed, but still draining
    observed = deployed(inventory(vip("shop", "192.0.2.14", D, bypass=BypassPolicy.NEVER)))
    draining = Drain((ip(C),), 12.0)
    observed = state(
        agents={"lb1": [agent_vip("192.0.2.14", Mode.MULTI, D, drain=draining)]},
        routers={n: list(r.objects) for n, r in observed.routers.items()},
    )
    t = only_transition(make_plan(inventory(vip("shop", "192.0.2.14", D)), observed, OPTS), "shop")
    assert t.kind is Kind.BYPASS_ENABLE
    assert t.steps[1] == Step(Action.WAIT_DRAIN, drain=Drain((ip(C),), 20.0))


def test_bypass_missing_on_one_router_reruns_bypass_enable_for_that_router_only() -> None:
    inv = inventory(API)
    full = deployed(inv)
    frr = full.routers["r-frr"].objects - {bypass("192.0.2.11/32", D)}
    observed = ObservedState(
        agents=full.agents,
        routers={**full.routers, "r-frr": ObservedRouter("r-frr", frr)},
    )
    t = only_transition(make_plan(inv, observed), "api")
    assert t.from_ == t.to
    assert t.kind is Kind.BYPASS_ENABLE
    assert changes(t.steps[1]) == {"r-frr": (set(), {bypass("192.0.2.11/32", D)})}
    assert actions(t) == ["agent.set_vip", *PUSH_VERIFY, "agent.flow_tracking"]


def test_single_vip_with_tracking_left_on_reruns_bypass_enable_without_router_steps() -> None:
    inv = inventory(API)
    full = deployed(inv)
    observed = ObservedState(
        agents={"lb1": {ip("192.0.2.11"): agent_vip("192.0.2.11", Mode.SINGLE, D, tracking=True)}},
        routers=full.routers,
    )
    t = only_transition(make_plan(inv, observed), "api")
    assert (t.kind, actions(t)) == (Kind.BYPASS_ENABLE, ["agent.set_vip", "agent.flow_tracking"])


# ---------------------------------------------------------------------------- bypass-disable


def test_bypass_disable_pins_transit_to_the_old_dip_then_removes_the_bypass() -> None:
    observed = deployed(inventory(vip("blog", "192.0.2.15", A)))
    t = only_transition(
        make_plan(inventory(vip("blog", "192.0.2.15", A, B)), observed, OPTS), "blog"
    )
    assert t.kind is Kind.BYPASS_DISABLE
    assert actions(t) == ["agent.set_vip", *PUSH_VERIFY]
    assert t.steps[0] == set_vip(Mode.MULTI, A, B, transit=Transit(ip(A), 45.0))
    assert changes(t.steps[1]) == {
        "r-eos": ({rule(1, "192.0.2.15/32", A), PbrBinding("Ethernet1")}, set()),
        "r-frr": ({bypass("192.0.2.15/32", A)}, set()),
    }


def test_bypass_disable_to_dips_without_the_old_one_drains_it() -> None:
    observed = deployed(inventory(vip("blog", "192.0.2.15", A)))
    t = only_transition(
        make_plan(inventory(vip("blog", "192.0.2.15", B, C)), observed, OPTS), "blog"
    )
    assert t.kind is Kind.BYPASS_DISABLE
    assert t.steps[0] == set_vip(
        Mode.MULTI, B, C, transit=Transit(ip(A), 45.0), drain=Drain((ip(A),), 20.0)
    )


def test_bypass_disable_to_empty_has_no_pin() -> None:
    observed = deployed(inventory(vip("blog", "192.0.2.15", A)))
    t = only_transition(make_plan(inventory(vip("blog", "192.0.2.15")), observed), "blog")
    assert t.kind is Kind.BYPASS_DISABLE
    assert t.steps[0] == set_vip(Mode.EMPTY)
    assert actions(t) == ["agent.set_vip", *PUSH_VERIFY]


def test_bypass_never_turns_a_single_vip_back_to_multi() -> None:
    observed = deployed(inventory(API))
    inv = inventory(vip("api", "192.0.2.11", D, bypass=BypassPolicy.NEVER))
    t = only_transition(make_plan(inv, observed, OPTS), "api")
    assert t.kind is Kind.BYPASS_DISABLE
    assert t.steps[0] == set_vip(Mode.MULTI, D, transit=Transit(ip(D), 45.0))


# ------------------------------------------------------------------------------- bypass-move


def test_bypass_move_removes_old_bypass_drains_then_adds_new_one() -> None:
    observed = deployed(inventory(vip("shop", "192.0.2.14", C)))
    t = only_transition(make_plan(inventory(vip("shop", "192.0.2.14", D)), observed, OPTS), "shop")
    assert t.kind is Kind.BYPASS_MOVE
    drain = Drain((ip(C),), 20.0)
    assert actions(t) == [
        "agent.set_vip",
        *PUSH_VERIFY,
        "agent.wait_drain",
        *PUSH_VERIFY,
        "agent.set_vip",
        "agent.flow_tracking",
    ]
    # the agent gets dips=[d2] with d1 pinned and draining (the agent contract's rule)
    assert t.steps[0] == set_vip(Mode.MULTI, D, transit=Transit(ip(C), 45.0), drain=drain)
    assert changes(t.steps[1]) == {
        "r-eos": ({rule(1, "192.0.2.14/32", C)}, set()),
        "r-frr": ({bypass("192.0.2.14/32", C)}, set()),
    }
    assert t.steps[3] == Step(Action.WAIT_DRAIN, drain=drain)
    # the PBR rule keeps its seq; the binding stays (no churn on the interface)
    assert changes(t.steps[4]) == {
        "r-eos": (set(), {rule(1, "192.0.2.14/32", D)}),
        "r-frr": (set(), {bypass("192.0.2.14/32", D)}),
    }
    # the agent is flagged single again (it held multi since the first step), then stops tracking
    assert t.steps[6] == set_vip(Mode.SINGLE, D)
    assert t.steps[7] == TRACKING_OFF


# --------------------------------------------------------------------------------- rebalance


def test_rebalance_is_agent_only_and_drains_removed_dips() -> None:
    observed = deployed(inventory(vip("web", "192.0.2.10", A, B, C)))
    t = only_transition(make_plan(inventory(vip("web", "192.0.2.10", A, D)), observed, OPTS), "web")
    assert t.kind is Kind.REBALANCE
    assert t.steps == (set_vip(Mode.MULTI, A, D, drain=Drain((ip(B), ip(C)), 20.0)),)


def test_rebalance_to_empty_does_not_drain() -> None:
    observed = deployed(inventory(WEB))
    t = only_transition(make_plan(inventory(vip("web", "192.0.2.10")), observed), "web")
    assert (t.kind, t.steps) == (Kind.REBALANCE, (set_vip(Mode.EMPTY),))


def test_rebalance_pushes_lb_routes_when_agents_change() -> None:
    observed = deployed(inventory(WEB))
    t = only_transition(
        make_plan(inventory(vip("web", "192.0.2.10", A, C), agents=(LB1, LB2)), observed), "web"
    )
    assert t.kind is Kind.REBALANCE
    assert actions(t) == ["agent.set_vip", *PUSH_VERIFY]
    assert changes(t.steps[1]) == {
        "r-eos": (set(), {lb("192.0.2.10/32", "198.51.100.11")}),
        "r-frr": (set(), {lb("192.0.2.10/32", "198.51.100.11")}),
    }


# ------------------------------------------------------------------------------ repair, none


def test_fully_deployed_inventory_plans_nothing() -> None:
    inv = inventory(WEB, API, vip("idle", "192.0.2.12"))
    plan = make_plan(inv, deployed(inv))
    assert {t.kind for t in plan.transitions} == {Kind.NONE}
    assert all(t.steps == () for t in plan.transitions)
    assert [(r.router, r.remove, r.add) for r in plan.routers] == [
        ("r-eos", (), ()),
        ("r-frr", (), ()),
    ]
    assert not plan.has_changes


def test_repair_restores_a_deleted_lb_route_only() -> None:
    inv = inventory(WEB)
    full = deployed(inv)
    observed = ObservedState(
        agents=full.agents,
        routers={**full.routers, "r-eos": ObservedRouter("r-eos", frozenset())},
    )
    t = only_transition(make_plan(inv, observed), "web")
    assert (t.kind, actions(t)) == (Kind.REPAIR, PUSH_VERIFY)
    assert changes(t.steps[0]) == {"r-eos": (set(), {lb("192.0.2.10/32")})}


def test_repair_fixes_an_agent_that_stopped_tracking() -> None:
    inv = inventory(WEB)
    full = deployed(inv)
    observed = ObservedState(
        agents={
            "lb1": {ip("192.0.2.10"): agent_vip("192.0.2.10", Mode.MULTI, A, B, tracking=False)}
        },
        routers=full.routers,
    )
    t = only_transition(make_plan(inv, observed), "web")
    assert t.from_ == t.to
    assert (t.kind, t.steps) == (Kind.REPAIR, (set_vip(Mode.MULTI, A, B),))


def test_repair_sets_the_vip_on_a_new_agent_and_routes_to_it() -> None:
    inv = inventory(WEB)
    grown = inventory(WEB, agents=(LB1, LB2))
    t = only_transition(make_plan(grown, deployed(inv)), "web")
    assert t.kind is Kind.REPAIR
    assert actions(t) == ["agent.set_vip", *PUSH_VERIFY]


def test_stale_lb_route_to_a_retired_agent_is_not_a_bypass() -> None:
    inv = inventory(WEB)
    full = deployed(inventory(WEB, agents=(LB1, LB2)))
    t = only_transition(make_plan(inv, full), "web")
    assert t.from_.mode is Mode.MULTI
    assert t.kind is Kind.REPAIR
    assert changes(t.steps[0]) == {
        "r-eos": ({lb("192.0.2.10/32", "198.51.100.11")}, set()),
        "r-frr": ({lb("192.0.2.10/32", "198.51.100.11")}, set()),
    }


def test_missing_binding_rides_with_the_first_vip_that_has_a_rule() -> None:
    inv = inventory(WEB, API, vip("mail", "192.0.2.16", C))
    full = deployed(inv)
    eos = full.routers["r-eos"].objects - {PbrBinding("Ethernet1")}
    observed = ObservedState(full.agents, {**full.routers, "r-eos": ObservedRouter("r-eos", eos)})
    plan = make_plan(inv, observed)
    kinds = {t.vip: t.kind for t in plan.transitions}
    assert kinds == {"web": Kind.NONE, "api": Kind.BYPASS_ENABLE, "mail": Kind.NONE}
    api = only_transition(plan, "api")
    assert changes(api.steps[1]) == {"r-eos": (set(), {PbrBinding("Ethernet1")})}


def test_policy_is_unbound_with_the_rule_removal_that_runs_last() -> None:
    # blog's rule goes at step 1 (after the agent pin), old's at step 0: the binding must stay
    # until step 1 although old comes later in address order.
    inv = inventory(vip("blog", "192.0.2.15", A, B))
    observed = deployed(inventory(vip("blog", "192.0.2.15", A), vip("old", "192.0.2.18", C)))
    plan = make_plan(inv, observed)
    blog, old = only_transition(plan, "blog"), only_transition(plan, "old")
    assert actions(old)[0] == "router.push"
    assert changes(old.steps[0])["r-eos"][0] == {rule(2, "192.0.2.18/32", C), lb("192.0.2.18/32")}
    assert actions(blog)[1] == "router.push"
    assert changes(blog.steps[1])["r-eos"][0] == {
        rule(1, "192.0.2.15/32", A),
        PbrBinding("Ethernet1"),
    }


# ---------------------------------------------------------------------------- from-state rules


def test_agents_disagreeing_first_agent_by_name_wins() -> None:
    observed = state(
        agents={
            "lb2": [agent_vip("192.0.2.10", Mode.MULTI, C, D)],
            "lb1": [agent_vip("192.0.2.10", Mode.MULTI, A, B)],
        }
    )
    inv = inventory(WEB, agents=(LB2, LB1))
    t = only_transition(make_plan(inv, observed), "web")
    assert t.from_.dips == (ip(A), ip(B))
    assert t.kind is Kind.REPAIR  # lb2 differs


def test_router_bypass_decides_the_from_state_over_the_agent() -> None:
    observed = state(
        agents={"lb1": [agent_vip("192.0.2.10", Mode.MULTI, A, B)]},
        routers={"r-frr": [lb("192.0.2.10/32"), bypass("192.0.2.10/32", A)]},
    )
    t = only_transition(make_plan(inventory(WEB), observed), "web")
    assert t.from_.mode is Mode.SINGLE and t.from_.dips == (ip(A),)
    assert t.kind is Kind.BYPASS_DISABLE


def test_non_host_prefix_routes_with_our_tag_are_left_alone() -> None:
    observed = state(routers={"r-frr": [lb("192.0.2.0/24")]})
    plan = make_plan(inventory(), observed)
    assert plan.transitions == ()
    assert all(not r.remove for r in plan.routers)


# ------------------------------------------------------------------------------------- scope


def test_only_plans_the_named_vips_and_leaves_other_objects_alone() -> None:
    inv = inventory(WEB, API, vip("new", "192.0.2.17", C))
    observed = state(
        agents={"lb1": [agent_vip("192.0.2.18", Mode.MULTI, A, name="old")]},
        routers={"r-frr": [lb("192.0.2.18/32"), lb("192.0.2.99/32")]},
    )
    plan = make_plan(inv, observed, only=["new"])
    assert [t.vip for t in plan.transitions] == ["new"]
    for rp in plan.routers:
        assert all(
            o.prefix == net("192.0.2.17/32")
            for o in (*rp.remove, *rp.add)
            if not isinstance(o, PbrBinding | BgpPeer | BgpGroup)
        )
        assert not rp.remove
    # addresses work too, also for VIPs only observed
    assert [t.vip for t in make_plan(inv, observed, only=["192.0.2.18"]).transitions] == ["old"]


def test_only_with_an_unknown_vip_is_an_error_naming_it() -> None:
    with pytest.raises(InventoryError, match="'nope'"):
        make_plan(inventory(WEB), ObservedState(), only=["web", "nope"])
    # an address that nothing has plans nothing (re-running a finished delete is fine)
    assert make_plan(inventory(WEB), ObservedState(), only=["192.0.2.99"]).transitions == ()


def test_only_keeps_bindings_that_unplanned_rules_need() -> None:
    inv = inventory(API, vip("mail", "192.0.2.16", C))
    full = deployed(inventory(API))
    plan = make_plan(inv, full, only=["mail"])
    eos = {rp.router: rp for rp in plan.routers}["r-eos"]
    assert eos.remove == ()
    assert eos.add == (lb("192.0.2.16/32"), rule(2, "192.0.2.16/32", C))


# ------------------------------------------------------------------------------- plan layout


def test_transitions_sorted_ipv4_first_then_numerically() -> None:
    inv = inventory(
        vip("v6", "2001:db8:10::10", "2001:db8:100::21"),
        vip("b", "192.0.2.100", A, B),
        vip("a", "192.0.2.9", A, B),
    )
    plan = make_plan(inv, ObservedState())
    assert [t.vip for t in plan.transitions] == ["a", "b", "v6"]
    assert [rp.router for rp in plan.routers] == ["r-eos", "r-frr"]


def test_plan_routers_is_the_union_of_all_pushes() -> None:
    inv = inventory(vip("web", "192.0.2.10", A), vip("blog", "192.0.2.15", A, B), API)
    observed = deployed(inventory(WEB, vip("blog", "192.0.2.15", A), vip("old", "192.0.2.18", C)))
    plan = make_plan(inv, observed)
    for rp in plan.routers:
        removed: list[RouterObject] = []
        added: list[RouterObject] = []
        for t in plan.transitions:
            for s in t.steps:
                if s.action is Action.ROUTER_PUSH:
                    for rc in s.routers:
                        if rc.router == rp.router:
                            removed.extend(rc.remove)
                            added.extend(rc.add)
        assert sorted(map(repr, removed)) == sorted(map(repr, rp.remove))
        assert sorted(map(repr, added)) == sorted(map(repr, rp.add))


def test_push_steps_name_only_routers_with_a_change_in_name_order() -> None:
    routers = (Router("r2", "h", "ios"), Router("r1", "h", "nxos"))
    plan = make_plan(inventory(WEB, routers=routers), ObservedState())
    step = plan.transitions[0].steps[1]
    assert [rc.router for rc in step.routers] == ["r1", "r2"]
    assert all(isinstance(rc, RouterChange) and not rc.empty for rc in step.routers)


def test_same_input_in_any_order_gives_the_same_plan_bytes() -> None:
    vips = [WEB, API, vip("v6", "2001:db8:10::10", "2001:db8:100::21"), vip("idle", "192.0.2.12")]
    observed = deployed(inventory(vip("web", "192.0.2.10", A), vip("old", "192.0.2.18", B)))
    one = make_plan(inventory(*vips), observed)
    shuffled = ObservedState(
        agents={k: dict(reversed(list(v.items()))) for k, v in observed.agents.items()},
        routers=dict(reversed(list(observed.routers.items()))),
    )
    two = make_plan(inventory(*reversed(vips), routers=(EOS, FRR)), shuffled)
    assert plan_json(one) == plan_json(two)
    assert repr(one.transitions) == repr(two.transitions)


def plan_json(plan: Plan) -> str:
    return json.dumps(
        {
            "transitions": [
                {
                    "vip": t.vip,
                    "kind": t.kind.value,
                    "from": t.from_.to_json(),
                    "to": t.to.to_json(),
                    "steps": [s.to_json() for s in t.steps],
                }
                for t in plan.transitions
            ],
            "routers": [[r.router, repr(r.remove), repr(r.add)] for r in plan.routers],
        },
        sort_keys=False,
    )


# ---------------------------------------------------------------------------------- simulate


def test_simulated_apply_gives_every_agent_the_vip_and_every_router_its_objects() -> None:
    inv = inventory(API, agents=(LB1, LB2))
    state_after = deployed(inv)
    for name in ("lb1", "lb2"):
        av = state_after.agents[name][ip("192.0.2.11")]
        assert (av.mode, av.dips, av.flow_tracking, av.name) == (
            Mode.SINGLE,
            (ip(D),),
            False,
            "api",
        )
        assert av.transit is None and av.drain is None
    assert state_after.routers["r-frr"].objects == {
        lb("192.0.2.11/32"),
        lb("192.0.2.11/32", "198.51.100.11"),
        bypass("192.0.2.11/32", D),
    }


def test_simulated_crash_applies_only_the_first_steps() -> None:
    inv = inventory(API)
    t = only_transition(make_plan(inv, ObservedState()), "api")
    after_agent = apply_steps(inv, ObservedState(), t, 1)
    assert after_agent.agents["lb1"][ip("192.0.2.11")].flow_tracking is True
    assert after_agent.routers == {}
    # the re-plan enables the bypass (the agent's single without a router bypass counts as multi)
    assert only_transition(make_plan(inv, after_agent), "api").kind is Kind.BYPASS_ENABLE


def test_simulated_delete_removes_the_vip_from_agents_and_routers() -> None:
    observed = deployed(inventory(WEB, API))
    after = apply_plan(inventory(WEB), observed, make_plan(inventory(WEB), observed))
    assert set(after.agents["lb1"]) == {ip("192.0.2.10")}
    assert all(
        o.prefix == net("192.0.2.10/32")
        for r in after.routers.values()
        for o in r.objects
        if not isinstance(o, PbrBinding)
    )
    assert PbrBinding("Ethernet1") not in after.routers["r-eos"].objects
