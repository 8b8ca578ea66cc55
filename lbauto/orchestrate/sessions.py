"""Each agent's BGP and BFD session state as every bgp-mode router sees it (``lbauto status``).

Read from the router side, through the router's NAPALM driver: BGP from NAPALM's own
``get_bgp_neighbors`` (every driver has it; lbauto's FRR driver builds it from ``show bgp vrf
all neighbors json``), BFD where the platform can say (FRR: ``show bfd peers json`` through the
driver's ``cli``). A router that cannot be read is reported as such, never as "all down".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbauto.core.model import Agent, Inventory, LbRoute, Router
from lbauto.errors import LbautoError
from lbauto.push.drivers import Opener, describe, device_errors, mask, open_driver

BFD_COMMAND = "show bfd peers json"


@dataclass(frozen=True)
class Session:
    """One agent address as a neighbor of one router."""

    bgp: str  # "up", "down", "disabled" or "absent" (not configured on the router)
    uptime: int | None = None  # seconds the session is up
    accepted: int | None = None  # prefixes accepted from it (after the import policy)
    bfd: str | None = None  # "up", "down", "init", ... or None where not read


@dataclass(frozen=True)
class RouterSessions:
    router: str
    #: agent name -> address -> session
    agents: Mapping[str, Mapping[str, Session]] = field(default_factory=dict)
    error: str | None = None


def bgp_routers(inv: Inventory) -> list[Router]:
    return [r for r in inv.routers if r.lb_route is LbRoute.BGP]


def _bfd_states(driver: Any, router: Router) -> dict[str, str] | None:
    if router.platform != "frr":
        return None  # NAPALM has no BFD getter; FRR's driver answers vtysh's JSON
    out = driver.cli([BFD_COMMAND], encoding="json").get(BFD_COMMAND)
    if not isinstance(out, list):
        return {}
    return {
        str(p.get("peer")): str(p.get("status", "?"))
        for p in out
        if isinstance(p, dict) and not p.get("multihop")
    }


def sessions_from(
    agents: Sequence[Agent], neighbors: Mapping[str, Any], bfd: Mapping[str, str] | None
) -> dict[str, dict[str, Session]]:
    """Per agent and address: the session in ``neighbors`` (``get_bgp_neighbors``' global VRF)."""
    peers = (neighbors.get("global") or {}).get("peers") or {}
    out: dict[str, dict[str, Session]] = {}
    for agent in agents:
        for address in (agent.address, agent.address6):
            if address is None:
                continue
            key = str(address)
            peer = peers.get(key)
            state = None if bfd is None else bfd.get(key, "absent")
            if peer is None:
                session = Session("absent", bfd=state)
            else:
                up = bool(peer.get("is_up"))
                enabled = bool(peer.get("is_enabled", True))
                families = peer.get("address_family") or {}
                accepted = sum(int(f.get("accepted_prefixes", 0)) for f in families.values())
                session = Session(
                    "up" if up else ("down" if enabled else "disabled"),
                    int(peer.get("uptime", -1)) if up else None,
                    accepted,
                    state,
                )
            out.setdefault(agent.name, {})[key] = session
    return out


def read_sessions(
    router: Router, agents: Sequence[Agent], opener: Opener = open_driver
) -> RouterSessions:
    try:
        driver = opener(router)
    except LbautoError as exc:
        return RouterSessions(router.name, error=str(exc))
    try:
        neighbors = driver.get_bgp_neighbors()
        bfd = _bfd_states(driver, router)
    except device_errors() as exc:
        return RouterSessions(router.name, error=mask(describe(exc)))
    finally:
        driver.close()
    return RouterSessions(router.name, sessions_from(agents, neighbors, bfd))


def sessions_json(found: Sequence[RouterSessions]) -> dict[str, Any]:
    """``status`` document's ``bgp``: router -> agent -> address -> session (or ``error``)."""
    doc: dict[str, Any] = {}
    for rs in found:
        if rs.error is not None:
            doc[rs.router] = {"error": rs.error}
            continue
        doc[rs.router] = {
            agent: {
                address: {"bgp": s.bgp, "uptime": s.uptime, "accepted": s.accepted, "bfd": s.bfd}
                for address, s in per.items()
            }
            for agent, per in rs.agents.items()
        }
    return doc
