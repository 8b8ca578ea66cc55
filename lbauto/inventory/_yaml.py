"""Reading one inventory file safely into its line map (:mod:`lbauto.inventory._linemap`).

Plain block-style YAML goes through the fast reader (:mod:`lbauto.inventory._fastyaml`); anything
else is *composed* by PyYAML (C parser when available) and converted node by node, keeping the
line of every key and item. Scalars become plain Python values (YAML 1.1, as PyYAML reads them).

Hostile input is bounded before it costs anything: a file larger than the limit is not read past
the limit, aliases may not expand a document beyond a fixed multiple of its size (an alias bomb
stops at once), and a file that resolves outside the inventory directory (a symlink to anywhere)
is refused unless the operator allows it, and even then is never quoted in a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from lbauto.inventory import _fastyaml
from lbauto.inventory._linemap import YMap, YSeq
from lbauto.inventory.problems import DEFAULT_PER_KIND, HIDDEN, Problems, excerpt, kind_of

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - pyyaml built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
# Only these implicit types become non-strings; dates and the like stay text (no field wants them).
_CONSTRUCTED = frozenset(f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float"))
#: Aliases may make the converted document this many times larger than its distinct nodes
#: (sharing one group of settings among many entries), plus a fixed allowance.
ALIAS_FACTOR = 10
ALIAS_ALLOWANCE = 100_000
OUTSIDE_FIX = (
    "copy the file into the inventory directory, or pass --allow-outside-inventory if you trust it"
)


@dataclass(frozen=True)
class Limits:
    """Bounds on what one inventory reads (``limits:`` in ``lbauto.yaml``)."""

    #: Largest inventory file read, in bytes (``max_file_mb``, default 16 MiB).
    max_file_bytes: int = 16 * 2**20
    #: Most problems of one kind printed per file (``max_errors_per_kind``).
    per_kind: int = DEFAULT_PER_KIND


class AliasBombError(Exception):
    """Aliases expand the document beyond :data:`ALIAS_FACTOR` times its size."""


def is_inside(path: Path, root: Path) -> bool:
    """``path`` (symlinks followed) lies inside ``root`` (symlinks followed)."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


class YamlFile:
    """One inventory file: its display name (used in every message) and its parsed content.

    ``inside`` is False for a file that resolves outside the inventory directory: such a file
    may be anything a symlink points at, so messages never quote its content (:meth:`quote`).
    """

    def __init__(
        self,
        path: Path,
        problems: Problems,
        *,
        root: Path | None = None,
        limits: Limits | None = None,
        allow_outside: bool = False,
    ) -> None:
        self.path = path
        self.name = str(path)
        self.problems = problems
        self.limits = limits or Limits()
        self.inside = root is None or is_inside(path, root)
        self.allow_outside = allow_outside
        #: True when the file could not be read or parsed (already reported).
        self.broken = False
        #: True when the YAML had problems lbauto read past (duplicate keys, bad merges).
        self.lossy = False
        self._scalars = SafeConstructor()
        self._budget = ALIAS_ALLOWANCE

    def quote(self, value: object) -> str:
        """``value`` for a message: a short excerpt, or nothing from a file outside."""
        if self.inside:
            return excerpt(value)
        return kind_of(value) or HIDDEN  # a number may be a secret too

    def error(self, line: int | None, entry: str, what: str, fix: str = "", kind: str = "") -> None:
        self.problems.add(self.name, line, entry, what, fix, kind)

    def unreadable(self, line: int | None, what: str, fix: str) -> None:
        self.broken = True
        self.error(line, "", what, fix)

    def read_text(self) -> str | None:
        """The file's text within the limits, or ``None`` (reported)."""
        if not self.inside and not self.allow_outside:
            self.unreadable(
                None, "is a symlink to a file outside the inventory directory", OUTSIDE_FIX
            )
            return None
        limit = self.limits.max_file_bytes
        try:
            with self.path.open("rb") as f:
                data = f.read(limit + 1)
        except OSError as err:
            self.unreadable(None, f"cannot read the file: {err.strerror}", "check its permissions")
            return None
        if len(data) > limit:
            self.unreadable(
                None,
                f"is larger than {limit / 2**20:g} MiB",
                "split it, or raise limits.max_file_mb in lbauto.yaml if it really is that big",
            )
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            self.unreadable(None, f"is not UTF-8 text (byte {err.start})", "save it as UTF-8 text")
            return None

    def load(self) -> object:
        """The file's content; ``None`` for an empty file or when it could not be read."""
        text = self.read_text()
        if text is None:
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
            problem = str(err.problem or "invalid YAML")[:80] if self.inside else "invalid YAML"
            self.unreadable(line, f"YAML syntax error: {problem}", "fix the YAML syntax")
            return None
        except yaml.YAMLError:
            self.unreadable(None, "YAML error", "fix the YAML syntax")
            return None
        if node is None:
            return None
        self._budget = ALIAS_FACTOR * _distinct_nodes(node) + ALIAS_ALLOWANCE
        try:
            return self._convert(node)
        except RecursionError:
            self.unreadable(None, "a YAML alias refers to itself", "remove the recursive alias")
        except AliasBombError:
            self.unreadable(
                None,
                f"YAML aliases expand the document more than {ALIAS_FACTOR} times",
                "write the values out instead of nesting aliases of aliases",
            )
        return None

    def _convert(self, node: Node) -> object:
        self._budget -= 1
        if self._budget < 0:
            raise AliasBombError
        if isinstance(node, ScalarNode):
            if node.tag == _STR or node.tag not in _CONSTRUCTED:
                return node.value
            try:
                return self._scalars.construct_object(node)
            except ValueError:  # an integer of thousands of digits: leave it as text
                return node.value
        if isinstance(node, SequenceNode):
            seq = YSeq(node.start_mark.line + 1)
            for item in node.value:
                seq.append(self._convert(item))
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
                self.lossy = True
                self.error(line, "", "a key must be a plain word", "write keys as `name:`")
                continue
            key = key_node.value
            if key in out:
                self.lossy = True
                self.error(
                    line,
                    "",
                    f"duplicate key {self.quote(key)}, first at line {out.lines[key]}",
                    "keep only one of them",
                    kind="duplicate key",
                )
                continue
            out[key] = self._convert(value_node)
            out.lines[key] = line
        for source in merged:  # YAML merge keys: explicit keys win
            for key, value in source.items():
                if key not in out:
                    out[key] = value
                    out.lines[key] = source.lines[key]
        return out

    def _merge_sources(self, node: Node) -> list[YMap]:
        value = self._convert(node)
        items = value if isinstance(value, YSeq) else [value]
        maps = [v for v in items if isinstance(v, YMap)]
        if len(maps) != len(items):
            self.lossy = True
            self.error(
                node.start_mark.line + 1,
                "",
                "`<<` must merge a mapping",
                "merge an anchored mapping: `<<: *name`",
            )
        return maps


def _distinct_nodes(root: Node) -> int:
    """Nodes in the composed graph, each counted once however many aliases point at it."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                stack.append(key)
                stack.append(value)
    return len(seen)
