"""Where the apply lock and the journal live: the seam between lbauto and its state store.

:class:`StateBackend` is what ``apply`` and ``scale`` use. Two implementations:

- :class:`~lbauto.orchestrate.backends.local.LocalBackend` (the default): ``flock`` on
  ``<state_dir>/apply.lock`` and the journal files of the state directory, exactly as before;
- :class:`~lbauto.orchestrate.backends.etcd.EtcdBackend` (``backend: {type: etcd, ...}`` in
  ``lbauto.yaml``): a lease lock and a journal shared through etcd, so runs on different
  machines queue and read each other's journal; the local files are written as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lbauto.core.model import Inventory
from lbauto.orchestrate.journal import Journal, JournalEvent


@dataclass(frozen=True)
class BackendInfo:
    """What a saved plan records about the backend it was computed under."""

    type: str
    lock: str
    endpoints: tuple[str, ...] = ()
    prefix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "endpoints": list(self.endpoints),
            "prefix": self.prefix,
            "lock": self.lock,
        }

    def same_store(self, other: BackendInfo) -> bool:
        """One lock and journal? The order of endpoints and the local path do not matter
        (a plan made in one checkout may be applied from another)."""
        if self.type != other.type:
            return False
        return self.type == "local" or (
            set(self.endpoints) == set(other.endpoints) and self.prefix == other.prefix
        )

    def text(self) -> str:
        if self.type == "local":
            return "local files"
        return f"etcd {', '.join(self.endpoints)} prefix {self.prefix}"


class StateBackend(Protocol):
    def info(self) -> BackendInfo: ...

    def lock(self, command: str = "apply") -> AbstractContextManager[None]:
        """Hold the inventory's apply lock; :class:`~lbauto.errors.LockedError` names the
        holder when someone else has it."""
        ...

    def journal(self) -> Journal:
        """The journal of this run (call with the lock held)."""
        ...

    def read_journal(self) -> Iterator[JournalEvent]:
        """Every event, oldest first."""
        ...


def backend_for(inv: Inventory, state_dir: Path) -> StateBackend:
    """The inventory's backend (``lbauto.yaml`` ``backend:``); nothing is contacted yet."""
    if inv.backend is None:
        from lbauto.orchestrate.backends.local import LocalBackend

        return LocalBackend(state_dir)
    from lbauto.orchestrate.backends.etcd import EtcdStateBackend

    return EtcdStateBackend(inv.backend, state_dir)
