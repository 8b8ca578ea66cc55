"""Ansible-style output: a ``TASK [name]`` header, one status line per task (per loop item),
and a ``PLAY RECAP`` with the counts. Plain text, so CI logs and ``grep`` read it as they read
Ansible's; ``--diff`` adds the config changes under a task, ``-v`` the executor's steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TextIO

from lbauto.play.modules import Result

WIDTH = 80
_LABEL = {"ok": "ok", "changed": "changed", "skipped": "skipping", "failed": "fatal"}


@dataclass
class Stats:
    """Per play, Ansible's counters: ``ok`` counts every task that succeeded (changed ones
    too), ``ignored`` the failures that ``ignore_errors`` let pass."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    ignored: int = 0

    def line(self, host: str) -> str:
        return (
            f"{host:<26}: ok={self.ok:<4} changed={self.changed:<4} failed={self.failed:<4} "
            f"skipped={self.skipped:<4} ignored={self.ignored}"
        )

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


def banner(text: str) -> str:
    return f"{text} " + "*" * max(3, WIDTH - len(text) - 1)


class TextReport:
    """Writes the run as it happens."""

    def __init__(self, out: TextIO, *, diff: bool = False, verbose: bool = False) -> None:
        self.out = out
        self.diff = diff
        self.verbose = verbose

    def _write(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def play(self, name: str, host: str, check: bool) -> None:
        mode = " (check mode: nothing is changed)" if check else ""
        self._write(banner(f"PLAY [{name}] [{host}]{mode}"))

    def task(self, index: int, name: str) -> None:
        self._write()
        self._write(banner(f"TASK [{name}]"))

    def step(self, vip: str, action: str, event: str) -> None:
        if self.verbose:
            self._write(f"    {vip:<20} {action:<22} {event}")

    def result(self, host: str, result: Result, item: Any = None, ignored: bool = False) -> None:
        label = _LABEL[result.status]
        where = f"[{host}]" + (f" (item={item})" if item is not None else "")
        if result.status == "failed":
            self._write(f"{label}: {where}: FAILED! => {result.msg}")
            if ignored:
                self._write("...ignoring")
        else:
            self._write(f"{label}: {where}" + (f" => {result.msg}" if result.msg else ""))
        if self.diff and result.diff:
            for line in result.diff:
                self._write(f"    {line}")

    def recap(self, host: str, stats: Stats, check: bool) -> None:
        self._write()
        self._write(banner("PLAY RECAP"))
        self._write(stats.line(host))
        if check:
            self._write("check mode: nothing was changed")
