"""What "an agent" is to the rest of lbauto: one Protocol, implemented by the HTTP client
(:class:`lbauto.agent.client.HttpAgentClient`) and by the tests' fakes, used by the executor,
the observers and the CLI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lbauto.core.model import AgentVip, Drain, IPAddress, Mode, Transit
from lbauto.errors import AgentError


@dataclass(frozen=True)
class FlowCounts:
    """A VIP's flow entries on one agent: in all, and per DIP."""

    total: int
    per_dip: Mapping[IPAddress, int]


@dataclass(frozen=True)
class VipPut:
    """One entry of :meth:`AgentApi.change_vips`: create or replace a VIP, as ``put_vip``
    does (``if_match``: the generation the VIP must have; None: whatever it has)."""

    address: IPAddress
    mode: Mode
    dips: tuple[IPAddress, ...]
    flow_tracking: bool
    name: str | None = None
    transit: Transit | None = None
    drain: Drain | None = None
    if_match: int | None = None


@dataclass(frozen=True)
class VipDelete:
    """One entry of :meth:`AgentApi.change_vips`: remove a VIP. A VIP the agent does not
    have is not an error (the delete's goal holds), whatever ``if_match`` says."""

    address: IPAddress
    if_match: int | None = None


VipChange = VipPut | VipDelete


@dataclass(frozen=True)
class Rejected:
    """An entry of a batch the agent refused: its position, VIP, HTTP status and why."""

    index: int
    address: str
    status: int
    detail: str


class BatchRejectedError(AgentError):
    """The agent refused a :meth:`AgentApi.change_vips` batch because of ``rejected`` (every
    entry it refused) and changed nothing; the other entries would have been accepted."""

    def __init__(self, rejected: Sequence[Rejected], agent: str | None = None) -> None:
        self.rejected = tuple(rejected)
        first = self.rejected[0]
        more = f" (and {len(self.rejected) - 1} more)" if len(self.rejected) > 1 else ""
        super().__init__(
            f"batch refused, nothing changed: VIP {first.address}: {first.detail}{more}",
            agent,
            first.status,
        )


class AgentApi(Protocol):
    """One agent's control API (docs/agent.md). Failures raise
    :class:`~lbauto.errors.AgentError`; a stale ``if_match`` raises
    :class:`~lbauto.errors.ConflictError`."""

    name: str

    def health(self) -> dict[str, Any]: ...

    def list_vips(self) -> dict[IPAddress, AgentVip]: ...

    def get_vip(self, address: IPAddress) -> AgentVip | None: ...

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
    ) -> AgentVip: ...

    def delete_vip(
        self, address: IPAddress, *, if_match: int | None = None, missing_ok: bool = True
    ) -> None: ...

    def change_vips(self, changes: Sequence[VipChange]) -> list[AgentVip | None]:
        """Every change in one request and one kernel transaction, all or nothing; per
        change, the VIP as the agent now has it (None for a delete). Entries the agent
        refuses raise :class:`BatchRejectedError` naming each of them; nothing changed then. At
        most one entry per address."""
        ...

    def flows(self, address: IPAddress, active_within: float | None = None) -> FlowCounts: ...

    def flows_per_dip(self, address: IPAddress) -> Mapping[IPAddress, int]:
        """Connections per DIP that a drain wait still counts (see ``drain_idle``)."""
        ...

    def flows_per_dip_many(
        self, addresses: Sequence[IPAddress]
    ) -> dict[IPAddress, Mapping[IPAddress, int] | None]:
        """:meth:`flows_per_dip` of many VIPs in one request (None: a VIP the agent does not
        have)."""
        ...

    def close(self) -> None: ...


def stale_generation(change: VipChange, now: AgentVip | None) -> str | None:
    """Why ``change``'s ``if_match`` refuses a VIP that is ``now`` (None: it does not)."""
    if change.if_match is None or (isinstance(change, VipDelete) and now is None):
        return None
    if now is not None and now.generation == change.if_match:
        return None
    have = f"generation {now.generation}" if now else "no such VIP"
    return f"generation mismatch: If-Match {change.if_match}, the VIP has {have}"


def change_each(agent: AgentApi, changes: Sequence[VipChange]) -> list[AgentVip | None]:
    """:meth:`AgentApi.change_vips` for an agent held in memory: every ``if_match`` is
    checked before anything changes (so a refused batch changes nothing), then each change
    is made with ``put_vip``/``delete_vip``, which cannot fail after that check."""
    seen: set[IPAddress] = set()
    rejected: list[Rejected] = []
    for i, c in enumerate(changes):
        if c.address in seen:
            rejected.append(Rejected(i, str(c.address), 400, "the VIP appears twice in the batch"))
            continue
        seen.add(c.address)
        stale = stale_generation(c, agent.get_vip(c.address))
        if stale is not None:
            rejected.append(Rejected(i, str(c.address), 412, stale))
    if rejected:
        raise BatchRejectedError(rejected, agent.name)
    out: list[AgentVip | None] = []
    for c in changes:
        if isinstance(c, VipDelete):
            agent.delete_vip(c.address, if_match=c.if_match)
            out.append(None)
            continue
        out.append(
            agent.put_vip(
                c.address,
                mode=c.mode,
                dips=c.dips,
                flow_tracking=c.flow_tracking,
                name=c.name,
                transit=c.transit,
                drain=c.drain,
                if_match=c.if_match,
            )
        )
    return out
