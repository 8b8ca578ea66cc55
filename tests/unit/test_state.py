"""Observed-state JSON: exact round trips, empty state, and errors that name file and path."""

from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbauto.core.model import (
    AgentVip,
    Drain,
    IPAddress,
    Mode,
    ObservedRouter,
    ObservedState,
    OwnedObject,
    PbrBinding,
    PbrRule,
    StaticRoute,
    Transit,
)
from lbauto.errors import StateError
from lbauto.inventory.statefile import load_state, state_from_json, state_to_json
from tests.properties import examples

V = ipaddress.ip_address
N = ipaddress.ip_network

DOC: dict[str, Any] = {
    "agents": {
        "lb1": {
            "vips": [
                {
                    "address": "192.0.2.10",
                    "mode": "multi",
                    "dips": ["198.51.100.21", "198.51.100.22"],
                    "flow_tracking": True,
                    "name": "web",
                    "generation": 3,
                    "transit": {"dip": "198.51.100.21", "seconds": 12.5},
                    "drain": {"dips": ["198.51.100.23"], "timeout": 10.0},
                },
                {
                    "address": "2001:db8:10::10",
                    "mode": "single",
                    "dips": ["2001:db8:100::21"],
                    "flow_tracking": False,
                },
            ]
        }
    },
    "routers": {
        "r1": {
            "routes": [
                {"prefix": "192.0.2.10/32", "next_hop": "198.51.100.10", "distance": 200,
                 "tag": 4242},
                {"prefix": "2001:db8:10::10/128", "next_hop": "2001:db8:100::21", "distance": 1,
                 "tag": 4242},
            ],
            "pbr": [{"seq": 1, "prefix": "192.0.2.11/32", "next_hop": "198.51.100.21"}],
            "bindings": [{"interface": "eth1", "version": 4}],
        }
    },
}  # fmt: skip


def test_documented_example_parses_to_typed_values() -> None:
    state = state_from_json(DOC, "state.json")
    web = state.agents["lb1"][V("192.0.2.10")]
    assert web == AgentVip(
        address=V("192.0.2.10"),
        mode=Mode.MULTI,
        dips=(V("198.51.100.21"), V("198.51.100.22")),
        flow_tracking=True,
        generation=3,
        name="web",
        transit=Transit(V("198.51.100.21"), 12.5),
        drain=Drain((V("198.51.100.23"),), 10.0),
    )
    assert state.agents["lb1"][V("2001:db8:10::10")].mode is Mode.SINGLE
    assert state.router_objects("r1") == {
        StaticRoute(N("192.0.2.10/32"), V("198.51.100.10"), 200, 4242),
        StaticRoute(N("2001:db8:10::10/128"), V("2001:db8:100::21"), 1, 4242),
        PbrRule(1, N("192.0.2.11/32"), V("198.51.100.21")),
        PbrBinding("eth1", 4),
    }


def test_canonical_json_round_trips_exactly() -> None:
    state = state_from_json(DOC, "state.json")
    assert state_to_json(state) == DOC
    assert state_from_json(json.loads(json.dumps(state_to_json(state))), "x") == state


def test_output_is_sorted_whatever_the_input_order() -> None:
    shuffled = copy.deepcopy(DOC)
    shuffled["agents"]["lb1"]["vips"].reverse()
    shuffled["routers"]["r1"]["routes"].reverse()
    assert state_to_json(state_from_json(shuffled, "x")) == DOC


def test_defaults_for_optional_parts() -> None:
    state = state_from_json({"agents": {"lb1": {}}, "routers": {"r1": {}}}, "x")
    assert state == ObservedState(agents={"lb1": {}}, routers={"r1": ObservedRouter("r1")})
    assert state_from_json({}, "x") == ObservedState()
    binding = {"routers": {"r1": {"bindings": [{"interface": "Ethernet1"}]}}}
    assert state_from_json(binding, "x").router_objects("r1") == {PbrBinding("Ethernet1", 4)}


def test_no_file_means_nothing_deployed(tmp_path: Path) -> None:
    assert load_state(None) == ObservedState()
    assert load_state(tmp_path / "absent.json") == ObservedState()


def test_load_state_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(DOC))
    assert state_to_json(load_state(path)) == DOC


def test_bad_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{\n  "agents": {,}\n}\n')
    with pytest.raises(StateError, match=rf"^{path}:2:14: not valid JSON: "):
        load_state(path)


def _with(path: list[str | int], value: object) -> dict[str, Any]:
    """DOC with the value at ``path`` replaced (or a key added)."""
    doc = copy.deepcopy(DOC)
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return doc


VIP0 = ["agents", "lb1", "vips", 0]
ROUTE0 = ["routers", "r1", "routes", 0]


@pytest.mark.parametrize(
    ("path", "value", "where", "what"),
    [
        ([*VIP0, "address"], "192.0.2.x", "$.agents.lb1.vips[0].address", "not an IP address"),
        ([*VIP0, "mode"], "bypass", "$.agents.lb1.vips[0].mode", "not a mode"),
        ([*VIP0, "dips", 1], 7, "$.agents.lb1.vips[0].dips[1]", "not an IP address"),
        ([*VIP0, "flow_tracking"], "yes", "$.agents.lb1.vips[0].flow_tracking", "true or false"),
        ([*VIP0, "generation"], True, "$.agents.lb1.vips[0].generation", "integer"),
        ([*VIP0, "transit", "seconds"], -1, "$.agents.lb1.vips[0].transit.seconds", ">= 0"),
        ([*VIP0, "drain"], {"dips": []}, "$.agents.lb1.vips[0].drain.timeout", "missing"),
        ([*VIP0, "name"], "web\nend", "$.agents.lb1.vips[0].name", "not a valid VIP name"),
        ([*VIP0, "colour"], "red", "$.agents.lb1.vips[0].colour", "unknown key"),
        ([*VIP0[:-1], 1, "address"], "192.0.2.10", "$.agents.lb1.vips[1].address",
         "listed twice"),
        ([*ROUTE0, "prefix"], "192.0.2.10/24", "$.routers.r1.routes[0].prefix", "not a prefix"),
        ([*ROUTE0, "distance"], 0, "$.routers.r1.routes[0].distance", "from 1 to 255"),
        ([*ROUTE0, "tag"], 2**32, "$.routers.r1.routes[0].tag", "from 1 to 4294967295"),
        ([*ROUTE0, "next_hop"], "2001:db8::1", "$.routers.r1.routes[0].next_hop",
         "not in the family"),
        (["routers", "r1", "pbr", 0, "seq"], "1", "$.routers.r1.pbr[0].seq", "integer"),
        (["routers", "r1", "bindings", 0, "interface"], "eth1; reload",
         "$.routers.r1.bindings[0].interface", "not a valid interface name"),
        (["routers", "r1", "bindings", 0, "version"], 5, "$.routers.r1.bindings[0].version",
         "expected 4 or 6"),
        (["routers", "r1", "routes"], {}, "$.routers.r1.routes", "expected a list"),
        (["routers", "r 1"], {}, "$.routers['r 1']", "name contains characters"),
        (["agents", "lb1"], [], "$.agents.lb1", "expected an object"),
        (["extra"], 1, "$.extra", "unknown key (allowed: agents, routers)"),
    ],
)  # fmt: skip
def test_bad_values_name_the_json_path(
    path: list[str | int], value: object, where: str, what: str
) -> None:
    with pytest.raises(StateError) as info:
        state_from_json(_with(path, value), "inventories/x/state.json")
    message = str(info.value)
    assert message.startswith(f"inventories/x/state.json: {where}: "), message
    assert what in message


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(StateError, match=r"^s.json: \$: expected an object, got a list$"):
        state_from_json([], "s.json")


# ------------------------------------------------------------------- property: round trip

_v4 = st.integers(0x0A000000, 0x0AFFFFFF).map(ipaddress.IPv4Address)
_v6 = st.integers(1, 2**64).map(lambda n: ipaddress.IPv6Address((0x20010DB8 << 96) + n))
_addr = st.one_of(_v4, _v6)
_seconds = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
_name = st.text(alphabet="abcxyz019_.-", min_size=1, max_size=10)


@st.composite
def _agent_vip(draw: st.DrawFn) -> AgentVip:
    address = draw(_addr)
    same = _v4 if address.version == 4 else _v6
    return AgentVip(
        address=address,
        mode=draw(st.sampled_from(Mode)),
        dips=tuple(draw(st.lists(same, max_size=4))),
        flow_tracking=draw(st.booleans()),
        generation=draw(st.none() | st.integers(0, 2**40)),
        name=draw(st.none() | _name),
        transit=draw(st.none() | st.builds(Transit, same, _seconds)),
        drain=draw(st.none() | st.builds(Drain, st.lists(same, max_size=3).map(tuple), _seconds)),
    )


@st.composite
def _owned(draw: st.DrawFn) -> OwnedObject:
    next_hop: IPAddress = draw(_addr)
    host: IPAddress = draw(_v4) if next_hop.version == 4 else draw(_v6)
    prefix = ipaddress.ip_network(host)
    kind = draw(st.sampled_from(["static", "pbr", "binding"]))
    if kind == "static":
        return StaticRoute(
            prefix, next_hop, draw(st.integers(1, 255)), draw(st.integers(1, 2**32 - 1))
        )
    if kind == "pbr":
        return PbrRule(draw(st.integers(1, 1000)), prefix, next_hop)
    return PbrBinding(
        draw(st.sampled_from(["eth1", "Ethernet1/1", "ge-0/0/1.0"])), draw(st.sampled_from([4, 6]))
    )


@st.composite
def _state(draw: st.DrawFn) -> ObservedState:
    agents = {
        name: {v.address: v for v in draw(st.lists(_agent_vip(), max_size=3))}
        for name in draw(st.lists(_name, max_size=2, unique=True))
    }
    routers = {
        name: ObservedRouter(name, frozenset(draw(st.lists(_owned(), max_size=4))))
        for name in draw(st.lists(_name, max_size=3, unique=True))
    }
    return ObservedState(agents=agents, routers=routers)


@settings(max_examples=examples(50), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=_state())
def test_any_state_round_trips_through_json_text(state: ObservedState) -> None:
    text = json.dumps(state_to_json(state))
    back = state_from_json(json.loads(text), "x")
    assert back == state
    assert state_to_json(back) == json.loads(text)
