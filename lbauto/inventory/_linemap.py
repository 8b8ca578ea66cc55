"""The line map of a YAML document: mappings and sequences that remember where things were.

:class:`YMap` is a ``dict`` and :class:`YSeq` a ``list``, so the pydantic models validate the
parsed document directly (no copy), while every key and item keeps the 1-based line it was
written on. :func:`line_of` turns a pydantic error location back into a line.
"""

from __future__ import annotations

from collections.abc import Sequence


class YMap(dict[str, object]):
    """A YAML mapping; ``lines[key]`` is the line where ``key`` was written."""

    __slots__ = ("line", "lines")

    def __init__(self, line: int) -> None:  # no super().__init__(): empty already, and hot
        self.line = line
        self.lines: dict[str, int] = {}


class YSeq(list[object]):
    """A YAML sequence; ``lines[i]`` is the line where item ``i`` starts."""

    __slots__ = ("line", "lines")

    def __init__(self, line: int) -> None:  # no super().__init__(): empty already, and hot
        self.line = line
        self.lines: list[int] = []


def line_of(doc: object, loc: Sequence[str | int], default: int | None = None) -> int | None:
    """The line of the deepest part of ``loc`` that exists in ``doc``.

    A missing key is reported where its mapping's entry starts (``name is missing`` points at the
    VIP), an unknown key on its own line, an item of a list on the item's line."""
    line = default
    node = doc
    for step in loc:
        if (isinstance(node, YMap) and isinstance(step, str) and step in node) or (
            isinstance(node, YSeq) and isinstance(step, int) and 0 <= step < len(node)
        ):
            line = node.lines[step]  # type: ignore[index]
            node = node[step]  # type: ignore[index]
        else:
            break
    return line
