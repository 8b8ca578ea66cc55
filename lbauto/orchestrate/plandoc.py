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
from collections.abc import Callable, Iterator, Mapping, Sequence
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from lbauto.core.model import (
    Inventory,
    IPAddress,
    ObservedState,
    PbrBinding,
    PbrRule,
    RouterObject,
    StaticRoute,
)
from lbauto.core.plan import Action, Plan, RouterChange, RouterPlan, Step, Transition, VipState
from lbauto.core.plan import object_to_json as _object_to_json

if TYPE_CHECKING:
    from lbauto.orchestrate.limit import Skipped

#: Version of the plan, apply and show documents (1: every router's changes inline).
PLAN_JSON_VERSION = 2
#: Version of the other ``-o json`` documents (push, status, ...).
JSON_VERSION = 1
_ROUTER_STEPS = (Action.ROUTER_PUSH, Action.ROUTER_VERIFY)
_ROUTER, _REMOVE, _ADD = (operator.itemgetter(i) for i in range(3))


def router_change_lines(inv: Inventory, observed: ObservedState, rp: RouterPlan) -> list[str]:
    """The ordered config lines that move one router from observed to desired."""
    if not rp.add and not rp.remove:
        return []
    # Imported here: the presentation layer reads documents through this module, and rendering
    # brings jinja2.
    from lbauto.platforms.render import render_changes

    router = inv.router(rp.router)
    return render_changes(
        router,
        rp.remove,
        rp.add,
        observed=observed.router_objects(rp.router),
        template_dir=inv.template_dir,
    )


class _Partition(NamedTuple):
    names: tuple[str, ...]
    #: picks each router's group's first member from a per-router sequence
    pick: Callable[[Sequence[int]], tuple[int, ...]]
    groups: list[tuple[int, int]]  # (router set index, first member)


class _Builder:
    def __init__(self, inv: Inventory, observed: ObservedState) -> None:
        self.inv, self.observed = inv, observed
        self.sets: dict[tuple[str, ...], int] = {}
        self.lists: dict[tuple[str, ...], int] = {}
        self._list_values: list[list[str]] = []
        # Keyed by id() of values the plan keeps alive while the document is built.
        self._objs: dict[int, list[dict[str, Any]]] = {}
        self._steps: dict[int, list[dict[str, Any]]] = {}
        self._addrs: dict[int, list[str]] = {}
        # str() of an ipaddress value runs in Python (microseconds, IPv6 ten times more) and a
        # VIP's prefix, its DIPs and the agents recur in every object and state of the plan.
        self._text: dict[object, str] = {}
        self._last: _Partition | None = None

    def text(self, value: object) -> str:
        # Keyed by value: equal addresses are mostly distinct objects. An IPv4 address (most of
        # them) is keyed by its int, which hashes in C; other values hash as themselves.
        key = int(value) if type(value) is IPv4Address else value
        found = self._text.get(key)
        if found is None:
            found = self._text[key] = str(value)
        return found

    def object(self, o: RouterObject) -> dict[str, Any]:
        # object_to_json's documents, with each address converted once (tests compare both).
        cls = type(o)
        if cls is StaticRoute:
            r = cast(StaticRoute, o)
            return {
                "type": "static",
                "prefix": self.text(r.prefix),
                "next_hop": self.text(r.next_hop),
                "distance": r.distance,
                "tag": r.tag,
            }
        if cls is PbrRule:
            p = cast(PbrRule, o)
            return {
                "type": "pbr",
                "seq": p.seq,
                "prefix": self.text(p.prefix),
                "next_hop": self.text(p.next_hop),
            }
        if cls is PbrBinding:
            b = cast(PbrBinding, o)
            return {"type": "binding", "interface": b.interface, "version": b.version}
        return _object_to_json(o)

    def objects(self, objs: Sequence[RouterObject]) -> list[dict[str, Any]]:
        found = self._objs.get(id(objs))
        if found is None:
            found = self._objs[id(objs)] = list(map(self.object, objs))
        return found

    def step_routers(self, rcs: Sequence[RouterChange]) -> list[dict[str, Any]]:
        # push and verify of one transition share their tuple: group it once.
        found = self._steps.get(id(rcs))
        if found is None:
            found = self._steps[id(rcs)] = [
                {"set": index, "remove": self.objects(rc.remove), "add": self.objects(rc.add)}
                for index, rc in self._groups(rcs)
            ]
        return found

    def _groups(self, rcs: Sequence[RouterChange]) -> list[tuple[int, RouterChange]]:
        """(router set index, first member's change) per group of routers with the same change.

        Routers of one group share their change tuples (the planner's change tables), so they
        are grouped by the identity of their (remove, add) tuples, with C-level loops only: this
        sees every VIP x router of the plan (a million at 10,000 x 100). Consecutive steps
        mostly group their routers alike: the last partition is tried first, which takes three
        C-level comparisons."""
        names = tuple(map(_ROUTER, rcs))
        removes = tuple(map(id, map(_REMOVE, rcs)))
        adds = tuple(map(id, map(_ADD, rcs)))
        last = self._last
        if (
            last is not None
            and last.names == names
            and last.pick(adds) == adds
            and last.pick(removes) == removes
            # and no two groups became one
            and len({(removes[i], adds[i]) for _, i in last.groups}) == len(last.groups)
        ):
            return [(index, rcs[i]) for index, i in last.groups]
        keys = list(zip(removes, adds, strict=True))
        first: dict[tuple[int, int], int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        groups = []
        for key, i in first.items():
            members = (
                names
                if len(first) == 1
                else tuple(itertools.compress(names, map(key.__eq__, keys)))
            )
            groups.append((self.sets.setdefault(members, len(self.sets)), i))
        if len(keys) > 1:
            self._last = _Partition(
                names, operator.itemgetter(*map(first.__getitem__, keys)), groups
            )
        return [(index, rcs[i]) for index, i in groups]

    def addresses(self, values: tuple[IPAddress, ...]) -> list[str]:
        # A VIP's DIPs appear in its from/to states and set_vip steps, often as one tuple.
        found = self._addrs.get(id(values))
        if found is None:
            found = self._addrs[id(values)] = list(map(self.text, values))
        return found

    def state(self, v: VipState) -> dict[str, Any]:
        return {"mode": v.mode._value_ if v.mode else "absent", "dips": self.addresses(v.dips)}

    def step(self, s: Step) -> dict[str, Any]:
        action = s.action
        if action in _ROUTER_STEPS:
            return {"action": action._value_, "routers": self.step_routers(s.routers)}
        if action is Action.SET_VIP and not s.transit and not s.drain:
            # Step.to_json's document (the common case: no transit pin, no drain)
            return {
                "action": action._value_,
                "mode": s.mode._value_ if s.mode else None,
                "dips": self.addresses(s.dips),
                "flow_tracking": s.flow_tracking,
            }
        out = s.to_json()
        if action is Action.SET_VIP:
            out["dips"] = self.addresses(s.dips)
        return out

    def transition(self, t: Transition) -> dict[str, Any]:
        return {
            "vip": t.vip,
            "address": self.text(t.address),
            "kind": t.kind._value_,
            "from": self.state(t.from_),
            "to": self.state(t.to),
            "max_seconds": t.max_seconds,
            "steps": list(map(self.step, t.steps)),
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
