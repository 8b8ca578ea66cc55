"""What "an agent" is to the rest of lbauto: one Protocol, implemented by the HTTP client
(:class:`lbauto.agent.client.HttpAgentClient`) and by the tests' fakes, used by the executor,
the observers and the CLI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lbauto.core.model import AgentVip, Drain, IPAddress, Mode, Transit


@dataclass(frozen=True)
class FlowCounts:
    """A VIP's flow entries on one agent: in all, and per DIP."""

    total: int
    per_dip: Mapping[IPAddress, int]


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

    def flows(self, address: IPAddress, active_within: float | None = None) -> FlowCounts: ...

    def flows_per_dip(self, address: IPAddress) -> Mapping[IPAddress, int]:
        """Connections per DIP that a drain wait still counts (see ``drain_idle``)."""
        ...

    def close(self) -> None: ...
