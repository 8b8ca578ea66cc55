"""An agent pool in a BGP lab (``lbauto lab up --bgp``): VIPs on agents, router FIBs, faults.

Used by the failover tests and ``bench/bench_failover.py``. A VIP's path is read where the
router forwards it, in the kernel FIB of the router namespace (``ip route``, ``proto bgp``):
an agent is "in" a VIP's ECMP group while one of its addresses (IPv4, or the IPv6 link-local
address bgpd chooses as next hop) is a next hop of the VIP's route.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from lbauto.errors import LabError
from lbauto.lab.host import run
from lbauto.lab.traffic import TrafficReport, start_traffic

if TYPE_CHECKING:
    from lbauto.lab.lab import Lab
    from lbauto.lab.spec import LabAgent

#: Every VIP -> its next hops (gateway addresses), one router.
Fib = dict[str, frozenset[str]]


def agent_client(agent: LabAgent, timeout: float = 10.0) -> httpx.Client:
    token = agent.token_file.read_text().strip()
    return httpx.Client(
        base_url=agent.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    )


def put_vip(agent: LabAgent, vip: str, dips: Sequence[str]) -> None:
    """Set ``vip`` (multi-DIP, flow tracking on) on one agent."""
    body = {"mode": "multi", "dips": list(dips), "flow_tracking": True}
    with agent_client(agent) as c:
        r = c.put(f"/v1/vips/{vip}", json=body)
    if r.status_code not in (200, 201):
        raise LabError(f"agent {agent.name}: PUT {vip}: HTTP {r.status_code}: {r.text[:200]}")


def put_vips(agents: Iterable[LabAgent], vips: Mapping[str, Sequence[str]]) -> None:
    for agent in agents:
        for vip, dips in vips.items():
            put_vip(agent, vip, dips)


def bgp_status(agent: LabAgent) -> dict[str, Any]:
    with agent_client(agent) as c:
        data: dict[str, Any] = c.get("/v1/bgp").raise_for_status().json()
    return data


def flow_total(agent: LabAgent, vip: str) -> int:
    with agent_client(agent) as c:
        r = c.get(f"/v1/vips/{vip}/flows", params={"limit": 0}).raise_for_status()
    return int(r.json()["total"])


def agent_hops(lab: Lab, agent: LabAgent) -> frozenset[str]:
    """Every address a router may use as next hop to ``agent``."""
    out = json.loads(
        run(["ip", "-n", agent.netns, "-j", "addr", "show", "dev", agent.iface]).stdout
    )
    hops = {str(agent.address), str(agent.address6)}
    for link in out:
        hops |= {str(a["local"]) for a in link.get("addr_info", []) if "local" in a}
    return frozenset(hops)


def fib(netns: str, families: Sequence[str] = ("-4", "-6")) -> Fib:
    """The router's BGP routes (``families``: ``-4``, ``-6``): prefix address -> next hops."""
    routes: Fib = {}
    for family in families:
        proc = run(["ip", "-n", netns, family, "-j", "route", "show", "proto", "bgp"], check=False)
        for route in json.loads(proc.stdout or "[]"):
            dst = str(route.get("dst", "")).split("/")[0]
            hops = [h.get("gateway") for h in route.get("nexthops", [])] or [route.get("gateway")]
            routes[str(ipaddress.ip_address(dst))] = frozenset(str(h) for h in hops if h)
    return routes


def in_group(lab: Lab, agent_hops_: frozenset[str], vips: Iterable[str]) -> bool:
    """True when every router forwards every VIP to the agent (one of its hops)."""
    for r in lab.routers:
        routes = fib(r.netns)
        if any(not routes.get(v, frozenset()) & agent_hops_ for v in vips):
            return False
    return True


def out_of_group(lab: Lab, agent_hops_: frozenset[str], vips: Iterable[str]) -> bool:
    """True when no router forwards any VIP to the agent."""
    for r in lab.routers:
        routes = fib(r.netns)
        if any(routes.get(v, frozenset()) & agent_hops_ for v in vips):
            return False
    return True


def wait_group(
    lab: Lab, hops: frozenset[str], vips: Sequence[str], present: bool, timeout: float = 20.0
) -> float:
    """Wait until the agent is in (``present``) or out of every router's ECMP group for every
    VIP; seconds waited."""
    t0 = time.monotonic()
    check = in_group if present else out_of_group
    while not check(lab, hops, vips):
        if time.monotonic() - t0 > timeout:
            state = {r.name: fib(r.netns) for r in lab.routers}
            raise LabError(
                f"after {timeout:g} s the agent ({', '.join(sorted(hops))}) is still "
                f"{'missing from' if present else 'in'} the routers' ECMP groups: {state}"
            )
        time.sleep(0.01)
    return time.monotonic() - t0


@dataclass
class Detection:
    """When each router stopped (or started) forwarding to an agent, since the fault."""

    per_router: dict[str, float] = field(default_factory=dict)
    samples: int = 0

    @property
    def seconds(self) -> float:
        """The last router's time: the pool has moved off the agent."""
        return max(self.per_router.values()) if self.per_router else float("inf")


class FibWatch:
    """Samples every router's FIB until each one no longer (``gone``) or again (not ``gone``)
    has the agent as next hop for every VIP. One thread per router and address family, each
    one ``ip`` call per sample, so a sample costs one process start (about 5-30 ms here).
    Start it, :meth:`mark` the fault's instant, inject the fault, then :meth:`result`."""

    def __init__(
        self, lab: Lab, hops: frozenset[str], vips: Sequence[str], gone: bool = True
    ) -> None:
        self.lab = lab
        self.hops = hops
        self.gone = gone
        self.t0: float | None = None
        self.detection = Detection()
        self._seen: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._keys: list[tuple[str, str]] = []
        for r in lab.routers:
            for family, version in (("-4", 4), ("-6", 6)):
                mine = [v for v in vips if ipaddress.ip_address(v).version == version]
                if mine:
                    self._keys.append((r.name, family))
                    self._threads.append(
                        threading.Thread(
                            target=self._run,
                            args=(r.name, r.netns, family, mine),
                            name=f"fib-watch-{r.name}{family}",
                            daemon=True,
                        )
                    )

    def start(self) -> FibWatch:
        for t in self._threads:
            t.start()
        return self

    def mark(self) -> None:
        self.t0 = time.monotonic()

    def _done(self, routes: Fib, vips: Sequence[str]) -> bool:
        if self.gone:
            return not any(routes.get(v, frozenset()) & self.hops for v in vips)
        return all(routes.get(v, frozenset()) & self.hops for v in vips)

    def _run(self, name: str, netns: str, family: str, vips: Sequence[str]) -> None:
        while not self._stop.is_set():
            routes = fib(netns, (family,))
            self.detection.samples += 1
            if self.t0 is not None and self._done(routes, vips):
                self._seen[(name, family)] = time.monotonic() - self.t0
                return
            time.sleep(0.002)

    def result(self, timeout: float = 30.0) -> Detection:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        for t in self._threads:
            t.join(1)
        for name, family in self._keys:
            seconds = self._seen.get((name, family), float("inf"))  # inf: never got there
            self.detection.per_router[name] = max(seconds, self.detection.per_router.get(name, 0))
        return self.detection


def set_link(lab: Lab, agent: LabAgent, up: bool) -> None:
    """Cut (or restore) the agent's cable: its port on the lab switch."""
    run(["ip", "-n", lab.layout.switch_netns, "link", "set", agent.name, "up" if up else "down"])


@dataclass
class Run:
    """One measured fault: detection per router and each VIP's traffic report."""

    detection: Detection
    reports: dict[str, TrafficReport]

    def broken(self, vips: Iterable[str] | None = None) -> int:
        keys = self.reports if vips is None else vips
        return sum(
            self.reports[v].counts.broken + self.reports[v].counts.long_lived_failed for v in keys
        )


def measure(
    lab: Lab,
    hops: frozenset[str],
    traffic: Mapping[str, int],
    watch: Sequence[str],
    fault: Callable[[], object],
    gone: bool = True,
    settle: float = 3.0,
    timeout: float = 30.0,
) -> Run:
    """Start ``traffic`` (VIP -> long-lived connections), wait until all are established,
    inject ``fault`` while sampling the routers' FIBs for the ``watch`` VIPs, let traffic run
    ``settle`` more seconds, stop it. ``gone``: wait for the agent to leave the ECMP groups
    (False: to join them)."""
    handles = {}
    try:
        for vip, n in traffic.items():
            handles[vip] = start_traffic(lab, vip, connections=n)
        for handle in handles.values():
            handle.wait_ready(timeout=20)
        watcher = FibWatch(lab, hops, watch, gone=gone).start()
        time.sleep(0.05)  # every sampler has its first sample under way
        watcher.mark()
        fault()
        detection = watcher.result(timeout)
        time.sleep(settle)
        reports = {vip: h.stop_and_report() for vip, h in handles.items()}
        handles.clear()
        return Run(detection, reports)
    finally:
        for h in handles.values():
            with contextlib.suppress(LabError):
                h.stop_and_report()


@contextlib.contextmanager
def plain_bgp(lab: Lab, agent: LabAgent, keepalive: int = 1, hold: int = 3) -> Iterator[None]:
    """Run ``agent`` without BFD (BGP hold timer only) inside the block, then as before; the
    agent is restarted on the way in and out and has rejoined every VIP's group after each."""
    original = agent.config_file.read_text()
    plain = original.replace(
        "bgp:\n", f"bgp:\n  bfd: false\n  keepalive: {keepalive}\n  hold_time: {hold}\n"
    )
    hops = agent_hops(lab, agent)
    vips = lab_vips(agent)
    try:
        lab.stop_agent(agent.name)
        agent.config_file.write_text(plain)
        lab.start_agent(agent.name)
        wait_group(lab, hops, vips, present=True)
        yield
    finally:
        set_link(lab, agent, up=True)
        lab.stop_agent(agent.name)
        agent.config_file.write_text(original)
        lab.start_agent(agent.name)
        wait_group(lab, hops, vips, present=True)


def lab_vips(agent: LabAgent) -> list[str]:
    """The VIPs the agent holds (from its API)."""
    with agent_client(agent) as c:
        docs = c.get("/v1/vips").raise_for_status().json()["vips"]
    return [str(d["address"]) for d in docs]


def write_inventory(lab: Lab, vips: Mapping[str, Sequence[str]], dest: Path) -> Path:
    """A copy of the lab's inventory in ``dest`` whose VIPs are ``vips`` (VIP -> DIPs; names
    ``v1``, ``v2``, ...). Every VIP is also put on every DIP host's loopback (DSR)."""
    shutil.copytree(lab.inventory_dir, dest, dirs_exist_ok=True)
    lines = ["vips:\n"]
    for k, (vip, dips) in enumerate(vips.items(), start=1):
        lab.add_vip(vip)
        lines.append(f"  - name: v{k}\n    address: {vip}\n    dips: [{', '.join(dips)}]\n")
    (dest / "vips.yaml").write_text("".join(lines))
    return dest


def apply(inventory: Path, timeout: float = 120.0) -> str:
    """``lbauto apply --yes`` on ``inventory``: agents get the VIPs, routers the BGP side."""
    argv = [sys.executable, "-m", "lbauto", "--inventory", str(inventory), "apply", "--yes"]
    proc = run(argv, check=False, timeout=timeout)
    if proc.returncode != 0:
        raise LabError(f"lbauto apply failed (exit {proc.returncode}): {proc.stderr[-500:]}")
    return proc.stdout
