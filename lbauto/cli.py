"""The ``lbauto`` command line: parse, call the library, print. No logic lives here.

Errors derived from :class:`lbauto.errors.LbautoError` print one line per problem and exit 1;
anything else keeps its traceback (it is a bug).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console

from lbauto.errors import InventoryError, LbautoError

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
out = Console()
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
    transit: Annotated[
        float, typer.Option(help="Seconds of transit pin after a bypass is removed.")
    ] = 60.0,
    drain_timeout: Annotated[
        float, typer.Option(help="Seconds to wait at most for removed DIPs to drain.")
    ] = 30.0,
) -> None:
    """Show the transitions and router changes that would move observed state to the inventory.

    Without --state the observed state is read live from the agents and routers.
    """
    from lbauto.inventory import load_inventory
    from lbauto.output import plan_to_json, print_plan
    from lbauto.plan import PlanOptions
    from lbauto.planner import make_plan
    from lbauto.state import load_state

    inv = load_inventory(_inventory_path(ctx, inventory))
    observed = load_state(state)
    the_plan = make_plan(inv, observed, PlanOptions(transit_seconds=transit, drain_timeout=drain_timeout))
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
    from lbauto.intent import desired_objects
    from lbauto.inventory import load_inventory
    from lbauto.render import render_config
    from lbauto.state import load_state

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
        sys.stdout.write(f"# ---- {router.name} ({router.platform.value})\n{text}")
        if text and not text.endswith("\n"):
            sys.stdout.write("\n")


def _register_subcommands() -> None:
    """Sub-apps live next to their library code; a missing optional part must not break the rest."""
    from lbauto.agent.cli import app as agent_app
    from lbauto.lab.cli import app as lab_app
    from lbauto.push.cli import push_command

    app.add_typer(lab_app, name="lab", help="Build and drive the network-namespace lab.")
    app.add_typer(agent_app, name="agent", help="Run the bundled LB agent.")
    app.command("push")(push_command)


def main() -> None:
    _register_subcommands()
    try:
        rc = app(standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LbautoError as exc:
        for line in str(exc).splitlines() or ["error"]:
            err.print(f"error: {line}", highlight=False, markup=False)
        sys.exit(1)
    except (click.Abort, KeyboardInterrupt):
        err.print("aborted", markup=False)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)
