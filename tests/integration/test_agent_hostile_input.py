"""The live agent against hostile clients (issue 11, item 7 and the /openapi.json item).

Real agent process, real sockets. Large bodies are streamed from a generator (the test holds
one 1 MiB chunk), so the only memory that can grow is the agent's: its RSS is sampled from
/proc while the requests run. Control (the agent before this change): four unauthenticated
250 MB PUTs took it to about 1.9 GB, because the body was read before the token was checked.
``LBAUTO_HOSTILE_MB`` sets the body size (default 250).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.agent_net import Net, network

pytestmark = pytest.mark.integration

VIP = "192.0.2.10"
MB = 1 << 20
SIZE_MB = int(os.environ.get("LBAUTO_HOSTILE_MB", "250"))


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    with network(dips=1, prefix="ah") as n:
        yield n


def _rss(pid: int) -> int:
    """Resident set size of the agent process and its children, in bytes."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    out = [int(k) for k in kids]
    for k in list(out):
        out += _children(k)
    return out


class Sampler:
    """Peak RSS of a process while the ``with`` block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self.peak = _rss(self.pid)
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def _raw_put(
    net: Net, size: int, headers: dict[str, str], chunked: bool = False
) -> tuple[int, str]:
    """PUT ``size`` bytes of body over a raw socket; returns (bytes sent, status line)."""
    host, port = net.mgmt_agent, 8080
    s = socket.create_connection((host, port), timeout=30)
    head = [f"PUT /v1/vips/{VIP} HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    sent = 0
    chunk = b'{"mode": "multi", "name": "' + b"x" * (MB - 28)
    try:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        while sent < size:
            piece = chunk[: min(MB, size - sent)]
            s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        if chunked:
            s.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the agent answered and closed: the rest was never read
    try:
        s.settimeout(10)
        status = s.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
    except OSError as e:
        status = f"({type(e).__name__})"
    finally:
        s.close()
    return sent, status


def test_unauthenticated_large_puts_are_not_read(net: Net) -> None:
    assert net.agent_proc is not None
    pid = net.agent_proc.pid
    results: list[tuple[int, str]] = []

    def one(chunked: bool) -> None:
        results.append(_raw_put(net, SIZE_MB * MB, {"Authorization": "Bearer wrong"}, chunked))

    with Sampler(pid) as rss:
        base = rss.peak
        threads = [threading.Thread(target=one, args=(i % 2 == 1,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    grown = (rss.peak - base) / MB
    sent_mib = [r[0] // MB for r in results]
    print(
        f"agent RSS {base / MB:.0f} MiB, peak {rss.peak / MB:.0f} MiB (+{grown:.1f} MiB) "
        f"for 4 unauthenticated {SIZE_MB} MB PUTs; sent {sent_mib} MiB"
    )
    assert grown < 32, f"agent RSS grew by {grown:.0f} MiB"
    # the agent stopped reading long before the end (socket buffers hold a few MiB at most)
    assert all(sent < SIZE_MB * MB for sent, _ in results), results
    assert any("401" in status for _, status in results), results
    with net.client() as c:
        assert c.list_vips() == {}
        assert c.health()["status"] == "ok"


def test_authenticated_body_over_the_limit_is_413_and_not_buffered(net: Net) -> None:
    assert net.agent_proc is not None
    auth = {"Authorization": f"Bearer {net.token}"}
    with Sampler(net.agent_proc.pid) as rss:
        base = rss.peak
        sent, status = _raw_put(net, 64 * MB, auth)
        sent_c, status_c = _raw_put(net, 64 * MB, auth, chunked=True)
    assert "413" in status or sent < 64 * MB, status
    assert sent_c < 64 * MB, (sent_c, status_c)
    assert (rss.peak - base) / MB < 16
    with httpx.Client(base_url=net.api, headers=auth, timeout=10) as h:
        body = {"mode": "multi", "dips": ["198.51.100.21"], "flow_tracking": True}
        r = h.put(f"/v1/vips/{VIP}", json={**body, "name": "x" * (2 * MB)})
        assert r.status_code == 413 and len(r.content) < 300
        assert h.get("/v1/vips").json() == {"vips": []}


def test_422_does_not_echo_the_body_over_the_wire(net: Net) -> None:
    marker = "Q" * 200_000
    with httpx.Client(base_url=net.api, timeout=10) as h:
        h.headers["Authorization"] = f"Bearer {net.token}"
        r = h.put(f"/v1/vips/{VIP}", json={"mode": "multi", "dips": [marker], "flow_tracking": 1})
        assert r.status_code == 422
        assert len(r.content) < 4000 and "Q" * 100 not in r.text


def test_docs_and_openapi_need_the_token_and_health_is_minimal(net: Net) -> None:
    with httpx.Client(base_url=net.api, timeout=5) as h:
        assert h.get("/v1/health").json() == {"status": "ok"}
        for path in ("/openapi.json", "/docs", "/redoc"):
            r = h.get(path)
            assert r.status_code == 401 and "lbauto agent" not in r.text, path
        h.headers["Authorization"] = f"Bearer {net.token}"
        assert h.get("/openapi.json").json()["info"]["title"] == "lbauto agent"
        assert h.get("/docs").status_code == 404
        full = h.get("/v1/health").json()
        assert full["status"] == "ok" and "version" in full and full["vips"] == 0
