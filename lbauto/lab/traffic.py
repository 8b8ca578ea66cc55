"""The lab's measuring client: long-lived and short TCP connections to a VIP's echo service.

Runs inside the client namespace as its own process (``python -m lbauto.lab.client ...``, JSON
report on stdout), so its CPU is not in the measured path. What it measures:

- ``connections`` long-lived connections, each sending a line every ~100 ms and checking that
  the answer echoes the line and names the same DIP as the connection's first answer. A
  connection is *broken* when it is reset, closed by the peer, not answered within 2 s, or
  answered by another DIP; each break is recorded with its time since start and the DIP before.
  With ``lifetime``, a connection closes cleanly after that many seconds and a new one takes its
  slot; a broken connection is also replaced, so the load stays at ``connections``.
- ``new_per_second`` short connections per second (connect, one line, answer, close). A short
  connection fails when refused, reset, closed or not answered within 2 s.

From Python: :func:`run_traffic` (blocking) or :func:`start_traffic` (background; the tests
switch routes while it runs, then call ``handle.stop_and_report()`` or ``handle.wait()``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lbauto.errors import LabError
from lbauto.lab.spec import ECHO_PORT

if TYPE_CHECKING:
    from lbauto.lab.lab import Lab

INTERVAL = 0.1  # seconds between two lines on a long-lived connection
ANSWER_TIMEOUT = 2.0  # no answer within this = broken (long-lived) or failed (short)


@dataclass(frozen=True)
class Broken:
    """One long-lived connection that broke."""

    conn: int
    t: float  # seconds since start when the break was seen
    reason: str  # reset | closed | timeout | wrong-dip | bad-answer
    dip: str  # the DIP that answered before
    answered_by: str | None = None  # the other DIP, for wrong-dip
    last_ok: float = 0.0  # seconds since start of the last good answer


@dataclass(frozen=True)
class Failure:
    """A connection that could not be opened (or a short one that got no good answer)."""

    t: float
    reason: str  # refused | unreachable | reset | closed | timeout | bad-answer | error: ...
    kind: str  # short | long-lived


@dataclass
class Counts:
    broken: int = 0
    closed_cleanly: int = 0  # long-lived connections closed by the client (lifetime or end)
    closed_lifetime: int = 0
    new_ok: int = 0  # short connections answered
    new_failed: int = 0
    long_lived_opened: int = 0
    long_lived_failed: int = 0  # long-lived connections that could not be opened
    exchanges: int = 0  # lines answered correctly on long-lived connections


@dataclass
class TrafficReport:
    vip: str
    port: int
    connections: int
    lifetime: float | None
    new_per_second: float
    started_at: float = 0.0  # wall-clock time (time.time()) of t = 0
    duration: float = 0.0
    #: Seconds since start when every initial long-lived connection had its first answer.
    established_at: float | None = None
    #: ``counts.exchanges`` at ``established_at`` (for a steady-state rate).
    exchanges_at_established: int = 0
    #: DIP name -> count: ``long_lived`` = first answers of the initial connections,
    #: ``replacements`` = of later long-lived ones, ``new`` = short connections,
    #: ``final`` = long-lived connections still open (and healthy) at the end.
    distribution: dict[str, dict[str, int]] = field(default_factory=dict)
    broken: list[Broken] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    cpu_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrafficReport:
        data = dict(data)
        data["broken"] = [Broken(**b) for b in data.get("broken", [])]
        data["failures"] = [Failure(**f) for f in data.get("failures", [])]
        data["counts"] = Counts(**data.get("counts", {}))
        return cls(**data)


# ---------------------------------------------------------------------------- controlling side


class TrafficHandle:
    """A measuring client running in the background in the lab's client namespace."""

    def __init__(self, proc: subprocess.Popen[str], ready_file: Path, what: str) -> None:
        self._proc = proc
        self._ready_file = ready_file
        self._what = what

    def wait_ready(self, timeout: float = 10) -> float:
        """Block until every initial long-lived connection got its first answer (or failed).

        Returns the client's time since start at that moment.
        """
        deadline = time.monotonic() + timeout
        while not self._ready_file.exists():
            if self._proc.poll() is not None:
                return 0.0
            if time.monotonic() > deadline:
                raise LabError(f"{self._what}: connections not established after {timeout:g} s")
            time.sleep(0.02)
        return float(self._ready_file.read_text() or 0)

    def wait(self, timeout: float | None = None) -> TrafficReport:
        """Wait for the run (started with a duration) to end; its report."""
        try:
            out, err = self._proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self._proc.kill()
            self._proc.communicate()
            raise LabError(f"{self._what}: still running after {timeout} s; killed") from exc
        finally:
            self._ready_file.unlink(missing_ok=True)
        if self._proc.returncode != 0:
            detail = err.strip().splitlines()
            raise LabError(
                f"{self._what} failed (exit {self._proc.returncode})"
                + (f": {detail[-1]}" if detail else "")
            )
        try:
            return TrafficReport.from_dict(json.loads(out))
        except (ValueError, TypeError) as exc:
            raise LabError(f"{self._what}: unreadable report ({exc})") from exc

    def stop_and_report(self, timeout: float = 10) -> TrafficReport:
        """Stop now (connections close cleanly) and return the report."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)


def start_traffic(
    lab: Lab,
    vip: str,
    connections: int = 10,
    duration: float | None = None,
    lifetime: float | None = None,
    new_per_second: float = 0.0,
    port: int = ECHO_PORT,
    source_port_base: int = 0,
) -> TrafficHandle:
    """Start the client in the background; ``duration=None`` runs until ``stop_and_report``.
    ``source_port_base``: the initial long-lived connection k uses client port base + k.
    IPv4 and IPv6 VIPs alike."""
    try:
        vip = str(ipaddress.ip_address(vip))
    except ValueError as err:
        raise LabError(f"traffic: {vip!r} is not an IP address") from err
    ready = lab.state_dir / f"traffic-{os.getpid()}-{time.monotonic_ns()}.ready"
    argv = ["ip", "netns", "exec", lab.client.netns, sys.executable, "-m", "lbauto.lab.client"]
    argv += ["--vip", str(vip), "--port", str(port), "--connections", str(connections)]
    argv += ["--new-per-second", str(new_per_second), "--ready-file", str(ready)]
    if duration is not None:
        argv += ["--duration", str(duration)]
    if lifetime is not None:
        argv += ["--lifetime", str(lifetime)]
    if source_port_base:
        argv += ["--source-port-base", str(source_port_base)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return TrafficHandle(proc, ready, f"traffic to {vip} in lab {lab.name}")


def run_traffic(
    lab: Lab,
    vip: str,
    connections: int = 10,
    duration: float = 5.0,
    lifetime: float | None = None,
    new_per_second: float = 0.0,
    port: int = ECHO_PORT,
) -> TrafficReport:
    """Run the client for ``duration`` seconds and return its report."""
    handle = start_traffic(lab, vip, connections, duration, lifetime, new_per_second, port)
    return handle.wait(timeout=duration + 30)
