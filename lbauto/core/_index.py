"""The planner's indexes and sharing: how 10,000 VIPs x 100 routers plan in about a second.

Nothing here decides anything (the decisions are in :mod:`lbauto.core.planner` and
:mod:`lbauto.core.transitions`); these are the data structures that make them cheap:

- prefixes are keyed as ``(version, network as int, length)`` tuples, which hash and compare in C
  (``ip_network``'s Python-level ``__hash__``/``__eq__`` dominated big plans);
- routers with equal settings and PBR rules share one intent (:class:`IntentCache`), and
  routers with nothing observed share one change table, found by the table's identity
  (``id()``): the tables live as long as the plan being built, so an id is never reused while
  it is a key;
- :class:`ChangeTable` looks each VIP up once per group of routers that share a table;
- :func:`router_plan` concatenates a shared table once, so the renderer (which memoizes on the
  identity of its inputs) renders it once for all routers of the group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lbauto.core.intent import RouterIntent, intent_key, object_sort_key, router_intent
from lbauto.core.model import (
    Agent,
    IPAddress,
    Method,
    ObservedState,
    OwnedObject,
    PbrBinding,
    PbrRule,
    Router,
    Vip,
    host_prefix,
)
from lbauto.core.plan import RouterChange, RouterPlan

Objs = tuple[OwnedObject, ...]
EMPTY: Objs = ()
#: A prefix as (version, network as int, length): hashes and compares in C, unlike ip_network,
#: whose Python-level __hash__/__eq__ dominated planning 10,000 VIPs x 100 routers.
PKey = tuple[int, int, int]
OKey = tuple[Any, ...]
#: One prefix's objects on a router, sorted, with their object_sort_key()s.
Entry = tuple[Objs, tuple[OKey, ...]]
HOST_LEN = {4: 32, 6: 128}


@dataclass
class RouterWork:
    """One router's observed objects by prefix, its target and its per-prefix changes."""

    router: Router
    observed: dict[PKey, Entry]
    observed_bindings: frozenset[PbrBinding]
    intent: RouterIntent
    target: dict[PKey, Entry]
    # scope index -> (remove, add), only VIPs with a change. Keyed by the VIP's position in the
    # plan because an int hashes in C while an ip_network hashes in Python (a 1M-lookup hot spot).
    changes: dict[int, tuple[Objs, Objs]] = field(default_factory=dict)
    bind_remove: dict[int, list[PbrBinding]] = field(default_factory=dict)
    bind_add: dict[int, list[PbrBinding]] = field(default_factory=dict)


@dataclass
class Scope:
    """The VIPs being planned, in plan order, with their names and desired values."""

    keys: list[PKey]
    addresses: dict[PKey, IPAddress]
    names: dict[PKey, str]
    desired: dict[PKey, Vip]
    complete: bool  # every VIP is planned (no ``only``)


def address_key(address: IPAddress) -> PKey:
    return (address.version, int(address), address.max_prefixlen)


@dataclass
class ObservedIndex:
    by_prefix: dict[PKey, Entry]
    addresses: dict[PKey, IPAddress]
    bindings: frozenset[PbrBinding]
    rules: frozenset[PbrRule]


def index_router(observed: ObservedState, router: Router) -> ObservedIndex:
    lists: dict[PKey, list[tuple[OKey, OwnedObject]]] = {}
    addresses: dict[PKey, IPAddress] = {}
    bindings: set[PbrBinding] = set()
    rules: set[PbrRule] = set()
    for obj in observed.router_objects(router.name):
        if isinstance(obj, PbrBinding):
            bindings.add(obj)
            continue
        okey = object_sort_key(obj)
        pkey: PKey = okey[:3]
        if pkey[2] != HOST_LEN[pkey[0]]:
            continue  # not a VIP prefix: never lbauto's (see lbauto.core.intent.owned_host_objects)
        if isinstance(obj, PbrRule):
            rules.add(obj)
        entry = lists.get(pkey)
        if entry is None:
            lists[pkey] = [(okey, obj)]
            addresses[pkey] = obj.prefix.network_address
        else:
            entry.append((okey, obj))
    by_prefix = {k: sorted_entry(pairs) for k, pairs in lists.items()}
    return ObservedIndex(by_prefix, addresses, frozenset(bindings), frozenset(rules))


def sorted_entry(pairs: list[tuple[OKey, OwnedObject]]) -> Entry:
    if len(pairs) > 1:
        pairs.sort(key=lambda pair: pair[0])
    return tuple(o for _, o in pairs), tuple(k for k, _ in pairs)


class IntentCache:
    """Routers with the same settings and PBR rules have the same intent: compute it once,
    with its objects keyed and sorted the way observed objects are."""

    def __init__(self, vips: Sequence[Vip], agents: Sequence[Agent]) -> None:
        self._vips, self._agents = vips, agents
        self._prefixes = [host_prefix(v.address) for v in vips]
        self._pbr_override = any(v.method is Method.PBR for v in vips)
        self._cache: dict[object, tuple[RouterIntent, dict[PKey, Entry]]] = {}

    def get(self, router: Router, obs: ObservedIndex) -> tuple[RouterIntent, dict[PKey, Entry]]:
        key = intent_key(router, obs.rules, self._pbr_override)
        cached = self._cache.get(key)
        if cached is None:
            intent = router_intent(self._vips, self._agents, router, obs.rules, self._prefixes)
            target: dict[PKey, Entry] = {}
            for vip, prefix in zip(self._vips, self._prefixes, strict=True):
                objs = intent.by_prefix.get(prefix, EMPTY)
                if objs:
                    target[address_key(vip.address)] = (
                        objs,
                        tuple(object_sort_key(o) for o in objs),
                    )
            cached = (intent, target)
            self._cache[key] = cached
        return cached


def router_work(
    router: Router,
    obs: ObservedIndex,
    intents: IntentCache,
    scope: Scope,
    fresh: dict[int, dict[int, tuple[Objs, Objs]]],
) -> RouterWork:
    intent, target = intents.get(router, obs)
    observed = obs.by_prefix
    if not observed:
        # Nothing of ours on the router: the change is the intent, shared by equal routers.
        changes = fresh.get(id(target))
        if changes is None:
            changes = {}
            for i, k in enumerate(scope.keys):
                want = target.get(k)
                if want:
                    changes[i] = (EMPTY, want[0])
            fresh[id(target)] = changes
        return RouterWork(router, observed, obs.bindings, intent, target, changes)
    changes = {}
    for i, k in enumerate(scope.keys):
        want = target.get(k)
        have = observed.get(k)
        if want is None:
            if have is not None:
                changes[i] = (have[0], EMPTY)
            continue
        if have is None:
            changes[i] = (EMPTY, want[0])
            continue
        if want[1] == have[1]:
            continue
        want_keys, have_keys = set(want[1]), set(have[1])
        changes[i] = (
            tuple(o for o, ok in zip(*have, strict=True) if ok not in want_keys),
            tuple(o for o, ok in zip(*want, strict=True) if ok not in have_keys),
        )
    return RouterWork(router, observed, obs.bindings, intent, target, changes)


def observed_by_prefix(
    works: Sequence[RouterWork],
) -> dict[PKey, list[tuple[RouterWork, Objs]]]:
    """prefix -> the routers (in name order) that carry objects for it."""
    out: dict[PKey, list[tuple[RouterWork, Objs]]] = {}
    for w in works:
        for k, entry in w.observed.items():
            out.setdefault(k, []).append((w, entry[0]))
    return out


class ChangeTable:
    """Per-VIP router changes. Routers that share a change table (nothing observed, same
    intent) are looked up once per group: this runs VIPs x routers times in a big plan."""

    def __init__(self, works: Sequence[RouterWork]) -> None:
        group_of: dict[int, int] = {}
        self._tables: list[dict[int, tuple[Objs, Objs]]] = []
        # In router order: (group index, name, None) or (-1, name, work) for routers that carry
        # binding changes of their own.
        self._members: list[tuple[int, str, RouterWork | None]] = []
        for w in works:
            if w.bind_add or w.bind_remove:
                self._members.append((-1, w.router.name, w))
                continue
            g = group_of.get(id(w.changes))
            if g is None:
                g = group_of[id(w.changes)] = len(self._tables)
                self._tables.append(w.changes)
            self._members.append((g, w.router.name, None))
        self._single = len(self._tables) == 1 and all(w is None for _, _, w in self._members)
        self._names = [name for _, name, _ in self._members]

    def for_vip(self, i: int) -> list[RouterChange]:
        if self._single:
            change = self._tables[0].get(i)
            if change is None:
                return []
            remove, add = change
            return [RouterChange(name, remove, add) for name in self._names]
        per_group = [table.get(i) for table in self._tables]
        out: list[RouterChange] = []
        for g, name, w in self._members:
            if w is None:
                change = per_group[g]
                if change is not None:
                    out.append(RouterChange(name, change[0], change[1]))
                continue
            remove, add = w.changes.get(i, (EMPTY, EMPTY))
            brem, badd = w.bind_remove.get(i), w.bind_add.get(i)
            if brem:
                remove = (*remove, *brem)
            if badd:
                add = (*add, *badd)
            if remove or add:
                out.append(RouterChange(name, remove, add))
        return out


def router_plan(
    work: RouterWork,
    scope: Scope,
    concat: dict[object, tuple[Objs, Objs]],
) -> RouterPlan:
    # Routers that share a change table (nothing observed, same intent) and the same bindings
    # share one concatenation: the renderer then renders it once for all of them (it memoizes
    # on identity). Per-VIP tuples are sorted and VIPs come in order, so the concatenation is
    # sorted too (object_sort_key); bindings sort last.
    brem = tuple(sorted((b for bs in work.bind_remove.values() for b in bs), key=object_sort_key))
    badd = tuple(sorted((b for bs in work.bind_add.values() for b in bs), key=object_sort_key))
    key = (id(work.changes), brem, badd)
    cached = concat.get(key)
    if cached is None:
        remove: list[OwnedObject] = []
        add: list[OwnedObject] = []
        for i in range(len(scope.keys)):
            change = work.changes.get(i)
            if change is not None:
                remove.extend(change[0])
                add.extend(change[1])
        cached = ((*remove, *brem), (*add, *badd))
        concat[key] = cached
    return RouterPlan(work.router.name, work.router.platform, cached[0], cached[1])
