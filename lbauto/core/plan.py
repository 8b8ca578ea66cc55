"""The plan: what the pure planner returns and the executor runs.

A plan is a tuple of transitions (one per VIP, sorted by address) plus, per router, the whole
change of lbauto-owned objects from observed to desired. Steps carry typed values only; router
config lines are rendered from the objects by :mod:`lbauto.platforms.render` when needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from lbauto.core.model import (
    BgpAccept,
    BgpGroup,
    BgpPeer,
    Drain,
    IPAddress,
    Mode,
    PbrBinding,
    PbrRule,
    RouterObject,
    StaticRoute,
    Transit,
)


class Kind(StrEnum):
    """Transition kinds (DESIGN section 4). ``repair`` is lbauto's addition: the VIP's mode and
    DIPs are already right but some device drifted (a route deleted by hand, tracking left on)."""

    CREATE = "create"
    DELETE = "delete"
    BYPASS_ENABLE = "bypass-enable"
    BYPASS_DISABLE = "bypass-disable"
    BYPASS_MOVE = "bypass-move"
    REBALANCE = "rebalance"
    REPAIR = "repair"
    NONE = "none"


class Action(StrEnum):
    SET_VIP = "agent.set_vip"
    WAIT_DRAIN = "agent.wait_drain"
    FLOW_TRACKING = "agent.flow_tracking"
    REMOVE_VIP = "agent.remove_vip"
    ROUTER_PUSH = "router.push"
    ROUTER_VERIFY = "router.verify"


@dataclass(frozen=True)
class VipState:
    """A VIP's mode and DIPs; ``mode is None`` means absent."""

    mode: Mode | None
    dips: tuple[IPAddress, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value if self.mode else "absent",
            "dips": [str(d) for d in self.dips],
        }


class RouterChange(NamedTuple):
    """lbauto-owned objects to remove from and add to one router (removals apply first).

    A NamedTuple rather than a frozen dataclass: a big plan holds one per VIP per router
    (10,000 VIPs x 100 routers = 1 M), and a tuple is built in half the time.
    """

    router: str
    remove: tuple[RouterObject, ...] = ()
    add: tuple[RouterObject, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.remove and not self.add


@dataclass(frozen=True)
class Step:
    """One ordered step of a transition. Which fields matter depends on ``action``:

    - agent.set_vip: mode, dips, flow_tracking, transit, drain (sent to every agent)
    - agent.wait_drain: drain (wait until the draining DIPs have no flows, at most drain.timeout)
    - agent.flow_tracking: flow_tracking (False also flushes the VIP's flow state)
    - agent.remove_vip: nothing else
    - router.push: routers (per-router removals and additions)
    - router.verify: routers (what must now be present / absent on each router)
    """

    action: Action
    mode: Mode | None = None
    dips: tuple[IPAddress, ...] = ()
    flow_tracking: bool | None = None
    transit: Transit | None = None
    drain: Drain | None = None
    routers: tuple[RouterChange, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action.value}
        if self.action is Action.SET_VIP:
            out["mode"] = self.mode.value if self.mode else None
            out["dips"] = [str(d) for d in self.dips]
            out["flow_tracking"] = self.flow_tracking
            if self.transit:
                out["transit"] = {"dip": str(self.transit.dip), "seconds": self.transit.seconds}
            if self.drain:
                out["drain"] = {
                    "dips": [str(d) for d in self.drain.dips],
                    "timeout": self.drain.timeout,
                }
        elif self.action is Action.WAIT_DRAIN and self.drain:
            out["dips"] = [str(d) for d in self.drain.dips]
            out["timeout"] = self.drain.timeout
        elif self.action is Action.FLOW_TRACKING:
            out["enabled"] = self.flow_tracking
        elif self.action in (Action.ROUTER_PUSH, Action.ROUTER_VERIFY):
            out["routers"] = {
                rc.router: {
                    "remove": [object_to_json(o) for o in rc.remove],
                    "add": [object_to_json(o) for o in rc.add],
                }
                for rc in self.routers
            }
        return out


@dataclass(frozen=True)
class Transition:
    vip: str
    address: IPAddress
    kind: Kind
    from_: VipState
    to: VipState
    steps: tuple[Step, ...] = ()

    @property
    def max_seconds(self) -> float:
        """Upper bound of the time the transition waits (drain waits; pins run on afterwards)."""
        return sum(s.drain.timeout for s in self.steps if s.action is Action.WAIT_DRAIN and s.drain)


@dataclass(frozen=True)
class RouterPlan:
    """The whole change of one router's lbauto-owned config, observed -> desired."""

    router: str
    platform: str
    remove: tuple[RouterObject, ...] = ()
    add: tuple[RouterObject, ...] = ()


@dataclass(frozen=True)
class PlanOptions:
    """Knobs the planner needs; the defaults are lbauto's documented defaults."""

    #: Seconds the agent pins stateless non-opening packets to the old single DIP (bypass-disable).
    transit_seconds: float = 60.0
    #: Seconds to wait at most for DIPs being removed to lose their flows.
    drain_timeout: float = 30.0


@dataclass(frozen=True)
class Plan:
    transitions: tuple[Transition, ...] = ()
    routers: tuple[RouterPlan, ...] = ()
    options: PlanOptions = field(default_factory=PlanOptions)
    #: Router-wide BGP objects (peer group, agent neighbors) to change, per router: also part
    #: of ``routers``; the executor pushes additions first and removals last
    #: (:mod:`lbauto.core.pool`).
    pool: tuple[RouterChange, ...] = ()

    @property
    def has_changes(self) -> bool:
        return any(t.kind is not Kind.NONE for t in self.transitions) or any(
            r.add or r.remove for r in self.routers
        )


def object_to_json(obj: RouterObject) -> dict[str, Any]:
    if isinstance(obj, StaticRoute):
        return {
            "type": "static",
            "prefix": str(obj.prefix),
            "next_hop": str(obj.next_hop),
            "distance": obj.distance,
            "tag": obj.tag,
        }
    if isinstance(obj, PbrRule):
        return {
            "type": "pbr",
            "seq": obj.seq,
            "prefix": str(obj.prefix),
            "next_hop": str(obj.next_hop),
        }
    if isinstance(obj, BgpAccept):
        return {"type": "bgp", "prefix": str(obj.prefix)}
    if isinstance(obj, BgpPeer):
        return {"type": "bgp-peer", "address": str(obj.address)}
    if isinstance(obj, BgpGroup):
        return {
            "type": "bgp-group",
            "asn": obj.asn,
            "agent_asn": obj.agent_asn,
            "maximum_paths": obj.maximum_paths,
            "bfd": obj.bfd,
            "bfd_interval_ms": obj.bfd_interval_ms,
            "bfd_multiplier": obj.bfd_multiplier,
        }
    assert isinstance(obj, PbrBinding)
    return {"type": "binding", "interface": obj.interface, "version": obj.version}
