"""The executor's seams: what it needs from an agent and from the routers.

Production adapters wrap :mod:`lbauto.agent.client` and :mod:`lbauto.push`; unit tests use plain
hand-written fakes (``tests/unit/fakes.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from lbauto.core.model import AgentVip, Drain, IPAddress, Mode, Transit
from lbauto.core.plan import RouterChange


class AgentPort(Protocol):
    """One agent's control API, as the executor uses it."""

    name: str

    def get_vip(self, address: IPAddress) -> AgentVip | None: ...

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
    ) -> AgentVip: ...

    def delete_vip(self, address: IPAddress, *, if_match: int | None = None) -> None: ...

    def flows_per_dip(self, address: IPAddress) -> Mapping[IPAddress, int]: ...


class RouterPort(Protocol):
    """All routers, as the executor uses them.

    ``push`` commits every change (one commit per router), verifies and confirms it, and is
    all-or-nothing: if one router fails, the others changed in this call are rolled back and a
    :class:`~lbauto.errors.PushError` naming the router is raised.
    """

    def push(self, changes: Sequence[RouterChange]) -> None: ...

    def verify(self, changes: Sequence[RouterChange]) -> None: ...
