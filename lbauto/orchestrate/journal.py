"""The journal: every step's start, end and result, appended as it happens.

Two files in the inventory's state directory, written line by line and fsynced at once so a
SIGKILL loses nothing already done:

- ``journal.jsonl`` - one JSON object per event, for machines;
- ``journal.log``   - the same event as one readable line, for operators (``tail -f``).

A step's entry is on disk *before* the step acts: :meth:`Journal.record` raises
:class:`~lbauto.errors.JournalError` when it cannot write (disk full, read-only, gone), and the
executor then does not run the step. A write cut short by a full disk is truncated back, so
the files never end in half a line written by this code; a reader still skips lines that do not
parse (a journal written by an older lbauto, or a disk that lied about an fsync).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbauto.errors import JournalError

#: Events, in the order a run writes them.
EVENTS = (
    "run-start",  # data: every transition's kind, target and steps, before any step
    "start",
    "commit",  # routers committed and verified, not yet confirmed (data: per router)
    "end",
    "fail",
    "undo",
    "undo-fail",
    "resolve",  # apply confirmed or rolled back a commit an earlier run left pending
    "run-end",
)


@dataclass(frozen=True)
class JournalEvent:
    ts: float
    run: str
    event: str
    vip: str | None = None
    step: int | None = None
    action: str | None = None
    device: str | None = None
    detail: str | None = None
    data: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def to_text(self) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.ts))
        stamp += f".{int(self.ts * 1000) % 1000:03d}Z"
        parts = [stamp, self.run, self.event.upper()]
        if self.vip:
            parts.append(f"vip={self.vip}")
        if self.step is not None:
            parts.append(f"step={self.step}")
        if self.action:
            parts.append(self.action)
        if self.device:
            parts.append(f"on {self.device}")
        if self.detail:
            parts.append(f"- {self.detail}")
        if self.data and self.event == "commit":
            routers = self.data.get("routers", {})
            parts.append(
                "routers "
                + ", ".join(f"{n} ({c.get('commit') or '-'})" for n, c in routers.items())
            )
        return " ".join(parts)


def _append(path: Path, line: str, durable: bool = True) -> None:
    """Append one line (fsynced when ``durable``), or raise OSError leaving the file as it
    was."""
    data = line.encode("utf-8") + b"\n"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # never glue an event onto a line someone else cut short
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        except OSError:
            # A full disk accepts part of a write: take it back, so no half line stays.
            with contextlib.suppress(OSError):  # else the reader skips the cut line
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


class Journal:
    def __init__(self, state_dir: Path, run: str | None = None) -> None:
        self.state_dir = state_dir
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(_cannot(state_dir, state_dir, exc)) from None
        self.run = run or uuid.uuid4().hex[:12]
        self.jsonl = state_dir / "journal.jsonl"
        self.log = state_dir / "journal.log"

    def record(self, event: str, **fields: Any) -> JournalEvent:
        """Write one event to both files; :class:`JournalError` if it cannot. The JSON lines
        are the record recovery reads, fsynced before the step they announce; the text log is
        their rendering for people, written without its own fsync (half the disk waits)."""
        ev = JournalEvent(ts=time.time(), run=self.run, event=event, **fields)
        for path, line, durable in (
            (self.jsonl, json.dumps(ev.to_json()), True),
            (self.log, ev.to_text(), False),
        ):
            try:
                _append(path, line, durable)
            except OSError as exc:
                raise JournalError(_cannot(path, self.state_dir, exc)) from None
        return ev


def _cannot(path: Path, state_dir: Path, exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    return (
        f"cannot write the journal {path}: {reason}; lbauto changes nothing it cannot journal "
        f"first (free space in {state_dir} or make it writable)"
    )


def read_journal(state_dir: Path) -> Iterator[JournalEvent]:
    """Every event of ``journal.jsonl``, oldest first; lines that do not parse are skipped."""
    path = state_dir / "journal.jsonl"
    try:
        fh = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                raw = json.loads(line)
                yield JournalEvent(**raw)
            except (ValueError, TypeError):
                continue  # a line cut short (disk full, crash): the rest is still good
