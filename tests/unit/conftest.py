"""The unit tier's shared helper: the ``lbauto`` command line run in process (``run_cli``).

The CLI runs through :func:`lbauto.cli.main` (the real entry point: typer's standalone mode for
usage errors, lbauto's one-line ``error:`` output and exit 1) inside click's ``CliRunner``
isolation, which swaps stdin/stdout/stderr for buffers. That costs milliseconds where a
``python -m lbauto`` subprocess costs about a second of interpreter and import start-up; the
one test that needs a real process says so and starts one.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from lbauto.cli import main

# The journal fsyncs every event (it must survive a power cut) and this tier writes about 2,000
# of them: a few seconds of disk waits on an ordinary disk. Its files (about 15 MB) go to tmpfs
# where there is one: the same code path, without the wait. An explicit TMPDIR wins.
_SHM = Path("/dev/shm")
if "TMPDIR" not in os.environ and _SHM.is_dir() and os.access(_SHM, os.W_OK):
    tempfile.tempdir = str(_SHM)


@dataclass(frozen=True)
class CliResult:
    """What a shell would see: exit status and the two streams (the shape of CompletedProcess)."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: Mapping[str, str | None] | None = None) -> CliResult:
    """Run ``lbauto ARGS...`` in this process, exactly as the console script would; ``env``
    overrides environment variables for the run (None unsets one)."""
    runner = CliRunner()
    argv = sys.argv
    with runner.isolation(env=env) as (out, err, _):
        sys.argv = ["lbauto", *args]
        try:
            main()
            code = 0
        except SystemExit as exc:
            # click exits with an int; sys.exit("text") would print text and mean 1.
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = argv
            sys.stdout.flush()
            sys.stderr.flush()
        return CliResult(code, out.getvalue().decode(), err.getvalue().decode())
