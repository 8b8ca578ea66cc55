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

import itertools
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, cast

from lbauto.core.intent import (
    IntentBase,
    RouterIntent,
    intent_base,
    intent_key,
    object_sort_key,
    pbr_rule,
    pbr_seqs,
    with_rules,
)
from lbauto.core.model import (
    Agent,
    BgpAccept,
    IPAddress,
    Method,
    ObservedState,
    OwnedObject,
    PbrBinding,
    PbrRule,
    Router,
    StaticRoute,
    Vip,
    host_prefix,
)
from lbauto.core.plan import RouterChange, RouterPlan

Objs = tuple[OwnedObject, ...]
EMPTY: Objs = ()
_new = tuple.__new__
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
    #: The observed index ``observed`` comes from (its base and touched prefixes, if derived).
    index: ObservedIndex | None = None


@dataclass
class Scope:
    """The VIPs being planned, in plan order, with their names and desired values."""

    keys: list[PKey]
    addresses: dict[PKey, IPAddress]
    names: dict[PKey, str]
    desired: dict[PKey, Vip]
    complete: bool  # every VIP is planned (no ``only``)
    _positions: dict[PKey, int] | None = None

    def position(self, k: PKey) -> int | None:
        """``k``'s index in ``keys`` (None: not planned)."""
        if self._positions is None:
            self._positions = {key: i for i, key in enumerate(self.keys)}
        return self._positions.get(k)


def address_key(address: IPAddress) -> PKey:
    return (address.version, int(address), address.max_prefixlen)


@dataclass
class ObservedIndex:
    by_prefix: dict[PKey, Entry]
    addresses: dict[PKey, IPAddress]
    bindings: frozenset[PbrBinding]
    rules: frozenset[PbrRule]
    # Set when this index was derived from another one (``base``) by re-indexing a few
    # prefixes (``touched``): change tables derive the same way (see router_work).
    base: ObservedIndex | None = None
    touched: frozenset[PKey] = frozenset()


def index_router(observed: ObservedState, router: Router) -> ObservedIndex:
    return index_objects(observed.router_objects(router.name))


def index_objects(objects: Iterable[OwnedObject]) -> ObservedIndex:
    keyed: list[tuple[OKey, OwnedObject]] = []
    bindings: set[PbrBinding] = set()
    rules: list[PbrRule] = []
    for obj in objects:
        if isinstance(obj, PbrBinding):
            bindings.add(obj)
            continue
        okey = object_sort_key(obj)
        if okey[2] != HOST_LEN[okey[0]]:
            continue  # not a VIP prefix: never lbauto's (see lbauto.core.intent.owned_host_objects)
        keyed.append((okey, obj))
        if isinstance(obj, PbrRule):
            rules.append(obj)
    # One sort of every key (tuples compare in C), then runs of one prefix: a prefix's objects
    # come out sorted, as sorted_entry would give them.
    keyed.sort(key=_FIRST)
    by_prefix: dict[PKey, Entry] = {}
    addresses: dict[PKey, IPAddress] = {}
    i, n = 0, len(keyed)
    while i < n:
        pkey: PKey = keyed[i][0][:3]
        j = i + 1
        while j < n and keyed[j][0][:3] == pkey:
            j += 1
        run = keyed[i:j]
        by_prefix[pkey] = (tuple(map(_SECOND, run)), tuple(map(_FIRST, run)))
        addresses[pkey] = run[0][1].prefix.network_address  # type: ignore[union-attr]
        i = j
    return ObservedIndex(by_prefix, addresses, frozenset(bindings), frozenset(rules))


_FIRST = operator.itemgetter(0)
_SECOND = operator.itemgetter(1)


class IndexCache:
    """Observed indexes for the routers of one plan, shared where routers observe the same
    objects. A deployed fleet's routers of one profile hold equal objects (the state loader
    gives them one frozenset), and indexing 27,000 objects costs ~50 ms: 100 routers of 10,000
    VIPs took seconds. Equal sets share one index; a set that differs from an indexed one by a
    few objects (drift) is derived from that index, re-indexing only the prefixes it touches.
    Keys are ``id()``s of sets that ``observed`` keeps alive for the life of the cache."""

    #: Derive from an indexed set when they differ by at most this share of the objects.
    SHARE = 0.25

    def __init__(self, observed: ObservedState) -> None:
        self._observed = observed
        # id -> (the set, kept alive so its id is never reused while cached; its index)
        self._by_id: dict[int, tuple[frozenset[OwnedObject], ObservedIndex]] = {}
        self._bases: list[tuple[frozenset[OwnedObject], ObservedIndex]] = []
        self._ids: list[set[int]] = []  # per base, the ids of its objects (kept alive by it)

    def get(self, router: Router) -> ObservedIndex:
        objects = self._observed.router_objects(router.name)
        found = self._by_id.get(id(objects))
        if found is None:
            found = self._by_id[id(objects)] = (objects, self._index(objects))
        return found[1]

    def _index(self, objects: frozenset[OwnedObject]) -> ObservedIndex:
        limit = len(objects) * self.SHARE
        for base_objects, base in self._candidates(objects):
            if abs(len(base_objects) - len(objects)) > limit:
                continue
            # Two differences, not ``^``: that one copies the whole base set first.
            added = objects - base_objects  # C set algebra over stored hashes
            if len(added) > limit:
                continue
            diff = added | (base_objects - objects)
            if len(diff) <= limit:
                return derive_index(base, base_objects, objects, diff)
        index = index_objects(objects)
        self._bases.append((objects, index))
        self._ids.append({id(o) for o in objects})
        return index

    def _candidates(
        self, objects: frozenset[OwnedObject]
    ) -> list[tuple[frozenset[OwnedObject], ObservedIndex]]:
        """The bases, the one ``objects`` most likely derives from first. A state file's
        drifted router holds its profile's very objects (same instances) plus a few; the other
        profiles' sets share equal LB routes that are distinct instances, and comparing those
        costs a Python-level ``__eq__`` each: trying the wrong base first cost ~20 ms a router.
        A sample of identities orders them; equal but distinct objects (live observation) still
        find their base, only later."""
        if len(self._bases) < 2:
            return self._bases
        sample = [id(o) for o in itertools.islice(objects, 64)]
        hits = [sum(i in ids for i in sample) for ids in self._ids]
        order = sorted(range(len(self._bases)), key=lambda b: -hits[b])
        return [self._bases[b] for b in order]


def derive_index(
    base: ObservedIndex,
    base_objects: frozenset[OwnedObject],
    objects: frozenset[OwnedObject],
    diff: frozenset[OwnedObject],
) -> ObservedIndex:
    """The index of ``objects``, from ``base`` (the index of ``base_objects``) and their
    symmetric difference ``diff``: equal to index_objects(objects)."""
    touched: dict[PKey, None] = {}
    bindings_changed = False
    for obj in diff:
        if isinstance(obj, PbrBinding):
            bindings_changed = True
            continue
        p = obj.prefix
        if p.prefixlen == HOST_LEN[p.version]:
            touched[(p.version, int(p.network_address), p.prefixlen)] = None
    by_prefix = dict(base.by_prefix)
    addresses = dict(base.addresses)
    rules = set(base.rules)
    for k in touched:
        old = by_prefix.pop(k, None)
        if old is not None:
            rules.difference_update(o for o in old[0] if isinstance(o, PbrRule))
    # The touched prefixes' objects, in set order like index_objects (then sorted per prefix).
    lists: dict[PKey, list[tuple[OKey, OwnedObject]]] = {}
    for obj in _objects_at(objects, base, touched, diff):
        okey = object_sort_key(obj)
        pkey: PKey = okey[:3]
        lists.setdefault(pkey, []).append((okey, obj))
        if isinstance(obj, PbrRule):
            rules.add(obj)
        addresses.setdefault(pkey, obj.prefix.network_address)
    for k in touched:
        pairs = lists.get(k)
        if pairs is None:
            addresses.pop(k, None)
        else:
            by_prefix[k] = sorted_entry(pairs)
    bindings = (
        frozenset(o for o in objects if isinstance(o, PbrBinding))
        if bindings_changed
        else base.bindings
    )
    return ObservedIndex(by_prefix, addresses, bindings, frozenset(rules), base, frozenset(touched))


def _objects_at(
    objects: frozenset[OwnedObject],
    base: ObservedIndex,
    touched: Mapping[PKey, None],
    diff: frozenset[OwnedObject],
) -> Iterable[StaticRoute | PbrRule | BgpAccept]:
    """The objects of ``objects`` at the touched prefixes: those the base had there and still
    are, and the new ones."""
    for pkey in touched:
        old = base.by_prefix.get(pkey)
        if old is not None:
            for obj in old[0]:
                if obj in objects and not isinstance(obj, PbrBinding):
                    yield obj
    for obj in diff:
        if obj in objects and not isinstance(obj, PbrBinding):
            p = obj.prefix
            if p.prefixlen == HOST_LEN[p.version]:
                yield obj


def sorted_entry(pairs: list[tuple[OKey, OwnedObject]]) -> Entry:
    if len(pairs) > 1:
        pairs.sort(key=lambda pair: pair[0])
    return tuple(o for _, o in pairs), tuple(k for k, _ in pairs)


class IntentCache:
    """Routers with the same settings and PBR rules have the same intent: compute it once,
    with its objects keyed and sorted the way observed objects are.

    Routers whose settings match but whose observed PBR rules differ (drift on a PBR router)
    differ only in some rules' seqs: their intent is derived from the first one computed for
    those settings, rebuilding only the prefixes whose seq moved (a whole 10,000-VIP intent
    with its sort keys costs ~0.4 s; a 1 % drift gave six of them)."""

    #: Derive intents that differ only in PBR seqs (tests turn it off for their control).
    DERIVE = True

    def __init__(self, vips: Sequence[Vip], agents: Sequence[Agent]) -> None:
        self._vips, self._agents = vips, agents
        self._prefixes = [host_prefix(v.address) for v in vips]
        self._pbr_override = any(v.method is Method.PBR for v in vips)
        self._cache: dict[object, tuple[RouterIntent, dict[PKey, Entry]]] = {}
        #: settings without the observed rules -> (base, seqs, intent, target) of the first
        self._first: dict[object, _FirstIntent] = {}
        #: id(derived target) -> (the target it derives from, the prefixes where they differ)
        self._origin: dict[int, tuple[dict[PKey, Entry], frozenset[PKey]]] = {}

    def get(self, router: Router, obs: ObservedIndex) -> tuple[RouterIntent, dict[PKey, Entry]]:
        key = intent_key(router, obs.rules, self._pbr_override)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._compute(key, router, obs)
        return cached

    def _compute(
        self, key: object, router: Router, obs: ObservedIndex
    ) -> tuple[RouterIntent, dict[PKey, Entry]]:
        assert isinstance(key, tuple)
        pbr = key[-1]
        settings = (*key[:-1], pbr[:2] if pbr is not None else None)
        first = self._first.get(settings) if self.DERIVE else None
        if first is not None:
            derived, derived_target, touched = _derive_intent(first, router, obs.rules)
            self._origin[id(derived_target)] = (first.target, touched)
            return derived, derived_target
        base = intent_base(self._vips, self._agents, router, self._prefixes)
        seqs = pbr_seqs(router, base, obs.rules)
        intent = with_rules(base, router, seqs)
        target: dict[PKey, Entry] = {}
        for vip, objs in zip(self._vips, intent.per_vip, strict=True):
            if objs:
                target[address_key(vip.address)] = (objs, tuple(map(object_sort_key, objs)))
        self._first[settings] = _FirstIntent(base, seqs, intent, target)
        return intent, target

    def origin(self, target: dict[PKey, Entry]) -> tuple[dict[PKey, Entry], frozenset[PKey]]:
        """The target ``target`` was derived from and the prefixes where they differ (itself
        and none for a target computed whole). Targets are alive as long as this cache."""
        return self._origin.get(id(target), (target, frozenset()))


@dataclass(frozen=True)
class _FirstIntent:
    base: IntentBase
    seqs: Sequence[int]
    intent: RouterIntent
    target: dict[PKey, Entry]


def _derive_intent(
    first: _FirstIntent, router: Router, rules: frozenset[PbrRule]
) -> tuple[RouterIntent, dict[PKey, Entry], frozenset[PKey]]:
    seqs = pbr_seqs(router, first.base, rules)
    per_vip = list(first.intent.per_vip)
    target = dict(first.target)
    touched: list[PKey] = []
    for i, seq, was in zip(first.base.pbr, seqs, first.seqs, strict=True):
        if seq == was:
            continue
        objs = per_vip[i] = pbr_rule(first.base, i, seq)
        k = address_key(first.base.vips[i].address)
        target[k] = (objs, tuple(map(object_sort_key, objs)))
        touched.append(k)
    # The PBR VIPs are the same, so are the versions that have rules and thus the bindings.
    intent = RouterIntent(first.intent.prefixes, per_vip, first.intent.bindings)
    return intent, target, frozenset(touched)


def router_work(
    router: Router,
    obs: ObservedIndex,
    intents: IntentCache,
    scope: Scope,
    fresh: dict[object, dict[int, tuple[Objs, Objs]]],
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
        return RouterWork(router, observed, obs.bindings, intent, target, changes, index=obs)
    # Routers with one observed index and one intent share one change table (a deployed
    # fleet's profiles); an index or intent derived from another by a few prefixes derives
    # its table from the pair they come from.
    key = (id(target), id(obs))
    changes = fresh.get(key)
    if changes is None:
        changes = fresh[key] = _changes_for(target, obs, intents, scope, fresh)
    return RouterWork(router, observed, obs.bindings, intent, target, changes, index=obs)


def _changes_for(
    target: dict[PKey, Entry],
    obs: ObservedIndex,
    intents: IntentCache,
    scope: Scope,
    fresh: dict[object, dict[int, tuple[Objs, Objs]]],
) -> dict[int, tuple[Objs, Objs]]:
    t_base, t_touched = intents.origin(target)
    o_base, o_touched = (obs, frozenset()) if obs.base is None else (obs.base, obs.touched)
    if t_base is target and o_base is obs:
        return _full_changes(target, obs.by_prefix, scope)
    # Both bases live as long as the plan (the intent cache and ``obs.base`` hold them).
    bkey = (id(t_base), id(o_base))
    base = fresh.get(bkey)
    if base is None:
        base = fresh[bkey] = _full_changes(t_base, o_base.by_prefix, scope)
    return _derived_changes(base, target, obs.by_prefix, scope, t_touched | o_touched)


def _full_changes(
    target: dict[PKey, Entry], observed: dict[PKey, Entry], scope: Scope
) -> dict[int, tuple[Objs, Objs]]:
    changes: dict[int, tuple[Objs, Objs]] = {}
    for i, k in enumerate(scope.keys):
        change = _change(target.get(k), observed.get(k))
        if change is not None:
            changes[i] = change
    return changes


def _change(want: Entry | None, have: Entry | None) -> tuple[Objs, Objs] | None:
    """One prefix's (remove, add) from what is observed to what is wanted; None if equal."""
    if want is None:
        return None if have is None else (have[0], EMPTY)
    if have is None:
        return (EMPTY, want[0])
    if want[1] == have[1]:
        return None
    want_keys, have_keys = set(want[1]), set(have[1])
    return (
        tuple(o for o, ok in zip(*have, strict=True) if ok not in want_keys),
        tuple(o for o, ok in zip(*want, strict=True) if ok not in have_keys),
    )


def _derived_changes(
    base: dict[int, tuple[Objs, Objs]],
    target: dict[PKey, Entry],
    observed: dict[PKey, Entry],
    scope: Scope,
    touched: frozenset[PKey],
) -> dict[int, tuple[Objs, Objs]]:
    changes = dict(base)
    for k in touched:
        i = scope.position(k)
        if i is None:
            continue  # not planned (``only``)
        change = _change(target.get(k), observed.get(k))
        if change is None:
            changes.pop(i, None)
        else:
            changes[i] = change
    return dict(sorted(changes.items()))  # the order a full pass gives


def observed_by_prefix(
    works: Sequence[RouterWork],
) -> dict[PKey, list[tuple[RouterWork, Objs]]]:
    """prefix -> the routers (in name order) that carry objects for it, one per group of
    routers with the same observed index and LB distance: :func:`is_bypass` gives them equal
    answers, so the first bypass in router order is found at the group's first member.

    Indexes derived from one base (drift on a few prefixes) hold the base's very entries at
    every prefix they did not touch, so there the base and its derived indexes form one class
    (per LB distance) of equal answers: only the class's first member in router order is listed
    (routers after it cannot come first). A class's first member lists all its prefixes; a
    later member lists the prefixes it touched, and those where every earlier member differed
    from the base (the class's entry not listed yet). With 1 % drift on 10,000 VIPs x 100
    routers, 67 routers have indexes of their own: listing each whole took seconds."""
    out: dict[PKey, list[tuple[RouterWork, Objs]]] = {}
    seen: set[tuple[int, int]] = set()
    # class -> prefixes whose class entry is not listed yet (touched by every earlier member)
    pending_of: dict[tuple[int, int], set[PKey]] = {}
    for w in works:
        group = (id(w.observed), w.router.lb_distance)
        if group in seen:
            continue
        seen.add(group)
        index = w.index
        base = index.base if index is not None and index.base is not None else index
        touched = index.touched if index is not None else frozenset()
        cls = (id(base.by_prefix) if base is not None else id(w.observed), w.router.lb_distance)
        pending = pending_of.get(cls)
        if pending is None:
            for k, entry in w.observed.items():
                out.setdefault(k, []).append((w, entry[0]))
            pending_of[cls] = set(touched)
            continue
        for k in touched:
            own = w.observed.get(k)
            if own is not None:
                out.setdefault(k, []).append((w, own[0]))
        for k in pending - touched:
            same = w.observed.get(k)  # the base's own entry: untouched here
            if same is not None:
                out.setdefault(k, []).append((w, same[0]))
        pending &= touched
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
        # VIPs where some router carries binding changes of its own; every other VIP takes
        # the grouped path (from nothing, PBR routers bind with their first rule only).
        self._special = {i for w in works for i in (*w.bind_add, *w.bind_remove)}
        for _, _, own in self._members:
            if own is not None and id(own.changes) not in group_of:
                group_of[id(own.changes)] = len(self._tables)
                self._tables.append(own.changes)
        self._grouped = [
            (g if own is None else group_of[id(own.changes)], name)
            for g, name, own in self._members
        ]
        self._group_index = [g for g, _ in self._grouped]
        self._grouped_names = [name for _, name in self._grouped]

    def for_vip(self, i: int) -> list[RouterChange]:
        # tuple.__new__ directly: a NamedTuple's own __new__ is a Python function, and this
        # builds one RouterChange per VIP per router (a million in a big plan).
        if self._single:
            change = self._tables[0].get(i)
            if change is None:
                return []
            remove, add = change
            # map/zip build the tuples in C: a third faster than a comprehension here.
            return list(
                map(_new, repeat(RouterChange), zip(self._names, repeat(remove), repeat(add)))
            )
        per_group = [table.get(i) for table in self._tables]
        if i not in self._special:
            if None not in per_group:
                # Every group changes this VIP (a plan from nothing): build in C, as above.
                full = cast(list[tuple[Objs, Objs]], per_group)
                cs = list(map(full.__getitem__, self._group_index))
                return list(
                    map(
                        _new,
                        repeat(RouterChange),
                        zip(self._grouped_names, map(_FIRST, cs), map(_SECOND, cs), strict=True),
                    )
                )
            return [
                _new(RouterChange, (name, *c))
                for g, name in self._grouped
                if (c := per_group[g]) is not None
            ]
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
