"""What a lab looks like: its spec, its members and the address plan (pure, no I/O).

Every name and address of a lab follows from ``(spec, index, state_dir)``, so a running lab is
fully described by its small state file and ``down`` can find everything by name even after a
half-failed ``up``.

Address plan (DESIGN section 7):

- server segment 198.51.100.0/24 + 2001:db8:100::/64: routers .1.., agents .10.., DIPs .21..
- client segment 203.0.113.0/24 + 2001:db8:203::/64: routers .1.., client .100
- management (root namespace bridge ``<name>-mgmt``): 198.18.<index>.1/24 on the host,
  routers' sshd on .11.., agents' API on .21.. port 8080

IPv6 host parts reuse the IPv4 host number's digits (``.21`` -> ``::21``), so they read alike.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from lbauto.errors import LabError

MAX_INDEX = 63
MAX_ROUTERS = 9
MAX_AGENTS = 10
MAX_DIPS = 50
AGENT_PORT = 8080
SSH_PORT = 22
ECHO_PORT = 7
HTTP_PORT = 80

# Interface names are limited to 15 characters and the lab name prefixes root-namespace links
# (``<name>-mgmt``, ``<name>-mr1``): 8 characters keep every derived name legal. No dashes, so
# ``<name>-`` prefixes of two labs can never overlap.
_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")

SERVER_NET4 = ipaddress.IPv4Network("198.51.100.0/24")
SERVER_NET6 = ipaddress.IPv6Network("2001:db8:100::/64")
CLIENT_NET4 = ipaddress.IPv4Network("203.0.113.0/24")
CLIENT_NET6 = ipaddress.IPv6Network("2001:db8:203::/64")
CLIENT_HOST = 100

# Interface names inside the lab's namespaces (local to each namespace, so they never clash).
IF_SERVER = "srv"
IF_CLIENT = "cli"
IF_MGMT = "mgmt"
BR_SERVER = "br-srv"
BR_CLIENT = "br-cli"


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise LabError(
            f"lab name {name!r} is not usable: use 1 to 8 characters, a lowercase letter "
            "followed by lowercase letters or digits (it prefixes namespace and interface names)"
        )
    return name


def v4(net: ipaddress.IPv4Network, host: int) -> ipaddress.IPv4Address:
    return net.network_address + host


def v6(net: ipaddress.IPv6Network, host: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(f"{net.network_address}{host}")


def mgmt_net(index: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"198.18.{index}.0/24")


@dataclass(frozen=True)
class LabSpec:
    """What to build. ``up`` with an equal spec on a running lab is a no-op."""

    name: str = "lab"
    routers: int = 1
    agents: int = 1
    dips: int = 3
    method: str = "static"
    #: Start ``lbauto agent serve`` in every agent namespace during ``up``.
    start_agents: bool = False
    #: Management subnet index (198.18.<index>.0/24); None picks the lowest free one.
    index: int | None = None
    #: Agents announce their VIPs over BGP (+ BFD) to every router; routers ECMP across them
    #: (docs/scale-out.md). Off: no agent speaker, static LB routes as before.
    bgp: bool = False

    def validate(self) -> None:
        check_name(self.name)
        for what, value, top in (
            ("routers", self.routers, MAX_ROUTERS),
            ("agents", self.agents, MAX_AGENTS),
            ("dips", self.dips, MAX_DIPS),
        ):
            if not 1 <= value <= top:
                raise LabError(f"lab {self.name}: {what} must be between 1 and {top}, not {value}")
        if self.method not in ("static", "pbr"):
            raise LabError(f"lab {self.name}: method must be static or pbr, not {self.method!r}")
        if self.index is not None and not 0 <= self.index <= MAX_INDEX:
            raise LabError(f"lab {self.name}: index must be between 0 and {MAX_INDEX}")

    def same_shape(self, other: LabSpec) -> bool:
        """True when ``other`` asks for the lab this spec built (agents' start flag aside)."""
        return (self.name, self.routers, self.agents, self.dips, self.method, self.bgp) == (
            other.name,
            other.routers,
            other.agents,
            other.dips,
            other.method,
            other.bgp,
        )


@dataclass(frozen=True)
class LabRouter:
    name: str
    netns: str
    pathspace: str
    mgmt_ip: ipaddress.IPv4Address
    ssh_port: int
    ssh_user: str
    key_file: Path
    server_ip: ipaddress.IPv4Address
    server_ip6: ipaddress.IPv6Address
    client_ip: ipaddress.IPv4Address
    client_ip6: ipaddress.IPv6Address
    #: Client-facing interface (PBR ingress).
    ingress: str
    #: Server-facing interface.
    iface: str
    #: Private directory in the lab state dir (sshd config, host key, logs).
    dir: Path


@dataclass(frozen=True)
class LabAgent:
    name: str
    netns: str
    iface: str
    address: ipaddress.IPv4Address
    address6: ipaddress.IPv6Address
    mgmt_ip: ipaddress.IPv4Address
    api_url: str
    token_file: Path
    config_file: Path
    state_file: Path
    pid_file: Path
    log_file: Path


@dataclass(frozen=True)
class LabDip:
    name: str
    netns: str
    address: ipaddress.IPv4Address
    address6: ipaddress.IPv6Address


@dataclass(frozen=True)
class LabClient:
    netns: str
    address: ipaddress.IPv4Address
    address6: ipaddress.IPv6Address


@dataclass(frozen=True)
class Layout:
    """Every member of one lab, derived from spec, index and state directory."""

    spec: LabSpec
    index: int
    state_dir: Path
    routers: tuple[LabRouter, ...]
    agents: tuple[LabAgent, ...]
    dips: tuple[LabDip, ...]
    client: LabClient
    switch_netns: str
    mgmt_bridge: str
    mgmt_gateway: ipaddress.IPv4Address

    @property
    def namespaces(self) -> list[str]:
        """Every namespace of the lab, the switch last (its bridges carry the others' links)."""
        names = [r.netns for r in self.routers] + [a.netns for a in self.agents]
        names += [d.netns for d in self.dips] + [self.client.netns, self.switch_netns]
        return names

    @property
    def key_file(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def inventory_dir(self) -> Path:
        return self.state_dir / "inventory"


def layout(spec: LabSpec, index: int, state_dir: Path) -> Layout:
    name = spec.name
    net = mgmt_net(index)
    key = state_dir / "id_ed25519"
    routers = tuple(
        LabRouter(
            name=f"r{k + 1}",
            netns=f"{name}-r{k + 1}",
            pathspace=f"{name}-r{k + 1}",
            mgmt_ip=v4(net, 11 + k),
            ssh_port=SSH_PORT,
            ssh_user="root",
            key_file=key,
            server_ip=v4(SERVER_NET4, 1 + k),
            server_ip6=v6(SERVER_NET6, 1 + k),
            client_ip=v4(CLIENT_NET4, 1 + k),
            client_ip6=v6(CLIENT_NET6, 1 + k),
            ingress=IF_CLIENT,
            iface=IF_SERVER,
            dir=state_dir / f"r{k + 1}",
        )
        for k in range(spec.routers)
    )
    agents = []
    for k in range(spec.agents):
        adir = state_dir / f"a{k + 1}"
        mgmt_ip = v4(net, 21 + k)
        agents.append(
            LabAgent(
                name=f"a{k + 1}",
                netns=f"{name}-a{k + 1}",
                iface=IF_SERVER,
                address=v4(SERVER_NET4, 10 + k),
                address6=v6(SERVER_NET6, 10 + k),
                mgmt_ip=mgmt_ip,
                api_url=f"http://{mgmt_ip}:{AGENT_PORT}",
                token_file=adir / "token",
                config_file=adir / "agent.yaml",
                state_file=adir / "state.json",
                pid_file=adir / "agent.pid",
                log_file=adir / "agent.log",
            )
        )
    dips = tuple(
        LabDip(
            name=f"d{k + 1}",
            netns=f"{name}-d{k + 1}",
            address=v4(SERVER_NET4, 21 + k),
            address6=v6(SERVER_NET6, 21 + k),
        )
        for k in range(spec.dips)
    )
    client = LabClient(
        netns=f"{name}-c",
        address=v4(CLIENT_NET4, CLIENT_HOST),
        address6=v6(CLIENT_NET6, CLIENT_HOST),
    )
    return Layout(
        spec=spec,
        index=index,
        state_dir=state_dir,
        routers=routers,
        agents=tuple(agents),
        dips=dips,
        client=client,
        switch_netns=f"{name}-sw",
        mgmt_bridge=f"{name}-mgmt",
        mgmt_gateway=v4(net, 1),
    )
