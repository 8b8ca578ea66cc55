"""What every command shares: the app, the consoles and the common options."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lbauto.errors import InventoryError

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
def root(ctx: typer.Context, inventory: InventoryOpt = None) -> None:
    ctx.obj = {"inventory": inventory}


def _inventory_path(ctx: typer.Context, inventory: Path | None) -> Path:
    path = inventory or (ctx.obj or {}).get("inventory")
    if path is None:
        raise InventoryError(["no inventory given: pass --inventory DIR or set LBAUTO_INVENTORY"])
    return Path(path)


def inventory_path(ctx: typer.Context, inventory: Path | None) -> Path:
    path = inventory or (ctx.obj or {}).get("inventory")
    if path is None:
        raise InventoryError(["no inventory given: pass --inventory DIR or set LBAUTO_INVENTORY"])
    return Path(path)
