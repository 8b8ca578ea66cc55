"""The lbauto-owned objects each router should carry (its intent). Pure: no I/O.

Per VIP and router:

- one LB route per agent that has a next hop of the VIP's family (ECMP across agents), at the
  router's LB distance; every VIP gets them, whatever its mode, so removing a bypass always falls
  back to the LB; on a router whose LB route is ``bgp`` the VIP's LB route is instead one entry
  of the import policy (:class:`BgpAccept`): the agents announce the VIP, the router accepts it
  (eBGP distance 20, still worse than the bypass at 1);
- for a VIP in mode ``single``, a bypass toward its DIP by the VIP's method (override) or the
  router's: a static route at the bypass distance, or a PBR rule;
- for every IP version that has PBR rules, the LBAUTO policy bound to every ingress interface.

PBR rule sequence numbers are stable: a VIP whose rule (same prefix) is already on the router keeps
that seq, even when its next hop changes; new rules take the lowest seqs that no observed rule
uses (in VIP address order), so adding a VIP never renumbers others and a seq that is still on the
router (about to be removed) is never reused in the same plan.

Observed objects whose prefix is not a host prefix (/32, /128) are never lbauto's: a VIP is a
host address, so such a route only carries lbauto's tag by accident. They are ignored
(:func:`owned_host_objects`), i.e. never removed.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from lbauto.core.model import (
    Agent,
    BgpAccept,
    BgpGroup,
    BgpPeer,
    Inventory,
    IPAddress,
    IPNetwork,
    LbRoute,
    Method,
    Mode,
    OwnedObject,
    PbrBinding,
    PbrRule,
    Router,
    RouterObject,
    StaticRoute,
    Vip,
    addr_key,
    host_prefix,
    net_key,
)
from lbauto.errors import InventoryError
from lbauto.platforms import PLATFORMS

FIRST_PBR_SEQ = 1
_Obj = TypeVar("_Obj", bound=RouterObject)


def object_sort_key(obj: RouterObject) -> tuple[Any, ...]:
    """A total order over owned objects of mixed types: by VIP prefix (IPv4 first, numeric),
    within a prefix routes before rules; bindings last. Concatenating per-VIP sorted tuples in
    VIP order therefore gives a sorted whole, which the planner relies on for speed."""
    # The common types first, keyed through model.net_key/addr_key (ipaddress's slots): this
    # runs for every object the planner indexes or intends, a quarter of a million at 10k x 100.
    kind = type(obj)
    if kind is StaticRoute:
        assert isinstance(obj, StaticRoute)
        return (*net_key(obj.prefix), 0, *addr_key(obj.next_hop), obj.distance, obj.tag)
    if kind is PbrRule:
        assert isinstance(obj, PbrRule)
        return (*net_key(obj.prefix), 1, obj.seq, *addr_key(obj.next_hop), 0)
    return public_sort_key(obj)


def public_sort_key(obj: RouterObject) -> tuple[Any, ...]:
    """:func:`object_sort_key` through ipaddress's public attributes only."""
    if isinstance(obj, PbrBinding):
        return (99, obj.interface, obj.version)
    if isinstance(obj, BgpPeer | BgpGroup):
        return (98, obj.kind, str(obj))  # router-wide: never indexed by prefix
    p = obj.prefix
    head = (p.version, int(p.network_address), p.prefixlen)
    if isinstance(obj, StaticRoute):
        return (*head, 0, obj.next_hop.version, int(obj.next_hop), obj.distance, obj.tag)
    if isinstance(obj, BgpAccept):
        return (*head, -1, 0, 0, 0, 0)  # the LB route comes first, as static LB routes do
    return (*head, 1, obj.seq, obj.next_hop.version, int(obj.next_hop), 0)


def sorted_objects(objs: Iterable[_Obj]) -> tuple[_Obj, ...]:
    return tuple(sorted(objs, key=object_sort_key))


def is_host_prefix(prefix: IPNetwork) -> bool:
    return prefix.prefixlen == prefix.max_prefixlen


def owned_host_objects(objects: Iterable[OwnedObject]) -> Iterable[OwnedObject]:
    """The observed objects lbauto manages: bindings, and routes/rules for host prefixes."""
    for o in objects:
        if isinstance(o, PbrBinding) or is_host_prefix(o.prefix):
            yield o


def bypass_method(vip: Vip, router: Router) -> Method:
    return vip.method or router.method


def agent_next_hops(agents: Iterable[Agent]) -> frozenset[IPAddress]:
    hops: set[IPAddress] = set()
    for a in agents:
        if a.address is not None:
            hops.add(a.address)
        if a.address6 is not None:
            hops.add(a.address6)
    return frozenset(hops)


def is_bypass(obj: OwnedObject, router: Router, agent_hops: Collection[IPAddress]) -> bool:
    """Whether an observed object sends a VIP straight to a DIP.

    A PBR rule always does. A static route does when its next hop is no agent's and its distance
    is not the LB distance: a route at the LB distance toward a non-agent is an LB route to an
    agent that left the inventory, and taking it for a bypass would pin flows to that address.
    """
    if isinstance(obj, PbrRule):
        return True
    if isinstance(obj, StaticRoute):
        # The distance first: an int compare, where the hop lookup hashes an ip_address in
        # Python (LB routes, most observed routes, stop there).
        return obj.distance != router.lb_distance and obj.next_hop not in agent_hops
    return False


def max_pbr_seq(router: Router) -> int:
    """The highest PBR sequence number the router's platform accepts (FRR: 700)."""
    return PLATFORMS[router.platform].max_pbr_seq


@dataclass(frozen=True)
class RouterIntent:
    """One router's intended objects per VIP: ``per_vip[i]`` (sorted) for ``prefixes[i]``.

    Lists aligned with the VIPs rather than a mapping by prefix: an ip_network hashes in
    Python, and a 10,000-VIP intent was built and read through 70,000 such hashes."""

    prefixes: Sequence[IPNetwork]
    per_vip: Sequence[tuple[OwnedObject, ...]]
    bindings: frozenset[PbrBinding]

    @property
    def by_prefix(self) -> dict[IPNetwork, tuple[OwnedObject, ...]]:
        return dict(zip(self.prefixes, self.per_vip, strict=True))

    def objects(self) -> frozenset[OwnedObject]:
        out: set[OwnedObject] = set(self.bindings)
        for objs in self.per_vip:
            out.update(objs)
        return frozenset(out)


def _lb_routes(
    vips: Sequence[Vip], prefixes: Sequence[IPNetwork], agents: Sequence[Agent], router: Router
) -> list[tuple[StaticRoute | BgpAccept, ...]]:
    """Per VIP (same order), its LB routes."""
    hops4 = sorted(a.address for a in agents if a.address is not None)
    hops6 = sorted(a.address6 for a in agents if a.address6 is not None)
    if router.lb_route is LbRoute.BGP:
        return [(BgpAccept(prefix),) for prefix in prefixes]
    dist, tag = router.lb_distance, router.tag
    return [
        tuple(StaticRoute(prefix, h, dist, tag) for h in (hops4 if prefix.version == 4 else hops6))
        for prefix in prefixes
    ]


def _kept_seqs(
    pbr_vips: Sequence[tuple[Vip, IPNetwork]], observed_rules: Iterable[PbrRule]
) -> list[int | None]:
    """Per desired PBR VIP (same order), the seq it keeps from its observed rule, if any (one
    VIP per seq)."""
    by_prefix: dict[tuple[int, int, int], list[PbrRule]] = {}
    for rule in observed_rules:
        by_prefix.setdefault(net_key(rule.prefix), []).append(rule)
    kept: list[int | None] = []
    claimed: set[int] = set()
    for vip, prefix in pbr_vips:
        rules = by_prefix.get(net_key(prefix))
        seq = None
        if rules:
            if len(rules) > 1:
                # Prefer the rule that already points at the DIP: keeping it costs no change.
                dip = addr_key(vip.dips[0])
                rules.sort(key=lambda r: (addr_key(r.next_hop) != dip, r.seq))
            for rule in rules:
                if rule.seq not in claimed:
                    seq = rule.seq
                    claimed.add(seq)
                    break
        kept.append(seq)
    return kept


def _allocate_seqs(
    router: Router,
    pbr_vips: Sequence[tuple[Vip, IPNetwork]],
    observed_rules: Collection[PbrRule],
) -> list[int]:
    """Per desired PBR VIP (same order), its rule's seq."""
    kept = _kept_seqs(pbr_vips, observed_rules)
    used = {r.seq for r in observed_rules}
    limit = max_pbr_seq(router)
    seq = FIRST_PBR_SEQ
    out: list[int] = []
    for (vip, _), own in zip(pbr_vips, kept, strict=True):  # already in address order
        if own is not None:
            out.append(own)
            continue
        while seq in used:
            seq += 1
        if seq > limit:
            raise InventoryError(
                [
                    f"router {router.name}: VIP {vip.name} ({vip.address}) needs PBR rule number"
                    f" {seq}, but {router.platform} allows at most {limit} (use method"
                    " static for some VIPs on this router, or spread them over routers)"
                ]
            )
        out.append(seq)
        used.add(seq)
    return out


@dataclass(frozen=True)
class IntentBase:
    """A router's intent before PBR sequence numbers: per VIP (aligned with ``vips``) its LB
    routes and static bypass, and the positions of the VIPs that take a PBR rule (in address
    order). Routers that differ only in their observed PBR rules share it; only the seqs differ
    (see :func:`with_rules`)."""

    vips: Sequence[Vip]
    prefixes: Sequence[IPNetwork]
    per_vip: Sequence[tuple[OwnedObject, ...]]
    pbr: Sequence[int]

    @property
    def pbr_vips(self) -> list[tuple[Vip, IPNetwork]]:
        return [(self.vips[i], self.prefixes[i]) for i in self.pbr]


def intent_base(
    vips: Sequence[Vip],
    agents: Sequence[Agent],
    router: Router,
    prefixes: Sequence[IPNetwork] | None = None,
) -> IntentBase:
    """The part of ``router``'s intent that observed PBR rules do not change."""
    if prefixes is None:
        prefixes = [host_prefix(v.address) for v in vips]
    per_vip: list[tuple[OwnedObject, ...]] = list(_lb_routes(vips, prefixes, agents, router))
    pbr: list[int] = []
    for i, vip in enumerate(vips):
        if vip.mode is not Mode.SINGLE:
            continue
        if bypass_method(vip, router) is Method.STATIC:
            route = StaticRoute(prefixes[i], vip.dips[0], router.bypass_distance, router.tag)
            per_vip[i] = sorted_objects((*per_vip[i], route))
        else:
            pbr.append(i)
    pbr.sort(key=lambda i: addr_key(vips[i].address))
    return IntentBase(vips, prefixes, per_vip, pbr)


def pbr_seqs(router: Router, base: IntentBase, observed: Collection[OwnedObject]) -> list[int]:
    """Each PBR VIP's rule seq on ``router`` (in ``base.pbr`` order) given what it holds
    (kept where observed)."""
    if not base.pbr:
        return []
    observed_rules = [o for o in observed if isinstance(o, PbrRule)]
    return _allocate_seqs(router, base.pbr_vips, observed_rules)


def pbr_rule(base: IntentBase, i: int, seq: int) -> tuple[OwnedObject, ...]:
    """VIP ``i``'s objects with its PBR rule at ``seq``."""
    # Routes sort before rules (object_sort_key), so appending keeps the tuple sorted.
    return (*base.per_vip[i], PbrRule(seq, base.prefixes[i], base.vips[i].dips[0]))


def with_rules(base: IntentBase, router: Router, seqs: Sequence[int]) -> RouterIntent:
    """The whole intent: ``base`` plus one PBR rule per PBR VIP at its seq (``seqs[j]`` for
    the VIP at ``base.pbr[j]``)."""
    if not base.pbr:
        return RouterIntent(base.prefixes, base.per_vip, frozenset())
    per_vip = list(base.per_vip)
    for i, seq in zip(base.pbr, seqs, strict=True):
        per_vip[i] = pbr_rule(base, i, seq)
    versions = {base.prefixes[i].version for i in base.pbr}
    return RouterIntent(base.prefixes, per_vip, bindings_for(router, versions))


def router_intent(
    vips: Sequence[Vip],
    agents: Sequence[Agent],
    router: Router,
    observed: Collection[OwnedObject],
    prefixes: Sequence[IPNetwork] | None = None,
) -> RouterIntent:
    """The intent for ``vips`` on ``router``; ``prefixes[i]`` may pass ``host_prefix(vips[i])``."""
    base = intent_base(vips, agents, router, prefixes)
    return with_rules(base, router, pbr_seqs(router, base, observed))


def bindings_for(router: Router, versions: Iterable[int]) -> frozenset[PbrBinding]:
    """The LBAUTO policy on every ingress interface, for every version that has rules."""
    return frozenset(PbrBinding(i, v) for v in versions for i in router.ingress)


def desired_objects(
    inv: Inventory, router: Router, observed: frozenset[OwnedObject]
) -> frozenset[OwnedObject]:
    """Every lbauto-owned object ``router`` should have (``observed`` keeps PBR seqs stable).

    Calling it for every router of one inventory costs about one computation per group of
    equal routers: results for the most recent inventory object are memoized (a 10,000-VIP
    intent takes ~0.4 s to build; 100 routers used to take 40 s).
    """
    rules = frozenset(o for o in observed if isinstance(o, PbrRule))
    cache = _memo_for(inv)
    key = intent_key(router, rules, cache.pbr_override)
    objs = cache.sets.get(key)
    if objs is None:
        objs = cache.sets[key] = router_intent(inv.vips, inv.agents, router, rules).objects()
    return objs


@dataclass
class _Memo:
    inv: weakref.ref[Inventory]
    pbr_override: bool
    sets: dict[object, frozenset[OwnedObject]]


_memo: _Memo | None = None


def _memo_for(inv: Inventory) -> _Memo:
    """The memo of ``inv``; a new inventory object replaces the previous memo."""
    global _memo  # noqa: PLW0603 - one small process-wide memo is the point
    memo = _memo
    if memo is None or memo.inv() is not inv:
        pbr_override = any(v.method is Method.PBR for v in inv.vips)
        memo = _memo = _Memo(weakref.ref(inv), pbr_override, {})
    return memo


def intent_key(router: Router, observed_rules: frozenset[PbrRule], pbr_override: bool) -> object:
    """Routers with equal keys have equal intents. Platform, ingress and observed PBR rules
    matter only where some VIP uses PBR on the router (``pbr_override``: a VIP overrides to it)."""
    pbr = router.method is Method.PBR or pbr_override
    return (
        router.lb_route,
        router.method,
        router.tag,
        router.lb_distance,
        router.bypass_distance,
        (max_pbr_seq(router), router.ingress, observed_rules) if pbr else None,
    )
