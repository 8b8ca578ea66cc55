"""A small namespace network for the agent's integration tests (prefix ``lba``).

    client --- router (plain Linux, routes by hand) --- server bridge --- agent
                                                                  \\--- DIP hosts (DSR)

The agent runs as its own process (``python -m lbauto.agent serve``) in its namespace; its API
is reached over a management veth from the root namespace. Echo servers and test clients run
in this process: their sockets are created in the right namespace by a thread that ``setns``-es
(the network namespace is per thread), so no helper processes are needed.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from lbauto.agent.client import HttpAgentClient
from lbauto.core.model import IPAddress

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
PORT = 8000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)

V4 = {"router": "198.51.100.1", "agent": "198.51.100.10", "client": "203.0.113.100"}
V6 = {"router": "2001:db8:100::1", "agent": "2001:db8:100::10", "client": "2001:db8:203::100"}


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()}")
    return p


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread that has joined network namespace ``ns``."""
    box: dict[str, object] = {}

    def run() -> None:
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {ns}")
            box["v"] = fn()
        except BaseException as e:
            box["e"] = e
        finally:
            os.close(fd)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]  # type: ignore[misc]
    return box["v"]  # type: ignore[return-value]


class EchoServer:
    """Answers each line with ``<name> <line>`` on TCP port 8000 (IPv4 and IPv6)."""

    def __init__(self, ns: str, name: str) -> None:
        self.name = name
        self.conns: list[socket.socket] = []
        self.accepted = 0

        def make() -> socket.socket:
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::", PORT))
            s.listen(1024)
            return s

        self.sock = in_netns(ns, make)
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        f = c.makefile("rb")
        try:
            for line in f:
                c.sendall(self.name.encode() + b" " + line)
        except OSError:
            pass
        finally:
            c.close()

    def close(self) -> None:
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            with suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()


@dataclass
class Conn:
    sock: socket.socket
    file: object
    dip: str
    broken: str | None = None

    def end(self, reset: bool = False) -> None:
        """Close the connection: FIN, or RST with ``reset`` (no TIME_WAIT: the port is free)."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.file.close()  # type: ignore[attr-defined]
        self.sock.close()


@dataclass
class Conns:
    """Long-lived connections from the client, each pinned to the DIP that answered first."""

    conns: list[Conn] = field(default_factory=list)

    def probe(self, timeout: float = 2.0) -> None:
        """One line on every live connection; a wrong DIP, reset or silence marks it broken."""
        live = [c for c in self.conns if c.broken is None]
        for c in live:
            try:
                c.sock.sendall(b"ping\n")
            except OSError as e:
                c.broken = f"send: {e}"
        for c in live:
            if c.broken:
                continue
            c.sock.settimeout(timeout)
            try:
                line = c.file.readline()  # type: ignore[attr-defined]
            except OSError as e:
                c.broken = f"recv: {e}"
                continue
            name = line.decode().split(" ")[0] if line else ""
            if name != c.dip:
                c.broken = f"answered by {name!r} instead of {c.dip}" if name else "closed"

    def probe_for(self, seconds: float, interval: float = 0.1) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.probe()
            time.sleep(interval)

    @property
    def broken(self) -> list[Conn]:
        return [c for c in self.conns if c.broken]

    def per_dip(self) -> Counter[str]:
        return Counter(c.dip for c in self.conns)

    def close(self) -> None:
        for c in self.conns:
            c.sock.close()


class Net:
    def __init__(self, dips: int = 3, flow_timeout: int = 300, prefix: str = "lba") -> None:
        self.flow_timeout = flow_timeout
        self.tag = prefix + secrets.token_hex(2)
        self.ns_cli, self.ns_rtr = f"{self.tag}-cli", f"{self.tag}-rtr"
        self.ns_agt, self.ns_srv = f"{self.tag}-agt", f"{self.tag}-srv"
        self.dip_names = [f"d{i + 1}" for i in range(dips)]
        self.dip4 = {n: f"198.51.100.{21 + i}" for i, n in enumerate(self.dip_names)}
        self.dip6 = {n: f"2001:db8:100::{21 + i}" for i, n in enumerate(self.dip_names)}
        sub = secrets.randbelow(250) + 1
        self.mgmt_root, self.mgmt_agent = f"198.19.{sub}.1", f"198.19.{sub}.2"
        self.token = secrets.token_hex(16)
        self.dir = Path(f"/tmp/{self.tag}")
        self.servers: list[EchoServer] = []
        self.agent_proc: subprocess.Popen[bytes] | None = None
        self.namespaces: list[str] = []

    def ns_dip(self, name: str) -> str:
        return f"{self.tag}-{name}"

    # ---------------------------------------------------------------- build / destroy

    def _ns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def _veth(self, ns_a: str, a: str, ns_b: str, b: str) -> None:
        sh("ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", ns_b)
        sh("ip", "-n", ns_a, "link", "set", a, "up")
        sh("ip", "-n", ns_b, "link", "set", b, "up")

    def _sysctl(self, ns: str, *kv: str) -> None:
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", *kv)

    def _addr(self, ns: str, dev: str, *addrs: str) -> None:
        for a in addrs:
            sh("ip", "-n", ns, "addr", "add", a, "dev", dev, "nodad")

    def up(self) -> Net:
        self.dir.mkdir(parents=True, exist_ok=True)
        for ns in (self.ns_srv, self.ns_cli, self.ns_rtr, self.ns_agt):
            self._ns(ns)
        sh("ip", "-n", self.ns_srv, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.ns_srv, "link", "set", "br0", "up")

        def port(ns: str, dev: str, brport: str) -> None:
            self._veth(ns, dev, self.ns_srv, brport)
            sh("ip", "-n", self.ns_srv, "link", "set", brport, "master", "br0")

        # client <-> router
        self._veth(self.ns_cli, "eth0", self.ns_rtr, "ethc")
        self._addr(self.ns_cli, "eth0", "203.0.113.100/24", "2001:db8:203::100/64")
        self._addr(self.ns_rtr, "ethc", "203.0.113.1/24", "2001:db8:203::1/64")
        sh("ip", "-n", self.ns_cli, "route", "add", "default", "via", "203.0.113.1")
        sh("ip", "-n", self.ns_cli, "-6", "route", "add", "default", "via", "2001:db8:203::1")
        # router and agent on the server segment
        port(self.ns_rtr, "eths", "p-rtr")
        self._addr(self.ns_rtr, "eths", "198.51.100.1/24", "2001:db8:100::1/64")
        self._sysctl(
            self.ns_rtr,
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.conf.all.rp_filter=0",
        )
        port(self.ns_agt, "eth0", "p-agt")
        self._addr(self.ns_agt, "eth0", "198.51.100.10/24", "2001:db8:100::10/64")
        sh("ip", "-n", self.ns_agt, "route", "add", "default", "via", "198.51.100.1")
        # management veth: root namespace <-> agent
        mg = f"{self.tag}m"
        sh("ip", "link", "add", mg, "type", "veth", "peer", "name", "mgmt0", "netns", self.ns_agt)
        sh("ip", "addr", "add", f"{self.mgmt_root}/30", "dev", mg)
        sh("ip", "link", "set", mg, "up")
        sh("ip", "-n", self.ns_agt, "addr", "add", f"{self.mgmt_agent}/30", "dev", "mgmt0")
        sh("ip", "-n", self.ns_agt, "link", "set", "mgmt0", "up")
        # DIP hosts: DSR (VIPs on lo, no ARP for them), default route via the router
        for n in self.dip_names:
            ns = self.ns_dip(n)
            self._ns(ns)
            port(ns, "eth0", f"p-{n}")
            self._addr(ns, "eth0", f"{self.dip4[n]}/24", f"{self.dip6[n]}/64")
            self._sysctl(
                ns,
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.eth0.rp_filter=0",
            )
            sh("ip", "-n", ns, "route", "add", "default", "via", "198.51.100.1")
            sh("ip", "-n", ns, "-6", "route", "add", "default", "via", "2001:db8:100::1")
            self.servers.append(EchoServer(ns, n))
        return self

    def down(self) -> None:
        self.stop_agent(kill=True)
        for s in self.servers:
            s.close()
        sh("ip", "link", "del", f"{self.tag}m", check=False)
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)

    # ---------------------------------------------------------------- VIPs and routes

    def add_vip(self, vip: str) -> None:
        plen = "32" if ":" not in vip else "128"
        for n in self.dip_names:
            sh("ip", "-n", self.ns_dip(n), "addr", "add", f"{vip}/{plen}", "dev", "lo")

    def route(self, vip: str, via: str) -> None:
        """Router: VIP -> ``via`` (the agent's or a DIP's address)."""
        fam = "-6" if ":" in vip else "-4"
        sh("ip", "-n", self.ns_rtr, fam, "route", "replace", vip, "via", via)

    # ---------------------------------------------------------------- agent

    def start_agent(self, timeout: float = 20.0) -> None:
        """Start the agent and wait until it answers /v1/health (``timeout`` seconds: an
        agent restoring 1,000 VIPs needs more than the default)."""
        (self.dir / "token").write_text(self.token + "\n")
        cfg = self.dir / "agent.yaml"
        cfg.write_text(
            f"listen: {self.mgmt_agent}\nport: 8080\ninterface: eth0\n"
            f"token_file: {self.dir / 'token'}\nstate_file: {self.dir / 'state.json'}\n"
            f"flow_timeout: {self.flow_timeout}\ntick: 0.3\n"
        )
        with (self.dir / "agent.log").open("ab") as log:  # the child keeps its own copy
            self.agent_proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns_agt, sys.executable, "-m", "lbauto.agent",
                 "serve", "--config", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.agent_proc.poll() is not None:
                raise RuntimeError(f"agent exited: {(self.dir / 'agent.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.api}/v1/health", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"agent did not answer /v1/health within {timeout:.0f} s")

    def stop_agent(self, kill: bool = False) -> None:
        p = self.agent_proc
        if p is None:
            return
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL if kill else signal.SIGTERM)
            p.wait(timeout=10)
        self.agent_proc = None

    @property
    def api(self) -> str:
        return f"http://{self.mgmt_agent}:8080"

    def client(self) -> HttpAgentClient:
        return HttpAgentClient(self.api, token=self.token, name="lba-agent")

    def nft(self, *args: str) -> str:
        return sh("ip", "netns", "exec", self.ns_agt, "nft", *args).stdout

    # ---------------------------------------------------------------- traffic

    def _sockets(self, family: int, n: int) -> list[socket.socket]:
        return in_netns(self.ns_cli, lambda: [socket.socket(family) for _ in range(n)])

    def add_client_address(self, address: str) -> None:
        """One more source address on the client (IPv4 /24 or IPv6 /64 of its link)."""
        plen = "64" if ":" in address else "24"
        sh("ip", "-n", self.ns_cli, "addr", "add", f"{address}/{plen}", "dev", "eth0", "nodad")

    def open_conns(
        self, vip: str, n: int, sources: Sequence[tuple[str, int]] | None = None
    ) -> Conns:
        """``n`` long-lived connections; ``sources`` gives each one's (client address, port)."""
        fam = socket.AF_INET6 if ":" in vip else socket.AF_INET
        out = Conns()
        for i, s in enumerate(self._sockets(fam, n)):
            s.settimeout(3)
            if sources is not None:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(sources[i])
            s.connect((vip, PORT))
            f = s.makefile("rb")
            s.sendall(b"hello\n")
            line = f.readline().decode()
            out.conns.append(Conn(s, f, line.split(" ")[0]))
        return out

    def short_conns(self, vip: str, n: int, reset: bool = False) -> Counter[str]:
        """``n`` one-line connections; counts answering DIPs (``error:...`` for failures).
        ``reset``: close with RST (no TIME_WAIT, so thousands per second do not exhaust the
        client's ports)."""
        fam = socket.AF_INET6 if ":" in vip else socket.AF_INET
        seen: Counter[str] = Counter()
        for s in self._sockets(fam, n):
            try:
                s.settimeout(3)
                s.connect((vip, PORT))
                s.sendall(b"x\n")
                seen[s.makefile("rb").readline().decode().split(" ")[0] or "error:closed"] += 1
                if reset:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError as e:
                seen[f"error:{type(e).__name__}"] += 1
            finally:
                s.close()
        return seen


@contextmanager
def network(
    dips: int = 3, agent: bool = True, flow_timeout: int = 300, prefix: str = "lba"
) -> Iterator[Net]:
    net = Net(dips, flow_timeout, prefix)
    try:
        net.up()
        if agent:
            net.start_agent()
        yield net
    finally:
        net.down()


def addr(text: str) -> IPAddress:
    return ipaddress.ip_address(text)
