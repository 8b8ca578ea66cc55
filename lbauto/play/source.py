"""A playbook file read with the line of every key and item (for ``file:line`` errors).

PyYAML *composes* the document (the safe loader: no tags that build objects), and the nodes are
turned into :class:`LMap` (a ``dict``) and :class:`LSeq` (a ``list``) that remember where each
key and item was written, so pydantic validates them directly and its error locations map back
to lines. Scalars are plain YAML 1.1 values; a duplicate key is an error, not a silent override.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from lbauto.errors import PlaybookError

try:  # libyaml's parser when PyYAML has it (same nodes, marks and errors, several times faster)
    _LOADER: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _LOADER = yaml.SafeLoader

#: A playbook larger than this is refused before it is parsed (no one writes 4 MiB of tasks).
MAX_BYTES = 4 * 2**20
#: Most values one playbook may expand to (aliases included).
MAX_NODES = 200_000


class LMap(dict[str, object]):
    """A YAML mapping; ``lines[key]`` is the 1-based line where ``key`` was written."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


class LSeq(list[object]):
    """A YAML sequence; ``lines[i]`` is the 1-based line where item ``i`` starts."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.lines[index] if 0 <= index < len(self.lines) else self.line


def line_at(doc: object, loc: tuple[str | int, ...], default: int) -> int:
    """The line of the deepest part of ``loc`` that exists in ``doc``."""
    line, node = default, doc
    for step in loc:
        if isinstance(node, LMap) and isinstance(step, str) and step in node:
            line, node = node.lines[step], node[step]
            continue
        if not (isinstance(node, LSeq) and isinstance(step, int) and 0 <= step < len(node)):
            break
        line, node = node.lines[step], node[step]
    return line


def load(path: Path) -> object:
    """The document of ``path`` as LMap/LSeq/scalars; :class:`PlaybookError` if unreadable."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise PlaybookError([f"{path}: cannot read the playbook ({exc.strerror})"]) from None
    if len(data) > MAX_BYTES:
        raise PlaybookError([f"{path}: larger than {MAX_BYTES // 2**20} MiB; not a playbook"])
    try:
        node = yaml.compose(data.decode("utf-8"), Loader=_LOADER)
    except UnicodeDecodeError:
        raise PlaybookError([f"{path}: not UTF-8 text"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise PlaybookError([f"{path}:{line}: invalid YAML: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise PlaybookError([f"{path}: invalid YAML: {exc}"]) from None
    if node is None:
        raise PlaybookError([f"{path}:1: the playbook is empty (write name:, vars:, tasks:)"])
    problems: list[str] = []
    budget = [MAX_NODES]
    doc = _convert(node, path, problems, 0, budget)
    if problems:
        raise PlaybookError(problems)
    return doc


_CONSTRUCTOR = yaml.SafeLoader(b"")


def _convert(node: Node, path: Path, problems: list[str], depth: int, budget: list[int]) -> object:
    line = node.start_mark.line + 1
    budget[0] -= 1
    if budget[0] < 0:
        # Aliases can make a small file expand without bound; a playbook never needs this.
        if budget[0] == -1:
            problems.append(f"{path}:{line}: more than {MAX_NODES} values (aliases?)")
        return None
    if depth > 50:
        problems.append(f"{path}:{line}: nested more than 50 levels deep")
        return None
    if isinstance(node, MappingNode):
        out = LMap(line)
        for key_node, value_node in node.value:
            key = _convert(key_node, path, problems, depth + 1, budget)
            if not isinstance(key, str):
                problems.append(f"{path}:{key_node.start_mark.line + 1}: keys must be text")
                continue
            if key in out:
                problems.append(
                    f"{path}:{key_node.start_mark.line + 1}: key {key!r} given twice "
                    f"(first on line {out.lines[key]})"
                )
                continue
            out.lines[key] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, path, problems, depth + 1, budget)
        return out
    if isinstance(node, SequenceNode):
        seq = LSeq(line)
        for item in node.value:
            seq.lines.append(item.start_mark.line + 1)
            seq.append(_convert(item, path, problems, depth + 1, budget))
        return seq
    assert isinstance(node, ScalarNode)
    if node.tag in (
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
    ):
        return _CONSTRUCTOR.construct_object(node, deep=True)
    return str(node.value)
