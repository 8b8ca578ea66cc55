"""What every command shares: the app, the consoles, the common options, exit codes, logging.

Exit codes (docs/cli.md): 0 success or nothing to change, 1 any error (a usage error too: a
mistyped option must never read as "changes pending"), 2 changes pending, only where
``--detailed-exitcode`` is given (``plan``, ``push --dry-run``, ``apply --dry-run``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, cast

import typer
from typer.core import TyperGroup, TyperOption

from lbauto import __version__
from lbauto.errors import InventoryError, LbautoError, StateError

if TYPE_CHECKING:
    # Every command pays this module's imports, also for --help: rich's console and the
    # inventory model load when a command first prints or reads an inventory.
    from rich.console import Console

    from lbauto.core.model import Inventory

try:
    from typer._click.exceptions import UsageError
except ImportError:  # typer before 0.20 ran on click itself
    from click.exceptions import UsageError  # type: ignore[assignment]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2

#: Width when stdout is not a terminal and COLUMNS is unset (a CI log).
PIPE_WIDTH = 120


# ---------------------------------------------------------------------------------- consoles


def make_console(*, stderr: bool = False) -> Console:
    """A console for this invocation: COLUMNS wins, then the terminal's width; a pipe without
    COLUMNS gets PIPE_WIDTH. NO_COLOR (any non-empty value) turns colour off."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    columns = os.environ.get("COLUMNS", "")
    width: int | None
    if columns.isdigit() and int(columns) > 0:
        width = int(columns)
    elif stream.isatty():
        width = None
    else:
        width = PIPE_WIDTH
    return Console(
        stderr=stderr,
        width=width,
        no_color=os.environ.get("NO_COLOR", "") != "",
        highlight=False,
        soft_wrap=False,
    )


class _LazyConsole:
    """Stands for the invocation's console: built on first use (so COLUMNS, NO_COLOR and the
    streams of *this* invocation count, also under typer's CliRunner) and dropped by
    :func:`reset_consoles` when the next invocation starts."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def get(self) -> Console:
        if self._console is None:
            self._console = make_console(stderr=self._stderr)
        return self._console

    def reset(self) -> None:
        self._console = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


_out = _LazyConsole(stderr=False)
_err = _LazyConsole(stderr=True)
#: Tables and text for people (stdout).
out = cast("Console", _out)
#: Progress and notes that must not mix with a JSON or markdown document (stderr).
err = cast("Console", _err)


def reset_consoles() -> None:
    _out.reset()
    _err.reset()


def console_for(output: str) -> Console:
    """The real console for tables (stdout), or stderr's when stdout carries a document."""
    return _out.get() if output == "table" else _err.get()


# --------------------------------------------------------------------------------- logging


class _StderrHandler(logging.StreamHandler[IO[str]]):
    """Writes to whatever sys.stderr is at the time (typer's CliRunner swaps it)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message (and exc when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


_LOGGERS = ("lbauto", "napalm_frr")
#: The handler installed by the last invocation (replaced, not stacked, by the next one).
_installed: list[logging.Handler] = []


def setup_logging(verbose: int, level: LogLevel | None, fmt: LogFormat) -> None:
    """Log lines go to stderr only (stdout carries tables and documents). Default: warnings;
    -v info, -vv debug; --log-level wins over -v."""
    if level is not None:
        lvl = getattr(logging, level.value.upper())
    else:
        lvl = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    handler = _StderrHandler()
    if fmt is LogFormat.json:
        formatter: logging.Formatter = JsonLogFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    formatter.converter = __import__("time").gmtime
    handler.setFormatter(formatter)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        for old in _installed:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(lvl)
        logger.propagate = False
    _installed[:] = [handler]


# ------------------------------------------------------------------------------ error lines

_SECRET_HINTS = ("PASS", "TOKEN", "SECRET", "KEY")


def _mask(text: str) -> str:
    """Hide values of secret-looking environment variables (a driver may echo what it got)."""
    for name, value in os.environ.items():
        if len(value) >= 4 and any(h in name.upper() for h in _SECRET_HINTS) and value in text:
            text = text.replace(value, "****")
    return text


def _causes(exc: BaseException) -> list[str]:
    """The chain of underlying causes (``raise ... from``), innermost last, one line each."""
    lines: list[str] = []
    seen: set[int] = {id(exc)}
    cause = exc.__cause__
    outer = str(exc)
    while cause is not None and id(cause) not in seen and len(lines) < 5:
        seen.add(id(cause))
        text = " ".join(str(cause).split())
        line = f"{type(cause).__name__}: {text}" if text else type(cause).__name__
        if text not in outer:  # already said in the message above
            lines.append(line)
        outer += " " + text
        cause = cause.__cause__
    return lines


def _hint(exc: LbautoError) -> str | None:
    text = str(exc)
    if "cannot connect" in text or "SSH " in text:
        return (
            "check that the router's hostname/port is reachable from here, its username, and "
            "its credentials: optional_args.key_file must exist and be readable, or the "
            "environment variable named by password_env must be set"
        )
    if "cannot observe" in text:
        return (
            "check the agent's api URL in agents.yaml, that the agent runs "
            "(`lbauto agent serve`), and that its token_env/token_file holds the right token"
        )
    return None


def error_lines(exc: LbautoError) -> list[str]:
    """What the CLI prints for an lbauto error: one line per problem, then its causes and a
    hint on how to fix it (connection errors keep what really went wrong)."""
    lines = [f"error: {line}" for line in (str(exc).splitlines() or ["error"])]
    lines += [f"error:   caused by {c}" for c in _causes(exc)]
    hint = _hint(exc)
    if hint:
        lines.append(f"error:   fix: {hint}")
    return [_mask(line) for line in lines]


# ------------------------------------------------------------------------------- the group


def _flags_as_flags(cmd: Any, ctx: Any) -> None:
    """Help shows a flag as a flag: no ``<bool>`` type column for on/off options."""
    for param in getattr(cmd, "params", []):
        if isinstance(param, TyperOption) and (param.is_flag or param.count) and not param.metavar:
            param.metavar = ""
    help_opt = cmd.get_help_option(ctx) if hasattr(cmd, "get_help_option") else None
    if help_opt is not None and help_opt.metavar is None:
        help_opt.metavar = ""
    for sub in getattr(cmd, "commands", {}).values():
        _flags_as_flags(sub, ctx)


class LbautoGroup(TyperGroup):
    """The root command: usage errors exit 1 (not click's 2, which means "changes pending"
    here), lbauto errors print ``error:`` lines and exit 1, also under typer's CliRunner."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        reset_consoles()
        _flags_as_flags(self, typer.Context(self))
        try:
            return super().make_context(info_name, args, parent, **extra)
        except UsageError as exc:
            exc.exit_code = EXIT_ERROR
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            exc.exit_code = EXIT_ERROR
            raise
        except LbautoError as exc:
            for line in error_lines(exc):
                sys.stderr.write(line + "\n")
            sys.stderr.flush()
            raise typer.Exit(EXIT_ERROR) from exc


app = typer.Typer(
    name="lbauto",
    cls=LbautoGroup,
    help=(
        "Make a software load balancer step aside for VIPs that have a single backend (DIP): "
        "detect them, push a router bypass, turn flow tracking off, and undo it all when the "
        "VIP scales out again, without breaking a connection.\n\n"
        "Exit codes: 0 done or nothing to change, 1 any error (usage errors too), "
        "2 changes pending (only with --detailed-exitcode)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)


# ------------------------------------------------------------------------------- options


class Output(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


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
    Output,
    typer.Option(
        "--output",
        "-o",
        help="table for people, json for pipelines (versioned, docs/cli.md), markdown for a "
        "pull-request comment.",
    ),
]
StateOpt = Annotated[
    str | None,
    typer.Option(
        "--state",
        help="Observed state: a JSON file that must exist (see README), or 'empty' to plan "
        "from nothing deployed. Without --state: read live from the agents and routers.",
        metavar="FILE|empty",
        show_default=False,
    ),
]
LimitOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--limit",
        "-l",
        help="Only these VIPs: names, addresses or globs (web-*), or router names (the VIPs "
        "that change that router). Repeat or separate with commas. The rest shows as skipped.",
        metavar="PATTERN",
        show_default=False,
    ),
]
DetailedExitOpt = Annotated[
    bool,
    typer.Option(
        "--detailed-exitcode",
        help="Exit 2 when changes are pending, 0 when there are none, 1 on error (on apply and "
        "push: with --dry-run).",
    ),
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
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        max=1024,
        help="Routers and agents talked to at once (observe, push, verify); default: "
        "lbauto.yaml's `workers:`, else 20.",
        show_default=False,
    ),
]


def with_workers(inv: Inventory, workers: int | None) -> Inventory:
    """The inventory with ``--workers`` in place of lbauto.yaml's ``workers:`` (when given)."""
    import dataclasses

    return inv if workers is None else dataclasses.replace(inv, workers=workers)


DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show the plan and device diffs; change nothing.")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lbauto {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    inventory: InventoryOpt = None,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            show_default=False,
            help="More log lines on stderr: -v info, -vv debug.",
        ),
    ] = 0,
    log_level: Annotated[
        LogLevel | None,
        typer.Option("--log-level", help="Log level (wins over -v).", show_default=False),
    ] = None,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="Log lines as text or one JSON per line.")
    ] = LogFormat.text,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print lbauto's version and exit."
        ),
    ] = False,
    allow_outside_inventory: Annotated[
        bool,
        typer.Option(
            "--allow-outside-inventory",
            help="Accept inventory files and a template_dir that resolve outside the inventory "
            "directory (symlinks, ../); their content is still never quoted in errors.",
        ),
    ] = False,
) -> None:
    setup_logging(verbose, log_level, log_format)
    ctx.obj = {"inventory": inventory, "allow_outside": allow_outside_inventory}


def load(ctx: typer.Context, path: Path) -> Inventory:
    """The validated inventory at ``path``, honouring ``--allow-outside-inventory``."""
    from lbauto.inventory import load_inventory

    return load_inventory(path, allow_outside=allow_outside(ctx))


def allow_outside(ctx: typer.Context) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("allow_outside"))


def inventory_path(ctx: typer.Context, inventory: Path | None) -> Path:
    path = inventory or (ctx.obj or {}).get("inventory")
    if path is None:
        raise InventoryError(["no inventory given: pass --inventory DIR or set LBAUTO_INVENTORY"])
    return Path(path)


_inventory_path = inventory_path  # older name, kept for callers not yet moved


def split_limit(values: list[str] | None) -> list[str]:
    """``--limit a,b --limit c`` -> [a, b, c] (empty pieces dropped)."""
    return [p.strip() for v in values or [] for p in v.split(",") if p.strip()]


def state_file(value: str | None) -> Path | None:
    """The --state file, which must exist; None for ``--state empty`` (and no --state)."""
    if value is None or value == "empty":
        return None
    path = Path(value)
    if not path.is_file():
        raise StateError(
            f"{path}: no such state file (give an existing observed-state JSON file, "
            "`--state empty` to plan from nothing deployed, or leave --state out to read the "
            "live state)"
        )
    return path
