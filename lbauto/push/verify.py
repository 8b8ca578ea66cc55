"""Verification: the routes or policies a push installed are really active on the router.

Static routes are checked with NAPALM's ``get_route_to`` (every platform has it). PBR state has
no NAPALM getter: on FRR it is read from ``show pbr map json``, ``show pbr nexthop-groups json``
and ``show pbr interface json``; other platforms' PBR is not verified (DESIGN section 5).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lbauto.model import POLICY_PREFIX, OwnedObject, PbrBinding, PbrRule, Platform, StaticRoute
from lbauto.plan import RouterChange


def identity(obj: OwnedObject) -> tuple[Any, ...]:
    """What makes two owned objects "the same thing" on a router (a change rewrites it)."""
    if isinstance(obj, StaticRoute):
        return ("static", obj.prefix, obj.next_hop)
    if isinstance(obj, PbrRule):
        return ("pbr", obj.seq)
    return ("binding", obj.interface, obj.version)


@dataclass(frozen=True)
class Expectation:
    """What must be on a router after a push (``present``) and what must be gone (``absent``)."""

    present: tuple[OwnedObject, ...] = ()
    absent: tuple[OwnedObject, ...] = ()

    @classmethod
    def of(cls, remove: Iterable[OwnedObject], add: Iterable[OwnedObject]) -> Expectation:
        added = tuple(add)
        kept = {identity(o) for o in added}
        return cls(added, tuple(o for o in remove if identity(o) not in kept))

    @classmethod
    def of_change(cls, change: RouterChange) -> Expectation:
        return cls.of(change.remove, change.add)

    @property
    def empty(self) -> bool:
        return not self.present and not self.absent


def _static_entries(driver: Any, prefix: str) -> list[dict[str, Any]]:
    routes = driver.get_route_to(destination=prefix)
    entries = routes.get(prefix, [])
    return [e for e in entries if str(e.get("protocol", "")).lower() == "static"]


def _check_static(driver: Any, present: list[StaticRoute], absent: list[StaticRoute]) -> list[str]:
    problems: list[str] = []
    prefixes = sorted({str(r.prefix) for r in present + absent})
    for prefix in prefixes:
        entries = _static_entries(driver, prefix)
        found = {(str(e.get("next_hop", "")), int(e.get("preference", -1))) for e in entries}
        active = {str(e.get("next_hop", "")) for e in entries if e.get("current_active")}
        want = [r for r in present if str(r.prefix) == prefix]
        best = min((r.distance for r in want), default=None)
        for r in want:
            if (str(r.next_hop), r.distance) not in found:
                problems.append(f"route {prefix} via {r.next_hop} distance {r.distance} missing")
            elif r.distance == best and str(r.next_hop) not in active:
                problems.append(f"route {prefix} via {r.next_hop} is there but not active")
        problems.extend(
            f"route {prefix} via {r.next_hop} still present"
            for r in absent
            if str(r.prefix) == prefix and any(nh == str(r.next_hop) for nh, _ in found)
        )
    return problems


def _frr_pbr(driver: Any) -> tuple[dict[int, dict[str, Any]], dict[str, set[str]], set[str]]:
    out = driver.cli(
        ["show pbr map json", "show pbr nexthop-groups json", "show pbr interface json"],
        encoding="json",
    )
    maps, groups, ifaces = (
        out["show pbr map json"],
        out["show pbr nexthop-groups json"],
        out["show pbr interface json"],
    )
    policies = {
        int(p["sequenceNumber"]): p
        for m in maps
        if m.get("name") == POLICY_PREFIX
        for p in m.get("policies", [])
    }
    hops = {str(g["name"]): {str(n.get("nexthop")) for n in g.get("nexthops", [])} for g in groups}
    bound = {
        str(i["name"]) for i in ifaces if i.get("policy") == POLICY_PREFIX and i.get("valid", True)
    }
    return policies, hops, bound


def _check_frr_pbr(
    driver: Any, present: Sequence[OwnedObject], absent: Sequence[OwnedObject]
) -> list[str]:
    policies, hops, bound = _frr_pbr(driver)
    problems: list[str] = []
    for obj in present:
        if isinstance(obj, PbrRule):
            p = policies.get(obj.seq)
            group = f"{POLICY_PREFIX}{obj.seq}"
            if p is None or p.get("matchDst") != str(obj.prefix):
                problems.append(f"pbr-map {POLICY_PREFIX} seq {obj.seq} for {obj.prefix} missing")
            elif not p.get("installed"):
                problems.append(
                    f"pbr-map {POLICY_PREFIX} seq {obj.seq} not installed: "
                    f"{p.get('installedReason', '?')}"
                )
            elif str(obj.next_hop) not in hops.get(group, set()):
                problems.append(f"pbr-map {POLICY_PREFIX} seq {obj.seq} not set to {obj.next_hop}")
        elif isinstance(obj, PbrBinding) and obj.interface not in bound:
            problems.append(f"policy {POLICY_PREFIX} not applied on interface {obj.interface}")
    for obj in absent:
        if isinstance(obj, PbrRule) and obj.seq in policies:
            problems.append(f"pbr-map {POLICY_PREFIX} seq {obj.seq} still present")
        elif isinstance(obj, PbrBinding) and obj.interface in bound:
            problems.append(f"policy {POLICY_PREFIX} still applied on interface {obj.interface}")
    return problems


def check(driver: Any, platform: Platform, expect: Expectation) -> list[str]:
    """One look at the router: the problems found (empty = verified)."""
    routes_in = [o for o in expect.present if isinstance(o, StaticRoute)]
    routes_out = [o for o in expect.absent if isinstance(o, StaticRoute)]
    problems = _check_static(driver, routes_in, routes_out) if routes_in or routes_out else []
    pbr_in = [o for o in expect.present if not isinstance(o, StaticRoute)]
    pbr_out = [o for o in expect.absent if not isinstance(o, StaticRoute)]
    if (pbr_in or pbr_out) and platform is Platform.FRR:
        problems += _check_frr_pbr(driver, pbr_in, pbr_out)
    return problems


def verify(
    driver: Any,
    platform: Platform,
    expect: Expectation,
    timeout: float = 10.0,
    interval: float = 0.1,
) -> list[str]:
    """Poll until the expectation holds (routing daemons install asynchronously) or the
    timeout passes; return the problems still seen (empty = verified)."""
    if expect.empty:
        return []
    deadline = time.monotonic() + timeout
    while True:
        problems = check(driver, platform, expect)
        if not problems or time.monotonic() >= deadline:
            return problems
        time.sleep(interval)
