"""One apply per inventory at a time.

An advisory ``flock`` on ``<state_dir>/apply.lock``: the kernel drops it when the holder dies
(even by SIGKILL), so a crashed apply never leaves a stale lock. The holder writes who it is into
the file so a refused second apply can say who holds it since when.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lbauto.errors import JournalError, LockedError


def holder_info(command: str) -> dict[str, Any]:
    """Who takes the lock: what a refused second run prints (also the etcd lock's value)."""
    return {
        "pid": os.getpid(),
        "user": getpass.getuser(),
        "host": socket.gethostname(),
        "since": time.time(),
        "command": command,
    }


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    return describe_holder(info)


def describe_holder(info: dict[str, Any]) -> str:
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info.get("since", 0)))
    return (
        f"pid {info.get('pid', '?')} ({info.get('user', '?')} on {info.get('host', '?')}, "
        f"{info.get('command', 'apply')}) since {since}"
    )


def _unusable(path: Path, exc: OSError) -> str:
    return (
        f"cannot write {path}: {exc.strerror or type(exc).__name__}; the inventory's state "
        f"directory {path.parent} must be writable (free space there or make it writable)"
    )


@contextmanager
def apply_lock(state_dir: Path, command: str = "apply") -> Iterator[None]:
    path = state_dir / "apply.lock"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise JournalError(_unusable(path, exc)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(
                f"inventory is locked by {_holder_text(path)}; wait for it to finish "
                f"(the lock is {path})"
            ) from None
        info = holder_info(command)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError as exc:
            # A state directory that cannot take 150 bytes cannot take the journal either.
            raise JournalError(_unusable(path, exc)) from None
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
