"""The router-wide objects of BGP LB routes: the LBAUTO peer group and one neighbor per agent.

No VIP owns them, so they ride in no transition: the plan carries them per router
(:attr:`lbauto.core.plan.Plan.pool`), and the executor pushes their additions before the first
transition step (a VIP's import entry is useless without the sessions) and their removals after
the last one (a VIP's traffic keeps its LB route until its transition moved it). The per-VIP
half, :class:`~lbauto.core.model.BgpAccept`, is the VIP's LB route in the decision table. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lbauto.core.intent import agent_next_hops, object_sort_key
from lbauto.core.model import (
    Agent,
    BgpGroup,
    BgpPeer,
    LbRoute,
    ObservedState,
    PoolObject,
    Router,
)
from lbauto.core.plan import RouterChange, RouterPlan


def desired_pool(router: Router, agents: Iterable[Agent]) -> frozenset[PoolObject]:
    """The peer group and a neighbor per agent next hop, on a router in bgp mode."""
    b = router.bgp
    if router.lb_route is not LbRoute.BGP or b is None:
        return frozenset()
    # Without BFD its timers are not on the router: leave them out, as the parsers do.
    interval, multiplier = (b.bfd_interval_ms, b.bfd_multiplier) if b.bfd else (0, 0)
    group = BgpGroup(b.asn, b.agent_asn, b.maximum_paths, b.bfd, interval, multiplier)
    return frozenset({group, *(BgpPeer(h) for h in agent_next_hops(agents))})


def pool_changes(
    routers: Sequence[Router],
    agents: Sequence[Agent],
    observed: ObservedState,
    removals: bool = True,
) -> tuple[RouterChange, ...]:
    """Per router (in the order given), the pool objects to remove and to add.
    ``removals=False`` (a plan limited to some VIPs): additions only, since the VIPs left out
    may still depend on the sessions (a bgp -> static switch of a few VIPs keeps them)."""
    out: list[RouterChange] = []
    for router in routers:
        seen = observed.routers.get(router.name)
        have = seen.pool if seen is not None else frozenset()
        want = desired_pool(router, agents)
        if have == want:
            continue
        remove = tuple(sorted(have - want, key=object_sort_key)) if removals else ()
        add = tuple(sorted(want - have, key=object_sort_key))
        if removals or add:
            out.append(RouterChange(router.name, remove, add))
    return tuple(out)


def with_pool(rp: RouterPlan, pool: Sequence[RouterChange]) -> RouterPlan:
    """``rp`` with the router's pool changes (the same object when it has none)."""
    for rc in pool:
        if rc.router == rp.router:
            return RouterPlan(rp.router, rp.platform, (*rp.remove, *rc.remove), (*rp.add, *rc.add))
    return rp
