"""BGP LB routes, router side: inventory keys, intent, plan, FRR render -> parse round trip,
and the executor's pool order (issue 17)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from lbauto.core.model import (
    BgpAccept,
    BgpGroup,
    BgpPeer,
    BgpSettings,
    LbRoute,
    Mode,
    ObservedRouter,
    ObservedState,
    Router,
    RouterObject,
    StaticRoute,
)
from lbauto.core.plan import Action, Kind
from lbauto.core.planner import make_plan
from lbauto.core.pool import desired_pool
from lbauto.errors import InventoryError, StateError, TransitionError
from lbauto.inventory import load_inventory
from lbauto.inventory.statefile import state_from_json, state_to_compact_json, state_to_json
from lbauto.orchestrate.executor import Executor
from lbauto.orchestrate.journal import Journal, read_journal
from lbauto.platforms import PLATFORMS, parse_router
from lbauto.platforms.render import render_changes, render_config
from tests.builders import agent, agent_vip, bypass, inventory, ip, net, vip
from tests.simulate import apply_plan
from tests.unit.fakes import FakeAgent, FakeRouters

SETTINGS = BgpSettings(asn=64500, agent_asn=64512)
R1 = Router("r1", "203.0.113.1", "frr", lb_route=LbRoute.BGP, bgp=SETTINGS)
AGENTS = (agent("lb1", 0), agent("lb2", 1))
GROUP = BgpGroup(64500, 64512, 8, True, 100, 3)


def peers() -> set[BgpPeer]:
    return {BgpPeer(h) for a in AGENTS for h in (a.address, a.address6) if h is not None}


# ------------------------------------------------------------------------------- inventory

HOSTS = """\
r1:
  hostname: 203.0.113.1
  platform: frr
  data:
"""
AGENTS_YAML = """\
agents:
  - {name: lb1, api: "https://lb1:8443", address: 198.51.100.10, token_env: LB_TOKEN}
"""
VIPS_YAML = "vips:\n  - {name: web, address: 192.0.2.10, dips: [198.51.100.21]}\n"


def write(root: Path, data: str) -> Path:
    (root / "hosts.yaml").write_text(HOSTS + textwrap.indent(textwrap.dedent(data), "    "))
    (root / "agents.yaml").write_text(AGENTS_YAML)
    (root / "vips.yaml").write_text(VIPS_YAML)
    return root


def problems(root: Path) -> list[str]:
    with pytest.raises(InventoryError) as info:
        load_inventory(root)
    return info.value.problems


def test_inventory_reads_bgp_settings_with_defaults(tmp_path: Path) -> None:
    inv = load_inventory(
        write(tmp_path, "lbauto_lb_route: bgp\nlbauto_bgp: {asn: 64500, agent_asn: 64512}\n")
    )
    r = inv.routers[0]
    assert r.lb_route is LbRoute.BGP
    assert r.bgp == BgpSettings(64500, 64512, True, 8, 100, 3)


def test_inventory_default_is_static_and_ignores_bgp_settings(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "lbauto_bgp: {asn: 64500, agent_asn: 64512}\n"))
    assert inv.routers[0].lb_route is LbRoute.STATIC and inv.routers[0].bgp is None


def test_bgp_mode_without_asn_says_what_to_add(tmp_path: Path) -> None:
    got = problems(write(tmp_path, "lbauto_lb_route: bgp\nlbauto_bgp: {agent_asn: 64512}\n"))
    assert len(got) == 1
    assert got[0].startswith(f"{tmp_path / 'hosts.yaml'}:1: host 'r1': ")
    assert "lbauto_lb_route bgp needs lbauto_bgp.asn" in got[0] and "add `lbauto_bgp:" in got[0]


def test_bgp_mode_refuses_ibgp(tmp_path: Path) -> None:
    got = problems(
        write(tmp_path, "lbauto_lb_route: bgp\nlbauto_bgp: {asn: 64500, agent_asn: 64500}\n")
    )
    assert "both 64500" in got[0] and "eBGP" in got[0]


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ("lbauto_lb_route: ospf\n", ("lbauto_lb_route", "static, bgp")),
        ("lbauto_bgp: {asn: 64500, agent_asn: 64512, bfd: 'yes'}\n", ("true or false",)),
        ("lbauto_bgp: {asn: 0, agent_asn: 64512}\n", ("asn", "1 to 4294967294")),
        ("lbauto_bgp: {asn: 64500, agent_asn: 64512, maximum_paths: 65}\n", ("1 to 64",)),
        ("lbauto_bgp: {asn: 64500, agent_asn: 64512, bfd_interval_ms: 5}\n", ("10 to 60000",)),
        ("lbauto_bgp: {asn: 64500, agent_asn: 64512, peers: 2}\n", ("unknown key 'peers'",)),
    ],
)
def test_bad_bgp_settings_point_at_their_line(
    tmp_path: Path, data: str, fragments: tuple[str, ...]
) -> None:
    got = problems(write(tmp_path, data))
    assert any(
        p.startswith(f"{tmp_path / 'hosts.yaml'}:5") and all(f in p for f in fragments) for p in got
    ), got


# ---------------------------------------------------------------------------------- intent


def test_bgp_router_intent_accepts_each_vip_and_keeps_the_static_bypass() -> None:
    inv = inventory(
        [vip("web", "192.0.2.10", "198.51.100.21"), vip("api", "2001:db8:10::1", "d::1", "d::2")],
        routers=[R1],
        agents=AGENTS,
    )
    plan = make_plan(inv, ObservedState())
    rp = plan.routers[0]
    assert not any(isinstance(o, StaticRoute) and o.distance == 200 for o in rp.add)
    assert set(rp.add) == {
        BgpAccept(net("192.0.2.10/32")),
        BgpAccept(net("2001:db8:10::1/128")),
        bypass("192.0.2.10/32", "198.51.100.21"),
        GROUP,
        *peers(),
    }
    assert {*plan.pool[0].add} == {GROUP, *peers()}
    web = next(t for t in plan.transitions if t.vip == "web")
    # The decision table is unchanged: the LB route (here the accept entry) comes with the
    # bypass in create's one router step, after the agent has the VIP.
    assert web.kind is Kind.CREATE
    assert [s.action for s in web.steps] == [
        Action.SET_VIP,
        Action.ROUTER_PUSH,
        Action.ROUTER_VERIFY,
        Action.FLOW_TRACKING,
    ]


def test_pool_without_bfd_carries_no_timers() -> None:
    r = Router("r", "h", "frr", lb_route=LbRoute.BGP, bgp=BgpSettings(64500, 64512, bfd=False))
    assert BgpGroup(64500, 64512, 8, False, 0, 0) in desired_pool(r, AGENTS)
    assert desired_pool(Router("s", "h", "frr"), AGENTS) == frozenset()


def _deployed(inv_vips: list, observed_extra: tuple = ()) -> tuple:  # type: ignore[type-arg]
    inv = inventory(inv_vips, routers=[R1], agents=AGENTS)
    first = make_plan(inv, ObservedState())
    text = render_config(R1, first.routers[0].add)
    objects, pool = parse_router("frr", text, R1.tag)
    agents = {
        a.name: [agent_vip(str(v.address), v.mode, *map(str, v.dips)) for v in inv_vips]
        for a in AGENTS
    }
    obs = ObservedState(
        agents={n: {av.address: av for av in avs} for n, avs in agents.items()},
        routers={"r1": ObservedRouter("r1", objects | frozenset(observed_extra), None, pool)},
    )
    return inv, obs


def test_rendered_frr_config_parses_back_to_an_empty_plan() -> None:
    vips = [
        vip("web", "192.0.2.10", "198.51.100.21"),
        vip("api", "192.0.2.11", "198.51.100.22", "198.51.100.23"),
    ]
    inv, obs = _deployed(vips)
    plan = make_plan(inv, obs)
    assert not plan.has_changes, plan


@pytest.mark.parametrize("form", ["plain", "compact"])
def test_a_state_file_keeps_a_bgp_router_deployed(form: str) -> None:
    """`lbauto plan --state FILE` on a deployed bgp router: the file carries its accept
    entries, peers and peer group, so the plan is as empty as from live observation."""
    vips = [
        vip("web", "192.0.2.10", "198.51.100.21"),
        vip("api", "192.0.2.11", "198.51.100.22", "198.51.100.23"),
    ]
    inv, obs = _deployed(vips)
    write_doc = state_to_json if form == "plain" else state_to_compact_json
    doc = json.loads(json.dumps(write_doc(obs)))
    router_doc = doc["routers"]["r1"]
    assert router_doc["bgp_group"]["asn"] == 64500 and len(router_doc["bgp_peers"]) == 4
    back = state_from_json(doc, "state.json")
    assert back.routers["r1"].pool == obs.routers["r1"].pool
    assert back.routers["r1"].objects == obs.routers["r1"].objects
    assert not make_plan(inv, back).has_changes
    # control: without the pool keys the same file plans the pool again
    del router_doc["bgp_peers"], router_doc["bgp_group"]
    assert make_plan(inv, state_from_json(doc, "state.json")).pool


def test_a_bad_bgp_group_in_a_state_file_names_its_path() -> None:
    doc = {"routers": {"r1": {"bgp_group": {"asn": 0, "agent_asn": 64512, "maximum_paths": 8,
                                            "bfd": True, "bfd_interval_ms": 100,
                                            "bfd_multiplier": 3}}}}  # fmt: skip
    with pytest.raises(StateError, match=r"^x: \$\.routers\.r1\.bgp_group\.asn: expected"):
        state_from_json(doc, "x")


def test_an_agent_added_to_the_pool_is_only_a_pool_change() -> None:
    vips = [vip("web", "192.0.2.11", "198.51.100.21", "198.51.100.22")]
    _, obs = _deployed(vips)
    lb3 = agent("lb3", 2, v6=False)
    bigger = inventory(vips, routers=[R1], agents=(*AGENTS, lb3))
    obs = ObservedState(agents={**obs.agents, "lb3": obs.agents["lb1"]}, routers=obs.routers)
    plan = make_plan(bigger, obs)
    assert all(t.kind is Kind.NONE for t in plan.transitions)
    assert plan.pool[0].add == (BgpPeer(ip("198.51.100.12")),) and not plan.pool[0].remove
    lines = render_changes(R1, plan.pool[0].remove, plan.pool[0].add)
    assert lines == ["router bgp 64500", " neighbor 198.51.100.12 peer-group LBAUTO", "exit"]


def test_a_changed_setting_rewrites_the_group_in_place() -> None:
    inv, obs = _deployed([vip("web", "192.0.2.11", "198.51.100.21", "198.51.100.22")])
    wider = Router(
        "r1",
        "203.0.113.1",
        "frr",
        lb_route=LbRoute.BGP,
        bgp=BgpSettings(64500, 64512, maximum_paths=16),
    )
    plan = make_plan(inventory(inv.vips, routers=[wider], agents=AGENTS), obs)
    (rc,) = plan.pool
    assert rc.remove == (GROUP,) and rc.add == (BgpGroup(64500, 64512, 16, True, 100, 3),)
    lines = render_changes(wider, rc.remove, rc.add)
    assert "  maximum-paths 16" in lines
    assert not any("no neighbor LBAUTO peer-group" in ln for ln in lines)  # sessions stay


def test_hand_edited_import_policy_is_drift() -> None:
    inv = inventory(
        [vip("web", "192.0.2.11", "198.51.100.22", "198.51.100.23")], routers=[R1], agents=AGENTS
    )
    text = render_config(R1, make_plan(inv, ObservedState()).routers[0].add)
    text += "route-map LBAUTO-IN permit 20\nexit\n"  # would accept everything
    _, pool = parse_router("frr", text, R1.tag)
    assert GROUP not in pool


def test_switching_back_to_static_removes_the_pool_and_adds_lb_routes() -> None:
    inv, obs = _deployed([vip("web", "192.0.2.11", "198.51.100.21", "198.51.100.22")])
    static = Router("r1", "203.0.113.1", "frr")
    plan = make_plan(inventory(inv.vips, routers=[static], agents=AGENTS), obs)
    (rc,) = plan.pool
    assert set(rc.remove) == {GROUP, *peers()} and not rc.add
    (web,) = plan.transitions
    (push,) = [s for s in web.steps if s.action is Action.ROUTER_PUSH]
    assert push.routers[0].remove == (BgpAccept(net("192.0.2.11/32")),)
    added = push.routers[0].add
    assert all(isinstance(o, StaticRoute) and o.distance == 200 for o in added)
    assert {o.next_hop for o in added if isinstance(o, StaticRoute)} == {
        ip("198.51.100.10"),
        ip("198.51.100.11"),
    }
    lines = render_changes(static, rc.remove, rc.add)
    assert lines[:2] == ["router bgp 64500", " no neighbor 198.51.100.10"]
    assert "no route-map LBAUTO-IN" in lines


# -------------------------------------------------------------------------------- executor


def test_pool_additions_go_first_and_removals_last(tmp_path: Path) -> None:
    vips = [vip("web", "192.0.2.11", "198.51.100.21", "198.51.100.22")]
    inv = inventory(vips, routers=[R1], agents=AGENTS)
    agents = [FakeAgent(a.name) for a in AGENTS]
    routers = FakeRouters()
    plan = make_plan(inv, ObservedState())
    Executor(agents, routers, Journal(tmp_path), ObservedState()).execute(plan)
    first = routers.pushes[0]
    assert {*first[0].add} == {GROUP, *peers()}
    assert all(a.vips[ip("192.0.2.11")].mode is Mode.MULTI for a in agents)
    assert BgpAccept(net("192.0.2.11/32")) in routers.objects["r1"]
    # Back to static: the sessions go only after the VIP has its static LB routes.
    static = Router("r1", "203.0.113.1", "frr")
    obs = ObservedState(agents={a.name: dict(a.vips) for a in agents}, routers=routers.observed())
    routers.pushes.clear()
    plan = make_plan(inventory(vips, routers=[static], agents=AGENTS), obs)
    Executor(agents, routers, Journal(tmp_path), obs).execute(plan)
    assert any(isinstance(o, StaticRoute) for o in routers.pushes[0][0].add)
    assert {*routers.pushes[-1][0].remove} == {GROUP, *peers()}
    assert routers.objects["r1"] == {
        StaticRoute(net("192.0.2.11/32"), h, 200, 4242)
        for h in (AGENTS[0].address, AGENTS[1].address)
        if h
    }


def test_failed_pool_push_moves_no_vip(tmp_path: Path) -> None:
    inv = inventory(
        [vip("web", "192.0.2.11", "198.51.100.21", "198.51.100.22")], routers=[R1], agents=AGENTS
    )
    agents = [FakeAgent(a.name) for a in AGENTS]
    routers = FakeRouters(fail_push={"r1"})
    with pytest.raises(TransitionError, match="pool-add"):
        Executor(agents, routers, Journal(tmp_path), ObservedState()).execute(
            make_plan(inv, ObservedState())
        )
    assert all(not a.vips and not a.calls for a in agents)
    assert [e.event for e in read_journal(tmp_path)][-3:] == ["start", "fail", "run-end"]


# ---------------------------------------------------------------------------------- goldens

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE = os.environ.get("LBAUTO_UPDATE_GOLDENS") == "1"


def _golden(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"missing golden {path}: run with LBAUTO_UPDATE_GOLDENS=1"
    assert text == path.read_text()


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_bgp_goldens(platform: str) -> None:
    """Full config; a change (a VIP and an agent leave, others join, the ECMP width grows);
    and the teardown back to static LB routes. tests/golden/frr/*.txt also pass vtysh -C
    (tests/unit/test_render.py)."""
    r = Router("r1", "192.0.2.254", platform, lb_route=LbRoute.BGP, bgp=SETTINGS)
    accepts = [BgpAccept(net(p)) for p in ("192.0.2.10/32", "192.0.2.12/32", "2001:db8:10::10/128")]
    bypass_route = bypass("192.0.2.11/32", "198.51.100.21")
    full: frozenset[RouterObject] = frozenset({*accepts, bypass_route, GROUP, *peers()})
    _golden(GOLDEN / platform / "bgp-full.txt", render_config(r, full))
    wider = BgpGroup(64500, 64512, 16, True, 100, 3)
    remove = (accepts[1], BgpPeer(ip("198.51.100.11")), GROUP)
    add = (BgpAccept(net("192.0.2.13/32")), wider, BgpPeer(ip("198.51.100.12")))
    lines = render_changes(r, remove, add, observed=full)
    _golden(GOLDEN / platform / "bgp-change.txt", "\n".join(lines) + "\n")
    teardown = render_changes(r, tuple(full - {bypass_route}), (), observed=full)
    _golden(GOLDEN / platform / "bgp-teardown-change.txt", "\n".join(teardown) + "\n")


# ---------------------------------------------------------------- transitions over the pool


class Log:
    """One ordered record of every agent and router call."""

    def __init__(self) -> None:
        self.calls: list[str] = []


class LoggedAgent(FakeAgent):
    log: Log | None = None

    def _check(self, what: str) -> None:
        if self.log is not None:
            self.log.calls.append(f"{self.name}.{what}")
        super()._check(what)


class LoggedRouters(FakeRouters):
    log: Log | None = None

    def push(self, changes, before_confirm=None):  # type: ignore[no-untyped-def]
        assert self.log is not None
        self.log.calls.append("router.push")
        super().push(changes, before_confirm)


def pool(n: int = 3) -> tuple[list[LoggedAgent], LoggedRouters, Log]:
    log = Log()
    agents = [LoggedAgent(f"lb{k}") for k in range(n)]
    for a in agents:
        a.log = log
    routers = LoggedRouters()
    routers.log = log
    return agents, routers, log


def _bypass_enable_plan(agents: list[LoggedAgent]):  # type: ignore[no-untyped-def]
    inv = inventory(
        [vip("one", "192.0.2.11", "198.51.100.21")],
        routers=[Router("r1", "h", "frr")],
        agents=[agent(a.name, k) for k, a in enumerate(agents)],
    )
    have = agent_vip("192.0.2.11", Mode.MULTI, "198.51.100.21", "198.51.100.22")
    for a in agents:
        a.vips[have.address] = have
    obs = ObservedState(agents={a.name: {have.address: have} for a in agents})
    return make_plan(inv, obs), obs


def test_every_agent_step_runs_on_every_agent_before_the_router_step(tmp_path: Path) -> None:
    agents, routers, log = pool()
    plan, obs = _bypass_enable_plan(agents)
    for a in agents:
        a.flows_of[ip("192.0.2.11")] = {ip("198.51.100.22"): 0}
    Executor(agents, routers, Journal(tmp_path), obs).execute(plan)
    assert log.calls == [
        "lb0.put_vip", "lb1.put_vip", "lb2.put_vip",  # set_vip single, .22 drains
        "lb0.flows_per_dip", "lb1.flows_per_dip", "lb2.flows_per_dip",  # drain on all
        "router.push",  # bypass, verified
        "lb0.put_vip", "lb1.put_vip", "lb2.put_vip",  # tracking off
    ]  # fmt: skip
    assert all(not a.vips[ip("192.0.2.11")].flow_tracking for a in agents)


def test_a_failing_agent_undoes_the_step_on_every_agent_and_no_router_moves(
    tmp_path: Path,
) -> None:
    agents, routers, log = pool()
    plan, obs = _bypass_enable_plan(agents)
    agents[2].fail_on = {"put_vip"}
    with pytest.raises(TransitionError, match="agent lb2"):
        Executor(agents, routers, Journal(tmp_path), obs).execute(plan)
    assert "router.push" not in log.calls
    for a in agents[:2]:  # changed, then put back
        v = a.vips[ip("192.0.2.11")]
        assert (v.mode, len(v.dips), v.flow_tracking) == (Mode.MULTI, 2, True)
    # Control: the first two agents really were changed before the undo.
    assert log.calls[:3] == ["lb0.put_vip", "lb1.put_vip", "lb2.put_vip"]
    assert log.calls.count("lb0.put_vip") == 2 and log.calls.count("lb1.put_vip") == 2


def test_a_failed_router_push_undoes_every_agent(tmp_path: Path) -> None:
    agents, routers, _ = pool()
    plan, obs = _bypass_enable_plan(agents)
    routers.fail_push = {"r1"}
    with pytest.raises(TransitionError, match="router r1"):
        Executor(agents, routers, Journal(tmp_path), obs).execute(plan)
    for a in agents:
        v = a.vips[ip("192.0.2.11")]
        assert (v.mode, len(v.dips), v.drain) == (Mode.MULTI, 2, None)


def test_drain_waits_for_flows_on_every_agent(tmp_path: Path) -> None:
    agents, routers, log = pool()
    plan, obs = _bypass_enable_plan(agents)
    leaving = ip("198.51.100.22")
    agents[2].flows_of[ip("192.0.2.11")] = {leaving: 3}  # only the last agent still has flows
    polls = {"n": 0}
    now = {"t": 0.0}

    def sleep(s: float) -> None:
        now["t"] += s
        polls["n"] += 1
        if polls["n"] == 4:
            agents[2].flows_of[ip("192.0.2.11")] = {leaving: 0}

    ex = Executor(agents, routers, Journal(tmp_path), obs, clock=lambda: now["t"], sleep=sleep)
    ex.execute(plan)
    assert polls["n"] == 4  # waited until lb2 drained, not only lb0 and lb1
    assert log.calls.index("router.push") > max(
        i for i, c in enumerate(log.calls) if c.endswith("flows_per_dip")
    )


def test_an_agent_that_cannot_count_keeps_the_drain_waiting_until_its_timeout(
    tmp_path: Path,
) -> None:
    agents, routers, _ = pool(2)
    plan, obs = _bypass_enable_plan(agents)
    agents[1].fail_on = {"flows_per_dip"}
    now = {"t": 0.0}

    def sleep(s: float) -> None:
        now["t"] += s

    ex = Executor(agents, routers, Journal(tmp_path), obs, clock=lambda: now["t"], sleep=sleep)
    ex.execute(plan)
    assert now["t"] >= plan.options.drain_timeout
    ends = [
        e for e in read_journal(tmp_path) if e.action == "agent.wait_drain" and e.event == "end"
    ]
    assert ends and "could not say" in (ends[0].detail or "")


@pytest.mark.parametrize(
    ("before", "after"),
    [("none", "bgp"), ("static", "bgp"), ("bgp", "static"), ("bgp", "bgp-wider")],
)
def test_applying_the_plan_converges_between_modes(before: str, after: str) -> None:
    """The planner property (tests/unit/test_planner_properties.py) for lbauto_lb_route:
    the state after every step (and the pool) ran plans nothing."""
    routers = {
        "static": Router("r1", "h", "frr"),
        "bgp": R1,
        "bgp-wider": Router(
            "r1", "h", "frr", lb_route=LbRoute.BGP, bgp=BgpSettings(64500, 64512, maximum_paths=4)
        ),
    }
    vips = [
        vip("one", "192.0.2.11", "198.51.100.21"),
        vip("web", "192.0.2.12", "198.51.100.21", "198.51.100.22"),
        vip("v6", "2001:db8:10::5", "2001:db8:100::21"),
    ]
    observed = ObservedState()
    if before != "none":
        first = inventory(vips, routers=[routers[before]], agents=AGENTS)
        observed = apply_plan(first, observed, make_plan(first, observed))
        assert not make_plan(first, observed).has_changes
    target = inventory(vips, routers=[routers[after]], agents=AGENTS)
    plan = make_plan(target, observed)
    assert plan.has_changes
    done = apply_plan(target, observed, plan)
    assert not make_plan(target, done).has_changes


# ---------------------------------------------------------------------------------- status


def test_sessions_per_agent_from_napalm_neighbors_and_bfd() -> None:
    from lbauto.cli.present import session_rows
    from lbauto.orchestrate.sessions import RouterSessions, sessions_from, sessions_json

    neighbors = {
        "global": {
            "router_id": "198.51.100.1",
            "peers": {
                "198.51.100.10": {
                    "is_up": True,
                    "is_enabled": True,
                    "uptime": 42,
                    "address_family": {"ipv4": {"accepted_prefixes": 2}},
                },
                "2001:db8:100::10": {"is_up": False, "is_enabled": True, "address_family": {}},
            },
        }
    }
    bfd = {"198.51.100.10": "up", "2001:db8:100::10": "down"}
    found = sessions_from(AGENTS, neighbors, bfd)
    doc = sessions_json([RouterSessions("r1", found), RouterSessions("r2", error="timed out")])
    assert doc["r1"]["lb1"]["198.51.100.10"] == {
        "bgp": "up",
        "uptime": 42,
        "accepted": 2,
        "bfd": "up",
    }
    assert doc["r1"]["lb1"]["2001:db8:100::10"]["bgp"] == "down"
    assert doc["r1"]["lb2"]["198.51.100.11"] == {  # not configured on the router
        "bgp": "absent",
        "uptime": None,
        "accepted": None,
        "bfd": "absent",
    }
    assert doc["r2"] == {"error": "timed out"}
    rows = session_rows({"bgp": doc})
    assert [str(c) for c in rows[0][:5]] == ["r1", "lb1", "198.51.100.10", "up", "up"]
    assert "unreadable" in str(rows[-1][3])


def test_a_plan_limited_to_some_vips_never_removes_the_sessions() -> None:
    vips = [
        vip("web", "192.0.2.11", "198.51.100.21", "198.51.100.22"),
        vip("api", "192.0.2.12", "198.51.100.21", "198.51.100.22"),
    ]
    inv, obs = _deployed(vips)
    static = inventory(inv.vips, routers=[Router("r1", "203.0.113.1", "frr")], agents=AGENTS)
    limited = make_plan(static, obs, only=["web"])
    assert not limited.pool  # api still reaches the agents over BGP
    assert make_plan(static, obs).pool[0].remove  # control: the full plan removes them


def test_an_lb_route_added_under_an_active_bypass_verifies() -> None:
    """Found on the real router switching bgp -> static: the VIP's new static LB route (200)
    sits below its active bypass (1) and can never be active; it is the fallback."""
    from lbauto.push.verify import _check_static

    lb_route = StaticRoute(net("192.0.2.11/32"), ip("198.51.100.10"), 200, 4242)

    def entries(bypass_active: bool) -> list[dict[str, object]]:
        out: list[dict[str, object]] = [
            {"next_hop": "198.51.100.10", "preference": 200, "current_active": False}
        ]
        if bypass_active:
            out.append({"next_hop": "198.51.100.21", "preference": 1, "current_active": True})
        return out

    assert _check_static(lambda p: entries(True), [lb_route], []) == []
    # Control: with nothing better active, an inactive LB route is a problem.
    assert _check_static(lambda p: entries(False), [lb_route], []) == [
        "route 192.0.2.11/32 via 198.51.100.10 is there but not active"
    ]
