"""Typed values shared by every part of lbauto.

Everything here is immutable and already validated: addresses are ``ipaddress`` objects, names
passed the injection checks in :mod:`lbauto.inventory`. Nothing in this module does I/O.
"""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_TAG = 4242
#: Route tags and PBR sequence numbers are unsigned 32-bit on every platform.
MAX_TAG = 4_294_967_295
DEFAULT_LB_DISTANCE = 200
DEFAULT_BYPASS_DISTANCE = 1
#: FRR names its policy objects after this prefix; other platforms use it too.
POLICY_PREFIX = "LBAUTO"


class Mode(StrEnum):
    """How a VIP's traffic flows (DESIGN section 2)."""

    MULTI = "multi"  # through the LB, flow tracking on
    SINGLE = "single"  # router bypass to its one DIP, flow tracking off
    EMPTY = "empty"  # no DIPs: traffic reaches the LB, which rejects it


class Method(StrEnum):
    """How a router implements the bypass."""

    STATIC = "static"
    PBR = "pbr"


class LbRoute(StrEnum):
    """How a router sends VIP traffic to the agents (the LB route)."""

    STATIC = "static"  # one static route per agent at the LB distance
    BGP = "bgp"  # the agents announce their VIPs over eBGP; the router accepts only VIPs


class BypassPolicy(StrEnum):
    AUTO = "auto"  # a single-DIP VIP gets a router bypass
    NEVER = "never"  # keep a single-DIP VIP on the LB


#: A router platform's name, validated against :data:`lbauto.platforms.PLATFORMS`.
Platform: TypeAlias = str


def host_prefix(address: IPAddress) -> IPNetwork:
    """The /32 or /128 route prefix of a VIP."""
    return ipaddress.ip_network(address)


def public_addr_key(address: IPAddress) -> tuple[int, int]:
    """Sort key that orders IPv4 before IPv6 and numerically within a family."""
    return (address.version, int(address))


def public_net_key(network: IPNetwork) -> tuple[int, int, int]:
    """Sort key of a network: version, network address as an int, length."""
    return (network.version, int(network.network_address), network.prefixlen)


# The planner keys every address and network it compares (millions in a 10,000-VIP x
# 100-router plan). ipaddress keeps an address's value in ``_ip``, its family in ``_version``
# and a network's length in ``_prefixlen`` (every CPython 3); ``int()``, ``.version`` and
# ``.prefixlen`` are Python-level calls: reading the slots in C is 8x faster. Checked here at
# import (a Python that renamed them gets the public functions) and in the unit tests.
_fast_addr_key = operator.attrgetter("_version", "_ip")
_fast_net_key = operator.attrgetter("_version", "network_address._ip", "_prefixlen")


def _slots_readable() -> bool:
    probes = (ipaddress.ip_network("192.0.2.1/32"), ipaddress.ip_network("2001:db8::/64"))
    try:
        return all(
            _fast_net_key(n) == public_net_key(n)
            and _fast_addr_key(n.network_address) == public_addr_key(n.network_address)
            for n in probes
        )
    except AttributeError:
        return False


FAST_KEYS = _slots_readable()
#: :func:`public_addr_key`, read from ipaddress's slots where they are readable.
addr_key: Callable[[IPAddress], tuple[int, int]] = _fast_addr_key if FAST_KEYS else public_addr_key
#: :func:`public_net_key`, likewise.
net_key: Callable[[IPNetwork], tuple[int, int, int]] = (
    _fast_net_key if FAST_KEYS else public_net_key
)


# --------------------------------------------------------------------------- inventory (desired)


@dataclass(frozen=True)
class Vip:
    """A VIP as the inventory wants it."""

    name: str
    address: IPAddress
    dips: tuple[IPAddress, ...]
    bypass: BypassPolicy = BypassPolicy.AUTO
    method: Method | None = None  # overrides the router's method for this VIP

    @property
    def mode(self) -> Mode:
        """The desired mode: single only for one DIP with ``bypass: auto``."""
        if not self.dips:
            return Mode.EMPTY
        if len(self.dips) == 1 and self.bypass is BypassPolicy.AUTO:
            return Mode.SINGLE
        return Mode.MULTI


@dataclass(frozen=True)
class Agent:
    """An LB agent: its control API and its data-plane next hops."""

    name: str
    api: str
    address: ipaddress.IPv4Address | None  # IPv4 next hop for LB routes
    address6: ipaddress.IPv6Address | None = None  # IPv6 next hop for IPv6 VIPs
    token_env: str | None = None
    token_file: Path | None = None
    ca_file: Path | None = None

    def next_hop(self, version: int) -> IPAddress | None:
        return self.address if version == 4 else self.address6


@dataclass(frozen=True)
class BgpSettings:
    """The router side of LB routes learned over BGP (``lbauto_bgp`` in the inventory)."""

    asn: int
    agent_asn: int
    bfd: bool = True
    maximum_paths: int = 8
    bfd_interval_ms: int = 100
    bfd_multiplier: int = 3


@dataclass(frozen=True)
class Router:
    """A router whose lbauto-owned slice of config we render and push."""

    name: str
    hostname: str
    platform: Platform
    method: Method = Method.STATIC
    ingress: tuple[str, ...] = ()
    tag: int = DEFAULT_TAG
    lb_distance: int = DEFAULT_LB_DISTANCE
    bypass_distance: int = DEFAULT_BYPASS_DISTANCE
    lb_route: LbRoute = LbRoute.STATIC
    #: Set exactly when ``lb_route`` is bgp (the inventory layer checks it).
    bgp: BgpSettings | None = None
    port: int | None = None
    username: str | None = None
    #: Name of the environment variable that holds the password (never the password itself).
    password_env: str | None = None
    #: Driver-specific NAPALM optional_args (key_file, pathspace, transport, netns, ...).
    #: Left out of the hash (a dict is unhashable); equality still compares it.
    optional_args: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class EtcdBackend:
    """``lbauto.yaml``'s ``backend: {type: etcd, ...}``: the apply lock and the journal are
    shared through etcd (lbauto.orchestrate.backends), so runs on different machines queue."""

    endpoints: tuple[str, ...]
    prefix: str
    lease_ttl: int = 10
    timeout: float = 5.0
    username: str | None = None
    #: Name of the environment variable that holds the password (never the password itself).
    password_env: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class Inventory:
    """A whole validated inventory directory."""

    path: Path
    routers: tuple[Router, ...]
    agents: tuple[Agent, ...]
    vips: tuple[Vip, ...]
    #: Optional directory of per-platform template overrides (``<dir>/<platform>/*.j2``).
    template_dir: Path | None = None
    #: Where journal, lock and lab state live for this inventory.
    state_dir: Path | None = None
    #: Loaded with files or a template_dir outside the directory allowed (the operator's
    #: explicit ``--allow-outside-inventory``); reloads of the inventory keep the choice.
    allow_outside: bool = False
    #: Shared lock and journal; None: the state directory's files alone.
    backend: EtcdBackend | None = None
    #: Devices observed, pushed and verified at once (lbauto.yaml ``workers:``); None: the
    #: default (lbauto.push.observe.DEFAULT_WORKERS).
    workers: int | None = None

    def router(self, name: str) -> Router:
        for r in self.routers:
            if r.name == name:
                return r
        raise KeyError(name)

    def vip_by_address(self) -> dict[IPAddress, Vip]:
        return {v.address: v for v in self.vips}


# ------------------------------------------------------------------ router-owned config objects


@dataclass(frozen=True, order=True)
class StaticRoute:
    """An lbauto-owned static route (LB route or static bypass), found again by its tag."""

    prefix: IPNetwork
    next_hop: IPAddress
    distance: int
    tag: int

    def __hash__(self) -> int:
        # The generated hash would hash the ip_network and ip_address, both in Python (hex()
        # and all): state files and plans put 27,000 routes a router into sets. Their slot
        # values hash in C, and equal routes have equal keys (kept by dataclass: explicit).
        return hash((*net_key(self.prefix), *addr_key(self.next_hop), self.distance, self.tag))

    @property
    def kind(self) -> str:
        return "static"


@dataclass(frozen=True, order=True)
class PbrRule:
    """One entry of the router's LBAUTO policy: traffic to ``prefix`` goes to ``next_hop``.

    ``seq`` is stable for the life of the rule: the planner keeps an observed rule's seq and
    gives new rules the lowest free one, so adding a VIP never renumbers the others.
    """

    seq: int
    prefix: IPNetwork
    next_hop: IPAddress

    def __hash__(self) -> int:
        # As StaticRoute's: C-level keys instead of ipaddress's Python-level hashes.
        return hash((self.seq, *net_key(self.prefix), *addr_key(self.next_hop)))

    @property
    def kind(self) -> str:
        return "pbr"


@dataclass(frozen=True, order=True)
class PbrBinding:
    """The LBAUTO policy applied to an ingress interface (exists while any PbrRule exists)."""

    interface: str
    version: int = 4  # some platforms bind IPv4 and IPv6 policies separately

    @property
    def kind(self) -> str:
        return "binding"


@dataclass(frozen=True, order=True)
class BgpAccept:
    """The LB route of one VIP in bgp mode: the router's import policy accepts the VIP's host
    prefix from the agents (one prefix-list entry), so the agents' announcements install."""

    prefix: IPNetwork

    @property
    def kind(self) -> str:
        return "bgp"


@dataclass(frozen=True)
class BgpPeer:
    """One agent as a BGP neighbor of the router (member of the LBAUTO peer group)."""

    address: IPAddress

    @property
    def kind(self) -> str:
        return "bgp-peer"


@dataclass(frozen=True)
class BgpGroup:
    """The LBAUTO peer group and what it carries: remote AS, BFD profile, ECMP width, and the
    import (VIPs only) and export (nothing) policies. One object: a changed setting is
    rewritten in place, never by removing the group (that would drop every session)."""

    asn: int
    agent_asn: int
    maximum_paths: int
    bfd: bool
    bfd_interval_ms: int
    bfd_multiplier: int

    @property
    def kind(self) -> str:
        return "bgp-group"


OwnedObject: TypeAlias = StaticRoute | PbrRule | PbrBinding | BgpAccept
#: Router-wide BGP objects: no VIP owns them, the plan carries them per router (Plan.pool).
PoolObject: TypeAlias = BgpPeer | BgpGroup
#: Anything lbauto owns on a router (what a push adds and removes).
RouterObject: TypeAlias = OwnedObject | PoolObject


def split_pool(
    objects: Iterable[RouterObject],
) -> tuple[frozenset[OwnedObject], frozenset[PoolObject]]:
    """(per-VIP objects, router-wide BGP objects)."""
    owned: set[OwnedObject] = set()
    pool: set[PoolObject] = set()
    for o in objects:
        if isinstance(o, BgpPeer | BgpGroup):
            pool.add(o)
        else:
            owned.add(o)
    return frozenset(owned), frozenset(pool)


# ------------------------------------------------------------------------------ observed state


@dataclass(frozen=True)
class Transit:
    dip: IPAddress
    seconds: float


@dataclass(frozen=True)
class Drain:
    dips: tuple[IPAddress, ...]
    timeout: float


@dataclass(frozen=True)
class AgentVip:
    """What one agent has for one VIP."""

    address: IPAddress
    mode: Mode
    dips: tuple[IPAddress, ...]
    flow_tracking: bool
    generation: int | None = None
    name: str | None = None
    transit: Transit | None = None  # a running transit pin (seconds = remaining)
    drain: Drain | None = None  # a running drain (timeout = remaining)
    #: The agent recovered it after losing its state file: write it again even if it matches.
    needs_resend: bool = False


@dataclass(frozen=True)
class PendingCommit:
    """A commit on a router that still waits for its confirmation: unless it is confirmed,
    the router puts its previous config back by itself at ``deadline``. The objects observed
    on the router include what this commit changed."""

    commit_id: str | None = None  # the driver's id for it (FRR), None where it has none
    deadline: float | None = None  # epoch seconds, None where the platform does not say
    session: str | None = None  # the driver session that made it, where known


@dataclass(frozen=True)
class ObservedRouter:
    """The lbauto-owned objects found on one router (by tag and LBAUTO name), and the commit
    that awaits confirmation there, if any."""

    name: str
    objects: frozenset[OwnedObject] = frozenset()
    pending: PendingCommit | None = None
    #: The router-wide BGP objects (peer group, neighbors) found, kept apart from the per-VIP
    #: objects the planner indexes by prefix.
    pool: frozenset[PoolObject] = frozenset()


@dataclass(frozen=True)
class ObservedState:
    """What the agents and routers have now. Empty = nothing deployed yet."""

    agents: Mapping[str, Mapping[IPAddress, AgentVip]] = field(default_factory=dict)
    routers: Mapping[str, ObservedRouter] = field(default_factory=dict)

    def router_objects(self, name: str) -> frozenset[OwnedObject]:
        r = self.routers.get(name)
        return r.objects if r else frozenset()

    def pending_commits(self) -> dict[str, PendingCommit]:
        """Per router, the commit waiting for confirmation (drift until ``apply`` resolves it)."""
        return {n: r.pending for n, r in sorted(self.routers.items()) if r.pending is not None}
