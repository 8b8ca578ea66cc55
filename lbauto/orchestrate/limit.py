"""``--limit``: narrow a plan to some VIPs, like Ansible's ``--limit`` narrows a play to hosts.

A pattern is a VIP name, a VIP address or a router name, each with shell globs (``web-*``,
``192.0.2.1?``). A router name selects the VIPs whose transitions change that router; those
transitions still run on every router, because a transition is all-or-nothing (a bypass on one
router of two would split the VIP's traffic). Everything the limit leaves out is reported as
skipped, so a reviewer sees what the run did not do.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from lbauto.core.model import Inventory, ObservedState
from lbauto.core.plan import Action, Kind, Plan, PlanOptions, Transition
from lbauto.core.planner import make_plan
from lbauto.errors import InventoryError


@dataclass(frozen=True)
class Skipped:
    """A transition the limit left out: it would have run without ``--limit``."""

    vip: str
    address: str
    kind: str


@dataclass(frozen=True)
class LimitedPlan:
    plan: Plan
    #: VIP addresses the limit selected (None: no limit given).
    only: tuple[str, ...] | None
    skipped: tuple[Skipped, ...]


def _routers_touched(t: Transition) -> set[str]:
    return {
        rc.router
        for s in t.steps
        if s.action is Action.ROUTER_PUSH
        for rc in s.routers
        if not rc.empty
    }


def select(patterns: Sequence[str], full: Plan, inv: Inventory) -> tuple[str, ...]:
    """The VIP addresses (as text, sorted as in the plan) that ``patterns`` select in ``full``.

    Raises :class:`InventoryError` for a pattern that matches no VIP and no router, so a typo
    never silently narrows a run to nothing."""
    routers = sorted(r.name for r in inv.routers)
    known_vips = sorted({t.vip for t in full.transitions} | {v.name for v in inv.vips})
    chosen: set[str] = set()
    problems = []
    for pattern in patterns:
        hits = {
            str(t.address)
            for t in full.transitions
            if fnmatch.fnmatchcase(t.vip, pattern) or fnmatch.fnmatchcase(str(t.address), pattern)
        }
        router_hits = [r for r in routers if fnmatch.fnmatchcase(r, pattern)]
        hits |= {str(t.address) for t in full.transitions if _routers_touched(t) & set(router_hits)}
        if not hits and not router_hits:
            problems.append(
                f"--limit {pattern!r}: matches no VIP and no router (VIPs: "
                f"{', '.join(known_vips) or 'none'}; routers: {', '.join(routers) or 'none'})"
            )
        chosen |= hits
    if problems:
        raise InventoryError(problems)
    return tuple(str(t.address) for t in full.transitions if str(t.address) in chosen)


def limited_plan(
    inv: Inventory,
    observed: ObservedState,
    options: PlanOptions,
    patterns: Sequence[str] | None,
) -> LimitedPlan:
    """The plan narrowed to ``patterns`` (all of it when there are none), with what it skips."""
    full = make_plan(inv, observed, options)
    if not patterns:
        return LimitedPlan(full, None, ())
    only = select(patterns, full, inv)
    plan = make_plan(inv, observed, options, only)
    skipped = tuple(
        Skipped(t.vip, str(t.address), t.kind.value)
        for t in full.transitions
        if t.kind is not Kind.NONE and str(t.address) not in only
    )
    return LimitedPlan(plan, only, skipped)


def skipped_between(full: Plan, only: Sequence[str]) -> tuple[Skipped, ...]:
    """Transitions of ``full`` that a limit to ``only`` (addresses) leaves out."""
    return tuple(
        Skipped(t.vip, str(t.address), t.kind.value)
        for t in full.transitions
        if t.kind is not Kind.NONE and str(t.address) not in only
    )


@dataclass(frozen=True)
class PushLimit:
    """What ``push --limit`` selects: routers (None: all) and VIP addresses (None: all)."""

    routers: tuple[str, ...] | None
    vips: tuple[str, ...] | None


def push_limit(patterns: Sequence[str], inv: Inventory) -> PushLimit:
    """Router patterns pick routers; VIP patterns (names, addresses, globs over the inventory)
    pick which VIPs' router objects are reconciled. A pattern matching nothing is an error."""
    if not patterns:
        return PushLimit(None, None)
    routers: list[str] = []
    vips: list[str] = []
    problems = []
    for pattern in patterns:
        r_hits = [r.name for r in inv.routers if fnmatch.fnmatchcase(r.name, pattern)]
        v_hits = [
            str(v.address)
            for v in inv.vips
            if fnmatch.fnmatchcase(v.name, pattern) or fnmatch.fnmatchcase(str(v.address), pattern)
        ]
        if not r_hits and not v_hits:
            problems.append(
                f"--limit {pattern!r}: matches no router and no VIP of the inventory (routers: "
                f"{', '.join(sorted(r.name for r in inv.routers)) or 'none'})"
            )
        routers += [r for r in r_hits if r not in routers]
        vips += [v for v in v_hits if v not in vips]
    if problems:
        raise InventoryError(problems)
    return PushLimit(tuple(routers) or None, tuple(vips) or None)
