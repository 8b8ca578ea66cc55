"""The decision table (DESIGN section 4): which kind of transition moves a VIP, and its steps.

LB first, router second on the way to the LB path; router first, agent state last on the way
out. Every ``router.push`` is followed by a ``router.verify`` of the same changes.

=============== ======================= ==========================================================
kind            from -> to              steps
=============== ======================= ==========================================================
create          absent -> any           agent.set_vip(to) ; router push+verify (LB route, and
                                        the bypass if single) ; if single: agent.flow_tracking off
delete          any -> absent           router push+verify (remove bypass and LB route) ;
                                        agent.remove_vip (where an agent has it)
bypass-enable   multi/empty -> single   agent.set_vip(single [d], leaving DIPs drain) ;
                                        agent.wait_drain ; router push+verify (bypass -> d) ;
                                        agent.flow_tracking off
bypass-disable  single(d) -> multi(D)   agent.set_vip(multi D, transit pin d, d drains if not in
                                        D) ; router push+verify (bypass removed); to ``empty``:
                                        no pin, no drain
bypass-move     single(d1) -> single    agent.set_vip(multi [d2], pin d1, d1 drains) ; router
                (d2)                    push+verify (removals, LB routes) ; agent.wait_drain ;
                                        router push+verify (bypass -> d2) ; agent.set_vip(single
                                        [d2]) ; agent.flow_tracking off
rebalance       multi(D1) -> multi(D2)  agent.set_vip(D2, removed DIPs drain) ; router
                                        push+verify (only if a router drifted)
repair          equal, a device drifted agent.set_vip(to) if an agent differs ; router
                                        push+verify
none            equal                   nothing
=============== ======================= ==========================================================

The LB route is a static route per agent, or on a router with ``lbauto_lb_route: bgp`` the
VIP's import policy entry (:class:`~lbauto.core.model.BgpAccept`: the agents announce the VIP);
the bypass is a static route or PBR rule either way, so the table is the same in both modes.
The BGP sessions themselves belong to no VIP (:mod:`lbauto.core.pool`).

A single VIP whose devices drifted re-runs ``bypass-enable`` (its steps are idempotent: this is
how a crash after its router step converges). ``agent.set_vip`` always keeps flow tracking on;
``agent.flow_tracking`` keeps the mode it finds. Pure: no I/O, nothing process-wide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lbauto.core.model import Drain, IPAddress, Mode, Transit
from lbauto.core.plan import Action, Kind, PlanOptions, RouterChange, Step, VipState

#: Bypass-move's split of its router changes: (before the drain wait, after it).
SplitMove = Callable[[Sequence[RouterChange]], tuple[list[RouterChange], list[RouterChange]]]


def kind_of(from_: VipState, to: VipState, agents_differ: bool, routers_differ: bool) -> Kind:
    """The table's first two columns."""
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
class Facts:
    """What a recipe needs besides the kind."""

    from_: VipState
    to: VipState
    changes: Sequence[RouterChange]
    #: DIPs that carry flows now and are not in the target.
    leaving: tuple[IPAddress, ...]
    #: Some agent lacks the VIP or holds it differently.
    agents_differ: bool
    #: Some agent holds the VIP at all (delete only removes it where it is).
    on_agents: bool
    options: PlanOptions
    split_move: SplitMove

    @property
    def drain(self) -> Drain | None:
        """Leaving DIPs drain, except towards ``empty`` (the agent rejects its traffic)."""
        if self.leaving and self.to.dips:
            return Drain(self.leaving, self.options.drain_timeout)
        return None

    @property
    def pin(self) -> Transit:
        """The transit pin to the previous single DIP."""
        return Transit(self.from_.dips[0], self.options.transit_seconds)


def steps_of(kind: Kind, facts: Facts) -> list[Step]:
    """The table's third column for one VIP."""
    return _RECIPES[kind](facts)


# ------------------------------------------------------------------------ one recipe per row


def _create(f: Facts) -> list[Step]:
    tail = [_tracking_off()] if f.to.mode is Mode.SINGLE else []
    return [_set_vip(f.to), *_push(f.changes), *tail]


def _delete(f: Facts) -> list[Step]:
    return [*_push(f.changes), *([Step(Action.REMOVE_VIP)] if f.on_agents else [])]


def _bypass_enable(f: Facts) -> list[Step]:
    drain = f.drain
    wait = [Step(Action.WAIT_DRAIN, drain=drain)] if drain else []
    return [_set_vip(f.to, drain=drain), *wait, *_push(f.changes), _tracking_off()]


def _bypass_disable(f: Facts) -> list[Step]:
    if f.to.mode is Mode.EMPTY:
        return [_set_vip(f.to), *_push(f.changes)]
    return [_set_vip(f.to, transit=f.pin, drain=f.drain), *_push(f.changes)]


def _bypass_move(f: Facts) -> list[Step]:
    drain = f.drain
    assert drain is not None  # d1 always leaves
    first, second = f.split_move(f.changes)
    # The agent accepts a transit DIP outside ``dips`` only when it also drains.
    multi = Step(
        Action.SET_VIP,
        mode=Mode.MULTI,
        dips=f.to.dips,
        flow_tracking=True,
        transit=f.pin,
        drain=drain,
    )
    return [
        multi,
        *_push(first),
        Step(Action.WAIT_DRAIN, drain=drain),
        *_push(second),
        # The agent still holds mode multi from the first step: flag it single again (this also
        # ends the pin, harmless now that every router sends the VIP to d2).
        _set_vip(f.to),
        _tracking_off(),
    ]


def _rebalance(f: Facts) -> list[Step]:
    return [_set_vip(f.to, drain=f.drain), *_push(f.changes)]


def _repair(f: Facts) -> list[Step]:
    head = [_set_vip(f.to)] if f.agents_differ else []
    return [*head, *_push(f.changes)]


def _none(_: Facts) -> list[Step]:
    return []


_RECIPES: dict[Kind, Callable[[Facts], list[Step]]] = {
    Kind.CREATE: _create,
    Kind.DELETE: _delete,
    Kind.BYPASS_ENABLE: _bypass_enable,
    Kind.BYPASS_DISABLE: _bypass_disable,
    Kind.BYPASS_MOVE: _bypass_move,
    Kind.REBALANCE: _rebalance,
    Kind.REPAIR: _repair,
    Kind.NONE: _none,
}


# ----------------------------------------------------------------------------------- steps


def _push(changes: Sequence[RouterChange]) -> list[Step]:
    if not changes:
        return []
    rcs = tuple(changes)
    return [Step(Action.ROUTER_PUSH, routers=rcs), Step(Action.ROUTER_VERIFY, routers=rcs)]


def _set_vip(to: VipState, transit: Transit | None = None, drain: Drain | None = None) -> Step:
    return Step(
        Action.SET_VIP, mode=to.mode, dips=to.dips, flow_tracking=True, transit=transit, drain=drain
    )


def _tracking_off() -> Step:
    return Step(Action.FLOW_TRACKING, flow_tracking=False)
