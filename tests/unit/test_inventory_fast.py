"""The fast paths of the inventory and state readers agree with the validating paths.

Each fast path either gives exactly what the checks item by item give, or declines (then the
models run and word the errors): bulk IPv4 parsing against :func:`parse_address`, the DIP checks
of ``vips.yaml`` after bulk parsing, the state file's fast reader against its models."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_core import PydanticCustomError

from lbauto.core.addresses import parse_address, parse_addresses
from lbauto.core.model import (
    AgentVip,
    IPAddress,
    Mode,
    ObservedRouter,
    ObservedState,
    OwnedObject,
    PbrBinding,
    PbrRule,
    StaticRoute,
)
from lbauto.errors import InventoryError, StateError
from lbauto.inventory import load_inventory
from lbauto.inventory.statefile import (
    _compact_by_models,
    _FastReader,
    state_from_json,
    state_to_compact_json,
)
from tests.properties import examples
from tests.unit.test_inventory import AGENTS

# ------------------------------------------------------------------------------ addresses

_octet = st.integers(0, 300).map(str) | st.sampled_from(["00", "01", "010", "1x", ""])
_suspect_first = st.sampled_from(["0", "127", "169", "224", "239", "255"])
_quad = st.tuples(_octet | _suspect_first, _octet, _octet, _octet).map(".".join)
_text = st.one_of(
    _quad,
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.sampled_from(["198.51.100.7", "169.254.0.1", "169.1.2.3", "255.255.255.255", "0.0.0.0"]),
    st.sampled_from(
        ["2001:db8::1", "::ffff:192.0.2.1", "192.0.2.1/32", "192.0.2.1\x00", " 1.2.3.4"]
    ),
    st.text(alphabet="0123456789.:/%x ", max_size=16),
)
_SUSPECT = {0, 127, 169, 255, *range(224, 240)}


@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(_text, max_size=6))
def test_parse_addresses_agrees_with_parse_address(texts: list[str]) -> None:
    expected = [parse_address(t) for t in texts]
    for _ in range(2):  # a second time from what the first remembered
        got = parse_addresses(texts)
        if got is not None:
            assert got == expected
            assert all(type(a) is ipaddress.IPv4Address for a in got)
        else:
            # it may decline only for a list it cannot answer in bulk
            assert not all(
                type(a) is ipaddress.IPv4Address and int(a) >> 24 not in _SUSPECT for a in expected
            )
    # and parse_address still says what ipaddress says, after the bulk path remembered texts
    for text, result in zip(texts, expected, strict=True):
        if isinstance(result, ipaddress.IPv4Address):
            assert parse_address(text) == ipaddress.IPv4Address(text)


def test_parse_addresses_declines_anything_but_text() -> None:
    assert parse_addresses(["192.0.2.1", 3]) is None
    assert parse_addresses(["192.0.2.1", ["192.0.2.2"]]) is None
    assert parse_addresses([b"192.0.2.1"]) is None
    assert parse_addresses([]) == []


# ------------------------------------------------------------------------------- vips.yaml


@pytest.mark.parametrize(
    ("dips", "problem"),
    [
        ("[198.51.100.1, 192.0.2.10]", "DIP 192.0.2.10 equals the VIP address"),
        ("[198.51.100.1, 198.51.100.1]", "DIP 198.51.100.1 is listed twice"),
        ("[198.51.100.1, 2001:db8::1]", "DIP 2001:db8::1 is IPv6 but the VIP is IPv4"),
        ("[198.51.100.1, 169.254.0.1]", "DIP '169.254.0.1' is a link-local address"),
        ("[198.51.100.1, 169.1.0.1]", None),
    ],
)
def test_bulk_dip_parsing_keeps_every_dip_check(
    tmp_path: Path, dips: str, problem: str | None
) -> None:
    (tmp_path / "agents.yaml").write_text(AGENTS)
    (tmp_path / "vips.yaml").write_text(
        f"vips:\n  - name: web\n    address: 192.0.2.10\n    dips: {dips}\n"
    )
    if problem is None:
        (vip,) = load_inventory(tmp_path).vips
        assert vip.dips == tuple(map(ipaddress.ip_address, dips.strip("[]").split(", ")))
        return
    with pytest.raises(InventoryError) as err:
        load_inventory(tmp_path)
    assert any(p.startswith(f"{tmp_path / 'vips.yaml'}:4: vips[0] 'web': {problem}")
               for p in err.value.problems), err.value.problems  # fmt: skip


# ------------------------------------------------------------------------------ state file

_v4: st.SearchStrategy[IPAddress] = st.integers(0xC0000200, 0xC00002FF).map(ipaddress.IPv4Address)
_v6: st.SearchStrategy[IPAddress] = st.integers(1, 2**16).map(
    lambda n: ipaddress.IPv6Address((0x20010DB8 << 96) + n)
)


@st.composite
def _object(draw: st.DrawFn) -> OwnedObject:
    family: st.SearchStrategy[IPAddress] = draw(st.sampled_from([_v4, _v6]))
    prefix = ipaddress.ip_network(draw(family))
    kind = draw(st.sampled_from(["static", "static", "pbr", "binding"]))
    if kind == "static":
        return StaticRoute(prefix, draw(family), draw(st.integers(1, 255)), draw(st.integers(1, 9)))
    if kind == "pbr":
        return PbrRule(draw(st.integers(1, 9)), prefix, draw(family))
    return PbrBinding(draw(st.sampled_from(["eth1", "ge-0/0/1"])), draw(st.sampled_from([4, 6])))


@st.composite
def _compact(draw: st.DrawFn) -> dict[str, Any]:
    base = draw(st.lists(_object(), min_size=1, max_size=8))
    routers = {}
    for name in draw(st.lists(st.sampled_from(["r1", "r2", "r3", "r4"]), unique=True)):
        # routers of one profile: the same objects, give or take a few (drift)
        mine = set(base[: draw(st.integers(0, len(base)))]) | set(draw(st.lists(_object())))
        routers[name] = ObservedRouter(name, frozenset(mine))
    vips: dict[IPAddress, AgentVip] = {}
    for address in draw(st.lists(_v4, max_size=3, unique=True)):
        dips = tuple(draw(st.lists(_v4, max_size=3)))
        mode = draw(st.sampled_from(Mode))
        vips[address] = AgentVip(address, mode, dips, draw(st.booleans()), name="v")
    agents = {name: dict(vips) for name in draw(st.lists(st.sampled_from(["lb1", "lb2"])))}
    return state_to_compact_json(ObservedState(agents=agents, routers=routers))


_BAD_VALUES: list[object] = [True, 1.5, "1", None, "x", [], {}, "192.0.2.0/24",
                             "2001:db8::1", "192.0.2.1", "2001:db8::/128"]  # fmt: skip
#: Numbers just outside (and at) each integer's range, for the keys that hold integers.
_BAD_NUMBERS: list[object] = [0, -1, 1, 255, 256, 2**32, 2**63, True, 1.0]


def _places(doc: object, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and index path to a scalar in ``doc``."""
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _places(v, (*path, k))]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _places(v, (*path, i))]
    return [path]


@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_compact(), data=st.data())
def test_fast_state_reader_gives_the_models_state_or_declines(
    doc: dict[str, Any], data: st.DataObject
) -> None:
    doc = copy.deepcopy(doc)
    places = [p for p in _places(doc) if p[0] not in ("format", "version")]
    mutate: bool = data.draw(st.booleans())
    if places and mutate:
        *parents, last = data.draw(st.sampled_from(places))
        node: Any = doc
        for step in parents:
            node = node[step]
        numeric = type(node[last]) is int and last not in ("objects", "vip_list")
        node[last] = data.draw(st.sampled_from(_BAD_NUMBERS if numeric else _BAD_VALUES))
    try:
        want = _compact_by_models(doc, "s.json")
    except StateError:
        want = None
    try:
        got = _FastReader().read_compact(doc)
    except (PydanticCustomError, KeyError, TypeError):
        got = None
    if want is None:
        assert got is None
    elif got is not None:
        assert got == want
    if want is not None:
        with_models = ObservedState(
            agents={n: {v.address: v for v in vips} for n, vips in want[0].items()},
            routers=want[1],
        )
        try:
            assert state_from_json(doc, "s.json") == with_models
        except StateError as err:  # a VIP listed twice: both readers leave that check to later
            assert "listed twice" in str(err)


def test_agents_of_one_vip_list_get_equal_but_separate_mappings() -> None:
    vip = AgentVip(ipaddress.IPv4Address("192.0.2.10"), Mode.EMPTY, (), False)
    state = ObservedState(agents={"lb1": {vip.address: vip}, "lb2": {vip.address: vip}})
    doc = state_to_compact_json(state)
    assert len(doc["vip_lists"]) == 1
    back = state_from_json(doc, "s.json")
    assert back == state
    assert back.agents["lb1"] is not back.agents["lb2"]


@pytest.mark.parametrize(
    ("key", "value"),
    [("distance", 0), ("distance", 256), ("tag", 0), ("tag", 2**32), ("distance", True),
     ("next_hop", "2001:db8::1"), ("prefix", "2001:db8::/128"), ("prefix", 7)],
)  # fmt: skip
def test_one_bad_route_among_good_ones_takes_the_models(key: str, value: object) -> None:
    good = [
        {"prefix": f"192.0.2.{i}/32", "next_hop": "198.51.100.1", "distance": 200, "tag": 7}
        for i in range(1, 4)
    ]
    doc = {"format": "lbauto-state", "version": 2, "object_lists": [{"routes": good}],
           "routers": {"r1": {"objects": 0}}}  # fmt: skip
    assert _FastReader().read_compact(doc)[1]["r1"].objects
    doc["object_lists"][0]["routes"][1][key] = value  # type: ignore[index]
    with pytest.raises((PydanticCustomError, KeyError, TypeError)):
        _FastReader().read_compact(doc)
    with pytest.raises(StateError):
        state_from_json(doc, "s.json")


@pytest.mark.parametrize(
    "text",
    ["::", "::1", "::2", "fe80::1", "febf:ffff::1", "fec0::1", "fe7f::1", "ff00::1", "ff02::1",
     "feff::1", "2001:db8::1", "::ffff:192.0.2.1", "::ffff:127.0.0.1", "::192.0.2.1"],
)  # fmt: skip
def test_ipv6_policy_matches_ipaddress_properties(text: str) -> None:
    address = ipaddress.IPv6Address(text)
    result = parse_address(text)
    refused = (
        address.is_unspecified or address.is_loopback or address.is_multicast
        or address.is_link_local or address.ipv4_mapped is not None
    )  # fmt: skip
    assert isinstance(result, str) == refused, result
    if not refused:
        assert result == address
