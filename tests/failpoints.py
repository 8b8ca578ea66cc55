"""Run the ``lbauto`` CLI with a crash failpoint armed, for crash tests only::

    python -m tests.failpoints kill-after-step:3 -- --inventory DIR apply --yes

SIGKILLs this process the N-th time (from 0) the executor reaches the point (see
:data:`lbauto.orchestrate.executor.failpoint_hook`). Production code reads no environment
variable for this: the hook exists only in a process this module started.
"""

from __future__ import annotations

import os
import re
import signal
import sys

from lbauto.cli import main as lbauto_main
from lbauto.orchestrate import executor

SPEC = re.compile(r"kill-(?P<point>[a-z-]+):(?P<index>\d+)")


def arm(spec: str) -> None:
    """Install the hook ``kill-<point>:<N>`` describes."""
    m = SPEC.fullmatch(spec)
    if m is None:
        raise SystemExit(f"failpoints: {spec!r} is not kill-<point>:<N>")
    point, index = m["point"], int(m["index"])

    def hook(reached: str, n: int) -> None:
        if reached == point and n == index:
            os.kill(os.getpid(), signal.SIGKILL)

    executor.failpoint_hook = hook


def command(spec: str, *args: str) -> list[str]:
    """The argv that runs ``lbauto ARGS`` with ``spec`` armed."""
    return [sys.executable, "-m", "tests.failpoints", spec, "--", *args]


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] != "--":
        raise SystemExit("usage: python -m tests.failpoints kill-<point>:<N> -- LBAUTO-ARGS...")
    arm(argv[0])
    sys.argv = ["lbauto", *argv[2:]]
    lbauto_main()


if __name__ == "__main__":
    main(sys.argv[1:])
