"""The executor's router seam (its agent seam is :class:`lbauto.agent.protocol.AgentApi`).

Production: :class:`lbauto.push.pipeline.RouterFleet`; unit tests: ``tests/unit/fakes.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from lbauto.core.plan import RouterChange

#: Called once every router of a push committed and verified, before any confirm, with each
#: changed router's commit id (None where the driver has none). Raising rolls the push back.
BeforeConfirm = Callable[[Mapping[str, str | None]], None]


class RouterPort(Protocol):
    """All routers, as the executor uses them.

    ``push`` commits every change (one commit per router), verifies and confirms it, and is
    all-or-nothing: if one router fails, the others changed in this call are rolled back and a
    :class:`~lbauto.errors.PushError` naming the router is raised. ``before_confirm`` runs
    between the commits and their confirmation (the executor journals the commits there).
    """

    def push(
        self, changes: Sequence[RouterChange], before_confirm: BeforeConfirm | None = None
    ) -> None: ...

    def verify(self, changes: Sequence[RouterChange]) -> None: ...
