"""``lbauto journal``: the journal of an inventory, from its backend (etcd: every machine's
runs; local files: this state directory's)."""

from __future__ import annotations

from collections import deque
from typing import Annotated

import typer

from lbauto.cli.options import InventoryOpt, Output, OutputOpt, app, inventory_path, load


@app.command(epilog="Example: lbauto journal -i inventories/prod --last 20")
def journal(
    ctx: typer.Context,
    inventory: InventoryOpt = None,
    last: Annotated[
        int | None, typer.Option("--last", min=1, help="Only the newest N events.")
    ] = None,
    run: Annotated[
        str | None, typer.Option("--run", help="Only the events of this run id.")
    ] = None,
    local: Annotated[
        bool,
        typer.Option("--local", help="Read this state directory's files, not the backend."),
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Show the journal: every step's start, end, failure and undo, oldest first.

    With `backend: {type: etcd}` in lbauto.yaml this reads etcd, so it shows the runs of
    every machine that applies the inventory; --local reads only this state directory."""
    from lbauto.cli.present import write_json, write_text
    from lbauto.orchestrate.apply import state_dir
    from lbauto.orchestrate.backends import backend_for
    from lbauto.orchestrate.backends.local import LocalBackend

    inv = load(ctx, inventory_path(ctx, inventory))
    backend = LocalBackend(state_dir(inv)) if local else backend_for(inv, state_dir(inv))
    events = (e for e in backend.read_journal() if run is None or e.run == run)
    shown = list(deque(events, maxlen=last) if last else events)
    if output is Output.json:
        write_json(
            {
                "version": 1,
                "kind": "journal",
                "backend": backend.info().to_json(),
                "events": [e.to_json() for e in shown],
            }
        )
        return
    if shown:
        write_text("\n".join(e.to_text() for e in shown))
