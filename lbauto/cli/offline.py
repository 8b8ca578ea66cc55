"""Commands that read files only: ``validate``, ``plan``, ``render``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from lbauto.cli.options import (
    DrainOpt,
    InventoryOpt,
    Output,
    OutputOpt,
    TransitOpt,
    app,
    inventory_path,
    out,
)
from lbauto.core.model import Inventory, ObservedState
from lbauto.errors import InventoryError


@app.command()
def validate(ctx: typer.Context, inventory: InventoryOpt = None) -> None:
    """Validate an inventory and report every problem at once (file:line: entry: problem)."""
    from lbauto.inventory import load_inventory

    inv = load_inventory(inventory_path(ctx, inventory))
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
    from lbauto.cli.present import plan_to_json, print_plan
    from lbauto.core.plan import PlanOptions
    from lbauto.core.planner import make_plan
    from lbauto.inventory import load_inventory
    from lbauto.inventory.statefile import load_state

    inv = load_inventory(inventory_path(ctx, inventory))
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
    from lbauto.inventory.statefile import load_state
    from lbauto.platforms import PLATFORMS
    from lbauto.platforms.render import render_config

    inv = load_inventory(inventory_path(ctx, inventory))
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
