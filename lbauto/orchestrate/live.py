"""The production :class:`~lbauto.orchestrate.apply.Devices`: real agents and real routers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console

from lbauto.agentclient import AgentClient, HttpAgentClient
from lbauto.errors import AgentError, StateError
from lbauto.model import (
    AgentVip,
    Drain,
    Inventory,
    IPAddress,
    Mode,
    ObservedState,
    Transit,
)
from lbauto.orchestrate.apply import Devices
from lbauto.plan import Plan
from lbauto.push.observe import observe_routers
from lbauto.push.pipeline import RouterFleet, push

#: Default seconds of silence after which a connection on a draining DIP counts as ended.
DRAIN_IDLE = 5.0


class AgentAdapter:
    """An :class:`~lbauto.orchestrate.ports.AgentPort` over the HTTP agent client."""

    def __init__(self, client: AgentClient, drain_idle: float | None = None) -> None:
        self.client = client
        self.name = client.name
        self.drain_idle = drain_idle

    def get_vip(self, address: IPAddress) -> AgentVip | None:
        return self.client.get_vip(address)

    def put_vip(
        self,
        address: IPAddress,
        *,
        name: str | None,
        mode: Mode,
        dips: Sequence[IPAddress],
        flow_tracking: bool,
        transit: Transit | None = None,
        drain: Drain | None = None,
        if_match: int | None = None,
    ) -> AgentVip:
        return self.client.put_vip(
            address,
            mode=mode,
            dips=dips,
            flow_tracking=flow_tracking,
            name=name,
            transit=transit,
            drain=drain,
            generation=if_match,
        )

    def delete_vip(self, address: IPAddress, *, if_match: int | None = None) -> None:
        self.client.delete_vip(address, generation=if_match)

    def flows_per_dip(self, address: IPAddress) -> Mapping[IPAddress, int]:
        return self.client.flows(address, active_within=self.drain_idle).per_dip


def observe_agents(clients: Sequence[AgentClient]) -> dict[str, dict[IPAddress, AgentVip]]:
    """Every agent's VIPs; any unreachable agent stops the run before a device is touched."""
    out: dict[str, dict[IPAddress, AgentVip]] = {}
    problems: list[str] = []
    for c in clients:
        try:
            out[c.name] = c.list_vips()
        except AgentError as exc:
            problems.append(str(exc))
    if problems:
        raise StateError("cannot observe: " + " | ".join(problems))
    return out


def live_devices(
    inv: Inventory, console: Console | None = None, drain_idle: float | None = DRAIN_IDLE
) -> Devices:
    """Real agents and routers. ``drain_idle``: a drain wait counts a connection as ended once
    it has carried no packet for that many seconds (None: only when its flow entry expires)."""
    clients: list[AgentClient] = [HttpAgentClient.for_agent(a) for a in inv.agents]
    fleet = RouterFleet(inv.routers, console=console, template_dir=inv.template_dir)

    def observe() -> ObservedState:
        agents = observe_agents(clients)
        routers = observe_routers(inv)
        fleet.observed = {name: r.objects for name, r in routers.items()}
        return ObservedState(agents=agents, routers=routers)

    def diffs(plan: Plan, observed: ObservedState) -> Mapping[str, str]:
        from lbauto.plan import RouterChange

        fleet.observed = {n: observed.router_objects(n) for n in observed.routers}
        changes = [
            RouterChange(rp.router, remove=rp.remove, add=rp.add)
            for rp in plan.routers
            if rp.add or rp.remove
        ]
        result = push(fleet.jobs(changes), dry_run=True)
        return {r.router: r.diff for r in result.results}

    def close() -> None:
        for c in clients:
            c.close()

    return Devices(
        agents=[AgentAdapter(c, drain_idle) for c in clients],
        routers=fleet,
        observe=observe,
        diffs=diffs,
        close=close,
    )
