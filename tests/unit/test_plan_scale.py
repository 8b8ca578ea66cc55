"""Plans at fleet size (issue 16 items 0 and 1): the compact state file, the version 2 plan
document (shared router sets and change lists) and the summarised table of a big plan."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import json
from pathlib import Path

import pytest
from rich.console import Console

from lbauto.cli.present import plan_markdown, print_plan
from lbauto.core.model import (
    Agent,
    Inventory,
    ObservedRouter,
    ObservedState,
    Router,
    StaticRoute,
    Vip,
)
from lbauto.core.planner import make_plan
from lbauto.errors import StateError
from lbauto.inventory.statefile import (
    _packed4,
    load_state,
    state_from_json,
    state_to_compact_json,
    state_to_json,
)
from lbauto.orchestrate.plandoc import plan_document, router_lines, same_plan
from tests.unit.conftest import run_cli
from tests.unit.test_cli_exitcodes import EXAMPLE, STATE


def _fleet(vips: int, routers: int) -> Inventory:
    agent = Agent(
        name="lb1",
        api="http://127.0.0.1:9/",
        address=ipaddress.IPv4Address("198.51.100.10"),
    )
    return Inventory(
        path=Path("."),
        agents=(agent,),
        routers=tuple(
            Router(name=f"r{i}", hostname=f"203.0.113.{i + 1}", platform="frr")
            for i in range(routers)
        ),
        vips=tuple(
            Vip(
                name=f"v{i}",
                address=ipaddress.ip_address("198.18.0.0") + i + 1,
                dips=(ipaddress.ip_address("198.19.0.0") + i + 1,),
            )
            for i in range(vips)
        ),
    )


# ------------------------------------------------------------------------ compact state file


def test_compact_state_reads_back_equal_and_shares_equal_routers() -> None:
    state = load_state(STATE)
    doc = state_to_compact_json(state)
    assert doc["format"] == "lbauto-state" and doc["version"] == 2
    back = state_from_json(json.loads(json.dumps(doc)), "x")
    assert back == state
    # the first form still reads, and means the same
    assert state_from_json(state_to_json(state), "x") == back


def test_compact_state_writes_a_drifted_router_as_a_difference() -> None:
    inv = _fleet(40, 3)
    plan = make_plan(inv, ObservedState())
    objs = frozenset(o for o in plan.routers[0].add if isinstance(o, StaticRoute))
    lost = sorted(objs, key=repr)[0]
    routers = {
        "r0": ObservedRouter("r0", objs),
        "r1": ObservedRouter("r1", objs),
        "r2": ObservedRouter("r2", objs - {lost}),
    }
    state = ObservedState(routers=routers)
    doc = state_to_compact_json(state)
    assert len(doc["object_lists"]) == 1
    assert doc["routers"]["r1"] == {"objects": 0}
    assert doc["routers"]["r2"]["objects"] == 0 and len(doc["routers"]["r2"]["removed"]["routes"])
    assert state_from_json(doc, "x") == state
    # control: without the difference r2 would read as undrifted
    del doc["routers"]["r2"]["removed"]
    assert state_from_json(doc, "x") != state


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["routers"]["r1"].update(objects=7), "$.routers.r1.objects: no object list 7"),
        (lambda d: d["routers"]["r1"].update(base=0), "$.routers.r1.base: unknown key (allowed:"),
        (lambda d: d.update(version=3), "$.version: state file format version 3 is newer"),
        (lambda d: d["agents"]["lb1"].update(vip_list=5), "$.agents.lb1.vip_list: no VIP list 5"),
        (
            lambda d: d["object_lists"][0]["routes"][0].update(distance=0),
            "$.object_lists[0].routes[0].distance: expected an integer from 1 to 255",
        ),
    ],
)
def test_compact_state_errors_name_the_place(change: object, message: str) -> None:
    doc = state_to_compact_json(load_state(STATE))
    assert callable(change)
    change(doc)
    with pytest.raises(StateError) as err:
        state_from_json(doc, "s.json")
    assert f"s.json: {message}" in str(err.value)


def test_fast_ipv4_parsing_accepts_exactly_what_ipaddress_accepts() -> None:
    cases = ["192.0.2.1", "0.0.0.0", "255.255.255.255", "192.0.2.01", "192.0.2", "192.0.2.1 ",
             " 192.0.2.1", "256.0.2.1", "192.0.2.1\n", "192..2.1", "१92.0.2.1", "0x1.0.2.1",
             "192.0.2.1%eth0", "2001:db8::1", "", "192.0.2.1/32"]  # fmt: skip
    for text in cases:
        try:
            want: ipaddress.IPv4Address | None = ipaddress.IPv4Address(text)
        except ValueError:
            want = None
        packed = _packed4(text)
        assert (ipaddress.IPv4Address(packed) if packed else None) == want, text


# ------------------------------------------------------------------------ plan document v2


def test_plan_document_shares_one_change_list_and_router_set_per_profile() -> None:
    inv = _fleet(30, 4)
    observed = ObservedState()
    plan = make_plan(inv, observed)
    doc = plan_document(plan, inv, observed)
    assert doc["version"] == 2
    assert len(doc["change_lists"]) == 1 and doc["router_sets"] == [["r0", "r1", "r2", "r3"]]
    assert {r["change_list"] for r in doc["routers"]} == {0}
    lines = router_lines(doc, doc["routers"][2])
    assert doc["routers"][2]["lines"] == len(lines) and "198.18.0.1/32" in lines[0]
    push = next(s for s in doc["transitions"][0]["steps"] if s["action"] == "router.push")
    assert [g["set"] for g in push["routers"]] == [0] and push["routers"][0]["add"]
    assert same_plan(doc, json.loads(json.dumps(doc)))
    # a version 1 document (an older plan file) still reads
    old = {"routers": [{"name": "r0", "platform": "frr", "changes": ["x"]}]}
    assert router_lines(old, old["routers"][0]) == ["x"]


# ------------------------------------------------------------------------ the table summary


def _table(*args: object, **kwargs: object) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=120, color_system=None)
    print_plan(console, *args, **kwargs)  # type: ignore[arg-type]
    return buf.getvalue()


def test_a_big_plan_prints_a_summary_and_the_whole_on_request() -> None:
    inv = _fleet(52, 3)
    observed = ObservedState()
    plan = make_plan(inv, observed)
    text = _table(plan, inv, observed)
    assert "Transitions by kind" in text and "│ create          │   52 │" in text
    assert "first 20 of 52 to change" in text and "v51" not in text
    assert "r0, r1, r2" in text and "(and 2 more with the same change)" in text
    assert "--full prints every transition" in text
    full = _table(plan, inv, observed, full=True)
    assert "v51" in full and "Transitions by kind" not in full
    assert full.count("ip route 198.18.0.52/32") == 3 * 2  # LB route and bypass, per router
    named = _table(plan, inv, observed, routers=["r1"])
    assert "router r1 (frr):" in named and named.count("ip route 198.18.0.52/32") == 2
    # the same summary from a document (`lbauto show` of a saved plan)
    doc = plan_document(plan, inv, observed)
    shown = _table(doc)
    assert "Transitions by kind" in shown and "v51" not in shown
    # small plans print whole, as before
    small = make_plan(dataclasses.replace(inv, vips=inv.vips[:3]), observed)
    assert "Transitions by kind" not in _table(small, inv, observed)


def test_markdown_of_a_big_plan_bounds_each_router_block() -> None:
    inv = _fleet(300, 1)
    observed = ObservedState()
    doc = plan_document(make_plan(inv, observed), inv, observed)
    md = plan_markdown(doc)
    assert len(md) <= 65536 and "more line(s) not shown" in md


def test_plan_router_option_prints_that_routers_whole_change_and_refuses_unknown() -> None:
    res = run_cli("plan", "-i", str(EXAMPLE), "--state", str(STATE), "--router", "r1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("router r1 (frr):") == 2  # the plan, then the named router
    bad = run_cli("plan", "-i", str(EXAMPLE), "--state", str(STATE), "--router", "nope")
    assert bad.returncode == 1 and "unknown router 'nope'" in bad.stderr


def test_state_command_writes_a_compact_file_plan_reads(tmp_path: Path) -> None:
    out = tmp_path / "observed.json"
    res = run_cli("state", "-i", str(EXAMPLE), "--state", str(STATE), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["version"] == 2
    assert load_state(out) == load_state(STATE)
    a = run_cli("plan", "-i", str(EXAMPLE), "--state", str(out), "-o", "json")
    b = run_cli("plan", "-i", str(EXAMPLE), "--state", str(STATE), "-o", "json")
    assert a.stdout == b.stdout


def test_derived_indexes_keep_the_first_bypass_in_router_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Drifted routers whose bypasses disagree: the from-state is the first router's bypass, as
    with a full index per router (observed_by_prefix lists one member per class)."""
    from lbauto.core import _index
    from lbauto.core.model import Mode

    inv = _fleet(40, 6)
    plan0 = make_plan(inv, ObservedState())
    deployed = frozenset(o for o in plan0.routers[0].add if isinstance(o, StaticRoute))
    a, b = inv.vips[0], inv.vips[1]
    other = ipaddress.IPv4Address("198.19.1.1")

    def bypass(vip: Vip) -> StaticRoute:
        return next(
            o
            for o in deployed
            if isinstance(o, StaticRoute)
            and o.prefix.network_address == vip.address
            and o.next_hop == vip.dips[0]
        )

    def moved(vip: Vip) -> StaticRoute:
        old = bypass(vip)
        return StaticRoute(old.prefix, other, old.distance, old.tag)

    keep = {o for o in deployed if isinstance(o, StaticRoute)}
    half = frozenset(sorted(keep, key=repr)[: len(keep) // 2]) - {bypass(a), bypass(b)}
    own = half | {moved(a), moved(b)}
    routers = {
        "r0": ObservedRouter("r0", deployed - {bypass(a)}),  # the base index: no bypass for a
        "r1": ObservedRouter("r1", deployed),  # derived from r0, touched at a: the first bypass
        "r2": ObservedRouter("r2", own),  # an index of its own: a and b moved elsewhere
        **{f"r{i}": ObservedRouter(f"r{i}", deployed) for i in range(3, 6)},
    }
    observed = ObservedState(routers=routers)
    plan = make_plan(inv, observed)
    by_vip = {t.vip: t for t in plan.transitions}
    assert by_vip[a.name].from_.dips == a.dips  # r1's, not r2's moved one
    assert by_vip[b.name].from_.dips == b.dips and by_vip[b.name].from_.mode is Mode.SINGLE
    monkeypatch.setattr(_index.IndexCache, "SHARE", -1.0)  # control: a full index per router
    assert make_plan(inv, observed) == plan
