"""The inventory a lab writes for itself (formats of DESIGN section 3 / issue 2).

Hand-formatted YAML with comments, so a newcomer can read it as an example of a real inventory.
``lbauto --inventory <lab dir>/inventory ...`` drives the lab right away.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from lbauto.lab.frr import AGENT_AS, BFD_INTERVAL_MS, BFD_MULTIPLIER, MAXIMUM_PATHS, ROUTER_AS
from lbauto.lab.spec import Layout

VIP_WEB = ipaddress.IPv4Address("192.0.2.10")
VIP_API = ipaddress.IPv4Address("192.0.2.11")
VIP_V6WEB = ipaddress.IPv6Address("2001:db8:10::10")


@dataclass(frozen=True)
class InitialVip:
    name: str
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    dips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]


def initial_vips(lay: Layout) -> list[InitialVip]:
    """web: every DIP (up to 3); api: one DIP (a bypass candidate); v6web: two DIPs over IPv6."""
    return [
        InitialVip("web", VIP_WEB, tuple(d.address for d in lay.dips[:3])),
        InitialVip("api", VIP_API, (lay.dips[0].address,)),
        InitialVip("v6web", VIP_V6WEB, tuple(d.address6 for d in lay.dips[:2])),
    ]


def _header(lay: Layout, what: str) -> str:
    return (
        f"# {what} of lab {lay.spec.name!r}, written by `lbauto lab up`.\n"
        f"# Regenerated on every `lbauto lab up`; `lbauto lab down --name {lay.spec.name}` "
        "removes it.\n"
    )


def hosts_yaml(lay: Layout) -> str:
    out = [_header(lay, "Routers (Nornir SimpleInventory hosts)")]
    out.append("# lbauto's settings are flat `lbauto_*` data keys, resolved as Nornir resolves\n")
    out.append("# any data key: `nr.inventory.hosts[name]['lbauto_method']` is what lbauto uses.\n")
    out.append("# Each router is an FRR instance in its own network namespace, reached over SSH\n")
    out.append("# on the lab management bridge; `pathspace` selects its `vtysh -N` instance.\n")
    for r in lay.routers:
        out.append(
            f"{r.name}:\n"
            f"  hostname: {r.mgmt_ip}\n"
            f"  port: {r.ssh_port}\n"
            f"  username: {r.ssh_user}\n"
            f"  platform: frr\n"
            f"  groups: [lab]\n"
            f"  data:\n"
            f"    lbauto_method: {lay.spec.method}\n"
            f"    lbauto_ingress: [{r.ingress}]     # client-facing interface (used by pbr)\n"
            f"  connection_options:\n"
            f"    napalm:\n"
            f"      extras:\n"
            f"        optional_args:\n"
            f"          key_file: {r.key_file}\n"
            f"          pathspace: {r.pathspace}\n"
            f"          transport: ssh\n"
        )
    return "".join(out)


def groups_yaml(lay: Layout) -> str:
    text = _header(lay, "Router groups") + (
        "lab:\n"
        "  platform: frr\n"
        "  data:\n"
        "    lbauto_tag: 4242        # marks the static routes lbauto owns\n"
    )
    if lay.spec.bgp:
        # The agents announce their VIPs (docs/scale-out.md); lbauto renders the router side.
        text += (
            "    lbauto_lb_route: bgp    # LB routes are learned from the agents, not static\n"
            f"    lbauto_bgp: {{asn: {ROUTER_AS}, agent_asn: {AGENT_AS}, bfd: true, "
            f"maximum_paths: {MAXIMUM_PATHS}, bfd_interval_ms: {BFD_INTERVAL_MS}, "
            f"bfd_multiplier: {BFD_MULTIPLIER}}}\n"
        )
    return text


def defaults_yaml(lay: Layout) -> str:
    return _header(lay, "Defaults for every router") + (
        f"username: root\nport: 22\n"
        f"# No password: routers accept only the lab key {lay.key_file}.\n"
    )


def agents_yaml(lay: Layout) -> str:
    out = [_header(lay, "Agents (the bundled LB)")]
    out.append("# api: HTTP control API on the management bridge; address/address6: next hops\n")
    out.append("# of the LB route on the server segment; token_file: the API token (mode 0600).\n")
    out.append("agents:\n")
    for a in lay.agents:
        out.append(
            f"  - name: {a.name}\n"
            f"    api: {a.api_url}\n"
            f"    address: {a.address}\n"
            f"    address6: {a.address6}\n"
            f"    token_file: {a.token_file}\n"
        )
    return "".join(out)


def vips_yaml(lay: Layout) -> str:
    out = [_header(lay, "VIPs (desired state)")]
    out.append("# DIP hosts: " + ", ".join(f"{d.name} {d.address}" for d in lay.dips) + "\n")
    out.append("# Every DIP host has these VIPs on its loopback (DSR) and runs an echo server\n")
    out.append("# (port 7) and an HTTP server (port 80) that answer with the DIP name.\n")
    out.append("vips:\n")
    for vip in initial_vips(lay):
        dips = ", ".join(str(d) for d in vip.dips)
        out.append(f"  - name: {vip.name}\n    address: {vip.address}\n    dips: [{dips}]\n")
    return "".join(out)


def write(lay: Layout) -> Path:
    directory = lay.inventory_dir
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "hosts.yaml": hosts_yaml(lay),
        "groups.yaml": groups_yaml(lay),
        "defaults.yaml": defaults_yaml(lay),
        "agents.yaml": agents_yaml(lay),
        "vips.yaml": vips_yaml(lay),
    }
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory
