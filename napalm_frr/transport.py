"""How the FRR driver reaches a router's shell: over SSH (netmiko ``linux``), locally, or in
a container (``docker exec``, :mod:`napalm_frr.docker`).

Every transport runs one POSIX shell command line and returns its exit code, stdout and stderr,
so the driver can send a whole step (check, save, apply, arm the timer) in one round trip.
:data:`TRANSPORTS` names them (optional_args ``transport``).
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from napalm.base.exceptions import (
    CommandTimeoutException,
    ConnectAuthError,
    ConnectionClosedException,
    ConnectionException,
    ConnectTimeoutError,
)


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str


class Transport(Protocol):
    def run(self, command: str, stdin: str | None = None, timeout: float = 60.0) -> Result: ...

    def alive(self) -> bool: ...

    def close(self) -> None: ...


class LocalTransport:
    """Runs commands with ``sh -c`` on this host, optionally inside a network namespace."""

    def __init__(self, netns: str | None = None) -> None:
        self._prefix = ["ip", "netns", "exec", netns] if netns else []
        self._open = True

    def run(self, command: str, stdin: str | None = None, timeout: float = 60.0) -> Result:
        if not self._open:
            raise ConnectionClosedException("local transport is closed")
        try:
            proc = subprocess.run(
                [*self._prefix, "sh", "-c", command],
                input=stdin if stdin is not None else "",
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeoutException(f"command timed out after {timeout:.0f} s") from exc
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def alive(self) -> bool:
        return self._open

    def close(self) -> None:
        self._open = False


class SshTransport:
    """An SSH connection set up by netmiko (device type ``linux``); commands run in one
    ``sh`` on an exec channel, which gives real exit codes, separate stderr and a clean stdin
    for uploading candidates, without prompt scraping."""

    def __init__(
        self,
        host: str,
        username: str,
        password: str | None,
        port: int = 22,
        key_file: str | None = None,
        timeout: float = 60.0,
        extra: dict[str, Any] | None = None,
    ) -> None:
        import paramiko
        from netmiko import ConnectHandler

        params: dict[str, Any] = {
            "device_type": "linux",
            "host": host,
            "port": port,
            "username": username,
            "conn_timeout": min(timeout, 15.0),
            "timeout": timeout,
            **(extra or {}),
        }
        if password:
            params["password"] = password
        if key_file:
            params.update(use_keys=True, key_file=key_file, allow_agent=False)
        try:
            # netmiko resolves the connection parameters (keys, ssh_config, proxies) and builds
            # the paramiko client; its interactive shell is not opened: commands run on one
            # exec channel (see _RemoteShell), and an interactive login would cost the router
            # another shell start plus netmiko's prompt discovery (~0.4 s).
            conn = ConnectHandler(**params, auto_connect=False)
            conn._modify_connection_params()
            client = conn._build_ssh_client()
            client.connect(**conn._connect_params_dict())
        except paramiko.AuthenticationException as exc:
            raise ConnectAuthError(
                f"SSH authentication to {username}@{host}:{port} failed"
            ) from exc
        except (TimeoutError, OSError) as exc:
            raise ConnectTimeoutError(
                f"SSH connection to {host}:{port} failed: {type(exc).__name__}: {exc}"
            ) from exc
        except Exception as exc:  # netmiko/paramiko raise many unrelated types
            raise ConnectionException(
                f"SSH connection to {host}:{port} failed: {type(exc).__name__}"
            ) from exc
        self._client = client
        self._host = host
        self._shell: _RemoteShell | None = None

    def _ssh(self) -> Any:
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionClosedException(f"SSH connection to {self._host} is closed")
        return transport

    def run(self, command: str, stdin: str | None = None, timeout: float = 60.0) -> Result:
        if self._shell is None:
            self._shell = _RemoteShell(self._ssh(), timeout)
        try:
            return self._shell.run(command, stdin, timeout)
        except BaseException:
            # the shell's state is unknown after a timeout or a broken channel: start afresh
            self._shell.close()
            self._shell = None
            raise

    def alive(self) -> bool:
        try:
            self._ssh()
        except ConnectionClosedException:
            return False
        return True

    def close(self) -> None:
        if self._shell is not None:
            self._shell.close()
            self._shell = None
        # closing a dead session must not raise
        with contextlib.suppress(Exception):
            self._client.close()


class _RemoteShell:
    """One ``sh`` on an SSH exec channel that runs command after command.

    Every SSH session costs the router a fork, a login shell and its rc files (measured
    ~0.1 s of CPU with a busy ``.bashrc``), so the driver opens one session per connection
    and frames each command: it runs in a subshell (an ``exit`` ends only the command), reads
    its stdin from a here-document, and is followed by a marker line carrying its exit code on
    stdout and a marker line on stderr.
    """

    def __init__(self, transport: Any, timeout: float) -> None:
        self._chan = transport.open_session(timeout=timeout)
        self._chan.exec_command("exec /bin/sh")
        self._out = bytearray()
        self._err = bytearray()
        # whatever the login shell's rc files print ends up before this first marker
        self.run("true", None, timeout)

    def run(self, command: str, stdin: str | None, timeout: float) -> Result:
        token = secrets.token_hex(12)
        eof, marker = f"NAPALM_FRR_EOF_{token}", f"NAPALM_FRR_RC_{token}"
        body = stdin or ""
        if body and not body.endswith("\n"):
            body += "\n"
        script = (
            f"(\n{command}\n) <<'{eof}'\n{body}{eof}\n"
            f"rc=$?; printf '\\n%s %d\\n' {marker} $rc; printf '\\n%s\\n' {marker} >&2\n"
        )
        self._chan.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            self._chan.sendall(script.encode())
            out = self._read(self._chan.recv, self._out, f"\n{marker} ".encode(), deadline)
            tail = self._read_line(self._chan.recv, self._out, deadline)
            err = self._read(self._chan.recv_stderr, self._err, f"\n{marker}\n".encode(), deadline)
        except TimeoutError as exc:
            raise CommandTimeoutException(f"command timed out after {timeout:.0f} s") from exc
        return Result(int(tail), out.decode(errors="replace"), err.decode(errors="replace"))

    def _fill(self, recv: Any, buf: bytearray, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError
        chunk = recv(65536)
        if not chunk:
            raise ConnectionClosedException("the remote shell ended unexpectedly")
        buf += chunk

    def _read(self, recv: Any, buf: bytearray, marker: bytes, deadline: float) -> bytes:
        """Bytes before ``marker`` (consumed with it) from one stream."""
        while (i := buf.find(marker)) < 0:
            self._fill(recv, buf, deadline)
        data = bytes(buf[:i])
        del buf[: i + len(marker)]
        return data

    def _read_line(self, recv: Any, buf: bytearray, deadline: float) -> str:
        while (i := buf.find(b"\n")) < 0:
            self._fill(recv, buf, deadline)
        line = bytes(buf[:i]).decode()
        del buf[: i + 1]
        return line

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._chan.close()


# ------------------------------------------------------------------ registry


@dataclass(frozen=True)
class Target:
    """Everything a transport may need to connect: the driver's arguments and optional_args."""

    hostname: str
    username: str
    password: str | None
    port: int = 22
    key_file: str | None = None
    timeout: float = 60.0
    netns: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    #: optional_args the driver does not know (passed to netmiko by the ssh transport)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TransportSpec:
    #: opens a connection (raises a NAPALM ConnectionException subclass on failure)
    connect: Callable[[Target], Transport]
    #: checks optional_args when the driver is constructed (raises ConnectionException)
    check: Callable[[dict[str, Any]], None]
    #: optional_args the transport reads (never passed on to netmiko)
    options: frozenset[str] = frozenset()


def _ssh(t: Target) -> Transport:
    return SshTransport(
        t.hostname,
        t.username,
        t.password,
        port=t.port,
        key_file=t.key_file,
        timeout=t.timeout,
        extra=dict(t.extra),
    )


def _local(t: Target) -> Transport:
    return LocalTransport(t.netns)


def _docker(t: Target) -> Transport:
    # imported on use: the ssh and local transports never need it
    from napalm_frr.docker import DockerTransport

    opts = t.options
    return DockerTransport(
        str(opts["container"]),
        docker=str(opts["docker"]) if opts.get("docker") else None,
        user=str(opts["docker_user"]) if opts.get("docker_user") else None,
        timeout=t.timeout,
    )


def _check_docker(opts: dict[str, Any]) -> None:
    from napalm_frr.docker import check_options

    check_options(opts)


def _no_check(opts: dict[str, Any]) -> None:
    return None


TRANSPORTS: dict[str, TransportSpec] = {
    "ssh": TransportSpec(_ssh, _no_check),
    "local": TransportSpec(_local, _no_check),
    "docker": TransportSpec(
        _docker, _check_docker, frozenset({"container", "docker", "docker_user"})
    ),
}

#: optional_args read by some transport (none of them goes to netmiko).
TRANSPORT_OPTIONS: frozenset[str] = frozenset().union(*(s.options for s in TRANSPORTS.values()))
