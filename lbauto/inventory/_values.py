"""YAML mappings and sequences that remember the line of every key and item."""

from __future__ import annotations


class YMap:
    """A YAML mapping: ``values[key]`` and the 1-based ``lines[key]`` where the key was written."""

    __slots__ = ("line", "lines", "values")

    def __init__(self, line: int) -> None:
        self.line = line
        self.values: dict[str, object] = {}
        self.lines: dict[str, int] = {}

    def get(self, key: str) -> object:
        return self.values.get(key)

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


class YSeq:
    """A YAML sequence: ``items[i]`` and the 1-based ``lines[i]`` where item i starts."""

    __slots__ = ("items", "line", "lines")

    def __init__(self, line: int) -> None:
        self.line = line
        self.items: list[object] = []
        self.lines: list[int] = []
