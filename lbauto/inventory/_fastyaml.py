"""A fast reader for the plain block-style YAML that inventory files are written in.

PyYAML builds a node (with marks) per scalar and resolves every scalar's type in Python: on a
10,000-VIP ``vips.yaml`` with tens of thousands of DIPs that alone takes most of a second. This
reader handles the common subset line by line and gives exactly what the node-based reader in
:mod:`lbauto.inventory._yaml` gives (same values, same line numbers). Anything outside the subset
raises :class:`UnsupportedError` and the caller falls back to PyYAML, so the subset only has to
be recognised, never guessed (the unit tests compare both readers on generated and mutated
documents).

The subset: ``key: value`` and ``key:`` block mappings, ``- item`` block sequences (items may
start a mapping), flow sequences of plain scalars (``[a, b]``), ``#`` comments, and plain scalars
made of ``A-Z a-z 0-9 _ . : / @ + -``. No quotes, anchors, aliases, tags, merge keys, flow
mappings, multi-line scalars, tabs, CRs or document markers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from lbauto.inventory._linemap import YMap, YSeq

_CONSTRUCTED = frozenset(f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float"))
# No indicator may start a plain scalar, and a trailing `:` would make it a key.
_SCALAR_RE = re.compile(r"(?!-$)[A-Za-z0-9_./+-][A-Za-z0-9_.:/@+-]*(?<!:)")
# One line: indent, an optional `- `, an optional `key:`, the value (a plain scalar or a flow
# list, checked later; greedy, as a lazy match costs tens of microseconds on a long DIP list),
# an optional comment. Anything else does not match.
_LINE_RE = re.compile(
    r"(?:( *)(-(?: +|$))?(?:([A-Za-z0-9_][A-Za-z0-9_.-]*):(?: +|$))?"
    r"([A-Za-z0-9_./+\[-][A-Za-z0-9_.:/@+, \[\]-]*)?)?(?:(?<![^ ])#.*)?"
)
_FLOW_RE = re.compile(rf"{_SCALAR_RE.pattern}(?: *, *{_SCALAR_RE.pattern})*")
# Items with two dots (IPv4 addresses) can only be text in YAML 1.1.
_DOTTED_LIST_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9.]+(?: *, *[0-9]+\.[0-9]+\.[0-9.]+)*")
# First characters for which YAML 1.1 may resolve a plain scalar to something other than text.
_MAYBE_TYPED = frozenset(Resolver.yaml_implicit_resolvers)


class UnsupportedError(Exception):
    """The text uses YAML outside the fast subset: use PyYAML instead."""


@dataclass(slots=True)
class _Line:
    number: int  # 1-based
    indent: int  # column of the first character after any `- `
    dash: bool  # the line starts a sequence item
    dash_indent: int  # column of the `-`
    key: str | None
    value: str  # text after `key:` (or the whole item/line); "" for none


class _Scalars:
    """Turns plain scalar text into the value PyYAML would give, remembering each answer."""

    def __init__(self) -> None:
        self._resolver = Resolver()
        self._constructor = SafeConstructor()
        self._cache: dict[str, object] = {}

    def __call__(self, text: str) -> object:
        if text[0] not in _MAYBE_TYPED or text.count(".") > 1 or "/" in text or "::" in text:
            # cannot be a number, bool, null or date (no YAML 1.1 pattern has two dots, a
            # slash or two colons in a row: sexagesimal numbers put digits after each colon)
            return text
        try:
            return self._cache[text]
        except KeyError:
            pass
        tag = self._resolver.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        # Dates and the like stay text, as in the node-based reader.
        value = (
            self._constructor.construct_object(ScalarNode(tag, text))
            if tag in _CONSTRUCTED
            else text
        )
        self._cache[text] = value
        return value


def parse(text: str) -> object:
    """The document's value (``None`` when empty); raises :class:`UnsupportedError` outside the
    subset."""
    if text.startswith("\ufeff") or text.lstrip(" \n").startswith(("---", "...", "%")):
        raise UnsupportedError("document markers")
    lines = _lines(text)
    if not lines:
        return None
    reader = _Reader(lines)
    value = reader.block(0, lines[0].dash_indent if lines[0].dash else lines[0].indent)
    if reader.pos != len(lines):
        raise UnsupportedError("trailing content")
    return value


def _lines(text: str) -> list[_Line]:
    out: list[_Line] = []
    match = _LINE_RE.fullmatch
    for number, raw in enumerate(text.split("\n"), 1):
        m = match(raw)
        if m is None:
            raise UnsupportedError(f"line {number}")  # tabs, CR, quotes, flow mappings, ...
        lead, dash, key, value = m.groups()
        if dash is None and key is None and not value:
            continue  # blank or comment
        indent = len(lead)
        value = value.rstrip(" ") if value else ""
        if dash is not None:
            out.append(_Line(number, indent + len(dash), True, indent, key, value))
        else:
            out.append(_Line(number, indent, False, indent, key, value))
    return out


class _Reader:
    def __init__(self, lines: list[_Line]) -> None:
        self.lines = lines
        self.pos = 0
        self.scalar = _Scalars()

    def _peek(self) -> _Line | None:
        return self.lines[self.pos] if self.pos < len(self.lines) else None

    def block(self, pos: int, indent: int) -> object:
        """A block mapping or sequence whose entries start at column ``indent``."""
        self.pos = pos
        first = self.lines[pos]
        if first.dash and first.dash_indent == indent:
            return self._sequence(indent)
        if not first.dash and first.indent == indent and first.key is not None:
            return self._mapping(indent)
        raise UnsupportedError(f"line {first.number}")

    def _sequence(self, indent: int) -> YSeq:
        seq = YSeq(self.lines[self.pos].number)
        while (line := self._peek()) is not None and line.dash and line.dash_indent == indent:
            seq.lines.append(line.number)
            if line.key is not None:
                # `- key: value` starts a mapping whose keys sit at the item's column.
                seq.append(self._mapping(line.indent, first=line))
            elif line.value:
                self.pos += 1
                seq.append(self._inline(line))
            else:
                self.pos += 1
                item = self._nested(indent, line)
                seq.append(item)
                if isinstance(item, YMap | YSeq):
                    seq.lines[-1] = item.line  # PyYAML places a nested block where it starts
        return seq

    def _mapping(self, indent: int, first: _Line | None = None) -> YMap:
        # The hot loop of the reader (a key line per VIP attribute): locals, no helper calls
        # for the common plain value.
        lines = self.lines
        count = len(lines)
        start = first or lines[self.pos]
        out = YMap(start.number)
        where = out.lines
        plain = self._plain
        line = start
        while line.key is not None and line.indent == indent and (line is first or not line.dash):
            self.pos += 1
            key = line.key
            if key in out:
                raise UnsupportedError("duplicate key")  # the node reader reports it
            where[key] = line.number
            value = line.value
            if not value:
                out[key] = self._nested(indent, line)
            elif value[0] == "[":
                out[key] = self._inline(line)
            else:
                out[key] = plain(value)
            if self.pos == count:
                break
            line = lines[self.pos]
            if line.indent > indent and not line.dash:
                raise UnsupportedError(f"line {line.number}")  # a multi-line scalar or bad indent
        return out

    def _nested(self, indent: int, owner: _Line) -> object:
        """The block under ``key:`` or a bare ``-`` (null when nothing is nested)."""
        nxt = self._peek()
        if nxt is None:
            return None
        column = nxt.dash_indent if nxt.dash else nxt.indent
        # YAML lets a key's sequence sit at the key's own column (`key:` then `- a`).
        if column > indent or (nxt.dash and column == indent and owner.key is not None):
            return self.block(self.pos, column)
        return None

    def _inline(self, line: _Line) -> object:
        text = line.value
        if text[0] == "[":
            if not text.endswith("]"):
                raise UnsupportedError("multi-line flow sequence")
            seq = YSeq(line.number)
            inner = text[1:-1].strip(" ")
            if inner:
                if _DOTTED_LIST_RE.fullmatch(inner):
                    # IPv4 DIP lists: all text (skip typing); spaces sit only around commas
                    seq.extend(inner.replace(" ", "").split(","))
                elif _FLOW_RE.fullmatch(inner):
                    scalar = self.scalar
                    seq.extend([scalar(part.strip(" ")) for part in inner.split(",")])
                else:
                    raise UnsupportedError(text)
                seq.lines = [line.number] * len(seq)
            return seq
        return self._plain(text)

    def _plain(self, text: str) -> object:
        if not _SCALAR_RE.fullmatch(text):
            raise UnsupportedError(text)
        return self.scalar(text)
