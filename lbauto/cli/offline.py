"""Commands that read files (and, for ``plan`` without ``--state``, the live devices):
``validate``, ``plan``, ``render``, ``show``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lbauto.cli.options import (
    EXIT_CHANGES,
    EXIT_ERROR,
    DetailedExitOpt,
    DrainOpt,
    InventoryOpt,
    LimitOpt,
    Output,
    OutputOpt,
    StateOpt,
    TransitOpt,
    app,
    error_lines,
    inventory_path,
    load,
    out,
    split_limit,
    state_file,
)
from lbauto.errors import InventoryError, StateError

if TYPE_CHECKING:
    from lbauto.core.model import Inventory, ObservedState
    from lbauto.orchestrate.planfile import StateSource

log = logging.getLogger("lbauto.cli")

FullOpt = Annotated[
    bool,
    typer.Option(
        "--full", help="Print a big plan's table whole (every transition and change line)."
    ),
]
RouterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--router",
        help="Also print this router's whole change (repeatable).",
        metavar="NAME",
        show_default=False,
    ),
]


@app.command(
    epilog="Example: lbauto validate -i inventories/prod -o json",
)
def validate(
    ctx: typer.Context, inventory: InventoryOpt = None, output: OutputOpt = Output.table
) -> None:
    """Validate an inventory and report every problem at once (file:line: entry: problem)."""
    from lbauto.cli.present import write_json, write_text

    path = inventory_path(ctx, inventory)
    try:
        inv = load(ctx, path)
    except InventoryError as exc:
        if output is Output.table:
            raise
        doc: dict[str, Any] = {
            "version": 1,
            "kind": "validate",
            "inventory": str(path),
            "valid": False,
            "problems": exc.problems,
        }
        if output is Output.json:
            write_json(doc)
        else:
            lines = "\n".join(f"- `{p}`" for p in exc.problems)
            write_text(
                f"### lbauto validate\n\n**{path}: {len(exc.problems)} problem(s)**\n\n{lines}"
            )
        for line in error_lines(exc):
            sys.stderr.write(line + "\n")
        raise typer.Exit(EXIT_ERROR) from exc
    summary = f"{len(inv.routers)} router(s), {len(inv.agents)} agent(s), {len(inv.vips)} VIP(s)"
    if output is Output.json:
        write_json(
            {
                "version": 1,
                "kind": "validate",
                "inventory": str(path),
                "valid": True,
                "problems": [],
                "routers": len(inv.routers),
                "agents": len(inv.agents),
                "vips": len(inv.vips),
            }
        )
    elif output is Output.markdown:
        write_text(f"### lbauto validate\n\n**{path}: {summary}: valid**")
    else:
        out.print(f"inventory {inv.path}: {summary}: valid")


def observed_state(
    inv: Inventory, state: str | None
) -> tuple[ObservedState, StateSource, Path | None]:
    """The observed state, its source (live, file, empty) and the state file if any."""
    from lbauto.core.model import ObservedState

    path = state_file(state)
    if path is not None:
        from lbauto.inventory.statefile import load_state

        log.info("observed state from %s", path)
        return load_state(path), "file", path
    if state == "empty":
        log.info("observed state: empty (--state empty)")
        return ObservedState(), "empty", None
    log.info(
        "observing the live state of %d agent(s), %d router(s)", len(inv.agents), len(inv.routers)
    )
    return _observe_live(inv), "live", None


@app.command(
    epilog=(
        "Examples: lbauto plan -i inventories/prod --state empty; "
        "lbauto plan -i inventories/prod --detailed-exitcode --out plan.lbauto -o markdown"
    ),
)
def plan(
    ctx: typer.Context,
    inventory: InventoryOpt = None,
    state: StateOpt = None,
    output: OutputOpt = Output.table,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Also save the plan to this file (for `lbauto apply PLAN` and `lbauto show`).",
            metavar="PLAN",
            show_default=False,
        ),
    ] = None,
    limit: LimitOpt = None,
    detailed_exitcode: DetailedExitOpt = False,
    transit: TransitOpt = 60.0,
    drain_timeout: DrainOpt = 30.0,
    full: FullOpt = False,
    show_routers: RouterOpt = None,
) -> None:
    """Show the transitions and router changes that would move the observed state to the
    inventory; optionally save them as a plan file. A big plan's table is a summary (counts by
    kind, per-router changes, their first lines): --full or --router NAME for the whole."""
    from lbauto.core.plan import PlanOptions
    from lbauto.orchestrate.limit import limited_plan

    given = inventory_path(ctx, inventory)
    inv = load(ctx, given)
    named = _known_routers(inv, show_routers)
    observed, source, path = observed_state(inv, state)
    options = PlanOptions(transit_seconds=transit, drain_timeout=drain_timeout)
    patterns = split_limit(limit)
    lp = limited_plan(inv, observed, options, patterns)
    # The table needs no document (rendering every router's lines is most of a big one's cost),
    # nor the modules that build it (jinja2) or save it: each branch imports what it uses.
    doc = None
    if out_file is not None or output is not Output.table:
        from lbauto.orchestrate.plandoc import plan_document

        doc = plan_document(lp.plan, inv, observed, lp.skipped)
    if out_file is not None:
        from lbauto.orchestrate.planfile import build_plan_file, write_plan_file

        assert doc is not None
        pf = build_plan_file(
            plan_doc=doc,
            inv=inv,
            inventory_given=given,
            observed=observed,
            source=source,
            state_file=path,
            options=options,
            limit=patterns,
            only=lp.only,
        )
        write_plan_file(out_file, pf)
    if output is Output.json:
        from lbauto.cli.present import write_json

        assert doc is not None
        write_json(doc)
    elif output is Output.markdown:
        from lbauto.cli.present import plan_markdown, write_text

        assert doc is not None
        write_text(plan_markdown(doc))
    else:
        from lbauto.cli.present import print_plan

        print_plan(out, lp.plan, inv, observed, full=full, routers=named, skipped=list(lp.skipped))
        if out_file is not None:
            out.print(f"plan saved to {out_file}: apply it with `lbauto apply {out_file}`")
    if detailed_exitcode:
        from lbauto.orchestrate.status import pending_commits_json

        # pending router commits count as changes
        if lp.plan.has_changes or pending_commits_json(observed):
            raise typer.Exit(EXIT_CHANGES)


def _known_routers(inv: Inventory, names: list[str] | None) -> list[str]:
    known = {r.name for r in inv.routers}
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise InventoryError(
            [f"unknown router {n!r} (known: {', '.join(sorted(known))})" for n in unknown]
        )
    return list(names or [])


@app.command(
    "state",
    epilog="Example: lbauto state -i inventories/prod --out observed.json; "
    "lbauto plan -i inventories/prod --state observed.json",
)
def state_command(
    ctx: typer.Context,
    inventory: InventoryOpt = None,
    state: StateOpt = None,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the state file here (default: stdout).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write the observed state (live, or from --state FILE) as a compact state file for
    `plan --state`: routers of one profile share one object list (docs/cli.md)."""
    import json

    from lbauto.inventory.statefile import state_to_compact_json

    inv = load(ctx, inventory_path(ctx, inventory))
    observed, _, _ = observed_state(inv, state)
    text = json.dumps(state_to_compact_json(observed), separators=(",", ":")) + "\n"
    if out_file is None:
        sys.stdout.write(text)
        return
    try:
        out_file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise StateError(f"{out_file}: cannot write the state file: {exc.strerror}") from exc


@app.command(epilog="Example: lbauto show plan.lbauto -o markdown")
def show(
    plan_file: Annotated[Path, typer.Argument(help="A plan file from `lbauto plan --out`.")],
    output: OutputOpt = Output.table,
    full: FullOpt = False,
    show_routers: RouterOpt = None,
) -> None:
    """Print a saved plan (what `lbauto apply PLAN` would run) with what it was computed from."""
    from lbauto.cli.present import plan_markdown, print_plan, write_json, write_text
    from lbauto.orchestrate.planfile import load_plan_file

    pf = load_plan_file(plan_file)
    saved = {
        "file": str(plan_file),
        "format_version": pf.version,
        "lbauto_version": pf.lbauto_version,
        "created": pf.created,
        "inventory": {"path": pf.inventory.path, "digest": pf.inventory.digest},
        "state": {"source": pf.state.source, "file": pf.state.file, "digest": pf.state.digest},
        "options": pf.options.model_dump(mode="json"),
    }
    if output is Output.json:
        write_json({**pf.plan, "kind": "plan", "saved": saved})
    elif output is Output.markdown:
        text = plan_markdown(pf.plan, title=f"lbauto plan (saved: {plan_file.name})")
        write_text(text)
    else:
        out.print(
            f"plan file {plan_file}: made {pf.created} by lbauto {pf.lbauto_version} from "
            f"inventory {pf.inventory.path} ({pf.inventory.digest[:19]}…) and {pf.state.source} "
            f"state ({pf.state.digest[:19]}…)"
        )
        if pf.options.limit:
            out.print(f"limited to: {', '.join(pf.options.limit)}")
        known = {r["name"] for r in pf.plan["routers"]}
        unknown = [n for n in show_routers or [] if n not in known]
        if unknown:
            raise InventoryError(
                [f"unknown router {n!r} (in the plan: {', '.join(sorted(known))})" for n in unknown]
            )
        print_plan(out, pf.plan, full=full, routers=show_routers or [])


@app.command(epilog="Example: lbauto render -i inventories/prod r1 -o json")
def render(
    ctx: typer.Context,
    routers: Annotated[
        list[str] | None, typer.Argument(help="Routers to render (default: all).")
    ] = None,
    inventory: InventoryOpt = None,
    state: StateOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Print the full intended lbauto-owned config of each router (--state keeps PBR
    sequence numbers as observed; without it, as from nothing deployed)."""
    from lbauto.cli.present import write_json, write_text
    from lbauto.core.intent import desired_objects
    from lbauto.core.model import RouterObject
    from lbauto.core.pool import desired_pool
    from lbauto.inventory.statefile import load_state
    from lbauto.platforms import PLATFORMS
    from lbauto.platforms.render import render_config

    inv = load(ctx, inventory_path(ctx, inventory))
    observed = load_state(state_file(state))
    known = {r.name for r in inv.routers}
    unknown = [r for r in routers or [] if r not in known]
    if unknown:
        raise InventoryError(
            [f"unknown router {name!r} (known: {', '.join(sorted(known))})" for name in unknown]
        )
    rendered = []
    for router in inv.routers:
        if routers and router.name not in routers:
            continue
        objs: frozenset[RouterObject] = desired_objects(
            inv, router, observed.router_objects(router.name)
        )
        pool = desired_pool(router, inv.agents)  # BGP sessions (lbauto_lb_route: bgp)
        if pool:
            objs = objs | pool
        text = render_config(router, objs, template_dir=inv.template_dir)
        if text and not text.endswith("\n"):
            text += "\n"
        rendered.append((router, text))
    if output is Output.json:
        write_json(
            {
                "version": 1,
                "kind": "render",
                "routers": [
                    {"name": r.name, "platform": r.platform, "config": t} for r, t in rendered
                ],
            }
        )
    elif output is Output.markdown:
        parts = [f"#### {r.name} ({r.platform})\n\n```\n{t}```" for r, t in rendered]
        write_text("\n\n".join(["### lbauto render", *parts]))
    else:
        for router, text in rendered:
            mark = PLATFORMS[router.platform].comment_char
            sys.stdout.write(f"{mark} ---- {router.name} ({router.platform})\n{text}")


def _observe_live(inv: Inventory) -> ObservedState:
    from lbauto.orchestrate.live import live_devices

    devices = live_devices(inv)
    try:
        return devices.observe()
    finally:
        devices.close()
