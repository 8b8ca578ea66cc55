"""Commands that change or read live devices: ``apply``, ``scale vip``, ``status``, ``demo``."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from lbauto.cli.options import (
    DrainIdleOpt,
    DrainOpt,
    DryRunOpt,
    InventoryOpt,
    Output,
    OutputOpt,
    TransitOpt,
    YesOpt,
    app,
    inventory_path,
    out,
)
from lbauto.cli.present import finish_apply, progress_hook, show_outcome_plan
from lbauto.core.model import Inventory, IPAddress
from lbauto.errors import LbautoError
from lbauto.orchestrate.apply import ApplyOutcome


def _confirmer(inv: Inventory, yes: bool, output: Output) -> Callable[[ApplyOutcome], bool]:
    """Show the plan and device diffs, then ask (unless --yes)."""

    def confirm(outcome: ApplyOutcome) -> bool:
        show_outcome_plan(out, outcome, inv, output)
        if yes:
            return True
        if sys.stdin is None or not sys.stdin.isatty():
            raise LbautoError(
                "refusing to change devices without confirmation: stdin is not a terminal; "
                "pass --yes"
            )
        return typer.confirm("Apply this plan?", default=False)

    return confirm


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

    inv = load_inventory(inventory_path(ctx, inventory))
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
    from lbauto.core.plan import PlanOptions
    from lbauto.orchestrate.live import live_devices

    devices = live_devices(
        inv, console=out if output is Output.table else None, drain_idle=drain_idle
    )
    try:
        outcome = run(
            devices,
            options=PlanOptions(transit_seconds=transit, drain_timeout=drain_timeout),
            dry_run=dry_run,
            confirm=_confirmer(inv, yes, output),
            on_event=progress_hook(out, output),
        )
    finally:
        devices.close()
    if dry_run:
        show_outcome_plan(out, outcome, inv, output)
    finish_apply(out, outcome, inv, output, dry_run)


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

    inv = load_inventory(inventory_path(ctx, inventory))
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
    from lbauto.cli.present import print_status
    from lbauto.core.planner import make_plan
    from lbauto.inventory import load_inventory
    from lbauto.orchestrate.live import live_devices
    from lbauto.orchestrate.status import status_doc

    inv = load_inventory(inventory_path(ctx, inventory))
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
