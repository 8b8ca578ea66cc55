"""Plain hand-written fakes for the executor's seams: an :class:`~lbauto.agent.protocol.AgentApi`
and a :class:`~lbauto.orchestrate.ports.RouterPort`.

They keep state in memory exactly like the real ports promise to: generations and If-Match on
the agent, all-or-nothing pushes with one commit per router on the routers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lbauto.agent.protocol import (
    AgentApi,
    BatchRejectedError,
    FlowCounts,
    Rejected,
    VipChange,
    VipDelete,
    stale_generation,
)
from lbauto.core.model import (
    AgentVip,
    Drain,
    IPAddress,
    Mode,
    ObservedRouter,
    PendingCommit,
    RouterObject,
    Transit,
    split_pool,
)
from lbauto.core.plan import RouterChange
from lbauto.errors import AgentError, ConflictError, LbautoError, PushError
from lbauto.orchestrate.ports import BeforeConfirm, RouterPort


class SimulatedCrash(BaseException):
    """lbauto "dies" here: nothing after it runs (like SIGKILL, but in-process)."""


@dataclass
class FakeAgent:
    name: str
    vips: dict[IPAddress, AgentVip] = field(default_factory=dict)
    flows_of: dict[IPAddress, dict[IPAddress, int]] = field(default_factory=dict)
    fail_on: set[str] = field(default_factory=set)  # method names that raise AgentError
    #: VIPs whose changes the agent refuses (HTTP 400: in a batch, the batch changes nothing)
    refuse: set[IPAddress] = field(default_factory=set)
    #: Operations, one per VIP (a batch of two puts: two ``put_vip``), in order.
    calls: list[str] = field(default_factory=list)
    #: Requests that carried many VIPs: (method, number of VIPs).
    batches: list[tuple[str, int]] = field(default_factory=list)

    def _check(self, what: str) -> None:
        self.calls.append(what)
        if what in self.fail_on:
            raise AgentError(f"{what} refused (injected)", agent=self.name, status=503)

    def health(self) -> dict[str, Any]:
        self._check("health")
        return {"status": "ok"}

    def list_vips(self) -> dict[IPAddress, AgentVip]:
        self._check("list_vips")
        return dict(self.vips)

    def get_vip(self, address: IPAddress) -> AgentVip | None:
        self._check("get_vip")
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
        self._check("put_vip")
        if address in self.refuse:
            raise AgentError(f"VIP {address} refused (injected)", agent=self.name, status=400)
        now = self.vips.get(address)
        if if_match is not None and (now is None or now.generation != if_match):
            raise ConflictError("generation mismatch", agent=self.name, status=412)
        gen = (now.generation or 0) + 1 if now else 1
        vip = AgentVip(address, mode, tuple(dips), flow_tracking, gen, name, transit, drain)
        self.vips[address] = vip
        if not flow_tracking:
            self.flows_of.pop(address, None)
        return vip

    def delete_vip(
        self, address: IPAddress, *, if_match: int | None = None, missing_ok: bool = True
    ) -> None:
        self._check("delete_vip")
        now = self.vips.get(address)
        if now is not None and if_match is not None and now.generation != if_match:
            raise ConflictError("generation mismatch", agent=self.name, status=412)
        self.vips.pop(address, None)
        self.flows_of.pop(address, None)

    def change_vips(self, changes: Sequence[VipChange]) -> list[AgentVip | None]:
        """All or nothing, as the agent's batch: every entry is checked (injected failures,
        refusals, If-Match) before any VIP changes."""
        self.batches.append(("change_vips", len(changes)))
        if "change_vips" in self.fail_on:  # the request as a whole fails (``calls`` lists VIPs)
            raise AgentError("change_vips refused (injected)", agent=self.name, status=503)
        rejected: list[Rejected] = []
        for i, c in enumerate(changes):
            self._check("delete_vip" if isinstance(c, VipDelete) else "put_vip")
            now = self.vips.get(c.address)
            if c.address in self.refuse and not isinstance(c, VipDelete):
                rejected.append(Rejected(i, str(c.address), 400, "refused (injected)"))
            elif stale_generation(c, now) is not None:
                rejected.append(Rejected(i, str(c.address), 412, "generation mismatch"))
        if rejected:
            raise BatchRejectedError(rejected, self.name)
        out: list[AgentVip | None] = []
        for c in changes:
            if isinstance(c, VipDelete):
                self.vips.pop(c.address, None)
                self.flows_of.pop(c.address, None)
                out.append(None)
                continue
            now = self.vips.get(c.address)
            gen = (now.generation or 0) + 1 if now else 1
            vip = AgentVip(
                c.address, c.mode, c.dips, c.flow_tracking, gen, c.name, c.transit, c.drain
            )
            self.vips[c.address] = vip
            if not c.flow_tracking:
                self.flows_of.pop(c.address, None)
            out.append(vip)
        return out

    def flows(self, address: IPAddress, active_within: float | None = None) -> FlowCounts:
        per_dip = dict(self.flows_of.get(address, {}))
        return FlowCounts(sum(per_dip.values()), per_dip)

    def flows_per_dip(self, address: IPAddress) -> Mapping[IPAddress, int]:
        self._check("flows_per_dip")
        return dict(self.flows_of.get(address, {}))

    def flows_per_dip_many(
        self, addresses: Sequence[IPAddress]
    ) -> dict[IPAddress, Mapping[IPAddress, int] | None]:
        self.batches.append(("flows_per_dip_many", len(addresses)))
        out: dict[IPAddress, Mapping[IPAddress, int] | None] = {}
        for a in addresses:
            self._check("flows_per_dip")
            out[a] = dict(self.flows_of.get(a, {})) if a in self.vips else None
        return out

    def close(self) -> None:
        self.calls.append("close")

    def settled(self) -> dict[IPAddress, AgentVip]:
        """VIPs as a finished run leaves them: timers expired, generation ignored."""
        return {
            a: replace(v, generation=None, transit=None, drain=None, name=None)
            for a, v in self.vips.items()
        }


@dataclass
class FakeRouters:
    """Routers with commit-confirm: a push commits, calls ``before_confirm``, then confirms.
    ``crash_before_confirm`` makes the run die right after ``before_confirm`` (the commits stay
    pending, as on a router whose controller was killed)."""

    objects: dict[str, set[RouterObject]] = field(default_factory=dict)
    fail_push: set[str] = field(default_factory=set)  # routers whose push fails
    fail_verify: set[str] = field(default_factory=set)
    commits: dict[str, int] = field(default_factory=dict)
    pushes: list[tuple[RouterChange, ...]] = field(default_factory=list)
    crash_before_confirm: bool = False
    #: Per router: the pending commit and the objects its rollback (or revert) restores.
    pending: dict[str, tuple[PendingCommit, set[RouterObject]]] = field(default_factory=dict)
    resolved: list[tuple[str, str | None, bool]] = field(default_factory=list)

    def push(
        self, changes: Sequence[RouterChange], before_confirm: BeforeConfirm | None = None
    ) -> None:
        self.pushes.append(tuple(changes))
        before = {rc.router: set(self.objects.get(rc.router, set())) for rc in changes}
        for rc in changes:
            if rc.router in self.pending:
                raise PushError("Pending commit confirm already in process!", router=rc.router)
        for rc in changes:
            if rc.router in self.fail_push:
                # all-or-nothing: the routers changed in this call go back
                self._restore(before)
                raise PushError("commit failed (injected)", router=rc.router)
            objs = self.objects.setdefault(rc.router, set())
            objs.difference_update(rc.remove)
            objs.update(rc.add)
            self.commits[rc.router] = self.commits.get(rc.router, 0) + 1
        ids = {rc.router: f"c{len(self.pushes)}-{rc.router}" for rc in changes}
        if before_confirm is not None:
            try:
                before_confirm(ids)
            except LbautoError as exc:
                self._restore(before)
                raise PushError(f"push not confirmed: {exc}") from exc
        if self.crash_before_confirm:
            for name, objs in before.items():
                self.pending[name] = (PendingCommit(ids[name], deadline=4e9), objs)
            raise SimulatedCrash

    def _restore(self, before: Mapping[str, set[RouterObject]]) -> None:
        for name, objs in before.items():
            self.objects[name] = set(objs)

    def verify(self, changes: Sequence[RouterChange]) -> None:
        for rc in changes:
            if rc.router in self.fail_verify:
                raise PushError("route not active (injected)", router=rc.router)
            have = self.objects.get(rc.router, set())
            missing = [o for o in rc.add if o not in have]
            stale = [o for o in rc.remove if o in have]
            if missing or stale:
                raise PushError(f"missing {missing} stale {stale}", router=rc.router)

    def observed(self) -> dict[str, ObservedRouter]:
        out = {}
        for n, o in self.objects.items():
            owned, pool = split_pool(o)
            out[n] = ObservedRouter(
                n, owned, self.pending[n][0] if n in self.pending else None, pool
            )
        return out

    def resolve(self, router: str, pending: PendingCommit, confirm: bool) -> str:
        """Confirm or roll back the pending commit (a Devices.resolve)."""
        have, before = self.pending.pop(router)
        assert have.commit_id == pending.commit_id
        if not confirm:
            self.objects[router] = set(before)
        self.resolved.append((router, pending.commit_id, confirm))
        return "confirmed" if confirm else "rolled back"

    def revert(self, router: str) -> None:
        """The router's own timer runs out."""
        _, before = self.pending.pop(router)
        self.objects[router] = set(before)


if TYPE_CHECKING:  # the fakes satisfy the production Protocols (checked by mypy)
    _agent: AgentApi = FakeAgent("a")
    _routers: RouterPort = FakeRouters()
