"""Builders for lbauto's model values, shared by the unit tests, integration tests and benches.

Plain functions rather than fixtures: hypothesis strategies, parametrize tables and bench
scripts build values at import time, where fixtures cannot reach. The conftest files turn the
few shared *resources* (paths, the in-process CLI) into fixtures; values are built here.

Addresses are the documentation ranges DESIGN allows: VIPs in 192.0.2.0/24 and
2001:db8:10::/64, DIPs and agents in 198.51.100.0/24 and 2001:db8:100::/64, management
addresses in 198.18.0.0/15.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lbauto.core.model import (
    DEFAULT_TAG,
    Agent,
    AgentVip,
    Drain,
    Inventory,
    IPAddress,
    IPNetwork,
    Mode,
    ObservedRouter,
    ObservedState,
    OwnedObject,
    PbrRule,
    Platform,
    Router,
    StaticRoute,
    Vip,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "inventories" / "example"
#: A typical ingress interface name per shipped platform, in its own naming scheme.
_INGRESS: Mapping[Platform, str] = {
    "frr": "eth1",
    "eos": "Ethernet1",
    "ios": "GigabitEthernet1",
    "nxos": "Ethernet1/1",
    "junos": "ge-0/0/1",
}


def ingress(platform: Platform) -> str:
    """An ingress interface name for ``platform``; a platform added later gets a Linux-style
    name, so adding one needs no edit here (CONTRIBUTING.md: one folder, templates, goldens)."""
    return _INGRESS.get(platform, "eth1")


# ------------------------------------------------------------------------------- addresses


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def net(text: str) -> IPNetwork:
    return ipaddress.ip_network(text)


def ips(texts: Iterable[str]) -> tuple[IPAddress, ...]:
    return tuple(ip(t) for t in texts)


# --------------------------------------------------------------------------- inventory side


def agent(name: str, n: int = 0, *, v6: bool = True, **kw: Any) -> Agent:
    """Agent number ``n``: API on 198.18.0.(21+n), next hops 198.51.100.(10+n) and
    2001:db8:100::(10+n) (hex digits, as written)."""
    return Agent(
        name,
        f"http://198.18.0.{21 + n}:8080",
        ipaddress.IPv4Address(f"198.51.100.{10 + n}"),
        ipaddress.IPv6Address(f"2001:db8:100::{10 + n}") if v6 else None,
        **kw,
    )


def vip(name: str, address: str, *dips: str, **kw: Any) -> Vip:
    return Vip(name, ip(address), ips(dips), **kw)


def inventory(
    vips: Iterable[Vip],
    *,
    routers: Iterable[Router] = (),
    agents: Iterable[Agent] = (),
    path: Path = Path("inv"),
) -> Inventory:
    return Inventory(path, tuple(routers), tuple(agents), tuple(vips))


# ------------------------------------------------------------------- owned router objects


def lb(prefix: str, nh: str = "198.51.100.10", distance: int = 200) -> StaticRoute:
    """An LB route: VIP -> agent at the worse distance."""
    return StaticRoute(net(prefix), ip(nh), distance, DEFAULT_TAG)


def bypass(prefix: str, nh: str) -> StaticRoute:
    """A bypass route: VIP -> DIP at distance 1."""
    return StaticRoute(net(prefix), ip(nh), 1, DEFAULT_TAG)


def rule(seq: int, prefix: str, nh: str) -> PbrRule:
    return PbrRule(seq, net(prefix), ip(nh))


# ------------------------------------------------------------------------- observed state


def agent_vip(
    address: str,
    mode: Mode,
    *dips: str,
    tracking: bool | None = None,
    name: str | None = None,
    drain: Drain | None = None,
) -> AgentVip:
    """What an agent reports for a VIP (generation 1); tracking follows the mode unless given."""
    if tracking is None:
        tracking = mode is not Mode.SINGLE
    return AgentVip(ip(address), mode, ips(dips), tracking, 1, name, None, drain)


def state(
    agents: Mapping[str, list[AgentVip]] | None = None,
    routers: Mapping[str, list[OwnedObject]] | None = None,
) -> ObservedState:
    return ObservedState(
        agents={name: {v.address: v for v in vips} for name, vips in (agents or {}).items()},
        routers={
            name: ObservedRouter(name, frozenset(objs)) for name, objs in (routers or {}).items()
        },
    )
