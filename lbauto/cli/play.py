"""``lbauto play PLAYBOOK``: run an Ansible-style playbook (lbauto.play does the work)."""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lbauto.cli.options import EXIT_CHANGES, EXIT_ERROR
from lbauto.errors import LbautoError

EPILOG = (
    "Examples: lbauto play playbooks/scale-out.yml -i inventories/prod --check --diff ; "
    "lbauto play playbooks/dip-maintenance.yml -i DIR -e 'host=[198.51.100.22]' ; "
    "lbauto play playbooks/reconcile.yml -i inventories/example --check "
    "--state inventories/example/state.json"
)


def _extra_vars(pairs: list[str]) -> dict[str, Any]:
    """``-e KEY=VALUE``: the value is read as YAML (numbers, lists, true/false), like a var."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise LbautoError(f"-e {pair!r}: write KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _limit(patterns: list[str] | None, names: list[str]) -> frozenset[str] | None:
    if not patterns:
        return None
    chosen: set[str] = set()
    for pattern in (p.strip() for arg in patterns for p in arg.split(",")):
        if not pattern:
            continue
        hits = fnmatch.filter(names, pattern)
        if not hits:
            raise LbautoError(
                f"--limit: {pattern!r} matches no VIP (known: {', '.join(sorted(names))})"
            )
        chosen.update(hits)
    return frozenset(chosen)


def play_command(
    ctx: typer.Context,
    playbook: Annotated[Path, typer.Argument(help="The playbook (YAML).", show_default=False)],
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            "-i",
            help="Inventory directory; wins over the playbook's `inventory:`.",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Run every task as a dry run against an in-memory copy of the devices (read "
            "once): shows what would change, changes nothing anywhere.",
        ),
    ] = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="Show each task's router config changes.")
    ] = False,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            "--limit",
            "-l",
            help="Only these VIPs (names or globs, comma separated or repeated); tasks on "
            "other VIPs are skipped.",
            metavar="VIP",
            show_default=False,
        ),
    ] = None,
    extra: Annotated[
        list[str] | None,
        typer.Option(
            "--extra-vars",
            "-e",
            help="KEY=VALUE (VALUE read as YAML); wins over the playbook's vars. Repeatable.",
            metavar="KEY=VALUE",
            show_default=False,
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="With --check: start from this observed-state JSON instead of reading the "
            "devices (offline, e.g. in CI).",
            show_default=False,
        ),
    ] = None,
    drain_idle: Annotated[
        float,
        typer.Option(
            "--drain-idle",
            min=1,
            help="A connection on a draining DIP counts as ended after this many idle seconds.",
        ),
    ] = 5.0,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show every transition step as it runs.")
    ] = False,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode",
            help="Exit 2 when a task changed something (or would, with --check).",
        ),
    ] = False,
) -> None:
    """Run an Ansible-style playbook: named tasks calling lbauto's modules (scale, apply,
    drain_dip, restore_dip, assert, wait, plan). The whole playbook is checked before anything
    runs; the run stops at the first failed task unless it has ignore_errors. See
    docs/playbooks.md. Exit codes: 0 done, 1 a task failed or the playbook is invalid,
    2 something changed (only with --detailed-exitcode)."""
    from lbauto.play import TextReport, read_play, run_play

    given = inventory or (ctx.obj or {}).get("inventory")
    play = read_play(
        playbook,
        inventory=Path(given) if given else None,
        extra_vars=_extra_vars(extra or []),
        check=check,
    )
    chosen = _limit(limit, [v.name for v in play.inventory.vips])
    report = TextReport(sys.stdout, diff=diff, verbose=verbose)
    result = run_play(
        play, report, check=check, limit=chosen, observed_file=state, drain_idle=drain_idle
    )
    if result.failed:
        raise typer.Exit(EXIT_ERROR)
    if detailed_exitcode and result.stats.changed:
        raise typer.Exit(EXIT_CHANGES)
