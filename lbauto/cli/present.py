"""The presentation layer of every command: JSON documents for machines, rich tables for
people, markdown for pull-request comments. Nothing here decides anything; it only turns
plans, push results and status into text.

Tables never split a value (an address, a name, a step name): each column is at least as wide
as its longest word, cells wrap between words, and a table that cannot fit the width is
printed as one block per row instead.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO, TypeAlias

# Light on purpose: every command imports this module, and `plan -o json` needs neither rich nor
# the apply, push and rendering modules. Functions import what they use.
from lbauto.orchestrate.plandoc import JSON_VERSION, PLAN_JSON_VERSION, router_lines

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from lbauto.core.model import Inventory, ObservedState
    from lbauto.core.plan import Plan, RouterPlan, Transition
    from lbauto.orchestrate.apply import ApplyOutcome
    from lbauto.orchestrate.executor import EventHook
    from lbauto.push.pipeline import PushResult

JSON_SCHEMA_VERSION = JSON_VERSION
PLAN_SCHEMA_VERSION = PLAN_JSON_VERSION
#: GitHub refuses a comment longer than this many characters.
MARKDOWN_LIMIT = 65536


def router_change_lines(inv: Inventory, observed: ObservedState, rp: RouterPlan) -> list[str]:
    from lbauto.orchestrate.plandoc import router_change_lines as lines

    return lines(inv, observed, rp)


def plan_to_json(plan: Plan, inv: Inventory, observed: ObservedState) -> dict[str, Any]:
    """The ``lbauto plan --output json`` document (docs/cli.md)."""
    from lbauto.orchestrate.plandoc import plan_document

    return plan_document(plan, inv, observed)


#: Documents with more transitions than this are written compact: json's C encoder does not
#: indent, and the Python one took most of a 10,000-VIP plan's time.
INDENT_TRANSITIONS = 1000
#: List elements encoded and written per piece of a compact document.
_PIECE = 256
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def write_json(doc: Mapping[str, Any]) -> None:
    big = len(doc.get("transitions", ())) > INDENT_TRANSITIONS
    if big and isinstance(doc, dict) and all(isinstance(k, str) for k in doc):
        write_compact_json(sys.stdout, doc)
    else:
        text = json.dumps(doc, separators=(",", ":")) if big else json.dumps(doc, indent=2)
        sys.stdout.write(text + "\n")


def write_compact_json(out: TextIO, doc: Mapping[str, Any]) -> None:
    """``json.dumps(doc, separators=(",", ":"))`` and a newline, written as it is encoded: a
    10,000-VIP plan is 28 MB of JSON, which the one-shot encoder holds as millions of pieces,
    then as one string, then as its bytes. Each top-level value is encoded by the C encoder, a
    long list a few hundred elements at a time (the same text: the encoder puts nothing between
    elements but the separator)."""
    encode = _COMPACT.encode
    out.write("{")
    for i, (key, value) in enumerate(doc.items()):
        out.write(("," if i else "") + encode(key) + ":")
        if type(value) is not list or len(value) <= _PIECE:
            out.write(encode(value))
            continue
        out.write("[")
        for start in range(0, len(value), _PIECE):
            piece = ",".join(map(encode, value[start : start + _PIECE]))
            out.write(("," if start else "") + piece)
        out.write("]")
    out.write("}\n")


def write_text(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


# ------------------------------------------------------------------------------------ tables

Cell: TypeAlias = "str | Text"


def _text(text: str, style: str = "") -> Text:
    from rich.text import Text

    return Text(text, style=style)


def _plain(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell.plain


def _longest_word(cell: Cell) -> int:
    return max((len(w) for w in _plain(cell).split()), default=0)


def print_table(
    console: Console,
    title: str | None,
    headers: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    right: Iterable[str] = (),
) -> None:
    """A table whose columns are never narrower than their longest word (so no address or
    name is split); when even that cannot fit the console, one block per row."""
    from rich import box
    from rich.table import Table

    right = set(right)
    widths = [max([len(h), *(_longest_word(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    bordered = sum(widths) + 3 * len(headers) + 1
    compact = sum(widths) + 2 * (len(headers) - 1)
    if compact <= console.width:
        # Borders when they fit; else a borderless table (two spaces between columns).
        roomy = bordered <= console.width
        table = Table(
            title=title,
            box=box.HEAVY_HEAD if roomy else box.SIMPLE_HEAD,
            show_edge=roomy,
            pad_edge=roomy,
            collapse_padding=not roomy,
        )
        for h, w in zip(headers, widths, strict=True):
            table.add_column(
                h, min_width=w, overflow="fold", justify="right" if h in right else "left"
            )
        for r in rows:
            table.add_row(*r)
        console.print(table)
        return
    if title:
        console.print(_text(title, style="bold"))
    label = max(len(h) for h in headers)
    for r in rows:
        console.print(_text(_plain(r[0]), style="bold"))
        for h, cell in zip(headers[1:], r[1:], strict=True):
            for j, line in enumerate(_plain(cell).splitlines() or [""]):
                console.print(_text(f"  {(h if j == 0 else ''):<{label}}  {line}"))


# -------------------------------------------------------------------------------------- plan

#: By transition kind (lbauto.core.plan.Kind's values).
_KIND_STYLE = {
    "none": "dim",
    "create": "green",
    "delete": "red",
    "bypass-enable": "cyan",
    "bypass-disable": "magenta",
    "bypass-move": "yellow",
    "rebalance": "blue",
    "repair": "bold red",
}
_NONE = "none"
#: A plan with more transitions or change lines (objects, before rendering) than this prints as
#: a summary; ``--full`` prints it whole (10,000 VIPs x 100 routers: 7 million lines).
FULL_TRANSITIONS = 50
FULL_CHANGES = 1000
#: Changed transitions a summary lists, and first change lines it shows per group of routers.
SUMMARY_ROWS = 20
PREVIEW_LINES = 6
#: Change lines one router's block of a markdown comment shows at most.
MARKDOWN_ROUTER_LINES = 200


def _state_text(mode: str, dips: Sequence[str]) -> str:
    if mode == "absent":
        return "absent"
    return f"{mode} " + ", ".join(dips) if dips else mode


def _counts(doc: Mapping[str, Any]) -> Counter[str]:
    return Counter(t["kind"] for t in doc["transitions"] if t["kind"] != _NONE)


def _summary_text(
    counts: Mapping[str, int], unchanged: int, skipped: int, routers_changed: int
) -> str:
    total = sum(counts.values())
    parts = [f"{total} to change" + (f" ({_kinds_text(counts)})" if counts else "")]
    parts.append(f"{unchanged} unchanged")
    if skipped:
        parts.append(f"{skipped} skipped by --limit")
    parts.append(f"{routers_changed} router(s) with config changes")
    return ", ".join(parts)


def summary_line(doc: Mapping[str, Any]) -> str:
    """``3 to change (1 create, 2 bypass-enable), 4 unchanged, 1 skipped by --limit``."""
    counts = _counts(doc)
    unchanged = sum(1 for t in doc["transitions"] if t["kind"] == _NONE)
    changed = sum(1 for r in doc["routers"] if r.get("lines", r.get("changes")))
    return _summary_text(counts, unchanged, len(doc.get("skipped", [])), changed)


def _kinds_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))


def _row(vip: str, address: str, from_: Any, to: Any, kind: str, actions: list[str]) -> list[Cell]:
    return [
        vip,
        address,
        _state_text(from_["mode"], from_["dips"]),
        _state_text(to["mode"], to["dips"]),
        _text(kind, style=_KIND_STYLE[kind]),
        "\n".join(actions) or "-",
    ]


def _doc_row(t: Mapping[str, Any]) -> list[Cell]:
    actions = [s["action"] for s in t["steps"]]
    return _row(t["vip"], t["address"], t["from"], t["to"], t["kind"], actions)


def _plan_row(t: Transition) -> list[Cell]:
    actions = [s.action.value for s in t.steps]
    return _row(t.vip, str(t.address), t.from_.to_json(), t.to.to_json(), t.kind.value, actions)


_TRANSITION_HEADERS = ("VIP", "address", "from", "to", "kind", "steps")


def _print_lines(console: Console, lines: Iterable[str]) -> None:
    for line in lines:
        style = "red" if line.lstrip().startswith(("no ", "delete ")) else "green"
        console.print(_text(f"  {line}", style=style))


def _print_footer(console: Console, summary: str, max_seconds: float, transit: float) -> None:
    console.print(
        f"{summary}; at most {max_seconds:.0f} s of drain waits "
        f"(transit pins run {transit:.0f} s in the background)."
    )


def _is_big(transitions: int, changes: int) -> bool:
    return transitions > FULL_TRANSITIONS or changes > FULL_CHANGES


def print_plan(
    console: Console,
    plan_or_doc: Plan | Mapping[str, Any],
    inv: Inventory | None = None,
    observed: ObservedState | None = None,
    *,
    full: bool = False,
    routers: Sequence[str] = (),
    skipped: Sequence[Any] = (),
) -> None:
    """The plan as a table of transitions, then each router's change lines; a big plan (more
    than FULL_TRANSITIONS transitions or FULL_CHANGES changes) as a summary unless ``full``,
    with the whole change of the ``routers`` named."""
    from lbauto.core.plan import Plan

    if isinstance(plan_or_doc, Plan):
        assert inv is not None and observed is not None
        plan = plan_or_doc
        size = sum(len(rp.remove) + len(rp.add) for rp in plan.routers)
        if full or not _is_big(len(plan.transitions), size):
            from lbauto.orchestrate.plandoc import plan_document

            _print_full(console, plan_document(plan, inv, observed, skipped))
        else:
            _print_plan_summary(console, plan, inv, observed, skipped)
        by_router = {rp.router: rp for rp in plan.routers}
        for name in routers:
            rp = by_router.get(name)
            lines = router_change_lines(inv, observed, rp) if rp is not None else []
            _print_router(console, name, rp.platform if rp else inv.router(name).platform, lines)
        return
    doc = plan_or_doc
    size = sum(len(router_lines(doc, r)) for r in doc["routers"])
    if full or not _is_big(len(doc["transitions"]), size):
        _print_full(console, doc)
    else:
        _print_doc_summary(console, doc)
    by_name = {r["name"]: r for r in doc["routers"]}
    for name in routers:
        r = by_name.get(name)
        if r is not None:
            _print_router(console, name, r["platform"], router_lines(doc, r))


def _print_router(console: Console, name: str, platform: str, lines: Sequence[str]) -> None:
    if not lines:
        console.print(_text(f"router {name} ({platform}): no changes", style="dim"))
        return
    console.print(_text(f"router {name} ({platform}):", style="bold"))
    _print_lines(console, lines)


def _print_full(console: Console, doc: Mapping[str, Any]) -> None:
    rows = [_doc_row(t) for t in doc["transitions"]]
    for s in doc.get("skipped", []):
        rows.append([s["vip"], s["address"], "-", "-", _text(f"skipped ({s['kind']})", "dim"), "-"])
    print_table(console, "Transitions", _TRANSITION_HEADERS, rows)
    for r in doc["routers"]:
        _print_router(console, r["name"], r["platform"], router_lines(doc, r))
    print_pending_commits(console, doc.get("pending_commits", []))
    _print_footer(console, summary_line(doc), doc["max_seconds"], doc["options"]["transit_seconds"])


def _names_text(names: Sequence[str], most: int = 6) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", … ({len(names)} routers)" if len(names) > most else "")


def _print_summary_head(
    console: Console,
    counts: Mapping[str, int],
    unchanged: int,
    rows: list[list[Cell]],
    changed: int,
    skipped: Sequence[Mapping[str, Any]],
) -> None:
    kinds: list[list[Cell]] = [
        [_text(kind, style=_KIND_STYLE[kind]), f"{n:,}"] for kind, n in sorted(counts.items())
    ]
    kinds.append([_text("none", style="dim"), f"{unchanged:,}"])
    if skipped:
        kinds.append([_text("skipped (--limit)", style="dim"), f"{len(skipped):,}"])
    print_table(console, "Transitions by kind", ("transition kind", "VIPs"), kinds, right=("VIPs",))
    if rows:
        title = f"Transitions (first {len(rows)} of {changed:,} to change)"
        print_table(console, title, _TRANSITION_HEADERS, rows)


_Group = tuple[list[str], str, str, list[str]]  # names, platform, changes text, first lines


def _print_groups(console: Console, groups: Sequence[_Group]) -> None:
    table: list[list[Cell]] = [[_names_text(n), p, c] for n, p, c, _ in groups]
    print_table(console, "Router changes", ("routers", "platform", "changes"), table)
    for names, platform, _, preview in groups:
        if not preview:
            continue
        more = f" (and {len(names) - 1} more with the same change)" if len(names) > 1 else ""
        console.print(_text(f"router {names[0]} ({platform}){more}, first lines:", style="bold"))
        _print_lines(console, preview)
        console.print(_text("  …", style="dim"))


def _print_plan_summary(
    console: Console,
    plan: Plan,
    inv: Inventory,
    observed: ObservedState,
    skipped: Sequence[Any],
) -> None:
    from lbauto.core.plan import Kind
    from lbauto.orchestrate.status import pending_commits_json

    counts = Counter(t.kind.value for t in plan.transitions if t.kind is not Kind.NONE)
    unchanged = sum(1 for t in plan.transitions if t.kind is Kind.NONE)
    changed = [t for t in plan.transitions if t.kind is not Kind.NONE]
    rows = [_plan_row(t) for t in changed[:SUMMARY_ROWS]]
    skipped_docs = [{"vip": s.vip, "address": s.address, "kind": s.kind} for s in skipped]
    _print_summary_head(console, counts, unchanged, rows, len(changed), skipped_docs)
    # Routers with the same platform and the same change (one shared tuple: the planner gives
    # routers of one profile one) are one group; its preview renders the first few objects.
    grouped: dict[tuple[object, ...], list[RouterPlan]] = {}
    for rp in plan.routers:
        objs = observed.router_objects(rp.router)
        key = (rp.platform, id(rp.remove), id(rp.add), id(objs))
        members = grouped.get(key)
        if members is None:
            # Equal but not identical changes join too: tuples compare element identity
            # first, and equal routers' objects are mostly the same instances.
            members = next(
                (
                    g
                    for k, g in grouped.items()
                    if k[0] == rp.platform
                    and g[0].remove == rp.remove
                    and g[0].add == rp.add
                    and observed.router_objects(g[0].router) == objs
                ),
                None,
            )
            grouped[key] = members = [] if members is None else members
        members.append(rp)
    groups = []
    unique = {id(g): g for g in grouped.values()}
    for members in unique.values():
        rp = members[0]
        text = _objects_text(len(rp.remove), len(rp.add))
        preview = _preview(inv, observed, rp) if rp.remove or rp.add else []
        groups.append(([m.router for m in members], rp.platform, text, preview))
    _print_groups(console, groups)
    pending = pending_commits_json(observed)
    print_pending_commits(console, pending)
    with_changes = sum(1 for rp in plan.routers if rp.remove or rp.add)
    summary = _summary_text(counts, unchanged, len(skipped), with_changes)
    max_seconds = max((t.max_seconds for t in plan.transitions), default=0.0)
    _print_footer(console, summary, max_seconds, plan.options.transit_seconds)
    _print_hint(console)


def _print_hint(console: Console) -> None:
    console.print(
        _text(
            "big plan summarised: --full prints every transition and line, --router NAME one "
            "router's whole change, -o json the whole plan",
            style="dim",
        )
    )


def _objects_text(remove: int, add: int) -> str:
    parts = [f"{remove:,} to remove"] if remove else []
    parts += [f"{add:,} to add"] if add else []
    return (", ".join(parts) + " (objects)") if parts else "no changes"


def _preview(inv: Inventory, observed: ObservedState, rp: RouterPlan) -> list[str]:
    """The first lines of a router's change, from its first objects only (rendering all of a
    10,000-VIP change takes a fifth of a second per distinct router)."""
    from lbauto.core.plan import RouterPlan

    remove = rp.remove[:PREVIEW_LINES]
    add = rp.add[: max(0, PREVIEW_LINES - len(remove))]
    part = RouterPlan(rp.router, rp.platform, remove, add)
    return router_change_lines(inv, observed, part)[:PREVIEW_LINES]


def _print_doc_summary(console: Console, doc: Mapping[str, Any]) -> None:
    counts = _counts(doc)
    unchanged = sum(1 for t in doc["transitions"] if t["kind"] == _NONE)
    changed = [t for t in doc["transitions"] if t["kind"] != _NONE]
    rows = [_doc_row(t) for t in changed[:SUMMARY_ROWS]]
    _print_summary_head(console, counts, unchanged, rows, len(changed), doc.get("skipped", []))
    grouped: dict[tuple[str, int], list[str]] = {}
    lines_of: dict[tuple[str, int], list[str]] = {}
    for r in doc["routers"]:
        lines = router_lines(doc, r)
        key = (r["platform"], r.get("change_list", id(lines)))
        grouped.setdefault(key, []).append(r["name"])
        lines_of[key] = lines
    groups = []
    for key, names in grouped.items():
        lines = lines_of[key]
        text = f"{len(lines):,} lines" if lines else "no changes"
        groups.append((names, key[0], text, lines[:PREVIEW_LINES]))
    _print_groups(console, groups)
    print_pending_commits(console, doc.get("pending_commits", []))
    _print_footer(console, summary_line(doc), doc["max_seconds"], doc["options"]["transit_seconds"])
    _print_hint(console)


# ---------------------------------------------------------------------------------- markdown


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>") or " "


def _code(text: str, lang: str = "") -> str:
    """A fenced block whose fence is longer than any backtick run inside ``text``."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


def fit_markdown(
    parts: Iterable[str], what: str, limit: int = MARKDOWN_LIMIT, total: int | None = None
) -> str:
    """Join ``parts`` (blank line between) within ``limit`` characters; parts that do not fit
    are left out and a note says how many and where the whole plan is. ``parts`` may be lazy
    (then ``total`` says how many there are): none is made after the first that does not fit."""
    if total is None:
        parts = list(parts)
        total = len(parts)
    kept: list[str] = []
    size = 0
    for i, part in enumerate(parts):
        left = total - i
        note = (
            f"\n\n> **Truncated**: {left} more section(s) of this {what} are not shown (a "
            f"comment holds at most {limit} characters). The whole {what}: run "
            "`lbauto show PLAN -o markdown` on the saved plan, or see the job log."
        )
        extra = len(part) + (2 if kept else 0)
        # The last part needs no room for the note; any other part must leave room for it.
        if size + extra + (0 if left == 1 else len(note)) > limit:
            text = "\n\n".join(kept) + note
            return text[:limit]
        kept.append(part)
        size += extra
    return "\n\n".join(kept)


def plan_markdown(
    doc: Mapping[str, Any],
    title: str = "lbauto plan",
    diffs: Mapping[str, str] | None = None,
    limit: int = MARKDOWN_LIMIT,
) -> str:
    """A pull-request comment: summary line, a table of transitions, each router's diff in a
    collapsible block (at most MARKDOWN_ROUTER_LINES lines each); within ``limit`` characters
    (GitHub's comment limit). Sections are made only while they fit."""
    head = f"### {title}\n\n**{summary_line(doc)}**"
    changed = [t for t in doc["transitions"] if t["kind"] != _NONE]
    chunk = 50  # table rows go in chunks, so a huge plan still shows its first transitions
    chunks = range(0, len(changed), chunk)
    skipped = doc.get("skipped") or []
    routers = [
        r
        for r in doc["routers"]
        if ((diffs or {}).get(r["name"]) or "").strip() or router_lines(doc, r)
    ]
    total = 1 + (len(chunks) or 1) + (1 if skipped else 0) + len(routers)

    def parts() -> Iterator[str]:
        yield head
        if not changed:
            yield "No changes: the devices match the inventory."
        for i in chunks:
            yield _transition_rows(changed[i : i + chunk])
        if skipped:
            names = ", ".join(f"`{s['vip']}` ({s['kind']})" for s in skipped)
            yield f"Skipped by `--limit`: {names}"
        for r in routers:
            diff = (diffs or {}).get(r["name"])
            if diff is not None and diff.strip():
                body = _code(diff, "diff")
            else:
                lines = router_lines(doc, r)
                shown = "\n".join(_diff_mark(line) for line in lines[:MARKDOWN_ROUTER_LINES])
                body = _code(shown, "diff")
                if len(lines) > MARKDOWN_ROUTER_LINES:
                    body += f"\n\n{len(lines) - MARKDOWN_ROUTER_LINES:,} more line(s) not shown."
            yield _details(f"router <code>{r['name']}</code> ({r['platform']})", body)

    return fit_markdown(parts(), "plan", limit, total=total)


def _transition_rows(transitions: Sequence[Mapping[str, Any]]) -> str:
    head = "| VIP | address | from | to | kind | steps |\n| --- | --- | --- | --- | --- | --- |"
    rows = [
        "| "
        + " | ".join(
            _cell(x)
            for x in (
                t["vip"],
                t["address"],
                _state_text(t["from"]["mode"], t["from"]["dips"]),
                _state_text(t["to"]["mode"], t["to"]["dips"]),
                t["kind"],
                ", ".join(s["action"] for s in t["steps"]),
            )
        )
        + " |"
        for t in transitions
    ]
    return "\n".join([head, *rows])


def _diff_mark(line: str) -> str:
    return ("- " if line.lstrip().startswith(("no ", "delete ")) else "+ ") + line


# ------------------------------------------------------------------------------------- push

#: By push status (lbauto.push.pipeline.Status's values).
_STYLE = {
    "changed": "green",
    "unchanged": "dim",
    "failed": "bold red",
    "rolled back": "yellow",
}


def push_doc(result: PushResult, skipped: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "kind": "push",
        **result.to_json(),
        "changes": any(r.diff.strip() for r in result.results),
        "skipped": list(skipped),
    }


_PUSH_HEADERS = ("router", "platform", "result", "diff lines", "seconds", "error")


def _push_rows(result: PushResult) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for r in result.results:
        status = "would change" if result.dry_run and r.status == "changed" else r.status
        rows.append(
            [
                r.router,
                r.platform,
                _text(str(status), style=_STYLE[str(r.status)]),
                str(r.diff_lines),
                f"{r.seconds:.2f}",
                r.error or "",
            ]
        )
    return rows


def print_result(
    console: Console, result: PushResult, diffs: bool = True, skipped: Sequence[str] = ()
) -> None:
    """The per-router device diffs, then the result table."""
    if diffs:
        for r in result.results:
            if r.diff.strip():
                console.rule(f"{r.router} ({r.platform})")
                for line in r.diff.splitlines():
                    style = {"+": "green", "-": "red"}.get(line[:1], "")
                    console.print(_text(line, style=style))
    title = "push (dry run: nothing changed)" if result.dry_run else "push"
    print_table(console, title, _PUSH_HEADERS, _push_rows(result), right=("diff lines", "seconds"))
    if skipped:
        console.print(_text(f"skipped by --limit: {', '.join(skipped)}", style="dim"))


def push_markdown(result: PushResult, skipped: Sequence[str] = ()) -> str:
    changed = [r for r in result.results if r.diff.strip()]
    verb = "would change" if result.dry_run else "changed"
    title = "lbauto push --dry-run" if result.dry_run else "lbauto push"
    parts = [f"### {title}\n\n**{len(changed)} router(s) {verb}, {len(result.results)} checked**"]
    rows = [
        f"| {_cell(r.router)} | {r.platform} | {r.status} | {r.diff_lines} "
        f"| {_cell(r.error or '')} |"
        for r in result.results
    ]
    head = "| router | platform | result | diff lines | error |\n| --- | --- | --- | ---: | --- |"
    parts.append("\n".join([head, *rows]))
    if skipped:
        parts.append("Skipped by `--limit`: " + ", ".join(f"`{s}`" for s in skipped))
    for r in changed:
        parts.append(
            _details(f"router <code>{r.router}</code> ({r.platform})", _code(r.diff, "diff"))
        )
    return fit_markdown(parts, "push")


# ----------------------------------------------------------------------------------- status


def status_json(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"version": JSON_VERSION, "kind": "status", **doc}


def print_pending_commits(console: Console, pending: Sequence[Mapping[str, Any]]) -> None:
    """Commits waiting for confirmation (drift: the router reverts them by itself)."""
    for p in pending:
        when = "at a time the router does not say"
        if p.get("deadline"):
            left = max(0, int(p["deadline"] - time.time()))
            stamp = time.strftime("%H:%M:%SZ", time.gmtime(p["deadline"]))
            when = f"in {left} s ({stamp})"
        console.print(
            _text(
                f"router {p['router']}: commit {p.get('commit') or '(no id)'} awaits "
                f"confirmation; the router reverts it {when} unless `lbauto apply` resolves it",
                style="yellow",
            )
        )


def _status_cells(v: Mapping[str, Any]) -> list[str]:
    want = v["desired"]
    desired = f"{want['mode']} {len(want['dips'])} DIP(s)" if want else "absent"
    agent_txt, flow_txt, timers = [], [], []
    for name, a in v["agents"].items():
        if a is None:
            agent_txt.append(f"{name}: absent")
            continue
        track = "tracking" if a["flow_tracking"] else "no tracking"
        agent_txt.append(f"{name}: {a['mode']} {len(a['dips'])} DIP(s), {track}")
        flow_txt.append(f"{name}: {a['flow_entries'] if a['flow_entries'] is not None else '?'}")
        if a["transit"]:
            timers.append(f"pin {a['transit']['dip']} {a['transit']['seconds_left']:.0f}s")
        if a["drain"]:
            timers.append(f"drain {len(a['drain']['dips'])} {a['drain']['seconds_left']:.0f}s")
    bypass = "\n".join(f"{r}: {d}" for r, d in v["bypass"].items()) or "-"
    return [
        v["vip"],
        v["address"],
        desired,
        "\n".join(agent_txt) or "-",
        bypass,
        "\n".join(flow_txt) or "-",
        "\n".join(timers) or "-",
        v["pending"],
    ]


_STATUS_HEADERS = ("VIP", "address", "desired", "agents", "bypass", "flows", "timers", "pending")


def print_status(console: Console, doc: Mapping[str, Any]) -> None:
    rows: list[list[Cell]] = []
    for v in doc["vips"]:
        cells: list[Cell] = list(_status_cells(v))
        cells[-1] = _text(v["pending"], style="yellow" if v["drift"] else "green")
        rows.append(cells)
    print_table(console, "VIP status", _STATUS_HEADERS, rows)
    if doc.get("bgp"):
        print_table(console, "BGP sessions (router side)", _SESSION_HEADERS, session_rows(doc))
    print_pending_commits(console, doc.get("pending_commits", []))
    if doc["in_sync"]:
        console.print(_text("in sync", style="green"))
    else:
        console.print(_text("drift: run `lbauto apply`", style="yellow"))


_SESSION_HEADERS = ["router", "agent", "address", "BGP", "BFD", "up (s)", "accepted"]


def session_rows(doc: Mapping[str, Any]) -> list[list[Cell]]:
    """One row per router and agent address of the status document's ``bgp`` section."""
    rows: list[list[Cell]] = []
    for router, agents in sorted(doc.get("bgp", {}).items()):
        if "error" in agents:
            rows.append(
                [router, "-", "-", _text(f"unreadable: {agents['error']}", "red"), "", "", ""]
            )
            continue
        for agent, per in sorted(agents.items()):
            for address, s in per.items():
                bgp, bfd = s["bgp"], s["bfd"] or "-"
                rows.append(
                    [
                        router,
                        agent,
                        address,
                        _text(bgp, style="green" if bgp == "up" else "red"),
                        _text(bfd, style="green" if bfd in ("up", "-") else "red"),
                        "" if s["uptime"] is None else str(s["uptime"]),
                        "" if s["accepted"] is None else str(s["accepted"]),
                    ]
                )
    return rows


def status_markdown(doc: Mapping[str, Any]) -> str:
    drift = sum(1 for v in doc["vips"] if v["drift"])
    head = f"### lbauto status\n\n**{len(doc['vips'])} VIP(s), " + (
        "in sync**" if doc["in_sync"] else f"{drift} with drift**"
    )
    rows = ["| " + " | ".join(_cell(c) for c in _status_cells(v)) + " |" for v in doc["vips"]]
    table = "\n".join(
        ["| " + " | ".join(_STATUS_HEADERS) + " |", "|" + " --- |" * len(_STATUS_HEADERS), *rows]
    )
    return fit_markdown([head, table], "status")


# ------------------------------------------------------------------------------------ apply


def show_outcome_plan(console: Console, outcome: ApplyOutcome, inv: Inventory, output: str) -> None:
    if output == "table":
        print_plan(console, outcome.plan, inv, outcome.observed)
        for router, diff in sorted(outcome.diffs.items()):
            if diff.strip():
                console.print(_text(f"device diff {router}:", style="bold"))
                console.print(_text(diff.rstrip()))


def progress_hook(console: Console, output: str) -> EventHook | None:
    """Step progress on ``console`` (the caller passes stderr's when stdout carries a
    document)."""

    def hook(vip: str, action: str, event: str) -> None:
        style = {"start": "dim", "end": "green", "fail": "bold red"}.get(event, "")
        console.print(_text(f"  {vip:<20} {action:<22} {event}", style=style))

    return hook


def apply_json(
    outcome: ApplyOutcome, inv: Inventory, skipped: Sequence[Any] = (), dry_run: bool = False
) -> dict[str, Any]:
    from lbauto.orchestrate.plandoc import plan_document

    doc = plan_document(outcome.plan, inv, outcome.observed, skipped)
    doc["kind"] = "apply"
    doc["dry_run"] = dry_run
    doc["device_diffs"] = dict(outcome.diffs)
    # pending router commits an earlier run left: what was done (or, dry, would be) with them
    doc["resolved"] = list(outcome.resolved) or [r.describe() for r in outcome.pending]
    doc["result"] = None
    if outcome.executed:
        doc["result"] = {
            "completed": outcome.executed.completed,
            "router_commits": outcome.executed.router_commits,
            "seconds": round(outcome.executed.seconds, 3),
            "converged": outcome.converged,
            "remaining": list(outcome.remaining),
        }
    return doc


def finish_apply(
    console: Console,
    outcome: ApplyOutcome,
    inv: Inventory,
    output: str,
    dry_run: bool,
    skipped: Sequence[Any] = (),
) -> None:
    if output == "json":
        write_json(apply_json(outcome, inv, skipped, dry_run))
        return
    if output == "markdown":
        doc = apply_json(outcome, inv, skipped, dry_run)
        title = "lbauto apply --dry-run" if dry_run else "lbauto apply"
        text = plan_markdown(doc, title, outcome.diffs)
        if doc["result"]:
            res = doc["result"]
            state = (
                "converged" if res["converged"] else "still pending: " + ", ".join(res["remaining"])
            )
            text = fit_markdown([text, f"Applied in {res['seconds']:.1f} s: {state}."], "apply")
        write_text(text)
        return
    for line in outcome.resolved:
        console.print(_text(line, style="yellow"))
    if dry_run:
        for r in outcome.pending:
            console.print(_text(f"apply (not dry) would do: {r.describe()}", style="yellow"))
        console.print(_text("dry run: nothing was changed", style="yellow"))
    elif not outcome.plan.has_changes:
        console.print(_text("nothing to do: devices match the inventory", style="green"))
    elif outcome.executed:
        ex = outcome.executed
        rows: list[list[Cell]] = [
            [t.vip, t.kind.value, _text("done", style="green")]
            for t in outcome.plan.transitions
            if t.steps
        ]
        print_table(console, "Result", ("VIP", "kind", "result"), rows)
        commits = ", ".join(f"{r}: {n}" for r, n in sorted(ex.router_commits.items())) or "none"
        console.print(f"{ex.seconds:.1f} s, router commits: {commits}")
        if not outcome.converged:
            console.print(
                _text(f"still pending after the run: {', '.join(outcome.remaining)}", "yellow")
            )
