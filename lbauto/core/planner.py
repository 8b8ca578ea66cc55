"""The pure planner: (inventory, observed state) -> :class:`~lbauto.core.plan.Plan`. No I/O.

One transition per VIP found in the inventory, on an agent, or as an lbauto-owned router object.
The from-state is derived from the routers AND the agents, so that re-planning after a crash at
any step resumes where the crash left things (every step is idempotent):

- a router carries a bypass for the VIP (a PBR rule, or a static route whose next hop is no
  agent's and whose distance is not the LB distance): from = single(that DIP), first router by
  name;
- else an agent has the VIP: its mode and DIPs (first agent by name), except that ``single``
  without any router bypass counts as ``multi`` (a bypass-enable interrupted before its router
  step: traffic still flows through the LB);
- else absent.

Kinds and step orders follow DESIGN section 4; ``repair`` covers drift with equal mode and DIPs
(a single-mode VIP re-runs ``bypass-enable`` instead: its steps are idempotent and this is how a
crash after the router step converges). Details the agent contract relies on:

- ``agent.set_vip`` always keeps flow tracking on; ``agent.flow_tracking(False)`` comes last,
  after the bypass is verified on every router.
- DIPs that leave a VIP drain (``options.drain_timeout``); a DIP still draining on an agent (an
  interrupted transition) counts as leaving, so its wait is not skipped on the re-run.
- bypass-move sends ``dips=[d2]`` with transit pin d1 and d1 draining: the agent accepts a
  transit DIP outside ``dips`` only when it is also in ``drain.dips``. Bypass-disable to a DIP
  set without d likewise drains d. Bypass-move ends with ``agent.set_vip(single, [d2])`` before
  ``agent.flow_tracking(False)``: the agent holds mode multi since the move's first step, and
  ``agent.flow_tracking`` keeps the mode it finds.
- Without routers in the inventory an agent's ``single`` is taken as it is (there is no bypass
  to wait for); without agents the agent side is vacuous.
- A target mode ``empty`` gets neither transit pin nor drain: the agent rejects its traffic.

Router changes of a transition only touch objects of that VIP's prefix. PBR bindings, which all
rules of an IP version share, ride with the first transition that adds a rule of that version on
the router (in the same push, rules render before bindings), or, when the last rules go, with the
rule removal that runs last (the executor may run transitions side by side, step by step); drift
without such a transition rides with the first VIP that has a rule of that version there. A VIP
known only from agents or routers is named after the agent's name for it, else its address.
"""

from __future__ import annotations

import gc
import ipaddress
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lbauto.core.intent import (
    RouterIntent,
    agent_next_hops,
    bindings_for,
    intent_key,
    is_bypass,
    object_sort_key,
    router_intent,
)
from lbauto.core.model import (
    Agent,
    AgentVip,
    Drain,
    Inventory,
    IPAddress,
    Method,
    Mode,
    ObservedState,
    OwnedObject,
    PbrBinding,
    PbrRule,
    Router,
    StaticRoute,
    Transit,
    Vip,
    addr_key,
    host_prefix,
)
from lbauto.core.plan import (
    Action,
    Kind,
    Plan,
    PlanOptions,
    RouterChange,
    RouterPlan,
    Step,
    Transition,
    VipState,
)
from lbauto.errors import InventoryError

_Objs = tuple[OwnedObject, ...]
_EMPTY: _Objs = ()
#: A prefix as (version, network as int, length): hashes and compares in C, unlike ip_network,
#: whose Python-level __hash__/__eq__ dominated planning 10,000 VIPs x 100 routers.
_PKey = tuple[int, int, int]
_OKey = tuple[Any, ...]
#: One prefix's objects on a router, sorted, with their object_sort_key()s.
_Entry = tuple[_Objs, tuple[_OKey, ...]]
_HOST_LEN = {4: 32, 6: 128}


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """A big plan allocates about one object per VIP x router and no cycles; the cyclic GC
    re-scanning that growing heap doubled the planning time of 10,000 VIPs x 100 routers."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class _RouterWork:
    """One router's observed objects by prefix, its target and its per-prefix changes."""

    router: Router
    observed: dict[_PKey, _Entry]
    observed_bindings: frozenset[PbrBinding]
    intent: RouterIntent
    target: dict[_PKey, _Entry]
    # scope index -> (remove, add), only VIPs with a change. Keyed by the VIP's position in the
    # plan because an int hashes in C while an ip_network hashes in Python (a 1M-lookup hot spot).
    changes: dict[int, tuple[_Objs, _Objs]] = field(default_factory=dict)
    bind_remove: dict[int, list[PbrBinding]] = field(default_factory=dict)
    bind_add: dict[int, list[PbrBinding]] = field(default_factory=dict)


@dataclass
class _Scope:
    """The VIPs being planned, in plan order, with their names and desired values."""

    keys: list[_PKey]
    addresses: dict[_PKey, IPAddress]
    names: dict[_PKey, str]
    desired: dict[_PKey, Vip]
    complete: bool  # every VIP is planned (no ``only``)


def make_plan(
    inv: Inventory,
    observed: ObservedState,
    options: PlanOptions = PlanOptions(),
    only: Collection[str] | None = None,
) -> Plan:
    """Plan every VIP (or those named in ``only``: names, or addresses as text).

    Pure and deterministic: the same arguments give the same plan, byte for byte. Raises
    :class:`~lbauto.errors.InventoryError` for a name in ``only`` that is nowhere, or when a
    router would need more PBR rules than its platform allows.
    """
    with _no_cyclic_gc():
        return _make_plan(inv, observed, options, only)


def _make_plan(
    inv: Inventory,
    observed: ObservedState,
    options: PlanOptions,
    only: Collection[str] | None,
) -> Plan:
    agents = sorted(inv.agents, key=lambda a: a.name)
    routers = sorted(inv.routers, key=lambda r: r.name)
    hops = agent_next_hops(agents)
    desired = {_address_key(v.address): v for v in inv.vips}
    agent_obs = _agent_observations(observed, agents)
    router_obs = {r.name: _index_router(observed, r) for r in routers}
    scope = _scope(desired, agent_obs, router_obs, only)
    planned = [scope.desired[k] for k in scope.keys if k in scope.desired]
    intents = _IntentCache(planned, agents)
    fresh: dict[int, dict[int, tuple[_Objs, _Objs]]] = {}
    works = [_router_work(r, router_obs[r.name], intents, scope, fresh) for r in routers]
    observed_at = _observed_by_prefix(works)
    facts = [
        _vip_facts(k, scope, agents, agent_obs.get(k, {}), observed_at.get(k, ()), hops, works)
        for k in scope.keys
    ]

    def removal_step(i: int, work: _RouterWork) -> int:
        return _removal_step(facts[i], work, work.changes[i], options, works)

    _attach_bindings(works, scope, removal_step)
    table = _ChangeTable(works)
    transitions = tuple(
        _transition(scope.addresses[k], scope.names[k], facts[i], table.for_vip(i), options, works)
        for i, k in enumerate(scope.keys)
    )
    concat: dict[object, tuple[_Objs, _Objs]] = {}
    return Plan(transitions, tuple(_router_plan(w, scope, concat) for w in works), options)


def _address_key(address: IPAddress) -> _PKey:
    return (address.version, int(address), address.max_prefixlen)


# ------------------------------------------------------------------------------- observation


def _agent_observations(
    observed: ObservedState, agents: Sequence[Agent]
) -> dict[_PKey, dict[str, AgentVip]]:
    """prefix -> {agent name: AgentVip}, inventory agents only, in agent name order."""
    out: dict[_PKey, dict[str, AgentVip]] = {}
    for agent in agents:
        for address, av in observed.agents.get(agent.name, {}).items():
            out.setdefault(_address_key(address), {})[agent.name] = av
    return out


@dataclass
class _ObservedIndex:
    by_prefix: dict[_PKey, _Entry]
    addresses: dict[_PKey, IPAddress]
    bindings: frozenset[PbrBinding]
    rules: frozenset[PbrRule]


def _index_router(observed: ObservedState, router: Router) -> _ObservedIndex:
    lists: dict[_PKey, list[tuple[_OKey, OwnedObject]]] = {}
    addresses: dict[_PKey, IPAddress] = {}
    bindings: set[PbrBinding] = set()
    rules: set[PbrRule] = set()
    for obj in observed.router_objects(router.name):
        if isinstance(obj, PbrBinding):
            bindings.add(obj)
            continue
        okey = object_sort_key(obj)
        pkey: _PKey = okey[:3]
        if pkey[2] != _HOST_LEN[pkey[0]]:
            continue  # not a VIP prefix: never lbauto's (see lbauto.core.intent.owned_host_objects)
        if isinstance(obj, PbrRule):
            rules.add(obj)
        entry = lists.get(pkey)
        if entry is None:
            lists[pkey] = [(okey, obj)]
            addresses[pkey] = obj.prefix.network_address
        else:
            entry.append((okey, obj))
    by_prefix = {k: _entry(pairs) for k, pairs in lists.items()}
    return _ObservedIndex(by_prefix, addresses, frozenset(bindings), frozenset(rules))


def _entry(pairs: list[tuple[_OKey, OwnedObject]]) -> _Entry:
    if len(pairs) > 1:
        pairs.sort(key=lambda pair: pair[0])
    return tuple(o for _, o in pairs), tuple(k for k, _ in pairs)


def _scope(
    desired: Mapping[_PKey, Vip],
    agent_obs: Mapping[_PKey, Mapping[str, AgentVip]],
    router_obs: Mapping[str, _ObservedIndex],
    only: Collection[str] | None,
) -> _Scope:
    addresses: dict[_PKey, IPAddress] = {}
    for idx in router_obs.values():
        addresses.update(idx.addresses)
    for k, avs in agent_obs.items():
        addresses[k] = next(iter(avs.values())).address
    names: dict[_PKey, str] = {}
    for k in addresses.keys() - desired.keys():
        seen = [av.name for av in agent_obs.get(k, {}).values() if av.name]
        names[k] = seen[0] if seen else str(addresses[k])
    for k, vip in desired.items():
        addresses[k] = vip.address
        names[k] = vip.name
    keys = sorted(addresses)
    if only is not None:
        wanted = set(only)
        matched = {k for k in keys if names[k] in wanted or str(addresses[k]) in wanted}
        found = {names[k] for k in matched} | {str(addresses[k]) for k in matched}
        # An address is fine even where nothing has it (e.g. re-running a finished delete).
        unknown = sorted(n for n in wanted - found if not _is_address(n))
        if unknown:
            raise InventoryError(
                [
                    f"VIP {name!r} is neither in the inventory nor observed on an agent or router"
                    " (give a VIP name from vips.yaml or an address)"
                    for name in unknown
                ]
            )
        keys = [k for k in keys if k in matched]
    return _Scope(keys, addresses, names, dict(desired), only is None)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------ intent


class _IntentCache:
    """Routers with the same settings and PBR rules have the same intent: compute it once,
    with its objects keyed and sorted the way observed objects are."""

    def __init__(self, vips: Sequence[Vip], agents: Sequence[Agent]) -> None:
        self._vips, self._agents = vips, agents
        self._prefixes = [host_prefix(v.address) for v in vips]
        self._pbr_override = any(v.method is Method.PBR for v in vips)
        self._cache: dict[object, tuple[RouterIntent, dict[_PKey, _Entry]]] = {}

    def get(self, router: Router, obs: _ObservedIndex) -> tuple[RouterIntent, dict[_PKey, _Entry]]:
        key = intent_key(router, obs.rules, self._pbr_override)
        cached = self._cache.get(key)
        if cached is None:
            intent = router_intent(self._vips, self._agents, router, obs.rules, self._prefixes)
            target: dict[_PKey, _Entry] = {}
            for vip, prefix in zip(self._vips, self._prefixes, strict=True):
                objs = intent.by_prefix.get(prefix, _EMPTY)
                if objs:
                    target[_address_key(vip.address)] = (
                        objs,
                        tuple(object_sort_key(o) for o in objs),
                    )
            cached = (intent, target)
            self._cache[key] = cached
        return cached


def _router_work(
    router: Router,
    obs: _ObservedIndex,
    intents: _IntentCache,
    scope: _Scope,
    fresh: dict[int, dict[int, tuple[_Objs, _Objs]]],
) -> _RouterWork:
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
                    changes[i] = (_EMPTY, want[0])
            fresh[id(target)] = changes
        return _RouterWork(router, observed, obs.bindings, intent, target, changes)
    changes = {}
    for i, k in enumerate(scope.keys):
        want = target.get(k)
        have = observed.get(k)
        if want is None:
            if have is not None:
                changes[i] = (have[0], _EMPTY)
            continue
        if have is None:
            changes[i] = (_EMPTY, want[0])
            continue
        if want[1] == have[1]:
            continue
        want_keys, have_keys = set(want[1]), set(have[1])
        changes[i] = (
            tuple(o for o, ok in zip(*have, strict=True) if ok not in want_keys),
            tuple(o for o, ok in zip(*want, strict=True) if ok not in have_keys),
        )
    return _RouterWork(router, observed, obs.bindings, intent, target, changes)


def _observed_by_prefix(
    works: Sequence[_RouterWork],
) -> dict[_PKey, list[tuple[_RouterWork, _Objs]]]:
    """prefix -> the routers (in name order) that carry objects for it."""
    out: dict[_PKey, list[tuple[_RouterWork, _Objs]]] = {}
    for w in works:
        for k, entry in w.observed.items():
            out.setdefault(k, []).append((w, entry[0]))
    return out


# ---------------------------------------------------------------------------------- bindings


def _has_rule(objs: _Objs) -> bool:
    return any(isinstance(o, PbrRule) for o in objs)


def _attach_bindings(
    works: Sequence[_RouterWork], scope: _Scope, removal_step: Callable[[int, _RouterWork], int]
) -> None:
    in_scope = set(scope.keys) if not scope.complete else None
    versions_of = [k[0] for k in scope.keys]
    for work in works:
        target = work.intent.bindings
        if in_scope is not None:
            # VIPs outside ``only`` keep their observed rules, and with them their bindings.
            versions = {
                k[0]
                for k, entry in work.observed.items()
                if k not in in_scope and _has_rule(entry[0])
            }
            target = target | bindings_for(work.router, versions)
        if target == work.observed_bindings:
            continue
        for version in (4, 6):
            add = sorted(b for b in target - work.observed_bindings if b.version == version)
            rem = sorted(b for b in work.observed_bindings - target if b.version == version)
            if add:
                carrier = _add_carrier(work, scope, versions_of, version)
                if carrier is not None:
                    work.bind_add.setdefault(carrier, []).extend(add)
            if rem:
                carrier = _remove_carrier(work, scope, versions_of, version, removal_step)
                if carrier is not None:
                    work.bind_remove.setdefault(carrier, []).extend(rem)


def _add_carrier(
    work: _RouterWork, scope: _Scope, versions_of: Sequence[int], version: int
) -> int | None:
    same = [i for i, v in enumerate(versions_of) if v == version]
    for i in same:
        change = work.changes.get(i)
        if change and _has_rule(change[1]):
            return i
    return _first_with_target_rule(work, scope, same)


def _remove_carrier(
    work: _RouterWork,
    scope: _Scope,
    versions_of: Sequence[int],
    version: int,
    removal_step: Callable[[int, _RouterWork], int],
) -> int | None:
    same = [i for i, v in enumerate(versions_of) if v == version]
    removing = [i for i in same if (c := work.changes.get(i)) and _has_rule(c[0])]
    if removing:
        # The executor may run the transitions side by side, step by step: unbind the policy
        # with the rule removal that comes last, so no remaining rule is left unbound.
        return max(removing, key=lambda i: (removal_step(i, work), i))
    first = _first_with_target_rule(work, scope, same)
    if first is not None:
        return first
    if same:
        return same[0]
    return 0 if scope.keys else None


def _first_with_target_rule(work: _RouterWork, scope: _Scope, indices: Sequence[int]) -> int | None:
    for i in indices:
        want = work.target.get(scope.keys[i])
        if want is not None and _has_rule(want[0]):
            return i
    return None


# ------------------------------------------------------------------------------- transitions


class _ChangeTable:
    """Per-VIP router changes. Routers that share a change table (nothing observed, same
    intent) are looked up once per group: this runs VIPs x routers times in a big plan."""

    def __init__(self, works: Sequence[_RouterWork]) -> None:
        group_of: dict[int, int] = {}
        self._tables: list[dict[int, tuple[_Objs, _Objs]]] = []
        # In router order: (group index, name, None) or (-1, name, work) for routers that carry
        # binding changes of their own.
        self._members: list[tuple[int, str, _RouterWork | None]] = []
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
            remove, add = w.changes.get(i, (_EMPTY, _EMPTY))
            brem, badd = w.bind_remove.get(i), w.bind_add.get(i)
            if brem:
                remove = (*remove, *brem)
            if badd:
                add = (*add, *badd)
            if remove or add:
                out.append(RouterChange(name, remove, add))
        return out


def _from_state(
    observed_at: Sequence[tuple[_RouterWork, _Objs]],
    agent_vips: Mapping[str, AgentVip],
    hops: Collection[IPAddress],
    has_routers: bool,
) -> VipState:
    for w, objs in observed_at:
        for obj in objs:
            if is_bypass(obj, w.router, hops):
                assert isinstance(obj, (StaticRoute, PbrRule))
                return VipState(Mode.SINGLE, (obj.next_hop,))
    for av in agent_vips.values():
        dips = tuple(sorted(set(av.dips), key=addr_key))
        if av.mode is Mode.SINGLE and (has_routers or len(dips) != 1):
            # No router bypass: traffic still goes through the LB, whatever the agent flag says.
            return VipState(Mode.MULTI if dips else Mode.EMPTY, dips)
        return VipState(av.mode, dips)
    return VipState(None)


def _agents_differ(
    vip: Vip | None, to: VipState, agents: Sequence[Agent], agent_vips: Mapping[str, AgentVip]
) -> bool:
    if to.mode is None:
        return bool(agent_vips)
    tracking = to.mode is not Mode.SINGLE
    dips = set(to.dips)
    for agent in agents:
        av = agent_vips.get(agent.name)
        if (
            av is None
            or av.mode is not to.mode
            or set(av.dips) != dips
            or av.flow_tracking is not tracking
            or (vip is not None and av.name is not None and av.name != vip.name)
        ):
            return True
    return False


def _leaving_dips(
    from_: VipState, to: VipState, agent_vips: Mapping[str, AgentVip]
) -> tuple[IPAddress, ...]:
    """DIPs that carry flows now and are not in the target: they drain."""
    dips: set[IPAddress] = set(from_.dips)
    for av in agent_vips.values():
        dips.update(av.dips)
        if av.drain is not None and av.drain.timeout > 0:
            dips.update(av.drain.dips)
    return tuple(sorted(dips - set(to.dips), key=addr_key))


def _push(changes: Sequence[RouterChange]) -> list[Step]:
    if not changes:
        return []
    rcs = tuple(changes)
    return [Step(Action.ROUTER_PUSH, routers=rcs), Step(Action.ROUTER_VERIFY, routers=rcs)]


def _set_vip(to: VipState, transit: Transit | None = None, drain: Drain | None = None) -> Step:
    return Step(
        Action.SET_VIP,
        mode=to.mode,
        dips=to.dips,
        flow_tracking=True,
        transit=transit,
        drain=drain,
    )


def _tracking_off() -> Step:
    return Step(Action.FLOW_TRACKING, flow_tracking=False)


def _kind(from_: VipState, to: VipState, agents_differ: bool, routers_differ: bool) -> Kind:
    if to.mode is None:
        return Kind.DELETE
    if from_.mode is None:
        return Kind.CREATE
    if from_ == to:
        if not agents_differ and not routers_differ:
            return Kind.NONE
        return Kind.BYPASS_ENABLE if to.mode is Mode.SINGLE else Kind.REPAIR
    if to.mode is Mode.SINGLE:
        return Kind.BYPASS_MOVE if from_.mode is Mode.SINGLE else Kind.BYPASS_ENABLE
    if from_.mode is Mode.SINGLE:
        return Kind.BYPASS_DISABLE
    return Kind.REBALANCE


@dataclass(frozen=True)
class _VipFacts:
    """What decides a VIP's transition, router changes aside."""

    vip: Vip | None
    to: VipState
    from_: VipState
    agent_vips: Mapping[str, AgentVip]
    agents_differ: bool


def _vip_facts(
    k: _PKey,
    scope: _Scope,
    agents: Sequence[Agent],
    agent_vips: Mapping[str, AgentVip],
    observed_at: Sequence[tuple[_RouterWork, _Objs]],
    hops: Collection[IPAddress],
    works: Sequence[_RouterWork],
) -> _VipFacts:
    vip = scope.desired.get(k)
    to = VipState(vip.mode, tuple(sorted(vip.dips, key=addr_key))) if vip else VipState(None)
    from_ = _from_state(observed_at, agent_vips, hops, bool(works))
    if not agents and from_.mode is None and to.mode is not None:
        # Without agents the agent side is vacuous: only a missing bypass can differ.
        single_missing = to.mode is Mode.SINGLE and bool(works)
        from_ = VipState(Mode.MULTI, to.dips) if single_missing else to
    return _VipFacts(vip, to, from_, agent_vips, _agents_differ(vip, to, agents, agent_vips))


def _transition(
    address: IPAddress,
    name: str,
    facts: _VipFacts,
    changes: Sequence[RouterChange],
    options: PlanOptions,
    works: Sequence[_RouterWork],
) -> Transition:
    f = facts
    kind = _kind(f.from_, f.to, f.agents_differ, bool(changes))
    steps = _steps(kind, f.from_, f.to, changes, f.agent_vips, f.agents_differ, options, works)
    return Transition(name, address, kind, f.from_, f.to, tuple(steps))


def _removal_step(
    f: _VipFacts,
    work: _RouterWork,
    change: tuple[_Objs, _Objs],
    options: PlanOptions,
    works: Sequence[_RouterWork],
) -> int:
    """The index of the step that removes this VIP's PBR rule from ``work``'s router."""
    kind = _kind(f.from_, f.to, f.agents_differ, True)
    rc = RouterChange(work.router.name, *change)
    steps = _steps(kind, f.from_, f.to, [rc], f.agent_vips, f.agents_differ, options, works)
    for k, step in enumerate(steps):
        if step.action is Action.ROUTER_PUSH and any(_has_rule(c.remove) for c in step.routers):
            return k
    return 0


def _steps(
    kind: Kind,
    from_: VipState,
    to: VipState,
    changes: Sequence[RouterChange],
    agent_vips: Mapping[str, AgentVip],
    agents_differ: bool,
    options: PlanOptions,
    works: Sequence[_RouterWork],
) -> list[Step]:
    leaving = _leaving_dips(from_, to, agent_vips)
    drain = Drain(leaving, options.drain_timeout) if leaving and to.dips else None
    if kind is Kind.NONE:
        return []
    if kind is Kind.DELETE:
        return [*_push(changes), *([Step(Action.REMOVE_VIP)] if agent_vips else [])]
    if kind is Kind.CREATE:
        tail = [_tracking_off()] if to.mode is Mode.SINGLE else []
        return [_set_vip(to), *_push(changes), *tail]
    if kind is Kind.REPAIR:
        head = [_set_vip(to)] if agents_differ else []
        return [*head, *_push(changes)]
    if kind is Kind.BYPASS_ENABLE:
        wait = [Step(Action.WAIT_DRAIN, drain=drain)] if drain else []
        return [_set_vip(to, drain=drain), *wait, *_push(changes), _tracking_off()]
    if kind is Kind.BYPASS_DISABLE:
        if to.mode is Mode.EMPTY:
            return [_set_vip(to), *_push(changes)]
        transit = Transit(from_.dips[0], options.transit_seconds)
        return [_set_vip(to, transit=transit, drain=drain), *_push(changes)]
    if kind is Kind.BYPASS_MOVE:
        assert drain is not None  # d1 always leaves
        transit = Transit(from_.dips[0], options.transit_seconds)
        first, second = _split_move(changes, works)
        return [
            Step(
                Action.SET_VIP,
                mode=Mode.MULTI,
                dips=to.dips,
                flow_tracking=True,
                transit=transit,
                drain=drain,
            ),
            *_push(first),
            Step(Action.WAIT_DRAIN, drain=drain),
            *_push(second),
            # The agent still holds mode multi from the first step: flag it single again (this
            # also ends the pin, harmless now that every router sends the VIP to d2).
            _set_vip(to),
            _tracking_off(),
        ]
    # rebalance
    return [_set_vip(to, drain=drain), *_push(changes)]


def _split_move(
    changes: Sequence[RouterChange], works: Sequence[_RouterWork]
) -> tuple[list[RouterChange], list[RouterChange]]:
    """Bypass-move: removals and LB routes first; the new bypass only after d1 drained."""
    routers = {w.router.name: w.router for w in works}
    first: list[RouterChange] = []
    second: list[RouterChange] = []
    for rc in changes:
        router = routers[rc.router]
        late = tuple(o for o in rc.add if _is_bypass_role(o, router))
        early = tuple(o for o in rc.add if not _is_bypass_role(o, router))
        if rc.remove or early:
            first.append(RouterChange(rc.router, rc.remove, early))
        if late:
            second.append(RouterChange(rc.router, (), late))
    return first, second


def _is_bypass_role(obj: OwnedObject, router: Router) -> bool:
    if isinstance(obj, StaticRoute):
        return obj.distance != router.lb_distance
    return True  # PBR rules and the bindings that come with the first rule


# ------------------------------------------------------------------------------ router plans


def _router_plan(
    work: _RouterWork,
    scope: _Scope,
    concat: dict[object, tuple[_Objs, _Objs]],
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
