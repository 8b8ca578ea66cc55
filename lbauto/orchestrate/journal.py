"""The journal: every step's start, end and result, appended as it happens.

Two files in the inventory's state directory, written line by line and flushed at once so a
SIGKILL loses nothing already done:

- ``journal.jsonl`` - one JSON object per event, for machines;
- ``journal.log``   - the same event as one readable line, for operators (``tail -f``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JournalEvent:
    ts: float
    run: str
    event: str  # run-start | start | end | fail | undo | undo-fail | run-end
    vip: str | None = None
    step: int | None = None
    action: str | None = None
    device: str | None = None
    detail: str | None = None

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
        return " ".join(parts)


class Journal:
    def __init__(self, state_dir: Path, run: str | None = None) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.run = run or uuid.uuid4().hex[:12]
        self.jsonl = state_dir / "journal.jsonl"
        self.log = state_dir / "journal.log"

    def record(self, event: str, **fields: Any) -> JournalEvent:
        ev = JournalEvent(ts=time.time(), run=self.run, event=event, **fields)
        for path, line in ((self.jsonl, json.dumps(ev.to_json())), (self.log, ev.to_text())):
            with path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return ev


def read_journal(state_dir: Path) -> Iterator[JournalEvent]:
    path = state_dir / "journal.jsonl"
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                yield JournalEvent(**json.loads(line))
