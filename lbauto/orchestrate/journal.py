"""The journal: every step's start, end and result, appended as it happens.

Two files in the inventory's state directory, written as events happen and fsynced at once so
a SIGKILL loses nothing already done (the events of many steps that start, or end, together -
one round of the executor - are written with one fsync, :meth:`Journal.record_many`):

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
from collections.abc import Iterator, Mapping, Sequence
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


def _append(path: Path, lines: Sequence[str], durable: bool = True) -> None:
    """Append lines (with one fsync when ``durable``), or raise OSError leaving the file as it
    was: a batch is on disk whole or not at all, never in part, as far as this code can."""
    data = "".join(line + "\n" for line in lines).encode("utf-8")
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


#: One event for :meth:`Journal.record_many`: its name and its fields (as ``record`` takes).
Entry = tuple[str, Mapping[str, Any]]


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
        self._write([ev])
        return ev

    def record_many(self, entries: Sequence[Entry]) -> list[JournalEvent]:
        """Write many events as :meth:`record` does, in order, with one fsync for all of them
        (the starts of a round's steps before any acts, or their ends): the file holds all of
        them or none (JournalError). A journal that extends :meth:`record` (the etcd backend
        mirrors each event) gets each event through it, one by one."""
        if not entries:
            return []
        if type(self).record is not Journal.record:
            return [self.record(event, **fields) for event, fields in entries]
        now = time.time()
        evs = [JournalEvent(ts=now, run=self.run, event=e, **f) for e, f in entries]
        self._write(evs)
        return evs

    def _write(self, evs: Sequence[JournalEvent]) -> None:
        for path, lines, durable in (
            (self.jsonl, [json.dumps(ev.to_json()) for ev in evs], True),
            (self.log, [ev.to_text() for ev in evs], False),
        ):
            try:
                _append(path, lines, durable)
            except OSError as exc:
                raise JournalError(_cannot(path, self.state_dir, exc)) from None


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
