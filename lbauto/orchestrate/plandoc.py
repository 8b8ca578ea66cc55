"""The ``lbauto plan -o json`` document, version 2 (docs/cli.md, "plan").

A plan for 10,000 VIPs x 100 routers holds a million per-router changes and 7 million config
lines, nearly all of them repeated: routers of one profile get the same objects for a VIP and the
same lines overall. Version 1 wrote every copy (1.6 GB of JSON at that size); version 2 writes
each distinct value once and refers to it by index:

- ``router_sets``: lists of router names; a ``router.push``/``router.verify`` step lists
  ``routers: [{set, remove, add}]``, one entry per group of routers with the same change;
- ``change_lists``: lists of config lines; ``routers[]`` entries name theirs by ``change_list``
  (and say how many ``lines`` it has).

Indexes are given in order of first use, so equal plans give equal documents (``same_plan``).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from lbauto.core.model import Inventory, IPAddress, ObservedState, RouterObject
from lbauto.core.plan import Action, Plan, RouterChange, RouterPlan, Step, Transition, VipState
from lbauto.core.plan import object_to_json as _object_to_json
from lbauto.orchestrate.limit import Skipped
from lbauto.platforms.render import render_changes

#: Version of the plan, apply and show documents (1: every router's changes inline).
PLAN_JSON_VERSION = 2
_ROUTER_STEPS = (Action.ROUTER_PUSH, Action.ROUTER_VERIFY)
_ROUTER, _REMOVE, _ADD = (operator.itemgetter(i) for i in range(3))


def router_change_lines(inv: Inventory, observed: ObservedState, rp: RouterPlan) -> list[str]:
    """The ordered config lines that move one router from observed to desired."""
    if not rp.add and not rp.remove:
        return []
    router = inv.router(rp.router)
    return render_changes(
        router,
        rp.remove,
        rp.add,
        observed=observed.router_objects(rp.router),
        template_dir=inv.template_dir,
    )


class _Builder:
    def __init__(self, inv: Inventory, observed: ObservedState) -> None:
        self.inv, self.observed = inv, observed
        self.sets: dict[tuple[str, ...], int] = {}
        self.lists: dict[tuple[str, ...], int] = {}
        self._list_values: list[list[str]] = []
        # Keyed by id() of tuples the plan keeps alive while the document is built.
        self._objs: dict[int, list[dict[str, Any]]] = {}
        self._steps: dict[int, list[dict[str, Any]]] = {}
        self._addrs: dict[int, list[str]] = {}

    def objects(self, objs: Sequence[RouterObject]) -> list[dict[str, Any]]:
        found = self._objs.get(id(objs))
        if found is None:
            found = self._objs[id(objs)] = [_object_to_json(o) for o in objs]
        return found

    def step_routers(self, rcs: Sequence[RouterChange]) -> list[dict[str, Any]]:
        # push and verify of one transition share their tuple: group it once. Routers of one
        # group share their change tuples (the planner's change tables), so routers are
        # grouped by the identity of their (remove, add) tuples, with C-level loops only: this
        # sees every VIP x router of the plan (a million at 10,000 x 100).
        found = self._steps.get(id(rcs))
        if found is not None:
            return found
        keys = list(zip(map(id, map(_REMOVE, rcs)), map(id, map(_ADD, rcs)), strict=True))
        names = list(map(_ROUTER, rcs))
        distinct = dict.fromkeys(keys)
        found = []
        for key in distinct:
            members = (
                names
                if len(distinct) == 1
                else list(itertools.compress(names, map(key.__eq__, keys)))
            )
            first = rcs[keys.index(key)]
            index = self.sets.setdefault(tuple(members), len(self.sets))
            found.append(
                {"set": index, "remove": self.objects(first.remove), "add": self.objects(first.add)}
            )
        self._steps[id(rcs)] = found
        return found

    def addresses(self, values: tuple[IPAddress, ...]) -> list[str]:
        # A VIP's DIPs appear in its from/to states and set_vip steps, often as one tuple; str()
        # of an ipaddress value runs in Python (a quarter of the document's time uncached).
        found = self._addrs.get(id(values))
        if found is None:
            found = self._addrs[id(values)] = [str(a) for a in values]
        return found

    def state(self, v: VipState) -> dict[str, Any]:
        return {"mode": v.mode.value if v.mode else "absent", "dips": self.addresses(v.dips)}

    def step(self, s: Step) -> dict[str, Any]:
        if s.action in _ROUTER_STEPS:
            return {"action": s.action.value, "routers": self.step_routers(s.routers)}
        out = s.to_json()
        if s.action is Action.SET_VIP:
            out["dips"] = self.addresses(s.dips)
        return out

    def transition(self, t: Transition) -> dict[str, Any]:
        return {
            "vip": t.vip,
            "address": str(t.address),
            "kind": t.kind.value,
            "from": self.state(t.from_),
            "to": self.state(t.to),
            "max_seconds": t.max_seconds,
            "steps": [self.step(s) for s in t.steps],
        }

    def router(self, rp: RouterPlan) -> dict[str, Any]:
        lines = router_change_lines(self.inv, self.observed, rp)
        key = tuple(lines)
        index = self.lists.get(key)
        if index is None:
            index = self.lists[key] = len(self._list_values)
            self._list_values.append(lines)
        return {
            "name": rp.router,
            "platform": rp.platform,
            "change_list": index,
            "lines": len(lines),
        }

    def change_lists(self) -> list[list[str]]:
        return self._list_values


def plan_document(
    plan: Plan,
    inv: Inventory,
    observed: ObservedState,
    skipped: Sequence[Skipped] = (),
) -> dict[str, Any]:
    """The documented ``lbauto plan -o json`` document (docs/cli.md, "plan")."""
    from lbauto.orchestrate.status import pending_commits_json

    pending = pending_commits_json(observed)
    b = _Builder(inv, observed)
    transitions = [b.transition(t) for t in plan.transitions]
    routers = [b.router(rp) for rp in plan.routers]
    return {
        "version": PLAN_JSON_VERSION,
        "kind": "plan",
        # a commit awaiting confirmation is drift: the router reverts it by itself
        "changes": plan.has_changes or bool(pending),
        "pending_commits": pending,
        "options": {
            "transit_seconds": plan.options.transit_seconds,
            "drain_timeout": plan.options.drain_timeout,
        },
        "max_seconds": max((t.max_seconds for t in plan.transitions), default=0.0),
        "transitions": transitions,
        "router_sets": [list(names) for names in b.sets],
        "routers": routers,
        "change_lists": b.change_lists(),
        "skipped": [{"vip": s.vip, "address": s.address, "kind": s.kind} for s in skipped],
    }


# ---------------------------------------------------------------------------------- reading


def router_lines(doc: Mapping[str, Any], router: Mapping[str, Any]) -> list[str]:
    """One ``routers[]`` entry's config lines, in a version 2 or a version 1 document (a plan
    file written by an earlier lbauto)."""
    if "change_list" in router:
        lines: list[str] = doc["change_lists"][router["change_list"]]
        return lines
    old: list[str] = router.get("changes", [])
    return old


def step_router_changes(
    doc: Mapping[str, Any], step: Mapping[str, Any]
) -> Iterator[tuple[list[str], Mapping[str, Any]]]:
    """(router names, {remove, add}) of a router step, version 2 or 1."""
    routers = step.get("routers", [])
    if isinstance(routers, dict):  # version 1: {name: {remove, add}}
        for name, change in routers.items():
            yield [name], change
        return
    for group in routers:
        yield doc["router_sets"][group["set"]], group


def same_plan(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Do two plan documents describe the same work (transitions, router lines, options)?"""
    keys = ("version", "transitions", "router_sets", "routers", "change_lists", "options")
    return all(a.get(k) == b.get(k) for k in keys)
