"""Check mode's devices: agents and routers held in memory, seeded from one observation.

``lbauto play --check`` reads the real devices once (or an observed-state file), then runs every
task against these copies, so a later task sees what the earlier ones would have done (a drain,
then an assertion on the result) while no real device, file or lock is touched. The copies do
what the real ones promise: generations and ``If-Match`` on the agents, one commit per router
per push, verification against what was pushed. Transit pins and drains are taken as ended at
once (the state a finished run leaves), and flow counts are not predicted: a VIP without flow
tracking has none, any other count is unknown (``None``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbauto.agent.protocol import FlowCounts, VipChange, change_each
from lbauto.core.model import (
    AgentVip,
    Drain,
    IPAddress,
    Mode,
    ObservedRouter,
    ObservedState,
    OwnedObject,
    PoolObject,
    RouterObject,
    Transit,
    split_pool,
)
from lbauto.core.plan import RouterChange
from lbauto.errors import ConflictError, PushError
from lbauto.orchestrate.apply import Devices
from lbauto.orchestrate.ports import BeforeConfirm


@dataclass
class MemoryAgent:
    name: str
    vips: dict[IPAddress, AgentVip] = field(default_factory=dict)

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "predicted": True}

    def list_vips(self) -> dict[IPAddress, AgentVip]:
        return dict(self.vips)

    def get_vip(self, address: IPAddress) -> AgentVip | None:
        return self.vips.get(address)

    def put_vip(
        self,
        address: IPAddress,
        *,
        mode: Mode,
        dips: Sequence[IPAddress],
        flow_tracking: bool,
        name: str | None = None,
        transit: Transit | None = None,
        drain: Drain | None = None,
        if_match: int | None = None,
    ) -> AgentVip:
        now = self.vips.get(address)
        if if_match is not None and (now is None or now.generation != if_match):
            raise ConflictError("generation mismatch (predicted)", agent=self.name, status=412)
        generation = (now.generation or 0) + 1 if now else 1
        # Pins and drains are taken as ended: the state the finished run leaves.
        vip = AgentVip(address, mode, tuple(dips), flow_tracking, generation, name)
        self.vips[address] = vip
        return vip

    def delete_vip(
        self, address: IPAddress, *, if_match: int | None = None, missing_ok: bool = True
    ) -> None:
        now = self.vips.get(address)
        if now is not None and if_match is not None and now.generation != if_match:
            raise ConflictError("generation mismatch (predicted)", agent=self.name, status=412)
        self.vips.pop(address, None)

    def flows(self, address: IPAddress, active_within: float | None = None) -> FlowCounts:
        return FlowCounts(0, {})

    def flows_per_dip(self, address: IPAddress) -> Mapping[IPAddress, int]:
        return {}  # drains are predicted to end at once

    def change_vips(self, changes: Sequence[VipChange]) -> list[AgentVip | None]:
        return change_each(self, changes)

    def flows_per_dip_many(
        self, addresses: Sequence[IPAddress]
    ) -> dict[IPAddress, Mapping[IPAddress, int] | None]:
        return {a: {} for a in addresses}  # drains are predicted to end at once

    def close(self) -> None:
        """Nothing to close."""


@dataclass
class MemoryRouters:
    objects: dict[str, set[RouterObject]] = field(default_factory=dict)

    def push(
        self, changes: Sequence[RouterChange], before_confirm: BeforeConfirm | None = None
    ) -> None:
        before = {rc.router: set(self.objects.get(rc.router, set())) for rc in changes}
        for rc in changes:
            objs = self.objects.setdefault(rc.router, set())
            objs.difference_update(rc.remove)
            objs.update(rc.add)
        if before_confirm is not None:
            try:
                before_confirm({rc.router: None for rc in changes})
            except BaseException:
                self.objects.update(before)  # all-or-nothing, as the real port promises
                raise

    def verify(self, changes: Sequence[RouterChange]) -> None:
        for rc in changes:
            have = self.objects.get(rc.router, set())
            if any(o not in have for o in rc.add) or any(o in have for o in rc.remove):
                raise PushError("predicted state differs from the push", router=rc.router)


def predicted_devices(agent_names: Sequence[str], observed: ObservedState) -> Devices:
    """In-memory devices that start as ``observed``."""
    agents = [MemoryAgent(n, dict(observed.agents.get(n, {}))) for n in agent_names]
    routers = MemoryRouters({n: {*r.objects, *r.pool} for n, r in observed.routers.items()})

    def observe() -> ObservedState:
        return ObservedState(
            agents={a.name: dict(a.vips) for a in agents},
            routers={n: ObservedRouter(n, *_owned_and_pool(o)) for n, o in routers.objects.items()},
        )

    return Devices(agents=agents, routers=routers, observe=observe)


def _owned_and_pool(
    objects: set[RouterObject],
) -> tuple[frozenset[OwnedObject], None, frozenset[PoolObject]]:
    owned, pool = split_pool(objects)
    return owned, None, pool
