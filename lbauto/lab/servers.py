"""The servers on every DIP host: TCP echo (port 7) and HTTP (port 80), both naming the DIP.

Started here, run inside a DIP namespace as ``python -m lbauto.lab.dipserver --name d1``. Both
listen on every address of both families, so they answer on any VIP put on the loopback. Echo:
each line ``L`` received is answered with ``<name> L``. HTTP: any request gets the DIP name as
body. asyncio holds thousands of idle connections in one process.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lbauto.errors import LabError
from lbauto.lab.host import alive, kill, netns_argv, pidfile_pid, spawn, tail, wait_for
from lbauto.lab.spec import LabDip


def pid_file(lab_dir: Path, dip: LabDip) -> Path:
    return lab_dir / dip.name / "servers.pid"


def start(dip: LabDip, lab_dir: Path) -> int:
    """Start the servers in the DIP's namespace (without waiting); returns the process id."""
    pf = pid_file(lab_dir, dip)
    pf.parent.mkdir(parents=True, exist_ok=True)
    pf.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "lbauto.lab.dipserver", "--name", dip.name, "--pid-file", str(pf)]
    return spawn(netns_argv(dip.netns, argv), pf.parent / "servers.log")


def wait_started(dip: LabDip, lab_dir: Path, pid: int, timeout: float = 10) -> None:
    pf = pid_file(lab_dir, dip)

    def ready() -> bool:
        if pf.exists():
            return True
        if not alive(pid):
            raise LabError(
                f"the echo/HTTP servers of DIP {dip.name} exited: {tail(pf.parent / 'servers.log')}"
            )
        return False

    wait_for(ready, timeout, f"the echo/HTTP servers of DIP {dip.name} (log: {pf.parent})")


def running(dip: LabDip, lab_dir: Path) -> bool:
    return pidfile_pid(pid_file(lab_dir, dip), "lbauto.lab.dipserver") is not None


def stop(dip: LabDip, lab_dir: Path) -> None:
    pid = pidfile_pid(pid_file(lab_dir, dip), "lbauto.lab.dipserver")
    if pid is not None:
        kill([pid])
