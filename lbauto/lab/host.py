"""Host-side plumbing for the lab: commands, preflight checks, background processes.

Every external command goes through :func:`run`, which turns a failure into a ``LabError``
naming the command and its stderr, so callers never see ``CalledProcessError``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from lbauto.errors import LabError

FRR_DIR = Path("/usr/lib/frr")
# (what to look for, Debian package that provides it)
REQUIREMENTS: tuple[tuple[str, str], ...] = (
    (str(FRR_DIR / "zebra"), "frr"),
    (str(FRR_DIR / "staticd"), "frr"),
    (str(FRR_DIR / "pbrd"), "frr"),
    ("vtysh", "frr"),
    (str(FRR_DIR / "frr-reload.py"), "frr-pythontools"),
    ("sshd", "openssh-server"),
    ("ssh-keygen", "openssh-client"),
    ("nft", "nftables"),
    ("ip", "iproute2"),
)

# Children started by this process: reaped here so a stopped child is not left as a zombie
# that still answers ``kill -0``.
_children: dict[int, subprocess.Popen[bytes]] = {}


def run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 30, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False, input=input
        )
    except FileNotFoundError as err:
        raise LabError(f"command not found: {argv[0]}") from err
    except subprocess.TimeoutExpired as err:
        raise LabError(f"command timed out after {timeout} s: {' '.join(argv)}") from err
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(
            f"command failed (exit {proc.returncode}): {' '.join(argv)}"
            + (f": {detail[-1]}" if detail else "")
        )
    return proc


def netns_argv(netns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]


def which(prog: str) -> str | None:
    if prog.startswith("/"):
        return prog if os.access(prog, os.X_OK) else None
    # sshd lives in /usr/sbin, which a non-login PATH may lack.
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return shutil.which(prog, path=path)


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, FRR, sshd): run it with sudo")


def preflight() -> None:
    """Refuse early and clearly when the host cannot run a lab."""
    require_root()
    missing = sorted({pkg for prog, pkg in REQUIREMENTS if which(prog) is None})
    if missing:
        progs = [prog for prog, pkg in REQUIREMENTS if pkg in missing and which(prog) is None]
        raise LabError(
            f"missing {', '.join(progs)}: install the Debian packages "
            f"{' '.join(missing)} (apt-get install {' '.join(missing)})"
        )


def spawn(argv: Sequence[str], log_file: Path, pid_file: Path | None = None) -> int:
    """Start a background process in its own session, its output in ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as err:
            raise LabError(f"cannot start {' '.join(argv)}: {err}") from err
    _children[proc.pid] = proc
    if pid_file is not None:
        pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # A zombie has exited; its parent (not us) has just not reaped it yet.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pidfile_pid(pid_file: Path, needle: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and its command line has ``needle``.

    A stale pid file (e.g. after a reboot) must never make us kill an unrelated process.
    """
    pid = read_pid(pid_file)
    if pid is None or not alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    return pid if needle in cmdline else None


def kill(pids: Sequence[int], grace: float = 2.0, *, hard: bool = False) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL what is left (``hard``: SIGKILL now)."""
    for sig in (signal.SIGKILL,) if hard else (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.02)
        if not any(alive(p) for p in pids):
            break
    for pid in pids:
        child = _children.pop(pid, None)
        if child is not None:
            child.poll()


def netns_pids(netns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def netns_list() -> list[str]:
    proc = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate()`` until true; LabError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
