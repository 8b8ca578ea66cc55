"""YAML reading that keeps line numbers, and the problem list every check writes to.

PyYAML's constructed values forget where they came from, so inventory files are *composed*
(parsed to nodes, with the C parser when available) and turned into :class:`YMap` / :class:`YSeq`
that remember the line of every key and item. Scalars become plain Python values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from lbauto.inventory import _fastyaml
from lbauto.inventory._values import YMap, YSeq

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - pyyaml built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
# Only these implicit types become non-strings; dates and the like stay text (no field wants them).
_CONSTRUCTED = frozenset(f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float"))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the inventory, printed as ``file:line: entry: what (fix)``."""

    file: str
    line: int | None
    entry: str
    what: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        text = f"{where}: {self.entry}: {self.what}" if self.entry else f"{where}: {self.what}"
        return f"{text} ({self.fix})" if self.fix else text


class Problems:
    """Collects every problem so the user sees them all at once, not one per run."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, file: str, line: int | None, entry: str, what: str, fix: str = "") -> None:
        self.items.append(Problem(file, line, entry, what, fix))

    def __bool__(self) -> bool:
        return bool(self.items)

    def lines(self, file_order: list[str]) -> list[str]:
        """Problems as text, grouped by file (in ``file_order``) and sorted by line."""
        rank = {f: i for i, f in enumerate(file_order)}
        ordered = sorted(
            self.items, key=lambda p: (rank.get(p.file, len(rank)), p.file, p.line or 0)
        )
        return [str(p) for p in ordered]


class YamlFile:
    """One inventory file: its display name (used in every message) and its parsed content."""

    def __init__(self, path: Path, problems: Problems) -> None:
        self.path = path
        self.name = str(path)
        self.problems = problems
        #: True when the file could not be read or parsed (already reported).
        self.broken = False
        self._scalars = SafeConstructor()

    def error(self, line: int | None, entry: str, what: str, fix: str = "") -> None:
        self.problems.add(self.name, line, entry, what, fix)

    def unreadable(self, line: int | None, what: str, fix: str) -> None:
        self.broken = True
        self.error(line, "", what, fix)

    def load(self) -> object:
        """The file's content; ``None`` for an empty file or when it could not be parsed."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            self.unreadable(None, f"cannot read the file: {err}", "check its permissions")
            return None
        try:
            return _fastyaml.parse(text)
        except _fastyaml.UnsupportedError:
            pass  # beyond the plain subset: PyYAML reads it
        try:
            node = yaml.compose(text, Loader=_Loader)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line = mark.line + 1 if mark else None
            self.unreadable(line, f"YAML syntax error: {err.problem or err}", "fix the YAML syntax")
            return None
        except yaml.YAMLError as err:
            self.unreadable(None, f"YAML error: {err}", "fix the YAML syntax")
            return None
        if node is None:
            return None
        try:
            return self._convert(node)
        except RecursionError:
            self.unreadable(None, "a YAML alias refers to itself", "remove the recursive alias")
            return None

    def _convert(self, node: Node) -> object:
        if isinstance(node, ScalarNode):
            if node.tag == _STR or node.tag not in _CONSTRUCTED:
                return node.value
            return self._scalars.construct_object(node)
        if isinstance(node, SequenceNode):
            seq = YSeq(node.start_mark.line + 1)
            for item in node.value:
                seq.items.append(self._convert(item))
                seq.lines.append(item.start_mark.line + 1)
            return seq
        assert isinstance(node, MappingNode)
        return self._mapping(node)

    def _mapping(self, node: MappingNode) -> YMap:
        out = YMap(node.start_mark.line + 1)
        merged: list[YMap] = []
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE:
                merged.extend(self._merge_sources(value_node))
                continue
            if not isinstance(key_node, ScalarNode):
                self.error(line, "", "a key must be a plain word", "write keys as `name:`")
                continue
            key = key_node.value
            if key in out.values:
                first = out.lines[key]
                self.error(
                    line,
                    "",
                    f"duplicate key {key!r}, first at line {first}",
                    "keep only one of them",
                )
                continue
            out.values[key] = self._convert(value_node)
            out.lines[key] = line
        for source in merged:  # YAML merge keys: explicit keys win
            for key, value in source.values.items():
                if key not in out.values:
                    out.values[key] = value
                    out.lines[key] = source.lines[key]
        return out

    def _merge_sources(self, node: Node) -> list[YMap]:
        value = self._convert(node)
        items = value.items if isinstance(value, YSeq) else [value]
        maps = [v for v in items if isinstance(v, YMap)]
        if len(maps) != len(items):
            self.error(
                node.start_mark.line + 1,
                "",
                "`<<` must merge a mapping",
                "merge an anchored mapping: `<<: *name`",
            )
        return maps
