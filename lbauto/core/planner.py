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

import functools
import ipaddress
import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from lbauto.core._index import (
    ChangeTable,
    IndexCache,
    IntentCache,
    Objs,
    ObservedIndex,
    PKey,
    RouterWork,
    Scope,
    address_key,
    observed_by_prefix,
    router_plan,
    router_work,
)
from lbauto.core.intent import (
    agent_next_hops,
    bindings_for,
    is_bypass,
)
from lbauto.core.model import (
    Agent,
    AgentVip,
    BgpAccept,
    Inventory,
    IPAddress,
    Mode,
    ObservedState,
    PbrRule,
    Router,
    RouterObject,
    StaticRoute,
    Vip,
    addr_key,
)
from lbauto.core.plan import (
    Action,
    Kind,
    Plan,
    PlanOptions,
    RouterChange,
    Transition,
    VipState,
)
from lbauto.core.pool import pool_changes, with_pool
from lbauto.core.transitions import Facts, kind_of, steps_of
from lbauto.errors import InventoryError


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
    desired = {address_key(v.address): v for v in inv.vips}
    agent_obs = _agent_observations(observed, agents)
    indexes = IndexCache(observed)
    router_obs = {r.name: indexes.get(r) for r in routers}
    scope = _scope(desired, agent_obs, router_obs, only)
    planned = [scope.desired[k] for k in scope.keys if k in scope.desired]
    intents = IntentCache(planned, agents)
    fresh: dict[object, dict[int, tuple[Objs, Objs]]] = {}
    works = [router_work(r, router_obs[r.name], intents, scope, fresh) for r in routers]
    observed_at = observed_by_prefix(works)
    facts = [
        _vip_facts(k, scope, agents, agent_obs.get(k, {}), observed_at.get(k, ()), hops, works)
        for k in scope.keys
    ]

    def removal_step(i: int, work: RouterWork) -> int:
        return _removal_step(facts[i], work, work.changes[i], options, works)

    _attach_bindings(works, scope, removal_step)
    table = ChangeTable(works)
    transitions = tuple(
        _transition(scope.addresses[k], scope.names[k], facts[i], table.for_vip(i), options, works)
        for i, k in enumerate(scope.keys)
    )
    concat: dict[object, tuple[Objs, Objs]] = {}
    pool = pool_changes(routers, agents, observed, removals=only is None)
    plans = tuple(with_pool(router_plan(w, scope, concat), pool) for w in works)
    return Plan(transitions, plans, options, pool)


# ------------------------------------------------------------------------------- observation


def _agent_observations(
    observed: ObservedState, agents: Sequence[Agent]
) -> dict[PKey, dict[str, AgentVip]]:
    """prefix -> {agent name: AgentVip}, inventory agents only, in agent name order."""
    out: dict[PKey, dict[str, AgentVip]] = {}
    for agent in agents:
        for address, av in observed.agents.get(agent.name, {}).items():
            out.setdefault(address_key(address), {})[agent.name] = av
    return out


def _scope(
    desired: Mapping[PKey, Vip],
    agent_obs: Mapping[PKey, Mapping[str, AgentVip]],
    router_obs: Mapping[str, ObservedIndex],
    only: Collection[str] | None,
) -> Scope:
    addresses: dict[PKey, IPAddress] = {}
    # Routers share indexes, and a derived index holds its base's addresses but where it
    # touched prefixes: merging 100 routers' 10,000 addresses each cost 0.3 s.
    merged: set[int] = set()
    for idx in router_obs.values():
        if id(idx.addresses) in merged:
            continue
        merged.add(id(idx.addresses))
        if idx.base is not None and id(idx.base.addresses) in merged:
            own = idx.addresses
            addresses.update((k, own[k]) for k in idx.touched if k in own)
        else:
            addresses.update(idx.addresses)
    for k, avs in agent_obs.items():
        addresses[k] = next(iter(avs.values())).address
    names: dict[PKey, str] = {}
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
    return Scope(keys, addresses, names, dict(desired), only is None)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------ intent


# ---------------------------------------------------------------------------------- bindings


def _has_rule(objs: tuple[RouterObject, ...]) -> bool:
    return any(isinstance(o, PbrRule) for o in objs)


def _attach_bindings(
    works: Sequence[RouterWork], scope: Scope, removal_step: Callable[[int, RouterWork], int]
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
    work: RouterWork, scope: Scope, versions_of: Sequence[int], version: int
) -> int | None:
    same = [i for i, v in enumerate(versions_of) if v == version]
    for i in same:
        change = work.changes.get(i)
        if change and _has_rule(change[1]):
            return i
    return _first_with_target_rule(work, scope, same)


def _remove_carrier(
    work: RouterWork,
    scope: Scope,
    versions_of: Sequence[int],
    version: int,
    removal_step: Callable[[int, RouterWork], int],
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


def _first_with_target_rule(work: RouterWork, scope: Scope, indices: Sequence[int]) -> int | None:
    for i in indices:
        want = work.target.get(scope.keys[i])
        if want is not None and _has_rule(want[0]):
            return i
    return None


# ------------------------------------------------------------------------------- transitions


def _from_state(
    observed_at: Sequence[tuple[RouterWork, Objs]],
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
        dips = sorted_dips(av.dips)
        if av.mode is Mode.SINGLE and (has_routers or len(dips) != 1):
            # No router bypass: traffic still goes through the LB, whatever the agent flag says.
            return VipState(Mode.MULTI if dips else Mode.EMPTY, dips)
        return VipState(av.mode, dips)
    return VipState(None)


def sorted_dips(dips: Sequence[IPAddress]) -> tuple[IPAddress, ...]:
    """``dips`` without duplicates in address order (as given when they already are: agents
    and state files list them so, and checking costs no address hash)."""
    keys = list(map(addr_key, dips))
    if all(map(operator.lt, keys, keys[1:])):
        return tuple(dips)
    return tuple(sorted(set(dips), key=addr_key))


def _agents_differ(
    vip: Vip | None, to: VipState, agents: Sequence[Agent], agent_vips: Mapping[str, AgentVip]
) -> bool:
    if to.mode is None:
        return bool(agent_vips)
    tracking = to.mode is not Mode.SINGLE
    dips = None
    to_keys = list(map(addr_key, to.dips))
    for agent in agents:
        av = agent_vips.get(agent.name)
        if av is None or av.mode is not to.mode:
            return True
        # Agents report sorted DIPs: equal keys settle it without hashing an address (an
        # ip_address hashes, and compares, in Python).
        if av.dips is not to.dips and list(map(addr_key, av.dips)) != to_keys:
            dips = set(to.dips) if dips is None else dips
            if set(av.dips) != dips:
                return True
        if (
            av.flow_tracking is not tracking
            or av.needs_resend
            or (vip is not None and av.name is not None and av.name != vip.name)
        ):
            return True
    return False


def _leaving_dips(
    from_: VipState, to: VipState, agent_vips: Mapping[str, AgentVip]
) -> tuple[IPAddress, ...]:
    """DIPs that carry flows now and are not in the target: they drain."""
    if not agent_vips and not from_.dips:
        return ()
    dips: set[IPAddress] = set(from_.dips)
    for av in agent_vips.values():
        dips.update(av.dips)
        if av.drain is not None and av.drain.timeout > 0:
            dips.update(av.drain.dips)
    return tuple(sorted(dips - set(to.dips), key=addr_key))


@dataclass(frozen=True)
class _VipFacts:
    """What decides a VIP's transition, router changes aside."""

    vip: Vip | None
    to: VipState
    from_: VipState
    agent_vips: Mapping[str, AgentVip]
    agents_differ: bool


def _vip_facts(
    k: PKey,
    scope: Scope,
    agents: Sequence[Agent],
    agent_vips: Mapping[str, AgentVip],
    observed_at: Sequence[tuple[RouterWork, Objs]],
    hops: Collection[IPAddress],
    works: Sequence[RouterWork],
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
    works: Sequence[RouterWork],
) -> Transition:
    kind = kind_of(facts.from_, facts.to, facts.agents_differ, bool(changes))
    # The table's ``none`` row has no steps; its recipe facts (the leaving DIPs) cost ~20 us a
    # VIP, and a deployed fleet is almost all ``none``.
    steps = (
        [] if kind is Kind.NONE else steps_of(kind, _recipe_facts(facts, changes, options, works))
    )
    return Transition(name, address, kind, facts.from_, facts.to, tuple(steps))


def _recipe_facts(
    f: _VipFacts,
    changes: Sequence[RouterChange],
    options: PlanOptions,
    works: Sequence[RouterWork],
) -> Facts:
    return Facts(
        from_=f.from_,
        to=f.to,
        changes=changes,
        leaving=_leaving_dips(f.from_, f.to, f.agent_vips),
        agents_differ=f.agents_differ,
        on_agents=bool(f.agent_vips),
        options=options,
        split_move=functools.partial(_split_move, works=works),
    )


def _removal_step(
    f: _VipFacts,
    work: RouterWork,
    change: tuple[Objs, Objs],
    options: PlanOptions,
    works: Sequence[RouterWork],
) -> int:
    """The index of the step that removes this VIP's PBR rule from ``work``'s router."""
    kind = kind_of(f.from_, f.to, f.agents_differ, True)
    rc = RouterChange(work.router.name, *change)
    steps = steps_of(kind, _recipe_facts(f, [rc], options, works))
    for k, step in enumerate(steps):
        if step.action is Action.ROUTER_PUSH and any(_has_rule(c.remove) for c in step.routers):
            return k
    return 0


def _split_move(
    changes: Sequence[RouterChange], *, works: Sequence[RouterWork]
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


def _is_bypass_role(obj: RouterObject, router: Router) -> bool:
    if isinstance(obj, StaticRoute):
        return obj.distance != router.lb_distance
    # A BgpAccept is a VIP's LB route in bgp mode; PBR rules and the bindings that come with
    # the first rule are bypass.
    return not isinstance(obj, BgpAccept)


# ------------------------------------------------------------------------------ router plans
