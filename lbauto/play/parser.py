"""Reading a playbook and checking all of it before anything runs.

Every problem is collected and reported at once, one line each, ``file:line: task N 'name':
what (fix)``: YAML errors, unknown keys and modules, missing or unknown module arguments, bad
Jinja, undefined variables, VIPs and DIPs the inventory does not have. Arguments whose
templates only read values known before the run (vars, ``-e`` extra vars, the inventory as
``lbauto.*``, the items of a literal ``loop:``) are rendered and validated in full now; those
that read a registered result are checked for their keys now and validated in full right
before their task runs.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from lbauto.core.model import Inventory, IPAddress, addr_key
from lbauto.errors import PlaybookError
from lbauto.inventory import load_inventory
from lbauto.play import templating
from lbauto.play.drain import record_for
from lbauto.play.models import MODULES, RESERVED, Facts, PlayModel, TaskModel
from lbauto.play.source import LMap, LSeq, line_at, load

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Task:
    """One task as written: its keywords checked, its arguments still raw (templates kept)."""

    source: Path
    index: int  # 1-based, as people count
    name: str
    line: int
    module: str
    module_line: int
    args: Mapping[str, Any]
    when: tuple[str | bool, ...] = ()
    register: str | None = None
    loop: list[Any] | str | None = None
    loop_line: int = 0
    ignore_errors: bool = False

    def where(self, loc: Loc = ()) -> str:
        line = line_at(self.args, loc, self.module_line) if loc else self.module_line
        return f"{self.source}:{line}: task {self.index} {self.name!r}"


@dataclass(frozen=True)
class Play:
    source: Path
    name: str
    inventory: Inventory
    #: Vars as the run starts with them: the play's, rendered, overridden by extra vars.
    vars: Mapping[str, Any]
    tasks: tuple[Task, ...]


def lbauto_vars(inv: Inventory, check: bool) -> dict[str, Any]:
    """The ``lbauto`` variable: the inventory as plain values, for templates and ``loop:``."""
    vips = [
        {
            "name": v.name,
            "address": str(v.address),
            "dips": [str(d) for d in v.dips],
            "mode": v.mode.value,
        }
        for v in inv.vips
    ]
    dips: set[IPAddress] = {d for v in inv.vips for d in v.dips}
    return {
        "inventory": str(inv.path),
        "vips": vips,
        "vip": {v["name"]: v for v in vips},
        "dips": [str(d) for d in sorted(dips, key=addr_key)],
        "check": check,
    }


def pydantic_problems(err: ValidationError, model: type[BaseModel]) -> list[tuple[Loc, str]]:
    """(location, what) for each error of ``err``, worded for a playbook author."""
    out: list[tuple[Loc, str]] = []
    for e in err.errors(include_url=False):
        loc: Loc = tuple(e["loc"])
        key = next((str(s) for s in reversed(loc) if isinstance(s, str)), "")
        kind = e["type"]
        if kind == "missing":
            out.append((loc[:-1], f"argument {key!r} is missing"))
        elif kind == "extra_forbidden":
            allowed = ", ".join(_field_names(model, loc[:-1]))
            out.append((loc, f"unknown argument {key!r} (allowed: {allowed})"))
        else:
            msg = str(e["msg"]).removeprefix("Value error, ")
            out.append((loc, f"{key}: {msg}" if key else msg))
    return out


def _field_names(model: type[BaseModel], loc: Loc) -> list[str]:
    for step in loc:
        field_info = model.model_fields.get(str(step)) if isinstance(step, str) else None
        inner = getattr(field_info, "annotation", None)
        for candidate in getattr(inner, "__args__", (inner,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
                break
    return [f.alias or name for name, f in model.model_fields.items()]


@dataclass
class _Checker:
    path: Path
    doc: Any
    problems: list[str] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)

    def add(self, line: int, what: str, entry: str = "") -> None:
        self.problems.append(f"{self.path}:{line}: {entry + ': ' if entry else ''}{what}")


def read_play(
    path: Path,
    *,
    inventory: Path | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    check: bool = False,
) -> Play:
    """Read and check the playbook at ``path``; :class:`PlaybookError` lists every problem."""
    doc = load(path)
    c = _Checker(path, doc)
    if isinstance(doc, LSeq):
        if len(doc) != 1:
            raise PlaybookError(
                [f"{path}:{doc.line}: one play per playbook file, found {len(doc)}"]
            )
        doc = doc[0]
        c.doc = doc
    if not isinstance(doc, LMap):
        raise PlaybookError([f"{path}:1: a playbook is a mapping with name:, vars:, tasks:"])
    try:
        PlayModel.model_validate(doc)
    except ValidationError as err:
        for loc, what in pydantic_problems(err, PlayModel):
            if loc[:1] == ("tasks",) and len(loc) > 1:
                continue  # the tasks' own checks below say it better
            what = what.replace("argument", "key")
            c.add(line_at(doc, loc, doc.line), what, "play")
    inv = _inventory(path, doc, inventory, c)
    extra = dict(extra_vars or {})
    for key in extra:
        if key in RESERVED:
            c.add(doc.line, f"extra var {key!r} is reserved (the runner defines it)")
    variables = _vars(doc, extra, inv, check, c)
    tasks = _tasks(doc, variables, inv, c)
    if c.problems:
        raise PlaybookError(c.problems)
    assert inv is not None
    name = doc.get("name")
    return Play(path, str(name), inv, variables, tuple(tasks))


def _inventory(path: Path, doc: LMap, given: Path | None, c: _Checker) -> Inventory | None:
    written = doc.get("inventory")
    if given is None and isinstance(written, str):
        target = (path.parent / written).resolve()
    elif given is not None:
        target = given
    else:
        c.add(
            doc.line,
            "no inventory: add `inventory: DIR` (relative to the playbook) or pass --inventory DIR",
            "play",
        )
        return None
    # Inventory problems carry their own file:line; they are raised as they are.
    return load_inventory(target)


def _vars(
    doc: LMap, extra: dict[str, Any], inv: Inventory | None, check: bool, c: _Checker
) -> dict[str, Any]:
    variables: dict[str, Any] = {"lbauto": lbauto_vars(inv, check) if inv else {}, **extra}
    raw = doc.get("vars")
    if isinstance(raw, LMap):
        for key, value in raw.items():
            if key in extra:
                continue
            try:
                variables[key] = templating.render(value, variables)
            except PlaybookError as exc:
                c.add(raw.line_of(key), f"var {key!r}: {exc}", "play")
                variables[key] = None
                c.broken.add(key)  # reported once here, not again in every task that reads it
    return variables


def _tasks(doc: LMap, variables: dict[str, Any], inv: Inventory | None, c: _Checker) -> list[Task]:
    raw = doc.get("tasks")
    if not isinstance(raw, LSeq):
        return []
    facts = Facts.of(inv.vips) if inv else None
    if facts is not None and inv is not None:
        facts.dips |= record_for(inv).dips()  # drained earlier: restore_dip may name them
    registered: set[str] = set()
    tasks: list[Task] = []
    for i, entry in enumerate(raw):
        line = raw.line_of(i)
        task = _task(c, i + 1, line, entry)
        if task is None:
            continue
        if task.register and task.register in variables:
            c.add(
                line,
                f"register {task.register!r} shadows a var of the same name",
                f"task {task.index} {task.name!r}",
            )
        _check_task(c, task, variables, registered, facts)
        if task.register:
            registered.add(task.register)
        tasks.append(task)
    return tasks


def _task(c: _Checker, index: int, line: int, entry: object) -> Task | None:
    if not isinstance(entry, LMap):
        c.add(line, f"task {index} must be a mapping (name:, a module, its arguments)")
        return None
    label = (
        f"task {index} {entry.get('name')!r}"
        if isinstance(entry.get("name"), str)
        else (f"task {index}")
    )
    modules = [k for k in entry if k not in TaskModel.KEYWORDS]
    keywords = {k: v for k, v in entry.items() if k in TaskModel.KEYWORDS}
    ok = True
    try:
        model = TaskModel.model_validate(keywords)
    except ValidationError as err:
        ok = False
        for loc, what in pydantic_problems(err, TaskModel):
            c.add(line_at(entry, loc, line), what.replace("argument", "key"), label)
    known = ", ".join(sorted(MODULES))
    if not modules:
        c.add(line, f"no module: add one of {known}", label)
        return None
    if len(modules) > 1:
        listed = ", ".join(repr(m) for m in modules)
        unknown = [m for m in modules if m not in MODULES]
        hint = f" ({unknown[0]!r} is not a module or task key)" if unknown else ""
        c.add(entry.line_of(modules[1]), f"one module per task, found {listed}{hint}", label)
        return None
    module = modules[0]
    if module not in MODULES:
        c.add(
            entry.line_of(module),
            f"unknown module {module!r} (known: {known}; task keys: "
            f"{', '.join(sorted(TaskModel.KEYWORDS))})",
            label,
        )
        return None
    args = entry[module]
    if args is None:
        args = LMap(entry.line_of(module))
    if not isinstance(args, LMap):
        c.add(entry.line_of(module), f"{module}: arguments must be a mapping (key: value)", label)
        return None
    if not ok:
        return None
    when = model.when if isinstance(model.when, list) else [model.when]
    return Task(
        source=c.path,
        index=index,
        name=model.name,
        line=line,
        module=module,
        module_line=entry.line_of(module),
        args=args,
        when=tuple(w for w in when if w is not None),
        register=model.register_,
        loop=model.loop,
        loop_line=entry.line_of("loop"),
        ignore_errors=model.ignore_errors,
    )


def _check_task(
    c: _Checker, task: Task, variables: dict[str, Any], registered: set[str], facts: Facts | None
) -> None:
    static = set(variables)
    allowed = static | registered | ({"item"} if task.loop is not None else set())
    label = f"task {task.index} {task.name!r}"
    names: set[str] = set()

    def read(where: int, value: Any, expression: bool | None) -> bool:
        try:
            if expression is None:  # a loop: string
                found = templating.loop_names(value)
            elif expression:
                found = templating.names_in(value, expression=True)
            else:
                found = templating.names_in_value(value)
        except PlaybookError as exc:
            c.add(where, str(exc), label)
            return False
        undefined = sorted(found - allowed)
        for name in undefined:
            c.add(
                where,
                f"undefined variable {name!r} (define it in vars:, pass -e {name}=..., "
                "or register it in an earlier task)",
                label,
            )
        names.update(found)
        return not undefined

    ok = all([read(c_line, w, True) for c_line, w in _whens(task)])
    if isinstance(task.loop, str):
        ok = read(task.loop_line, task.loop, None) and ok
    elif isinstance(task.loop, list):
        ok = read(task.loop_line, task.loop, False) and ok
    args_ok = all(
        [read(task.args.line_of(k), v, False) for k, v in task.args.items()]  # type: ignore[attr-defined]
    )
    that = task.args.get("that") if task.module == "assert" else None
    until = task.args.get("until") if task.module == "wait" else None
    if isinstance(until, Mapping):
        that = until.get("that")
    for expr in [that] if isinstance(that, str) else that if isinstance(that, list) else []:
        if isinstance(expr, str):
            where = task.args.line_of("that" if until is None else "until")  # type: ignore[attr-defined]
            args_ok = read(where, expr, True) and args_ok
    if not (ok and args_ok):
        return
    if (names - {"item"}) - static or names & c.broken:
        _check_keys(c, task)  # reads a registered result: full check right before it runs
        return
    items = _static_items(c, task, variables)
    if items is None:
        _check_keys(c, task)
        return
    seen: set[str] = set()
    for item in items:
        scope = {**variables, "item": item} if task.loop is not None else variables
        for problem in validate_args(task, scope, facts):
            if problem not in seen:  # one line per problem, not per loop item
                seen.add(problem)
                c.problems.append(problem)
    if facts is not None:
        _learn(task, variables, items, facts)


def _whens(task: Task) -> list[tuple[int, str]]:
    return [(task.line, w) for w in task.when if isinstance(w, str)]


def _static_items(c: _Checker, task: Task, variables: dict[str, Any]) -> list[Any] | None:
    if task.loop is None:
        return [None]
    try:
        items = (
            templating.loop_value(task.loop, variables)
            if isinstance(task.loop, str)
            else templating.render(task.loop, variables)
        )
    except PlaybookError as exc:
        c.add(task.loop_line, f"loop: {exc}", f"task {task.index} {task.name!r}")
        return None
    if not isinstance(items, list):
        c.add(
            task.loop_line,
            f"loop must give a list, got {type(items).__name__}",
            f"task {task.index} {task.name!r}",
        )
        return None
    return items


def _check_keys(c: _Checker, task: Task) -> None:
    model = MODULES[task.module]
    names = {f.alias or n: f for n, f in model.model_fields.items()}
    for key in task.args:
        if key not in names:
            c.problems.append(
                f"{task.where((key,))}: {task.module}: unknown argument {key!r} "
                f"(allowed: {', '.join(names)})"
            )
    for key, f in names.items():
        if f.is_required() and key not in task.args:
            c.problems.append(f"{task.where()}: {task.module}: argument {key!r} is missing")


def validate_args(task: Task, variables: Mapping[str, Any], facts: Facts | None) -> list[str]:
    """Problems of ``task``'s arguments rendered with ``variables`` (empty: valid)."""
    try:
        rendered = templating.render(dict(task.args), variables)
    except PlaybookError as exc:
        return [f"{task.where()}: {task.module}: {exc}"]
    model = MODULES[task.module]
    try:
        model.model_validate(rendered, context=facts)
    except ValidationError as err:
        return [
            f"{task.where(loc)}: {task.module}: {what}"
            for loc, what in pydantic_problems(err, model)
        ]
    return []


def _learn(task: Task, variables: dict[str, Any], items: list[Any], facts: Facts) -> None:
    """DIPs a scale task adds become known to the tasks after it (a staged scale-out may
    drain or remove them later)."""
    if task.module not in ("scale", "restore_dip"):
        return
    for item in items:
        scope = {**variables, "item": item} if task.loop is not None else variables
        rendered = templating.render(dict(task.args), scope)
        values = [rendered.get("add"), *(rendered.get("dips") or [])]
        dip = rendered.get("dip")
        values += dip if isinstance(dip, list) else [dip]
        for value in values:
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    facts.dips.add(ipaddress.ip_address(value))
