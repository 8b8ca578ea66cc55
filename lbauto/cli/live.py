"""Commands that change or read live devices: ``apply``, ``scale vip``, ``status``, ``demo``."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lbauto.cli.options import (
    EXIT_CHANGES,
    DetailedExitOpt,
    DrainIdleOpt,
    DrainOpt,
    DryRunOpt,
    InventoryOpt,
    LimitOpt,
    Output,
    OutputOpt,
    TransitOpt,
    WorkersOpt,
    YesOpt,
    app,
    console_for,
    inventory_path,
    load,
    out,
    split_limit,
    with_workers,
)
from lbauto.errors import LbautoError

if TYPE_CHECKING:
    from lbauto.core.model import Inventory, IPAddress
    from lbauto.core.plan import PlanOptions
    from lbauto.orchestrate.apply import ApplyOutcome, Devices
    from lbauto.orchestrate.executor import EventHook
    from lbauto.orchestrate.limit import Skipped


def _confirmer(inv: Inventory, yes: bool, output: Output) -> Callable[[ApplyOutcome], bool]:
    """Show the plan and device diffs, then ask (unless --yes)."""

    from lbauto.cli.present import show_outcome_plan

    def confirm(outcome: ApplyOutcome) -> bool:
        show_outcome_plan(out, outcome, inv, output.value)
        if yes:
            return True
        if sys.stdin is None or not sys.stdin.isatty():
            raise LbautoError(
                "refusing to change devices without confirmation: stdin is not a terminal; "
                "pass --yes"
            )
        return typer.confirm("Apply this plan?", default=False)

    return confirm


@app.command(
    epilog=(
        "Examples: lbauto apply -i inventories/prod --dry-run; "
        "lbauto apply plan.lbauto --yes (a plan saved by `lbauto plan --out plan.lbauto`)"
    ),
)
def apply(
    ctx: typer.Context,
    plan_file: Annotated[
        Path | None,
        typer.Argument(
            help="A saved plan (`lbauto plan --out`): apply exactly it, refusing if the "
            "inventory or the live state changed since (see --replan).",
            metavar="PLAN",
            show_default=False,
        ),
    ] = None,
    inventory: InventoryOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    replan: Annotated[
        bool,
        typer.Option(
            "--replan", help="With PLAN: when it is stale, plan anew from the live state instead."
        ),
    ] = False,
    limit: LimitOpt = None,
    detailed_exitcode: DetailedExitOpt = False,
    drain_timeout: DrainOpt = 30.0,
    drain_idle: DrainIdleOpt = 5.0,
    transit: TransitOpt = 60.0,
    output: OutputOpt = Output.table,
    workers: WorkersOpt = None,
) -> None:
    """Plan from the live agents and routers (or take a saved plan), show the plan and device
    diffs, then execute it.

    One apply per inventory runs at a time. Every step is journalled in the inventory's state
    directory (.lbauto/journal.log); a failed step is undone for its VIP.
    """
    from lbauto.core.plan import PlanOptions

    patterns = split_limit(limit)
    skipped: list[Skipped] = []
    if plan_file is not None:
        if patterns:
            raise LbautoError("--limit cannot narrow a saved plan: give it to `lbauto plan --out`")
        inv, options, run = _saved_runner(ctx, plan_file, inventory, replan, output, skipped)
    else:
        inv = load(ctx, inventory_path(ctx, inventory))
        options = PlanOptions(transit_seconds=transit, drain_timeout=drain_timeout)
        run = _live_runner(inv, options, patterns, skipped)
    inv = with_workers(inv, workers)
    outcome = _live_run(inv, run, dry_run, yes, options, drain_idle, output, skipped)
    if detailed_exitcode and dry_run and outcome.plan.has_changes:
        raise typer.Exit(EXIT_CHANGES)


Runner = Callable[..., "ApplyOutcome"]


def _saved_runner(
    ctx: typer.Context,
    plan_file: Path,
    inventory: Path | None,
    replan: bool,
    output: Output,
    skipped: list[Skipped],
) -> tuple[Inventory, PlanOptions, Runner]:
    """Apply a saved plan: its inventory (unless given), its options, its staleness checks."""
    from lbauto.errors import StalePlanError
    from lbauto.orchestrate.planfile import apply_saved, inventory_changes, load_plan_file

    pf = load_plan_file(plan_file)
    given = inventory or (ctx.obj or {}).get("inventory") or Path(pf.inventory.path)
    inv = load(ctx, Path(given))
    early = inventory_changes(pf, inv)
    if early and not replan:  # before any device is contacted (or a token read)
        raise StalePlanError(str(plan_file), early)
    skipped.extend(_skipped_of(pf.plan))

    def run(
        devices: Devices,
        *,
        options: PlanOptions,
        dry_run: bool,
        confirm: Callable[[ApplyOutcome], bool],
        on_event: EventHook | None,
    ) -> ApplyOutcome:
        done = apply_saved(
            pf,
            plan_file,
            inv,
            devices,
            dry_run=dry_run,
            confirm=confirm,
            replan=replan,
            on_event=on_event,
        )
        for reason in done.replanned:
            console_for(output.value).print(f"note: plan was stale, replanned: {reason}")
        return done.outcome

    return inv, pf.options.plan_options(), run


def _live_runner(
    inv: Inventory, options: PlanOptions, patterns: list[str], skipped: list[Skipped]
) -> Runner:
    """Plan from the live state, narrowed by --limit (router patterns need the whole plan:
    one extra observation, only when --limit is given)."""
    from lbauto.core.planner import make_plan
    from lbauto.orchestrate.apply import run_apply
    from lbauto.orchestrate.limit import select, skipped_between

    def run(
        devices: Devices,
        *,
        options: PlanOptions,
        dry_run: bool,
        confirm: Callable[[ApplyOutcome], bool],
        on_event: EventHook | None,
    ) -> ApplyOutcome:
        only = None
        if patterns:
            full = make_plan(inv, devices.observe(), options)
            only = select(patterns, full, inv)
            skipped.extend(skipped_between(full, only))
        return run_apply(
            inv,
            devices,
            options=options,
            dry_run=dry_run,
            confirm=confirm,
            only=only,
            on_event=on_event,
        )

    return run


def _skipped_of(doc: dict[str, object]) -> list[Skipped]:
    from lbauto.orchestrate.limit import Skipped

    raw = doc.get("skipped", [])
    assert isinstance(raw, list)
    return [Skipped(s["vip"], s["address"], s["kind"]) for s in raw]


def _live_run(
    inv: Inventory,
    run: Callable[..., ApplyOutcome],
    dry_run: bool,
    yes: bool,
    options: PlanOptions,
    drain_idle: float,
    output: Output,
    skipped: Sequence[Skipped] = (),
) -> ApplyOutcome:
    """Run ``run(devices, ...)`` against the live agents and routers, then report."""
    from lbauto.cli.present import finish_apply, progress_hook, show_outcome_plan
    from lbauto.orchestrate.live import live_devices

    console = console_for(output.value)
    devices = live_devices(inv, console=console, drain_idle=drain_idle)
    try:
        outcome = run(
            devices,
            options=options,
            dry_run=dry_run,
            confirm=_confirmer(inv, yes, output),
            on_event=progress_hook(console, output.value),
        )
    finally:
        devices.close()
    if dry_run:
        show_outcome_plan(out, outcome, inv, output.value)
    finish_apply(out, outcome, inv, output.value, dry_run, skipped)
    return outcome


scale_app = typer.Typer(help="Change a VIP's DIPs in vips.yaml and apply its transition.")
app.add_typer(scale_app, name="scale")


@scale_app.command("vip", epilog="Example: lbauto scale vip web --dips 198.51.100.21 --dry-run")
def scale_vip(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The VIP's name in vips.yaml.")],
    dips: Annotated[
        str | None, typer.Option("--dips", help="The new DIP list, comma separated.")
    ] = None,
    add_dip: Annotated[str | None, typer.Option("--add-dip", help="Add one DIP.")] = None,
    remove_dip: Annotated[str | None, typer.Option("--remove-dip", help="Remove one DIP.")] = None,
    inventory: InventoryOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    drain_timeout: DrainOpt = 30.0,
    drain_idle: DrainIdleOpt = 5.0,
    transit: TransitOpt = 60.0,
    output: OutputOpt = Output.table,
    workers: WorkersOpt = None,
) -> None:
    """Scale one VIP. vips.yaml keeps its comments and order and is written only after the
    transition succeeded; --dry-run changes neither the file nor any device."""
    from lbauto.core.plan import PlanOptions
    from lbauto.orchestrate.apply import ScaleRequest, run_scale

    inv = load(ctx, inventory_path(ctx, inventory))
    req = ScaleRequest(
        vip=name,
        dips=dips.split(",") if dips is not None else None,
        add=add_dip,
        remove=remove_dip,
    )
    run = functools.partial(run_scale, inv, req)
    options = PlanOptions(transit_seconds=transit, drain_timeout=drain_timeout)
    _live_run(with_workers(inv, workers), run, dry_run, yes, options, drain_idle, output)


@app.command(epilog="Example: lbauto status -i inventories/prod -o markdown")
def status(
    ctx: typer.Context, inventory: InventoryOpt = None, output: OutputOpt = Output.table
) -> None:
    """Per VIP: desired vs observed mode and DIPs, where the bypass is active, flow entries at
    each agent, transit and drain timers, and drift."""
    from lbauto.cli.present import (
        print_status,
        status_json,
        status_markdown,
        write_json,
        write_text,
    )
    from lbauto.core.planner import make_plan
    from lbauto.orchestrate.live import live_devices
    from lbauto.orchestrate.sessions import bgp_routers, read_sessions, sessions_json
    from lbauto.orchestrate.status import status_doc

    inv = load(ctx, inventory_path(ctx, inventory))
    devices = live_devices(inv, drain_idle=None)  # count every flow entry, idle ones too
    try:
        observed = devices.observe()
        flows: dict[str, dict[IPAddress, int]] = {}
        for agent in devices.agents:
            per: dict[IPAddress, int] = {}
            for address in observed.agents.get(agent.name, {}):
                per[address] = sum(agent.flows_per_dip(address).values())
            flows[agent.name] = per
    finally:
        devices.close()
    doc = status_doc(inv, observed, make_plan(inv, observed), flows)
    if bgp_routers(inv):
        # Each agent's sessions as every bgp-mode router sees them (read from the routers).
        doc["bgp"] = sessions_json([read_sessions(r, inv.agents) for r in bgp_routers(inv)])
    if output is Output.json:
        write_json(status_json(doc))
    elif output is Output.markdown:
        write_text(status_markdown(doc))
    else:
        print_status(out, doc)


@app.command(epilog="Example: sudo lbauto demo --down")
def demo(
    name: Annotated[str, typer.Option(help="Name of the lab the demo builds or reuses.")] = "demo",
    keep: Annotated[
        bool, typer.Option("--keep/--down", help="Keep the lab afterwards (default) or remove it.")
    ] = True,
) -> None:
    """Walk through the mission in the namespace lab with real traffic (needs root).

    A VIP with 3 DIPs balanced by the agent; scaled to 1 DIP (router bypass, flow tracking off,
    the agent's counters stop); scaled back to 3 (through the agent again) - with long-lived
    TCP connections running all along, and a count of every one that broke.
    """
    from lbauto.lab.demo import run_demo

    result = run_demo(out, name=name, keep=keep)
    if not result.ok:
        raise typer.Exit(1)
