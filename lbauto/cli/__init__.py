"""The ``lbauto`` command line: parse, call the library, print (:mod:`lbauto.cli.present`).

Errors derived from :class:`lbauto.errors.LbautoError` print one line per problem and exit 1;
anything else keeps its traceback (it is a bug). Every command is registered at import, so
tests run the app in process with typer's ``CliRunner``. Registering must stay cheap (every
invocation, ``--help`` too, pays it): the command modules import the library, rich, pydantic
models and device clients inside the command functions (tests/unit/test_cli_startup.py).
"""

from __future__ import annotations

import gc
import sys

from lbauto.agent.cli import app as agent_app
from lbauto.cli import journal, live, offline, play, push
from lbauto.cli.lab import app as lab_app
from lbauto.cli.options import EXIT_ERROR, app, error_lines
from lbauto.errors import LbautoError

app.add_typer(lab_app, name="lab", help="Build and drive the network-namespace lab.")
app.add_typer(agent_app, name="agent", help="Run the bundled LB agent.")
app.command("push", epilog="Example: lbauto push -i inventories/prod --dry-run --limit r1")(
    push.push_command
)
app.command("play", epilog=play.EPILOG)(play.play_command)

__all__ = ["app", "journal", "live", "main", "offline"]


def tune_gc() -> None:
    """The CLI owns its short-lived process, the library never touches process-wide state: a
    big plan allocates about one acyclic object per VIP x router, and the cyclic collector
    scanning each young generation of them cost 20-30 % of planning 10,000 VIPs x 100 routers
    even with rare collections (every allocation is scanned once in generation 0 whatever the
    threshold). A command's process ends within minutes and makes few cycles: it runs
    without the collector (reference counting frees everything else). The long-lived
    ``lbauto agent serve`` turns it back on."""
    gc.disable()


def main() -> None:
    """Entry point. Typer handles usage errors, --help and exit codes (standalone mode);
    lbauto's own errors become one ``error:`` line per problem and exit 1."""
    tune_gc()
    try:
        app(prog_name="lbauto")  # also under `python -m lbauto`: one completion name
    except LbautoError as exc:
        # Plain writes: one problem per line, never wrapped (scripts grep these lines).
        for line in error_lines(exc):
            sys.stderr.write(line + "\n")
        sys.exit(EXIT_ERROR)
