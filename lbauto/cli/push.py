"""``lbauto push``: reconcile the routers' lbauto-owned config with the inventory, directly.

Thin: parse, call :mod:`lbauto.push`, print (registered in :mod:`lbauto.cli`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lbauto.cli.options import (
    EXIT_CHANGES,
    DetailedExitOpt,
    LimitOpt,
    Output,
    OutputOpt,
    console_for,
    load,
    split_limit,
)
from lbauto.errors import InventoryError, PushAbortedError

if TYPE_CHECKING:
    from lbauto.push.pipeline import PushResult

#: lbauto.push.pipeline.DEFAULT_REVERT_IN, written out: typer reads the default when it builds
#: any command, and the push pipeline (rich progress, the platforms) is not cheap to import
#: for `lbauto --help` (tests/unit/test_cli_startup.py holds the two equal).
DEFAULT_REVERT_IN = 120


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
    limit: LimitOpt = None,
    detailed_exitcode: DetailedExitOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Push the intended lbauto-owned config to the routers (a reconcile of router state only;
    agents are not touched), showing each router's device diff."""
    from lbauto.orchestrate.limit import push_limit
    from lbauto.push.observe import observe_routers
    from lbauto.push.pipeline import push
    from lbauto.push.reconcile import reconcile_jobs

    path = inventory or (ctx.obj or {}).get("inventory")
    if path is None:
        raise InventoryError(["no inventory given: pass --inventory DIR or set LBAUTO_INVENTORY"])
    inv = load(ctx, Path(path))
    known = {r.name for r in inv.routers}
    unknown = sorted(set(routers or []) - known)
    if unknown:
        raise InventoryError(
            [f"unknown router {n!r} (known: {', '.join(sorted(known))})" for n in unknown]
        )
    lim = push_limit(split_limit(limit), inv)
    selected: list[str] | None = list(routers) if routers else None
    if lim.routers is not None:
        selected = [n for n in (selected or sorted(known)) if n in lim.routers]
    skipped = sorted(known - set(selected)) if selected is not None else []
    if selected == []:
        raise InventoryError(["--limit and the routers named select no router to push"])
    console = console_for(output.value)
    observed = observe_routers(inv, selected)
    jobs = reconcile_jobs(inv, observed, selected, only=lim.vips)
    try:
        result = push(jobs, dry_run=dry_run, revert_in=revert_in, console=console)
    except PushAbortedError as exc:
        _show(exc.result, output, skipped)
        raise
    _show(result, output, skipped)
    if detailed_exitcode and dry_run and any(r.diff.strip() for r in result.results):
        raise typer.Exit(EXIT_CHANGES)


def _show(result: PushResult, output: Output, skipped: list[str]) -> None:
    from lbauto.cli.present import print_result, push_doc, push_markdown, write_json, write_text

    if output is Output.json:
        write_json(push_doc(result, skipped))
    elif output is Output.markdown:
        write_text(push_markdown(result, skipped))
    else:
        print_result(console_for("table"), result, skipped=skipped)
