"""The ``docker`` transport: the router is a container on this host (containerlab names them
``clab-<lab>-<node>``), reached with ``docker exec`` instead of SSH.

Each command runs as ``docker exec -i CONTAINER sh -c COMMAND``: real exit codes, separate
stderr and the candidate on stdin, like the SSH transport. The driver's router-side scripts
are the same ones: the commit-confirm timer is started with ``setsid`` inside the container,
so it is a child of the container's init once ``docker exec`` returns and keeps running when
the controller (lbauto) dies or its ``docker`` client is killed; it dies only with the
container, which takes the running config with it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

from napalm.base.exceptions import (
    CommandTimeoutException,
    ConnectionClosedException,
    ConnectionException,
)

from napalm_frr.transport import Result

#: Docker's own rule for container names (``[a-zA-Z0-9][a-zA-Z0-9_.-]+``), capped in length.
_CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$")


def check_options(opts: dict[str, Any]) -> None:
    """Refuse, when the driver is constructed, options the transport cannot use."""
    container = opts.get("container")
    if not container:
        raise ConnectionException(
            "transport 'docker' needs optional_args container: the container's name "
            "(containerlab: clab-<lab>-<node>)"
        )
    if not _CONTAINER.fullmatch(str(container)):
        raise ConnectionException(
            f"invalid container name {str(container)!r}: letters, digits, '_', '.', '-'"
        )
    if opts.get("docker_user") and not _USER.fullmatch(str(opts["docker_user"])):
        raise ConnectionException(f"invalid docker_user {str(opts['docker_user'])!r}")
    docker = opts.get("docker")
    if docker is not None:
        path = str(docker)
        if not os.path.isabs(path) or not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise ConnectionException(
                f"docker {path!r} must be an absolute path to an existing executable file"
            )


class DockerTransport:
    """Runs commands in a running container with ``docker exec``."""

    def __init__(
        self,
        container: str,
        docker: str | None = None,
        user: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        check_options({"container": container, "docker": docker, "docker_user": user})
        found = docker or shutil.which("docker")
        if found is None:
            raise ConnectionException("transport 'docker': no docker client on PATH")
        self._docker = found
        self._container = container
        self._user = ["-u", user] if user else []
        self._open = True
        state = self._inspect(min(timeout, 30.0))
        if state != "true":
            raise ConnectionException(f"container {container!r} is not running (state: {state})")

    def _inspect(self, timeout: float) -> str:
        """``true`` when the container runs; else a reason (no daemon, no such container)."""
        try:
            proc = subprocess.run(
                [self._docker, "inspect", "-f", "{{.State.Running}}", self._container],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ConnectionException(
                f"docker inspect {self._container} timed out after {timeout:.0f} s "
                "(is dockerd running?)"
            ) from exc
        except OSError as exc:
            raise ConnectionException(f"cannot run {self._docker}: {exc}") from exc
        if proc.returncode != 0:
            return (proc.stderr.strip() or f"docker inspect rc {proc.returncode}")[:300]
        return proc.stdout.strip()

    def run(self, command: str, stdin: str | None = None, timeout: float = 60.0) -> Result:
        if not self._open:
            raise ConnectionClosedException(f"docker transport to {self._container} is closed")
        argv = [self._docker, "exec", "-i", *self._user, self._container, "sh", "-c", command]
        try:
            proc = subprocess.run(
                argv,
                input=stdin if stdin is not None else "",
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeoutException(f"command timed out after {timeout:.0f} s") from exc
        except OSError as exc:
            raise ConnectionException(f"cannot run {self._docker}: {exc}") from exc
        # docker exec itself fails with 1 and "Error response from daemon" (container stopped,
        # gone) or 125-127 (daemon, cannot exec): a dead container must not read as a command
        # that failed on the router, so the container's state decides
        failed = proc.returncode != 0 and (
            proc.returncode in (125, 126, 127) or "Error response from daemon" in proc.stderr
        )
        if failed and self._inspect(10.0) != "true":
            raise ConnectionClosedException(
                f"container {self._container!r} is gone or stopped: {proc.stderr.strip()[:300]}"
            )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def alive(self) -> bool:
        if not self._open:
            return False
        try:
            return self._inspect(10.0) == "true"
        except ConnectionException:
            return False

    def close(self) -> None:
        self._open = False
