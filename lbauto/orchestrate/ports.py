"""The executor's router seam (its agent seam is :class:`lbauto.agent.protocol.AgentApi`).

Production: :class:`lbauto.push.pipeline.RouterFleet`; unit tests: ``tests/unit/fakes.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lbauto.core.plan import RouterChange


class RouterPort(Protocol):
    """All routers, as the executor uses them.

    ``push`` commits every change (one commit per router), verifies and confirms it, and is
    all-or-nothing: if one router fails, the others changed in this call are rolled back and a
    :class:`~lbauto.errors.PushError` naming the router is raised.
    """

    def push(self, changes: Sequence[RouterChange]) -> None: ...

    def verify(self, changes: Sequence[RouterChange]) -> None: ...
