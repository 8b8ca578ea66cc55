"""The embedded default: the state directory's ``apply.lock`` and journal files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from lbauto.orchestrate.backends import BackendInfo
from lbauto.orchestrate.journal import Journal, JournalEvent, read_journal
from lbauto.orchestrate.lock import apply_lock


class LocalBackend:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def info(self) -> BackendInfo:
        return BackendInfo(type="local", lock=str(self.state_dir / "apply.lock"))

    def lock(self, command: str = "apply") -> AbstractContextManager[None]:
        return apply_lock(self.state_dir, command=command)

    def journal(self) -> Journal:
        return Journal(self.state_dir)

    def read_journal(self) -> Iterator[JournalEvent]:
        return read_journal(self.state_dir)
