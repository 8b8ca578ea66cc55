"""pydantic errors as lbauto problems: ``file:line: entry: what (fix)``.

Each error's location (``("vips", 3, "dips", 1)``) gives the line through the file's line map
and the entry through the file's labeler; the message comes from the error: lbauto's own field
errors carry problem and fix (:func:`lbauto.inventory.schema.fail`), pydantic's few structural
ones (missing, unknown key, not a mapping, not a list) are worded here from the model.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from lbauto.inventory._linemap import YMap, YSeq, line_of
from lbauto.inventory._yaml import YamlFile
from lbauto.inventory.problems import kind_of
from lbauto.inventory.schema import SECRET_FIX, is_secret_key

Loc = tuple[str | int, ...]
#: Past this many errors in one file (a file of junk), only the errors of its first
#: :data:`FLOOD_HEAD` entries are worded and the rest counted: at most a few per kind are
#: printed anyway, and wording millions of them would take minutes.
FLOOD = 2_000
FLOOD_HEAD = 200
T = TypeVar("T")
#: (entry label, how many steps of a location the entry itself takes).
Labeler = Callable[[Loc], tuple[str, int]]


def report(
    err: ValidationError,
    file: YamlFile,
    doc: object,
    root: Any,
    labeler: Labeler,
    prefix: Loc = (),
) -> dict[Loc, set[str]]:
    """Add one problem per error to ``file``; returns the entries (label locations) that failed,
    each with the keys below it that were wrong."""
    failed: dict[Loc, set[str]] = {}
    for e in err.errors(include_url=False):
        loc = prefix + tuple(e["loc"])
        what, fix, loc = describe(e, loc, root, file, labeler, prefix)
        label, depth = labeler(loc)
        failed.setdefault(loc[:depth], set()).update(s for s in loc[depth:] if isinstance(s, str))
        file.error(line_of(doc, loc), label, what, fix, kind=f"{e['type']}:{_subject(loc)}")
    return failed


def _subject(loc: Loc) -> str:
    """The key a location ends in (items of a list are named by their list)."""
    for step in reversed(loc):
        if isinstance(step, str):
            return step
    return ""


def describe(
    e: ErrorDetails, loc: Loc, root: Any, file: YamlFile, labeler: Labeler, prefix: Loc = ()
) -> tuple[str, str, Loc]:
    """(what, fix, location) of one pydantic error."""
    kind = e["type"]
    _, depth = labeler(loc)
    key = _subject(loc[depth:]) if len(loc) > depth else ""
    model_loc = loc[len(prefix) :]
    if kind == "lbauto":
        ctx = e.get("ctx") or {}
        if ctx.get("index") is not None:
            loc = (*loc, ctx["index"])
        value = ctx["value"] if ctx.get("value") is not None else e["input"]
        what, fix = compose(ctx, key, ctx.get("shown") or file.quote(value))
        return what, fix, loc
    if kind == "missing":
        field = _field(root, model_loc)
        fix = field.description if field is not None and field.description else f"add `{key}:`"
        return f"{key} is missing", fix, loc
    if kind == "extra_forbidden":
        if is_secret_key(key):
            return f"a literal {file.quote(key)} is not allowed", SECRET_FIX, loc
        model = model_at(root, model_loc[:-1])
        allowed = ", ".join(model.model_fields) if model is not None else ""
        return f"unknown key {file.quote(key)}", f"allowed: {allowed}", loc
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        model = model_at(root, model_loc)
        fix = model.SHAPE_FIX if model is not None else "give it `key: value` lines"  # type: ignore[attr-defined]
        got = kind_of(e["input"]) or file.quote(e["input"])
        return f"{key} must be a mapping, got {got}".strip(), fix, loc
    if kind in ("list_type", "tuple_type"):
        got = kind_of(e["input"]) or file.quote(e["input"])
        return f"{key} must be a list, got {got}".strip(), f"write {key}: [a, b]", loc
    if kind == "too_short":
        got = kind_of(e["input"]) or file.quote(e["input"])
        return f"{key} must be a non-empty list, got {got}", f"list at least one in {key}", loc
    return f"{key}: {e['msg']}".strip(": "), "", loc  # pragma: no cover - no other kind expected


def compose(ctx: dict[str, Any], key: str, shown: str) -> tuple[str, str]:
    """(what, fix) of one of lbauto's own field errors (:func:`lbauto.inventory.schema.fail`),
    ``shown`` being the offending value as the message may quote it."""
    subject = ctx.get("role") or key
    problem, form = ctx["problem"], ctx.get("form", "is")
    if form == "got":
        what = f"{subject} {problem}, got {shown}"
    elif form == "plain":
        what = f"{subject} {problem}"
    else:
        what = f"{subject} {shown} {problem}"
    return what.strip(), str(ctx.get("fix", "")).replace("{key}", key)


def _unwrap(t: Any) -> Any:
    while True:
        origin = get_origin(t)
        if origin is Annotated:
            t = get_args(t)[0]
        elif origin in (Union, types.UnionType):
            t = next(a for a in get_args(t) if a is not type(None))
        else:
            return t


def _step(t: Any, step: str | int) -> Any:
    t = _unwrap(t)
    if isinstance(t, type) and issubclass(t, BaseModel):
        field = t.model_fields.get(str(step))
        if field is not None:
            return field.annotation
        return getattr(t, "EXTRA_MODEL", None)  # typed extra keys (connection options)
    args = get_args(t)
    if get_origin(t) is dict:
        return args[1]
    return args[0] if args else None


def model_at(root: Any, loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class expected at ``loc`` below ``root`` (a model or a container type)."""
    t = root
    for step in loc:
        if t is None:
            return None
        t = _step(t, step)
    t = _unwrap(t)
    return t if isinstance(t, type) and issubclass(t, BaseModel) else None


def _field(root: Any, loc: Sequence[str | int]) -> Any:
    model = model_at(root, loc[:-1])
    return model.model_fields.get(str(loc[-1])) if model is not None and loc else None


class Reporter:
    """Problems about one file: pydantic errors and the loaders' own checks, located alike."""

    def __init__(self, file: YamlFile, doc: object, root: Any, labeler: Labeler) -> None:
        self.file = file
        self.doc = doc
        self.root = root
        self.labeler = labeler
        #: Entries (label locations) with at least one problem, and the keys that were wrong.
        self.failed: dict[Loc, set[str]] = {}
        self.flooded = False

    def validate(self, check: Callable[[object], T]) -> T | None:
        """``check(doc)``, or ``None`` with its errors reported. A flood of errors (a file of
        junk) is counted, and only the errors of the first entries are worded; ``flooded``
        then tells the caller to skip the checks that relate entries."""
        try:
            return check(self.doc)
        except ValidationError as err:
            if err.error_count() <= FLOOD:
                self.validation(err)
                return None
            count = err.error_count()
        self.flooded = True
        self.file.error(
            None,
            "",
            f"{count} problems; only those of the first {FLOOD_HEAD} entries are listed",
            "fix those first",
            kind="flood",
        )
        try:
            check(head(self.doc, FLOOD_HEAD))
        except ValidationError as err:
            self.validation(err)
        return None

    def validation(self, err: ValidationError, prefix: Loc = ()) -> None:
        for entry, keys in report(
            err, self.file, self.doc, self.root, self.labeler, prefix
        ).items():
            self.failed.setdefault(entry, set()).update(keys)

    def add(self, loc: Loc, what: str, fix: str = "", kind: str = "") -> None:
        label, depth = self.labeler(loc)
        self.failed.setdefault(loc[:depth], set())
        self.file.error(line_of(self.doc, loc), label, what, fix, kind=kind or what)


def head(doc: object, n: int) -> object:
    """``doc`` with every mapping and list cut to its first ``n`` entries (lines kept)."""
    if isinstance(doc, YMap):
        out = YMap(doc.line)
        for key in list(doc)[:n]:
            out[key] = head(doc[key], n)
            out.lines[key] = doc.lines[key]
        return out
    if isinstance(doc, YSeq):
        seq = YSeq(doc.line)
        seq.extend(head(item, n) for item in doc[:n])
        seq.lines = doc.lines[:n]
        return seq
    return doc
