"""The namespace lab: build it, load it, use it, remove it.

``Lab.up(spec)`` is idempotent and all-or-nothing: a failure half-way removes everything it made
before re-raising. ``down(name)`` removes a lab by name alone (state file, then every
``<name>-*`` namespace, root link and FRR pathspace it can find), so it also cleans up after a
crashed ``up``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from lbauto.errors import LabError
from lbauto.lab import frr, inventory, servers, sshd, topology
from lbauto.lab.host import (
    alive,
    kill,
    netns_argv,
    netns_list,
    netns_pids,
    pidfile_pid,
    preflight,
    require_root,
    run,
    spawn,
    tail,
    tcp_open,
    wait_for,
)
from lbauto.lab.spec import (
    AGENT_PORT,
    LabAgent,
    LabClient,
    LabDip,
    LabRouter,
    LabSpec,
    Layout,
    check_name,
    layout,
)
from lbauto.lab.state import (
    PHASE_BUILDING,
    PHASE_UP,
    allocate_index,
    forget_lock,
    lab_dir,
    locked,
    read_state,
    spec_from_state,
    write_state,
)

AGENT_START_TIMEOUT = 20.0
_INDEX_LOCK = "@index"  # not a valid lab name, so never a lab's own lock


@dataclass(frozen=True)
class MemberStatus:
    """One row of ``lbauto lab status``."""

    name: str
    role: str  # router | agent | dip | client
    netns: str
    address: str
    processes: dict[str, bool]  # process -> alive

    @property
    def ok(self) -> bool:
        return all(self.processes.values())

    @property
    def infra_ok(self) -> bool:
        """Everything but the agent process (which tests stop and crash on purpose)."""
        return all(alive for proc, alive in self.processes.items() if proc != "agent")


class Lab:
    """A running lab (see the shared lab contract in DESIGN section 7 and docs/lab.md)."""

    def __init__(self, lay: Layout) -> None:
        self.layout = lay

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def up(cls, spec: LabSpec) -> Lab:
        """Build the lab ``spec.name`` (or return it if it is already up with this shape)."""
        spec.validate()
        preflight()
        with locked(spec.name):
            existing = cls._existing(spec)
            if existing is not None:
                return existing
            with locked(_INDEX_LOCK):
                index = allocate_index(spec.name, spec.index, f"{spec.name}-mgmt")
                write_state(spec.name, spec, index, PHASE_BUILDING)
            lay = layout(spec, index, lab_dir(spec.name))
            try:
                lab = cls(lay)
                lab._build()
            except BaseException:
                # All-or-nothing: remove what was made, then report the original error.
                with contextlib.suppress(Exception):
                    _down(spec.name)
                    forget_lock(spec.name)
                raise
            write_state(spec.name, spec, index, PHASE_UP)
            return lab

    @classmethod
    def _existing(cls, spec: LabSpec) -> Lab | None:
        try:
            data = read_state(spec.name)
            if data is None:
                return None
            old, index, phase = spec_from_state(data)
        except LabError:
            _down(spec.name)  # an unreadable state file: rebuild
            return None
        lab = cls(layout(old, index, lab_dir(spec.name)))
        if phase == PHASE_UP and all(m.infra_ok for m in lab.status()):
            if not old.same_shape(spec):
                raise LabError(
                    f"lab {spec.name} is already up with {old.routers} router(s), "
                    f"{old.agents} agent(s), {old.dips} DIP(s), method {old.method}: "
                    f"run `lbauto lab down --name {spec.name}` first to change it"
                )
            if spec.start_agents:
                for agent in lab.agents:
                    lab.start_agent(agent.name)
            return lab
        # Half-built, or stale after a reboot (namespaces gone): rebuild from scratch.
        _down(spec.name)
        return None

    @classmethod
    def load(cls, name: str) -> Lab:
        """The running lab ``name``; LabError if there is none."""
        check_name(name)
        data = read_state(name)
        if data is None:
            raise LabError(f"no lab named {name}: run `lbauto lab up --name {name}`")
        spec, index, phase = spec_from_state(data)
        if phase != PHASE_UP:
            raise LabError(
                f"lab {name} is not completely built (phase {phase}): "
                f"run `lbauto lab down --name {name}` then `lbauto lab up --name {name}`"
            )
        return cls(layout(spec, index, lab_dir(name)))

    def down(self) -> None:
        down(self.name)

    def _build(self) -> None:
        lay = self.layout
        lay.state_dir.mkdir(parents=True, exist_ok=True)
        sshd.keygen(lay.key_file, f"lbauto lab {self.name}")
        topology.create_namespaces(lay)
        topology.create_links(lay)
        topology.configure_members(lay)
        started = [(dip, servers.start(dip, lay.state_dir)) for dip in lay.dips]
        for router in lay.routers:
            frr.write_config(router)
            frr.start(router, bgp=lay.spec.bgp)
            sshd.start(router, self.name)
        for dip, pid in started:
            servers.wait_started(dip, lay.state_dir, pid)
        for vip in inventory.initial_vips(lay):
            self.add_vip(vip.address)
        for agent in lay.agents:
            _write_agent_files(agent, self.name, lay.routers if lay.spec.bgp else ())
        inventory.write(lay)
        if lay.spec.start_agents:
            for agent in lay.agents:
                self.start_agent(agent.name)

    # ------------------------------------------------------------------ members

    @property
    def name(self) -> str:
        return self.layout.spec.name

    @property
    def spec(self) -> LabSpec:
        return self.layout.spec

    @property
    def index(self) -> int:
        return self.layout.index

    @property
    def state_dir(self) -> Path:
        return self.layout.state_dir

    @property
    def inventory_dir(self) -> Path:
        return self.layout.inventory_dir

    @property
    def key_file(self) -> Path:
        return self.layout.key_file

    @property
    def routers(self) -> list[LabRouter]:
        return list(self.layout.routers)

    @property
    def agents(self) -> list[LabAgent]:
        return list(self.layout.agents)

    @property
    def dips(self) -> list[LabDip]:
        return list(self.layout.dips)

    @property
    def client(self) -> LabClient:
        return self.layout.client

    def router(self, name: str) -> LabRouter:
        return _member(self.layout.routers, name, "router", self.name)

    def agent(self, name: str) -> LabAgent:
        return _member(self.layout.agents, name, "agent", self.name)

    def dip(self, name: str) -> LabDip:
        return _member(self.layout.dips, name, "DIP", self.name)

    # ------------------------------------------------------------------ actions

    def run(self, netns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside one of the lab's namespaces (``ip netns exec``)."""
        if netns not in self.layout.namespaces:
            raise LabError(f"{netns} is not a namespace of lab {self.name}")
        return run(netns_argv(netns, argv), check=check)

    def add_vip(self, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        """Put a VIP on every DIP host's loopback (DSR: the DIP accepts traffic for it)."""
        vip = ipaddress.ip_address(address)
        for dip in self.layout.dips:
            run(
                [
                    "ip",
                    "-n",
                    dip.netns,
                    "addr",
                    "replace",
                    f"{vip}/{vip.max_prefixlen}",
                    "dev",
                    "lo",
                ]
            )

    def remove_vip(self, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        vip = ipaddress.ip_address(address)
        for dip in self.layout.dips:
            argv = ["ip", "-n", dip.netns, "addr", "del", f"{vip}/{vip.max_prefixlen}", "dev", "lo"]
            run(argv, check=False)

    def agent_pid(self, name: str) -> int | None:
        agent = self.agent(name)
        return pidfile_pid(agent.pid_file, str(agent.config_file))

    def start_agent(self, name: str) -> int:
        """Run ``lbauto agent serve`` in the agent's namespace; wait until its API listens."""
        agent = self.agent(name)
        pid = self.agent_pid(name)
        if pid is not None:
            return pid
        argv = [
            sys.executable,
            "-m",
            "lbauto",
            "agent",
            "serve",
            "--config",
            str(agent.config_file),
        ]
        pid = spawn(netns_argv(agent.netns, argv), agent.log_file, agent.pid_file)

        def listening() -> bool:
            if not alive(pid):
                agent.pid_file.unlink(missing_ok=True)
                raise LabError(
                    f"agent {name} of lab {self.name} exited at start "
                    f"(log {agent.log_file}): {tail(agent.log_file)}"
                )
            return tcp_open(str(agent.mgmt_ip), AGENT_PORT)

        try:
            wait_for(listening, AGENT_START_TIMEOUT, f"agent {name} API on {agent.api_url}")
        except LabError:
            kill([pid])
            raise
        return pid

    def stop_agent(self, name: str, kill: bool = False) -> None:
        """Stop the agent (SIGTERM; ``kill=True``: SIGKILL, as in a crash)."""
        agent = self.agent(name)
        pid = self.agent_pid(name)
        if pid is not None:
            _kill([pid], hard=kill)
        agent.pid_file.unlink(missing_ok=True)

    def status(self) -> list[MemberStatus]:
        """Per member: namespace, address and whether its processes are alive."""
        lay = self.layout
        present = set(netns_list())
        rows = []
        for r in lay.routers:
            procs = {"netns": r.netns in present}
            for daemon in frr.BGP_DAEMONS if lay.spec.bgp else frr.DAEMONS:
                pf = frr.run_dir(r.pathspace) / f"{daemon}.pid"
                procs[daemon] = pidfile_pid(pf, r.pathspace) is not None
            procs["sshd"] = pidfile_pid(sshd.pid_file(r), str(sshd.config_file(r))) is not None
            rows.append(MemberStatus(r.name, "router", r.netns, str(r.mgmt_ip), procs))
        for a in lay.agents:
            procs = {"netns": a.netns in present}
            if lay.spec.start_agents or a.pid_file.exists():
                procs["agent"] = self.agent_pid(a.name) is not None
            rows.append(MemberStatus(a.name, "agent", a.netns, a.api_url, procs))
        for d in lay.dips:
            procs = {"netns": d.netns in present}
            procs["servers"] = servers.running(d, lay.state_dir)
            rows.append(MemberStatus(d.name, "dip", d.netns, str(d.address), procs))
        c = lay.client
        rows.append(
            MemberStatus("client", "client", c.netns, str(c.address), {"netns": c.netns in present})
        )
        return rows


_kill = kill  # ``Lab.stop_agent`` has a parameter named ``kill``


_M = TypeVar("_M", LabRouter, LabAgent, LabDip)


def _member(members: tuple[_M, ...], name: str, what: str, lab: str) -> _M:
    for member in members:
        if member.name == name:
            return member
    names = ", ".join(m.name for m in members)
    raise LabError(f"lab {lab} has no {what} {name!r} (it has {names})")


def _write_agent_files(agent: LabAgent, lab: str, bgp_routers: tuple[LabRouter, ...] = ()) -> None:
    agent.config_file.parent.mkdir(parents=True, exist_ok=True)
    if not agent.token_file.exists():
        fd = os.open(agent.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    agent.config_file.write_text(
        f"# Agent {agent.name} of lab {lab}, written by `lbauto lab up`.\n"
        f"listen: {agent.mgmt_ip}          # API on the management bridge\n"
        f"port: {AGENT_PORT}\n"
        f"interface: {agent.iface}              # server-facing interface (nftables ingress)\n"
        f"token_file: {agent.token_file}\n"
        f"state_file: {agent.state_file}\n"
        + (_bgp_section(agent, bgp_routers) if bgp_routers else "")
    )


def _bgp_section(agent: LabAgent, routers: tuple[LabRouter, ...]) -> str:
    """The agent's BGP speaker: one session (with BFD) to every router of the lab."""
    neighbors = "".join(
        f"    - {{address: {ip}, remote_asn: {frr.ROUTER_AS}}}\n"
        for r in routers
        for ip in (r.server_ip, r.server_ip6)
    )
    return (
        "# Announce held VIPs to every router over BGP, with BFD (docs/scale-out.md).\n"
        "bgp:\n"
        f"  asn: {frr.AGENT_AS}\n"
        f"  router_id: {agent.address}\n"
        f"  address6: {agent.address6}\n"
        f"  bfd_interval_ms: {frr.BFD_INTERVAL_MS}\n"
        f"  bfd_multiplier: {frr.BFD_MULTIPLIER}\n"
        f"  run_dir: {agent.config_file.parent / 'frr'}\n"
        "  neighbors:\n" + neighbors
    )


# ---------------------------------------------------------------------------- removal

_PATHSPACE_RE = r"{name}-r\d+"


def down(name: str) -> None:
    """Remove the lab ``name`` completely, even after a half-failed ``up``; no-op if absent."""
    check_name(name)
    require_root()
    with locked(name):
        _down(name)
        forget_lock(name)


def _down(name: str) -> None:
    lay = _layout_or_none(name)
    prefix = f"{name}-"
    if lay is not None:
        _stop_by_pidfile(lay)
    for pathspace in _pathspaces(name):
        # FRR daemons whose namespace is already gone are only found through their pid files.
        frr.stop(pathspace)
    namespaces = {ns for ns in netns_list() if ns.startswith(prefix)}
    if lay is not None:
        namespaces |= set(lay.namespaces) & set(netns_list())
    pids = sorted({pid for ns in namespaces for pid in netns_pids(ns)})
    kill(pids)
    for ns in sorted(namespaces):
        run(["ip", "netns", "del", ns], check=False)
    for link in topology.root_links(prefix):
        run(["ip", "link", "del", link], check=False)
    for pathspace in _pathspaces(name):
        frr.remove(pathspace)
    shutil.rmtree(lab_dir(name), ignore_errors=True)
    leftovers = _leftovers(name)
    if leftovers:
        raise LabError(f"lab {name}: could not remove {', '.join(leftovers)}")


def _pathspaces(name: str) -> list[str]:
    """FRR pathspaces of lab ``name`` that have a config or run directory."""
    pattern = re.compile(_PATHSPACE_RE.format(name=re.escape(name)) + "$")
    found: set[str] = set()
    for root in (frr.CONF_ROOT, frr.RUN_ROOT):
        if root.is_dir():
            found |= {p.name for p in root.glob(f"{name}-r*") if pattern.match(p.name)}
    return sorted(found)


def _layout_or_none(name: str) -> Layout | None:
    try:
        data = read_state(name)
        if data is None:
            return None
        spec, index, _ = spec_from_state(data)
    except LabError:
        return None
    return layout(spec, index, lab_dir(name))


def _stop_by_pidfile(lay: Layout) -> None:
    for r in lay.routers:
        sshd.stop(r)
        frr.stop(r.pathspace)
    for d in lay.dips:
        servers.stop(d, lay.state_dir)
    for a in lay.agents:
        pid = pidfile_pid(a.pid_file, str(a.config_file))
        if pid is not None:
            kill([pid])


def _leftovers(name: str) -> list[str]:
    prefix = f"{name}-"
    left = [f"namespace {ns}" for ns in netns_list() if ns.startswith(prefix)]
    left += [f"link {link}" for link in topology.root_links(prefix)]
    left += [str(frr.conf_dir(ps)) for ps in _pathspaces(name) if frr.conf_dir(ps).exists()]
    left += [str(frr.run_dir(ps)) for ps in _pathspaces(name) if frr.run_dir(ps).exists()]
    if lab_dir(name).exists():
        left.append(str(lab_dir(name)))
    return left


def lab_names() -> list[str]:
    """Names of the labs that have a state directory."""
    root = lab_dir("x").parent
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "state.json").exists())
