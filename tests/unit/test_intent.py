"""lbauto.core.intent: what each router should carry."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbauto.core.intent import (
    desired_objects,
    is_bypass,
    object_sort_key,
    owned_host_objects,
    public_sort_key,
    sorted_objects,
)
from lbauto.core.model import (
    Agent,
    BypassPolicy,
    Inventory,
    Method,
    OwnedObject,
    PbrBinding,
    PbrRule,
    Router,
    StaticRoute,
    Vip,
)
from lbauto.errors import InventoryError
from tests import builders
from tests.builders import agent, bypass, ip, lb, net, rule, vip
from tests.properties import examples

LB1 = agent("lb1", 0)
LB2 = agent("lb2", 1, v6=False)
STATIC = Router("r-frr", "198.18.0.11", "frr")
PBR = Router("r-eos", "198.18.0.12", "eos", Method.PBR, ingress=("Ethernet1", "Ethernet2"))


def inventory(*vips: Vip, agents: tuple[Agent, ...] = (LB1,)) -> Inventory:
    return builders.inventory(vips, routers=(STATIC, PBR), agents=agents)


def test_multi_and_empty_vips_get_only_lb_routes_ecmp_across_agents() -> None:
    inv = inventory(
        vip("web", "192.0.2.10", "198.51.100.21", "198.51.100.22"),
        vip("idle", "192.0.2.12"),
        agents=(LB1, LB2),
    )
    want = {
        lb("192.0.2.10/32"),
        lb("192.0.2.10/32", "198.51.100.11"),
        lb("192.0.2.12/32"),
        lb("192.0.2.12/32", "198.51.100.11"),
    }
    assert desired_objects(inv, STATIC, frozenset()) == want
    assert desired_objects(inv, PBR, frozenset()) == want


def test_ipv6_vip_routes_only_to_agents_with_an_ipv6_next_hop() -> None:
    inv = inventory(vip("v6", "2001:db8:10::10", "2001:db8:100::21", "2001:db8:100::22"))
    inv = Inventory(inv.path, inv.routers, (LB1, LB2), inv.vips)
    assert desired_objects(inv, STATIC, frozenset()) == {
        StaticRoute(net("2001:db8:10::10/128"), ip("2001:db8:100::10"), 200, 4242)
    }


def test_single_vip_static_bypass_uses_router_distance_and_tag() -> None:
    router = Router("r", "h", "frr", tag=77, lb_distance=250, bypass_distance=5)
    inv = inventory(vip("api", "192.0.2.11", "198.51.100.24"))
    assert desired_objects(inv, router, frozenset()) == {
        StaticRoute(net("192.0.2.11/32"), ip("198.51.100.10"), 250, 77),
        StaticRoute(net("192.0.2.11/32"), ip("198.51.100.24"), 5, 77),
    }


def test_single_vip_pbr_rule_and_bindings_per_interface_and_version() -> None:
    inv = inventory(
        vip("api", "192.0.2.11", "198.51.100.24"),
        vip("v6", "2001:db8:10::10", "2001:db8:100::21"),
    )
    assert desired_objects(inv, PBR, frozenset()) == {
        lb("192.0.2.11/32"),
        rule(1, "192.0.2.11/32", "198.51.100.24"),
        StaticRoute(net("2001:db8:10::10/128"), ip("2001:db8:100::10"), 200, 4242),
        rule(2, "2001:db8:10::10/128", "2001:db8:100::21"),
        PbrBinding("Ethernet1", 4),
        PbrBinding("Ethernet2", 4),
        PbrBinding("Ethernet1", 6),
        PbrBinding("Ethernet2", 6),
    }


def test_only_versions_with_rules_get_bindings() -> None:
    inv = inventory(vip("api", "192.0.2.11", "198.51.100.24"))
    objs = desired_objects(inv, PBR, frozenset())
    assert {o for o in objs if isinstance(o, PbrBinding)} == {
        PbrBinding("Ethernet1", 4),
        PbrBinding("Ethernet2", 4),
    }


def test_vip_method_overrides_router_method_both_ways() -> None:
    inv = inventory(
        vip("a", "192.0.2.11", "198.51.100.24", method=Method.PBR),
        vip("b", "192.0.2.12", "198.51.100.25", method=Method.STATIC),
    )
    on_static = desired_objects(inv, STATIC, frozenset())
    on_pbr = desired_objects(inv, PBR, frozenset())
    assert rule(1, "192.0.2.11/32", "198.51.100.24") in on_static
    assert bypass("192.0.2.12/32", "198.51.100.25") in on_pbr
    assert bypass("192.0.2.11/32", "198.51.100.24") not in on_static
    assert all(not isinstance(o, PbrRule) or o.prefix != net("192.0.2.12/32") for o in on_pbr)


def test_bypass_never_keeps_a_single_dip_vip_on_the_lb() -> None:
    inv = inventory(vip("legacy", "192.0.2.13", "198.51.100.25", bypass=BypassPolicy.NEVER))
    assert desired_objects(inv, STATIC, frozenset()) == {lb("192.0.2.13/32")}
    assert desired_objects(inv, PBR, frozenset()) == {lb("192.0.2.13/32")}


def test_without_agents_single_vips_still_get_their_bypass() -> None:
    inv = inventory(vip("api", "192.0.2.11", "198.51.100.24"), vip("web", "192.0.2.10"), agents=())
    assert desired_objects(inv, STATIC, frozenset()) == {bypass("192.0.2.11/32", "198.51.100.24")}


def test_new_rules_take_lowest_free_seqs_in_address_order_ipv4_first() -> None:
    inv = inventory(
        vip("v6", "2001:db8:10::10", "2001:db8:100::21"),
        vip("c", "192.0.2.30", "198.51.100.23"),
        vip("a", "192.0.2.9", "198.51.100.21"),
        vip("b", "192.0.2.20", "198.51.100.22"),
    )
    observed = frozenset({rule(2, "192.0.2.20/32", "198.51.100.22")})
    rules = {o.prefix: o.seq for o in desired_objects(inv, PBR, observed) if isinstance(o, PbrRule)}
    assert rules == {
        net("192.0.2.9/32"): 1,  # lowest free, address order (9 < 30 numerically, not as text)
        net("192.0.2.20/32"): 2,  # kept
        net("192.0.2.30/32"): 3,
        net("2001:db8:10::10/128"): 4,  # IPv6 after IPv4
    }


def test_observed_rule_keeps_its_seq_when_its_next_hop_changes() -> None:
    inv = inventory(vip("a", "192.0.2.11", "198.51.100.99"))
    observed = frozenset({rule(7, "192.0.2.11/32", "198.51.100.24")})
    assert rule(7, "192.0.2.11/32", "198.51.100.99") in desired_objects(inv, PBR, observed)


def test_seq_of_a_rule_still_on_the_router_is_never_reused() -> None:
    # 192.0.2.50 is being removed; its seq 1 stays taken until it is gone from the router.
    inv = inventory(vip("a", "192.0.2.11", "198.51.100.24"))
    observed = frozenset({rule(1, "192.0.2.50/32", "198.51.100.30")})
    assert rule(2, "192.0.2.11/32", "198.51.100.24") in desired_objects(inv, PBR, observed)


def test_two_vips_claiming_one_seq_keep_it_only_once() -> None:
    inv = inventory(
        vip("a", "192.0.2.11", "198.51.100.24"), vip("b", "192.0.2.12", "198.51.100.25")
    )
    observed = frozenset(
        {rule(3, "192.0.2.11/32", "198.51.100.24"), rule(3, "192.0.2.12/32", "198.51.100.25")}
    )
    seqs = sorted(o.seq for o in desired_objects(inv, PBR, observed) if isinstance(o, PbrRule))
    assert seqs == [1, 3]


def test_too_many_pbr_vips_for_frr_is_a_clear_error() -> None:
    frr_pbr = Router("r-frr", "h", "frr", Method.PBR, ingress=("eth1",))
    base = int(ip("198.18.0.0"))
    vips = tuple(
        Vip(f"v{i}", ipaddress.IPv4Address(base + i), (ip("198.51.100.21"),)) for i in range(701)
    )
    with pytest.raises(InventoryError) as err:
        desired_objects(inventory(*vips), frr_pbr, frozenset())
    msg = str(err.value)
    assert "router r-frr" in msg and "v700" in msg and "at most 700" in msg
    assert len(desired_objects(inventory(*vips[:700]), frr_pbr, frozenset())) == 1401


def test_is_bypass_tells_lb_routes_from_bypasses() -> None:
    hops = {ip("198.51.100.10")}
    assert not is_bypass(lb("192.0.2.10/32"), STATIC, hops)
    assert is_bypass(bypass("192.0.2.10/32", "198.51.100.21"), STATIC, hops)
    # an LB route to an agent that left the inventory is not a bypass
    assert not is_bypass(lb("192.0.2.10/32", "198.51.100.99"), STATIC, hops)
    assert is_bypass(rule(1, "192.0.2.10/32", "198.51.100.21"), PBR, hops)
    assert not is_bypass(PbrBinding("Ethernet1"), PBR, hops)


def test_non_host_prefixes_are_never_lbautos() -> None:
    objs: list[OwnedObject] = [
        lb("192.0.2.0/24"),
        lb("192.0.2.10/32"),
        rule(1, "2001:db8::/64", "2001:db8:100::21"),
        PbrBinding("eth1"),
    ]
    assert list(owned_host_objects(objs)) == [lb("192.0.2.10/32"), PbrBinding("eth1")]


def test_sort_order_is_by_vip_then_routes_then_rules_with_bindings_last() -> None:
    objs: list[OwnedObject] = [
        PbrBinding("eth1", 6),
        rule(1, "2001:db8:10::1/128", "2001:db8:100::21"),
        rule(9, "192.0.2.9/32", "198.51.100.21"),
        lb("192.0.2.10/32"),
        PbrBinding("eth0", 4),
        bypass("192.0.2.9/32", "198.51.100.21"),
        lb("192.0.2.9/32"),
    ]
    assert sorted_objects(objs) == (
        lb("192.0.2.9/32"),  # next hop .10 before .21
        bypass("192.0.2.9/32", "198.51.100.21"),
        rule(9, "192.0.2.9/32", "198.51.100.21"),
        lb("192.0.2.10/32"),
        rule(1, "2001:db8:10::1/128", "2001:db8:100::21"),
        PbrBinding("eth0", 4),
        PbrBinding("eth1", 6),
    )
    assert object_sort_key(lb("192.0.2.9/32")) < object_sort_key(lb("192.0.2.10/32"))


def test_equal_routers_share_their_desired_objects() -> None:
    frr2 = Router("r-frr2", "198.18.0.13", "ios")  # same settings as r-frr
    eos2 = Router("r-eos2", "198.18.0.14", "eos", Method.PBR, ingress=PBR.ingress)
    inv = Inventory(
        Path("inv"),
        (STATIC, PBR, frr2, eos2),
        (LB1,),
        (vip("api", "192.0.2.11", "198.51.100.24"), vip("b", "192.0.2.12", "198.51.100.25")),
    )
    # eos2 already has b's rule at seq 9: it keeps it, so its intent differs from r-eos's
    observed = {"r-eos2": frozenset({rule(9, "192.0.2.12/32", "198.51.100.25")})}
    got = {r.name: desired_objects(inv, r, observed.get(r.name, frozenset())) for r in inv.routers}
    assert got["r-frr"] is got["r-frr2"]
    assert got["r-eos"] != got["r-eos2"]
    assert rule(9, "192.0.2.12/32", "198.51.100.25") in got["r-eos2"]


def test_memoized_intent_follows_the_inventory_object() -> None:
    one = inventory(vip("api", "192.0.2.11", "198.51.100.24"))
    two = Inventory(one.path, one.routers, one.agents, (vip("web", "192.0.2.10"),))
    assert desired_objects(one, STATIC, frozenset()) == {
        lb("192.0.2.11/32"),
        bypass("192.0.2.11/32", "198.51.100.24"),
    }
    assert desired_objects(two, STATIC, frozenset()) == {lb("192.0.2.10/32")}
    assert desired_objects(one, STATIC, frozenset()) == {
        lb("192.0.2.11/32"),
        bypass("192.0.2.11/32", "198.51.100.24"),
    }
    # observed rules still keep seqs on PBR routers between calls on one inventory
    kept = frozenset({rule(5, "192.0.2.11/32", "198.51.100.24")})
    assert rule(5, "192.0.2.11/32", "198.51.100.24") in desired_objects(one, PBR, kept)
    assert rule(1, "192.0.2.11/32", "198.51.100.24") in desired_objects(one, PBR, frozenset())


_v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
_v6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
_address = st.one_of(_v4, _v6)
_host = _address.map(lambda a: ipaddress.ip_network(f"{a}/{a.max_prefixlen}"))
_objects = st.one_of(
    st.builds(StaticRoute, _host, _address, st.integers(1, 255), st.integers(0, 2**32 - 1)),
    st.builds(PbrRule, st.integers(1, 700), _host, _address),
    st.builds(PbrBinding, st.sampled_from(["eth1", "Ethernet2"]), st.sampled_from([4, 6])),
)


@settings(max_examples=examples(200), deadline=None)
@given(_objects)
def test_the_fast_sort_key_is_the_public_one(obj: OwnedObject) -> None:
    """object_sort_key reads ipaddress's slots for speed: it must give the key the public
    attributes give, for every object, so sorting and diffing never depend on which ran."""
    assert object_sort_key(obj) == public_sort_key(obj)
    assert ipaddress_private_slots_are_read()


def ipaddress_private_slots_are_read() -> bool:
    from lbauto.core import model

    return model.FAST_KEYS  # on CPython 3.11-3.13 the fast path must be the one that runs


@settings(max_examples=examples(200), deadline=None)
@given(_objects)
def test_equal_objects_hash_equal(obj: OwnedObject) -> None:
    """StaticRoute and PbrRule hash their fields' C-level keys (model.py): equal objects built
    from separately parsed values must hash equal, or sets and diffs would miss them."""
    fields: dict[str, Any] = {k: _reparsed(v) for k, v in vars(obj).items()}
    twin = dataclasses.replace(obj, **fields)
    assert twin == obj and twin is not obj
    assert hash(twin) == hash(obj)
    assert len({obj, twin}) == 1


def _reparsed(value: object) -> object:
    """The same value as a new object (addresses parsed again from their text)."""
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return ipaddress.ip_network(str(value))
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ipaddress.ip_address(str(value))
    return value


def test_the_route_hashes_are_the_models_own() -> None:
    # dataclass(frozen=True) keeps an explicit __hash__; if it ever replaced it, the fast hash
    # (and its reason) would be silently gone.
    assert StaticRoute.__hash__.__qualname__ == "StaticRoute.__hash__"
    assert PbrRule.__hash__.__qualname__ == "PbrRule.__hash__"
