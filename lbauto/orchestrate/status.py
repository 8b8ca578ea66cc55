"""``lbauto status``: desired vs observed per VIP, built purely from values already read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbauto.core.model import (
    Agent,
    AgentVip,
    Inventory,
    IPAddress,
    ObservedState,
    PbrRule,
    StaticRoute,
    addr_key,
    host_prefix,
)
from lbauto.core.plan import Kind, Plan


def bypass_on(
    observed: ObservedState, address: IPAddress, agents: tuple[Agent, ...]
) -> dict[str, str]:
    """Per router, the DIP the VIP is bypassed to (static or pbr), if any."""
    prefix = host_prefix(address)
    agent_hops = {a.next_hop(address.version) for a in agents}
    out: dict[str, str] = {}
    for name in sorted(observed.routers):
        for obj in observed.router_objects(name):
            if isinstance(obj, StaticRoute) and obj.prefix == prefix:
                if obj.next_hop not in agent_hops:
                    out[name] = f"static -> {obj.next_hop}"
            elif isinstance(obj, PbrRule) and obj.prefix == prefix:
                out[name] = f"pbr -> {obj.next_hop}"
    return out


def status_doc(
    inv: Inventory,
    observed: ObservedState,
    plan: Plan,
    flows: Mapping[str, Mapping[IPAddress, int]],
) -> dict[str, Any]:
    """The ``lbauto status --output json`` document."""
    desired = inv.vip_by_address()
    kinds = {t.address: t.kind for t in plan.transitions}
    addresses = set(desired)
    for per_agent in observed.agents.values():
        addresses.update(per_agent)
    vips = []
    for address in sorted(addresses, key=addr_key):
        want = desired.get(address)
        agents: dict[str, Any] = {}
        for agent in inv.agents:
            have: AgentVip | None = observed.agents.get(agent.name, {}).get(address)
            agents[agent.name] = (
                None
                if have is None
                else {
                    "mode": have.mode.value,
                    "dips": [str(d) for d in have.dips],
                    "flow_tracking": have.flow_tracking,
                    "generation": have.generation,
                    "flow_entries": flows.get(agent.name, {}).get(address),
                    "transit": (
                        {"dip": str(have.transit.dip), "seconds_left": have.transit.seconds}
                        if have.transit
                        else None
                    ),
                    "drain": (
                        {
                            "dips": [str(d) for d in have.drain.dips],
                            "seconds_left": have.drain.timeout,
                        }
                        if have.drain
                        else None
                    ),
                }
            )
        kind = kinds.get(address, Kind.NONE)
        vips.append(
            {
                "vip": want.name if want else _observed_name(observed, address),
                "address": str(address),
                "desired": (
                    {"mode": want.mode.value, "dips": [str(d) for d in want.dips]} if want else None
                ),
                "agents": agents,
                "bypass": bypass_on(observed, address, inv.agents),
                "pending": kind.value,
                "drift": kind is not Kind.NONE,
            }
        )
    pending = pending_commits_json(observed)
    return {
        "vips": vips,
        "pending_commits": pending,
        "in_sync": not plan.has_changes and not pending,
    }


def pending_commits_json(observed: ObservedState) -> list[dict[str, Any]]:
    """Commits waiting for confirmation, per router: drift until ``apply`` resolves them (the
    router puts its previous config back by itself at ``deadline``, epoch seconds)."""
    return [
        {"router": name, "commit": p.commit_id, "deadline": p.deadline, "session": p.session}
        for name, p in observed.pending_commits().items()
    ]


def _observed_name(observed: ObservedState, address: IPAddress) -> str:
    for per_agent in observed.agents.values():
        v = per_agent.get(address)
        if v and v.name:
            return v.name
    return "-"
