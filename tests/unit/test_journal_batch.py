"""The journal's batch append (:meth:`Journal.record_many`): order, one fsync, all or nothing
when the file cannot grow, and journals that extend ``record`` still see every event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lbauto.orchestrate.journal import Journal, JournalEvent, read_journal

REPO = Path(__file__).resolve().parents[2]


def entries(n: int, event: str = "start") -> list[tuple[str, dict[str, object]]]:
    return [(event, {"vip": f"v{i:03d}", "step": 0, "action": "agent.set_vip"}) for i in range(n)]


def test_many_events_are_written_in_order_to_both_files(tmp_path: Path) -> None:
    j = Journal(tmp_path, run="r1")
    j.record("run-start")
    evs = j.record_many([*entries(3), ("end", {"vip": "v000", "step": 0, "detail": "drained"})])
    assert [e.event for e in evs] == ["start", "start", "start", "end"]
    read = list(read_journal(tmp_path))
    assert [(e.event, e.vip) for e in read] == [
        ("run-start", None),
        ("start", "v000"),
        ("start", "v001"),
        ("start", "v002"),
        ("end", "v000"),
    ]
    assert read[1:] == evs
    human = (tmp_path / "journal.log").read_text().splitlines()
    assert len(human) == 5 and human[4].endswith("END vip=v000 step=0 - drained")
    assert j.record_many([]) == []
    assert len(list(read_journal(tmp_path))) == 5


def test_a_batch_is_one_fsync_of_the_machine_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:  # the real fsync, noted
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    j = Journal(tmp_path)
    j.record_many(entries(100))
    assert synced == ["journal.jsonl"]
    j.record("end", vip="v000", step=0)
    assert synced == ["journal.jsonl", "journal.jsonl"]


def test_a_batch_that_does_not_fit_leaves_the_files_as_they_were(tmp_path: Path) -> None:
    """The file may grow by only part of the batch (a real short write: the process's file
    size limit, RLIMIT_FSIZE, in a process of its own): none of it stays."""
    script = textwrap.dedent(
        """
        import resource, signal, sys
        from pathlib import Path
        from lbauto.errors import JournalError
        from lbauto.orchestrate.journal import Journal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal
        j = Journal(Path(sys.argv[1]))
        j.record("run-start")
        size = (Path(sys.argv[1]) / "journal.jsonl").stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 300, resource.RLIM_INFINITY))
        try:
            j.record_many([("start", {"vip": f"v{i:03d}", "step": 0}) for i in range(20)])
        except JournalError as e:
            print("refused:", e)
        j.record("run-end")  # a small event still fits
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "refused: cannot write the journal" in res.stdout and "File too large" in res.stdout
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert [json.loads(x)["event"] for x in lines] == ["run-start", "run-end"]


class Mirrored(Journal):
    """A journal that extends ``record`` (as the etcd backend's mirrors each event)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.mirrored: list[str] = []

    def record(self, event: str, **fields: object) -> JournalEvent:
        ev = super().record(event, **fields)
        self.mirrored.append(f"{ev.event} {ev.vip}")
        return ev


def test_a_journal_that_extends_record_sees_every_event_of_a_batch(tmp_path: Path) -> None:
    j = Mirrored(tmp_path)
    j.record_many(entries(3))
    assert j.mirrored == ["start v000", "start v001", "start v002"]
    assert [e.vip for e in read_journal(tmp_path)] == ["v000", "v001", "v002"]
