"""The ``lbauto`` command line: parse, call the library, print. No logic lives here.

Errors derived from :class:`lbauto.errors.LbautoError` print one line per problem and exit 1;
anything else keeps its traceback (it is a bug).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lbauto.errors import InventoryError, LbautoError
from lbauto.core.model import Inventory, IPAddress, ObservedState
from lbauto.orchestrate.apply import ApplyOutcome
from lbauto.orchestrate.executor import EventHook

app = typer.Typer(
    name="lbauto",
    help=(
        "Make a software load balancer step aside for VIPs that have a single backend (DIP): "
        "detect them, push a router bypass, turn flow tracking off, and undo it all when the "
        "VIP scales out again, without breaking a connection."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Wide enough for plan tables when piped into a CI log (a terminal sets its own width).
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


class Output(StrEnum):
    table = "table"
    json = "json"


InventoryOpt = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        "-i",
        help="Inventory directory (hosts.yaml, agents.yaml, vips.yaml). Env: LBAUTO_INVENTORY.",
        envvar="LBAUTO_INVENTORY",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="table for people, json for pipelines.")
]


TransitOpt = Annotated[
    float,
    typer.Option(
        "--transit",
        min=0,
        help="Seconds the agent pins connections without state to the old single DIP after a "
        "bypass is removed (they are recorded in the flow table on their first packet).",
    ),
]
DrainOpt = Annotated[
    float,
    typer.Option(
        "--drain-timeout",
        min=0,
        help="Seconds to wait at most for DIPs being removed to lose their connections before "
        "the routers send their VIP elsewhere.",
    ),
]
DrainIdleOpt = Annotated[
    float,
    typer.Option(
        "--drain-idle",
        min=1,
        help="A connection on a draining DIP counts as ended once it has carried no packet for "
        "this many seconds (the agent has no connection tracking to see a FIN); the drain "
        "timeout still bounds the wait.",
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show the plan and device diffs; change nothing.")
]


@app.callback()
def _root(ctx: typer.Context, inventory: InventoryOpt = None) -> None:
    ctx.obj = {"inventory": inventory}


def _inventory_path(ctx: typer.Context, inventory: Path | None) -> Path:
    path = inventory or (ctx.obj or {}).get("inventory")
    if path is None:
        raise InventoryError(["no inventory given: pass --inventory DIR or set LBAUTO_INVENTORY"])
    return Path(path)


@app.command()
def validate(ctx: typer.Context, inventory: InventoryOpt = None) -> None:
    """Validate an inventory and report every problem at once (file:line: entry: problem)."""
    from lbauto.inventory import load_inventory

    inv = load_inventory(_inventory_path(ctx, inventory))
    out.print(
        f"inventory {inv.path}: {len(inv.routers)} router(s), {len(inv.agents)} agent(s), "
        f"{len(inv.vips)} VIP(s): valid"
    )


@app.command()
def plan(
    ctx: typer.Context,
    inventory: InventoryOpt = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="Observed state as JSON (see README). A missing file means nothing is deployed.",
        ),
    ] = None,
    output: OutputOpt = Output.table,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode", help="Exit 0 when nothing would change, 2 when changes pend."
        ),
    ] = False,
    transit: TransitOpt = 60.0,
    drain_timeout: DrainOpt = 30.0,
) -> None:
    """Show the transitions and router changes that would move observed state to the inventory.

    Without --state the observed state is read live from the agents and routers.
    """
    from lbauto.inventory import load_inventory
    from lbauto.output import plan_to_json, print_plan
    from lbauto.core.plan import PlanOptions
    from lbauto.core.planner import make_plan
    from lbauto.inventory.statefile import load_state

    inv = load_inventory(_inventory_path(ctx, inventory))
    observed = load_state(state) if state else _observe_live(inv)
    the_plan = make_plan(
        inv, observed, PlanOptions(transit_seconds=transit, drain_timeout=drain_timeout)
    )
    if output is Output.json:
        sys.stdout.write(json.dumps(plan_to_json(the_plan, inv, observed), indent=2) + "\n")
    else:
        print_plan(out, the_plan, inv, observed)
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(2)


@app.command()
def render(
    ctx: typer.Context,
    routers: Annotated[
        list[str] | None, typer.Argument(help="Routers to render (default: all).")
    ] = None,
    inventory: InventoryOpt = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="Observed state JSON (keeps PBR sequence numbers stable)."),
    ] = None,
) -> None:
    """Print the full intended lbauto-owned config of each router."""
    from lbauto.core.intent import desired_objects
    from lbauto.inventory import load_inventory
    from lbauto.platforms import PLATFORMS
    from lbauto.platforms.render import render_config
    from lbauto.inventory.statefile import load_state

    inv = load_inventory(_inventory_path(ctx, inventory))
    observed = load_state(state)
    known = {r.name for r in inv.routers}
    unknown = [r for r in routers or [] if r not in known]
    if unknown:
        raise InventoryError(
            [f"unknown router {name!r} (known: {', '.join(sorted(known))})" for name in unknown]
        )
    for router in inv.routers:
        if routers and router.name not in routers:
            continue
        objs = desired_objects(inv, router, observed.router_objects(router.name))
        text = render_config(router, objs, template_dir=inv.template_dir)
        mark = PLATFORMS[router.platform].comment_char
        sys.stdout.write(f"{mark} ---- {router.name} ({router.platform})\n{text}")
        if text and not text.endswith("\n"):
            sys.stdout.write("\n")


def _observe_live(inv: Inventory) -> ObservedState:
    from lbauto.orchestrate.live import live_devices

    devices = live_devices(inv)
    try:
        return devices.observe()
    finally:
        devices.close()


def _confirmer(inv: Inventory, yes: bool, output: Output) -> Callable[[ApplyOutcome], bool]:
    """Show the plan and device diffs, then ask (unless --yes)."""

    def confirm(outcome: ApplyOutcome) -> bool:
        _show_outcome_plan(outcome, inv, output)
        if yes:
            return True
        if sys.stdin is None or not sys.stdin.isatty():
            raise LbautoError(
                "refusing to change devices without confirmation: stdin is not a terminal; "
                "pass --yes"
            )
        return typer.confirm("Apply this plan?", default=False)

    return confirm


def _show_outcome_plan(outcome: ApplyOutcome, inv: Inventory, output: Output) -> None:
    from lbauto.output import print_plan

    if output is Output.table:
        print_plan(out, outcome.plan, inv, outcome.observed)
        for router, diff in sorted(outcome.diffs.items()):
            if diff.strip():
                out.print(f"[bold]device diff {router}[/]:")
                out.print(Text(diff.rstrip()))


def _progress_hook(output: Output) -> EventHook | None:
    if output is not Output.table:
        return None

    def hook(vip: str, action: str, event: str) -> None:
        style = {"start": "dim", "end": "green", "fail": "bold red"}.get(event, "")
        out.print(Text(f"  {vip:<20} {action:<22} {event}", style=style))

    return hook


def _apply_json(outcome: ApplyOutcome, inv: Inventory) -> dict[str, Any]:
    from lbauto.output import plan_to_json

    doc = plan_to_json(outcome.plan, inv, outcome.observed)
    doc["device_diffs"] = dict(outcome.diffs)
    if outcome.executed:
        doc["result"] = {
            "completed": outcome.executed.completed,
            "router_commits": outcome.executed.router_commits,
            "seconds": round(outcome.executed.seconds, 3),
            "converged": outcome.converged,
            "remaining": list(outcome.remaining),
        }
    return doc


def _finish_apply(outcome: ApplyOutcome, inv: Inventory, output: Output, dry_run: bool) -> None:
    if output is Output.json:
        sys.stdout.write(json.dumps(_apply_json(outcome, inv), indent=2) + "\n")
    elif dry_run:
        out.print("[yellow]dry run: nothing was changed[/]")
    elif not outcome.plan.has_changes:
        out.print("[green]nothing to do: devices match the inventory[/]")
    elif outcome.executed:
        ex = outcome.executed
        table = Table(title="Result")
        for col in ("VIP", "kind", "result"):
            table.add_column(col)
        for t in outcome.plan.transitions:
            if t.steps:
                table.add_row(Text(t.vip), t.kind.value, "[green]done[/]")
        out.print(table)
        commits = ", ".join(f"{r}: {n}" for r, n in sorted(ex.router_commits.items())) or "none"
        out.print(f"{ex.seconds:.1f} s, router commits: {commits}")
        if not outcome.converged:
            out.print(f"[yellow]still pending after the run: {', '.join(outcome.remaining)}[/]")


@app.command()
def apply(
    ctx: typer.Context,
    inventory: InventoryOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    drain_timeout: DrainOpt = 30.0,
    drain_idle: DrainIdleOpt = 5.0,
    transit: TransitOpt = 60.0,
    output: OutputOpt = Output.table,
) -> None:
    """Plan from the live agents and routers, show the plan and device diffs, then execute it.

    One apply per inventory runs at a time. Every step is journalled in the inventory's state
    directory (.lbauto/journal.log); a failed step is undone for its VIP.
    """
    from lbauto.inventory import load_inventory
    from lbauto.orchestrate.apply import run_apply

    inv = load_inventory(_inventory_path(ctx, inventory))
    run = functools.partial(run_apply, inv)
    _live_run(inv, run, dry_run, yes, drain_timeout, drain_idle, transit, output)


def _live_run(
    inv: Inventory,
    run: Callable[..., ApplyOutcome],
    dry_run: bool,
    yes: bool,
    drain_timeout: float,
    drain_idle: float,
    transit: float,
    output: Output,
) -> None:
    """Run ``run(devices, ...)`` against the live agents and routers, then report."""
    from lbauto.orchestrate.live import live_devices
    from lbauto.core.plan import PlanOptions

    devices = live_devices(
        inv, console=out if output is Output.table else None, drain_idle=drain_idle
    )
    try:
        outcome = run(
            devices,
            options=PlanOptions(transit_seconds=transit, drain_timeout=drain_timeout),
            dry_run=dry_run,
            confirm=_confirmer(inv, yes, output),
            on_event=_progress_hook(output),
        )
    finally:
        devices.close()
    if dry_run:
        _show_outcome_plan(outcome, inv, output)
    _finish_apply(outcome, inv, output, dry_run)


scale_app = typer.Typer(help="Change a VIP's DIPs in vips.yaml and apply its transition.")
app.add_typer(scale_app, name="scale")


@scale_app.command("vip")
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
) -> None:
    """Scale one VIP. vips.yaml keeps its comments and order and is written only after the
    transition succeeded; --dry-run changes neither the file nor any device."""
    from lbauto.inventory import load_inventory
    from lbauto.orchestrate.apply import ScaleRequest, run_scale

    inv = load_inventory(_inventory_path(ctx, inventory))
    req = ScaleRequest(
        vip=name,
        dips=dips.split(",") if dips is not None else None,
        add=add_dip,
        remove=remove_dip,
    )
    run = functools.partial(run_scale, inv, req)
    _live_run(inv, run, dry_run, yes, drain_timeout, drain_idle, transit, output)


@app.command()
def status(
    ctx: typer.Context, inventory: InventoryOpt = None, output: OutputOpt = Output.table
) -> None:
    """Per VIP: desired vs observed mode and DIPs, where the bypass is active, flow entries at
    each agent, transit and drain timers, and drift."""
    from lbauto.inventory import load_inventory
    from lbauto.orchestrate.live import live_devices
    from lbauto.orchestrate.status import print_status, status_doc
    from lbauto.core.planner import make_plan

    inv = load_inventory(_inventory_path(ctx, inventory))
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
    if output is Output.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        print_status(out, doc)


def _register_subcommands() -> None:
    """Sub-apps live next to their library code; a missing optional part must not break the rest."""
    from lbauto.agent.cli import app as agent_app
    from lbauto.lab.cli import app as lab_app
    from lbauto.push.cli import push_command

    app.add_typer(lab_app, name="lab", help="Build and drive the network-namespace lab.")
    app.add_typer(agent_app, name="agent", help="Run the bundled LB agent.")
    app.command("push")(push_command)


def main() -> None:
    """Entry point. Typer handles usage errors, --help and exit codes (standalone mode);
    lbauto's own errors become one ``error:`` line per problem and exit 1."""
    _register_subcommands()
    try:
        app()
    except LbautoError as exc:
        # Plain writes: one problem per line, never wrapped (scripts grep these lines).
        for line in str(exc).splitlines() or ["error"]:
            sys.stderr.write(f"error: {line}\n")
        sys.exit(1)


@app.command()
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
