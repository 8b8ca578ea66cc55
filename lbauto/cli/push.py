"""``lbauto push``: reconcile the routers' lbauto-owned config with the inventory, directly.

Thin: parse, call :mod:`lbauto.push`, print (registered in :mod:`lbauto.cli`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lbauto.cli.present import print_result
from lbauto.errors import InventoryError
from lbauto.push.pipeline import (
    DEFAULT_REVERT_IN,
    PushAbortedError,
    PushResult,
    push,
)
from lbauto.push.reconcile import reconcile_jobs


def push_command(
    ctx: typer.Context,
    routers: Annotated[
        list[str] | None, typer.Argument(help="Routers to push (default: all).", show_default=False)
    ] = None,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            "-i",
            help="Inventory directory. Env: LBAUTO_INVENTORY.",
            envvar="LBAUTO_INVENTORY",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show each router's device diff, change nothing.")
    ] = False,
    revert_in: Annotated[
        int,
        typer.Option(
            help="Seconds after which a router undoes an unconfirmed commit by itself "
            "(rounded up to whole minutes on Junos and IOS; NX-OS has no commit-confirm)."
        ),
    ] = DEFAULT_REVERT_IN,
    output: Annotated[
        str, typer.Option("--output", "-o", help="table for people, json for pipelines.")
    ] = "table",
) -> None:
    """Push the intended lbauto-owned config to the routers (a reconcile of router state only;
    agents are not touched), showing each router's device diff."""
    from lbauto.inventory import load_inventory
    from lbauto.push.observe import observe_routers

    path = inventory or (ctx.obj or {}).get("inventory")
    if path is None:
        raise InventoryError(["no inventory given: pass --inventory DIR or set LBAUTO_INVENTORY"])
    inv = load_inventory(Path(path))
    known = {r.name for r in inv.routers}
    unknown = sorted(set(routers or []) - known)
    if unknown:
        raise InventoryError(
            [f"unknown router {n!r} (known: {', '.join(sorted(known))})" for n in unknown]
        )
    console = Console(stderr=True) if output == "json" else Console()
    observed = observe_routers(inv, routers or None)
    jobs = reconcile_jobs(inv, observed, routers or None)
    try:
        result = push(jobs, dry_run=dry_run, revert_in=revert_in, console=console)
    except PushAbortedError as exc:
        _show(console, exc.result, output)
        raise
    _show(console, result, output)


def _show(console: Console, result: PushResult, output: str) -> None:
    if output == "json":
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        print_result(console, result)
