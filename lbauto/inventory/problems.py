"""Every inventory problem as one line: ``<file>:<line>: <entry>: <what is wrong> (<how to fix>)``.

Problems are collected, not raised one by one, so a user sees them all in one run. Two limits
keep the output useful on absurd input: values from a file are quoted as a short excerpt of one
line (never more of the file, and nothing at all from a file outside the inventory directory,
which may be anything a symlink points at), and at most ``per_kind`` problems of one kind are
printed per file, followed by a count of the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

#: Longest excerpt of a value quoted in a message.
EXCERPT = 40
#: Default for how many problems of one kind are printed per file.
DEFAULT_PER_KIND = 20
HIDDEN = "<hidden>"


def kind_of(value: object) -> str:
    """A value's kind in words, for ``must be X, got Y`` messages."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing"
    return ""


def excerpt(value: object, limit: int = EXCERPT) -> str:
    """``value`` as a message quotes it: ``'text'`` cut to ``limit`` characters of its first
    line (``...`` marks the cut), numbers and booleans as written, containers by kind."""
    kind = kind_of(value)
    if kind:
        return kind
    if not isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else text[:limit] + "..."
    first, _, rest = value.partition("\n")
    cut = first[:limit]
    shown = repr(cut)
    return shown[:-1] + "..." + shown[-1] if (rest or len(first) > limit) else shown


@dataclass(frozen=True)
class Problem:
    """One thing wrong, printed as ``file:line: entry: what (fix)``; ``kind`` groups identical
    problems for the per-kind limit."""

    file: str
    line: int | None
    entry: str
    what: str
    fix: str = ""
    kind: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        text = f"{where}: {self.entry}: {self.what}" if self.entry else f"{where}: {self.what}"
        return f"{text} ({self.fix})" if self.fix else text


@dataclass
class Problems:
    """Collects every problem; :meth:`lines` orders and limits them."""

    items: list[Problem] = field(default_factory=list)
    per_kind: int = DEFAULT_PER_KIND

    def add(
        self, file: str, line: int | None, entry: str, what: str, fix: str = "", kind: str = ""
    ) -> None:
        self.items.append(Problem(file, line, entry, what, fix, kind or what))

    def __bool__(self) -> bool:
        return bool(self.items)

    def lines(self, file_order: Iterable[str]) -> list[str]:
        """Problems as text, grouped by file (in ``file_order``) and sorted by line; past
        ``per_kind`` of one kind in one file, one line counts the rest."""
        rank = {f: i for i, f in enumerate(file_order)}
        ordered = sorted(
            self.items, key=lambda p: (rank.get(p.file, len(rank)), p.file, p.line or 0)
        )
        out: list[str] = []
        shown: dict[tuple[str, str], int] = {}
        hidden: dict[tuple[str, str], int] = {}
        for i, problem in enumerate(ordered):
            key = (problem.file, problem.kind)
            if shown.get(key, 0) < self.per_kind:
                shown[key] = shown.get(key, 0) + 1
                out.append(str(problem))
            else:
                hidden[key] = hidden.get(key, 0) + 1
            last_of_file = i + 1 == len(ordered) or ordered[i + 1].file != problem.file
            if last_of_file:
                out.extend(
                    f"{file}: {count} more problems like the {self.per_kind} above not shown "
                    "(fix those first)"
                    for (file, _), count in hidden.items()
                    if file == problem.file
                )
                hidden = {k: v for k, v in hidden.items() if k[0] != problem.file}
        return out
