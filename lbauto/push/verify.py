"""Verification: the routes or policies a push installed are really active on the router.

Static routes are read in one table read per router and IP version where the platform spec has
a batched reader (FRR: ``show ip route static json``), else with NAPALM's ``get_route_to`` per
prefix (every platform has it); the same checks apply to what was read. PBR state has
no NAPALM getter: on FRR it is read from ``show pbr map json``, ``show pbr nexthop-groups json``
and ``show pbr interface json``; other platforms' PBR is not verified (DESIGN section 5).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lbauto.core.model import (
    BgpAccept,
    BgpGroup,
    BgpPeer,
    PbrBinding,
    PbrRule,
    Platform,
    RouterObject,
    StaticRoute,
)
from lbauto.core.plan import RouterChange
from lbauto.platforms import PLATFORMS
from lbauto.platforms.spec import StaticReader


def identity(obj: RouterObject) -> tuple[Any, ...]:
    """What makes two owned objects "the same thing" on a router (a change rewrites it)."""
    if isinstance(obj, StaticRoute):
        return ("static", obj.prefix, obj.next_hop)
    if isinstance(obj, PbrRule):
        return ("pbr", obj.seq)
    if isinstance(obj, BgpAccept):
        return ("bgp", obj.prefix)
    if isinstance(obj, BgpPeer):
        return ("bgp-peer", obj.address)
    if isinstance(obj, BgpGroup):
        return ("bgp-group",)  # rewritten in place when a setting changes
    return ("binding", obj.interface, obj.version)


@dataclass(frozen=True)
class Expectation:
    """What must be on a router after a push (``present``) and what must be gone (``absent``)."""

    present: tuple[RouterObject, ...] = ()
    absent: tuple[RouterObject, ...] = ()
    #: Every PBR binding the router keeps after the change, when the caller knows the router's
    #: objects (None: unknown). Needed where one binding serves both families (FRR, EOS).
    bindings_after: frozenset[PbrBinding] | None = None

    @classmethod
    def of(
        cls,
        remove: Iterable[RouterObject],
        add: Iterable[RouterObject],
        observed: Iterable[RouterObject] | None = None,
    ) -> Expectation:
        """``observed``: the router's lbauto objects before the change (as given to
        :func:`lbauto.platforms.render.render_changes`)."""
        added = tuple(add)
        removed = tuple(remove)
        kept = {identity(o) for o in added}
        after = None
        if observed is not None:
            left = set(observed).difference(removed).union(added)
            after = frozenset(o for o in left if isinstance(o, PbrBinding))
        return cls(added, tuple(o for o in removed if identity(o) not in kept), after)

    @classmethod
    def of_change(
        cls, change: RouterChange, observed: Iterable[RouterObject] | None = None
    ) -> Expectation:
        return cls.of(change.remove, change.add, observed)

    @property
    def empty(self) -> bool:
        return not self.present and not self.absent


def expected_absent(platform: Platform, expect: Expectation) -> tuple[RouterObject, ...]:
    """``expect.absent`` without the bindings the platform keeps.

    Where one binding serves both families, removing ``PbrBinding(X, 6)`` while
    ``PbrBinding(X, 4)`` stays renders nothing (:mod:`lbauto.platforms.render`): X must stay bound.
    An interface must be unbound only when no binding for it remains; without ``bindings_after``
    that is known only when the change removes both families' bindings of X.
    """
    if PLATFORMS[platform].binding_per_family:
        return expect.absent
    present = {o.interface for o in expect.present if isinstance(o, PbrBinding)}
    if expect.bindings_after is not None:
        still = present | {b.interface for b in expect.bindings_after}
        return tuple(
            o for o in expect.absent if not (isinstance(o, PbrBinding) and o.interface in still)
        )
    gone: dict[str, set[int]] = {}
    for o in expect.absent:
        if isinstance(o, PbrBinding):
            gone.setdefault(o.interface, set()).add(o.version)
    return tuple(
        o
        for o in expect.absent
        if not isinstance(o, PbrBinding)
        or (o.interface not in present and gone[o.interface] >= {4, 6})
    )


def _is_static(entry: dict[str, Any]) -> bool:
    return str(entry.get("protocol", "")).lower() == "static"


def _per_prefix(driver: Any) -> Callable[[str], list[dict[str, Any]]]:
    """The generic lookup: NAPALM's ``get_route_to`` once per prefix (every platform has it)."""

    def lookup(prefix: str) -> list[dict[str, Any]]:
        routes = driver.get_route_to(destination=prefix)
        return [e for e in routes.get(prefix, []) if _is_static(e)]

    return lookup


def _batched(
    driver: Any, reader: StaticReader, versions: Iterable[int]
) -> Callable[[str], list[dict[str, Any]]]:
    """One table read per IP version for the whole batch, then lookups in it."""
    table = reader(driver, sorted(set(versions)))

    def lookup(prefix: str) -> list[dict[str, Any]]:
        return [e for e in table.get(prefix, []) if _is_static(e)]

    return lookup


def _check_static(
    lookup: Callable[[str], list[dict[str, Any]]],
    present: list[StaticRoute],
    absent: list[StaticRoute],
) -> list[str]:
    problems: list[str] = []
    prefixes = sorted({str(r.prefix) for r in present + absent})
    for prefix in prefixes:
        entries = lookup(prefix)
        found = {(str(e.get("next_hop", "")), int(e.get("preference", -1))) for e in entries}
        active = {str(e.get("next_hop", "")) for e in entries if e.get("current_active")}
        want = [r for r in present if str(r.prefix) == prefix]
        best = min((r.distance for r in want), default=None)
        # A route pushed below one that stays (an LB route added while the VIP's bypass is
        # active) cannot be active, and need not be: it is the fallback.
        shadow = min(
            (int(e.get("preference", 256)) for e in entries if e.get("current_active")),
            default=256,
        )
        for r in want:
            if (str(r.next_hop), r.distance) not in found:
                problems.append(f"route {prefix} via {r.next_hop} distance {r.distance} missing")
            elif r.distance == best and str(r.next_hop) not in active and shadow >= r.distance:
                problems.append(f"route {prefix} via {r.next_hop} is there but not active")
        problems.extend(
            f"route {prefix} via {r.next_hop} still present"
            for r in absent
            if str(r.prefix) == prefix and any(nh == str(r.next_hop) for nh, _ in found)
        )
    return problems


BGP_OBJECTS = (BgpAccept, BgpPeer, BgpGroup)


def check(
    driver: Any, platform: Platform, expect: Expectation, *, batched: bool = True
) -> list[str]:
    """One look at the router: the problems found (empty = verified).

    Static routes are read in one table read per IP version where the platform has a batched
    reader (``PlatformSpec.static_routes``: FRR), else with ``get_route_to`` per prefix;
    ``batched=False`` forces the per-prefix path (benchmarks compare the two). The checks on
    what is read are the same either way."""
    routes_in = [o for o in expect.present if isinstance(o, StaticRoute)]
    routes_out = [o for o in expect.absent if isinstance(o, StaticRoute)]
    problems: list[str] = []
    if routes_in or routes_out:
        reader = PLATFORMS[platform].static_routes if batched else None
        lookup = (
            _per_prefix(driver)
            if reader is None
            else _batched(driver, reader, (r.prefix.version for r in routes_in + routes_out))
        )
        problems = _check_static(lookup, routes_in, routes_out)
    pbr_in = [o for o in expect.present if isinstance(o, PbrRule | PbrBinding)]
    pbr_out = [o for o in expected_absent(platform, expect) if isinstance(o, PbrRule | PbrBinding)]
    verify_pbr = PLATFORMS[platform].verify_pbr
    if (pbr_in or pbr_out) and verify_pbr is not None:
        problems += verify_pbr(driver, pbr_in, pbr_out)
    bgp_in: list[RouterObject] = [o for o in expect.present if isinstance(o, BGP_OBJECTS)]
    bgp_out: list[RouterObject] = [o for o in expect.absent if isinstance(o, BGP_OBJECTS)]
    if (bgp_in or bgp_out) and PLATFORMS[platform].parses_bgp:
        problems += _check_bgp(driver, platform, bgp_in, bgp_out)
    return problems


def _check_bgp(
    driver: Any, platform: Platform, present: list[RouterObject], absent: list[RouterObject]
) -> list[str]:
    """BGP LB route objects as the daemons' running config has them (the import policy, the
    peer group and its members are config; whether an agent's session is up is the agent's
    health, shown by ``lbauto status``, not a condition of a push)."""
    from lbauto.platforms import parse_router  # lazy: lbauto.platforms imports this module's kin

    fmt = PLATFORMS[platform].config_format
    text = str(driver.get_config(retrieve="running", format=fmt).get("running", ""))
    objects, pool = parse_router(platform, text, 0)
    have: set[RouterObject] = {*objects, *pool}
    problems = [f"{_bgp_text(o)} missing" for o in present if o not in have]
    problems += [f"{_bgp_text(o)} still present" for o in absent if o in have]
    return problems


def _bgp_text(obj: RouterObject) -> str:
    if isinstance(obj, BgpAccept):
        return f"import policy entry for {obj.prefix}"
    if isinstance(obj, BgpPeer):
        return f"BGP neighbor {obj.address}"
    return "BGP peer group LBAUTO (as lbauto renders it)"


def verify(
    driver: Any,
    platform: Platform,
    expect: Expectation,
    timeout: float = 10.0,
    interval: float = 0.1,
    first: float = 0.01,
) -> list[str]:
    """Poll until the expectation holds (routing daemons install asynchronously) or the
    timeout passes; return the problems still seen (empty = verified).

    The waits between looks start at ``first`` and double up to ``interval``: zebra usually
    installs a static route within milliseconds of the commit, so a fixed 0.1 s wait after a
    first look that came too early was most of a single-VIP verification."""
    if expect.empty:
        return []
    deadline = time.monotonic() + timeout
    wait = min(first, interval)
    while True:
        problems = check(driver, platform, expect)
        left = deadline - time.monotonic()
        if not problems or left <= 0:
            return problems
        time.sleep(min(wait, left))
        wait = min(wait * 2, interval)
