"""Namespaces, bridges, veths, addresses, routes and sysctls of a lab.

Two bridges (server and client segment) live in the lab's own ``<name>-sw`` namespace, so the
host sees none of the lab's data-plane traffic. Only the management bridge ``<name>-mgmt`` is in
the root namespace (lbauto reaches sshd and the agent APIs through it); a forward-chain guard in
each router and agent namespace keeps lab traffic from being routed onto it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence

from lbauto.errors import LabError
from lbauto.lab.host import run
from lbauto.lab.spec import (
    BR_CLIENT,
    BR_SERVER,
    CLIENT_NET4,
    CLIENT_NET6,
    IF_CLIENT,
    IF_MGMT,
    IF_SERVER,
    SERVER_NET4,
    SERVER_NET6,
    Layout,
)

_COMMON_SYSCTLS = (
    # IPv6 addresses must be usable at once (no duplicate address detection delay).
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.default.accept_ra=0",
    "net.ipv6.conf.all.keep_addr_on_down=1",
)
_FORWARDING_SYSCTLS = (
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv4.conf.all.send_redirects=0",
    "net.ipv4.conf.default.send_redirects=0",
    # DSR: replies bypass the agent and come back on another path.
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
)
_AGENT_SYSCTLS = (
    "net.ipv4.conf.all.accept_redirects=0",
    "net.ipv4.conf.default.accept_redirects=0",
    "net.ipv6.conf.all.accept_redirects=0",
    "net.ipv6.conf.default.accept_redirects=0",
)
_DIP_SYSCTLS = (
    # VIPs sit on the loopback: never answer ARP for them, never source ARP from them.
    "net.ipv4.conf.all.arp_ignore=1",
    "net.ipv4.conf.default.arp_ignore=1",
    "net.ipv4.conf.all.arp_announce=2",
    "net.ipv4.conf.default.arp_announce=2",
)
# ECMP (BGP labs: several agents per VIP, several routers for the client) hashes on the L4
# 5-tuple, so the connections of one client spread over the next hops.
_MULTIPATH_SYSCTLS = (
    "net.ipv4.fib_multipath_hash_policy=1",
    "net.ipv6.fib_multipath_hash_policy=1",
)
_SWITCH_SYSCTLS = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")

# Nothing from the lab's segments may be routed onto the management link (or back).
_MGMT_GUARD = f"""table inet lbauto_lab_guard {{
  chain forward {{
    type filter hook forward priority 0; policy accept;
    iifname "{IF_MGMT}" drop
    oifname "{IF_MGMT}" drop
  }}
}}
"""


def batch(netns: str | None, lines: Sequence[str]) -> None:
    """Run ``ip`` commands in one process (``ip -batch``), in ``netns`` or the root namespace."""
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    proc = run(argv, input="\n".join(lines) + "\n", check=False)
    if proc.returncode == 0:
        return
    # ip reports the failing batch line as "Command failed -:N"; name that command.
    errors = proc.stderr.strip().splitlines()
    match = re.search(r"Command failed -:(\d+)", proc.stderr)
    failed = lines[int(match.group(1)) - 1] if match else "?"
    where = f"namespace {netns}" if netns else "the root namespace"
    cause = next((e for e in errors if "Command failed" not in e), "")
    raise LabError(f"lab setup failed in {where}: `ip {failed}`: {cause}".rstrip(": "))


def sysctl(netns: str, settings: Sequence[str]) -> None:
    run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", *settings])


def create_namespaces(lay: Layout) -> None:
    for ns in lay.namespaces:
        run(["ip", "netns", "add", ns])
    # Sysctls first: links created afterwards inherit the namespace's ``default`` values.
    sysctl(lay.switch_netns, _SWITCH_SYSCTLS)
    sysctl(lay.client.netns, _COMMON_SYSCTLS + _MULTIPATH_SYSCTLS)
    for r in lay.routers:
        sysctl(r.netns, _COMMON_SYSCTLS + _FORWARDING_SYSCTLS + _MULTIPATH_SYSCTLS)
    for a in lay.agents:
        sysctl(a.netns, _COMMON_SYSCTLS + _FORWARDING_SYSCTLS + _AGENT_SYSCTLS)
    for d in lay.dips:
        sysctl(d.netns, _COMMON_SYSCTLS + _DIP_SYSCTLS)


def _port(bridge: str, port: str, peer: str, peer_ns: str) -> list[str]:
    return [
        f"link add {port} type veth peer name {peer} netns {peer_ns}",
        f"link set {port} master {bridge}",
        f"link set {port} up",
    ]


def create_links(lay: Layout) -> None:
    sw = [
        "link set lo up",
        f"link add {BR_SERVER} type bridge",
        f"link add {BR_CLIENT} type bridge",
        f"link set {BR_SERVER} up",
        f"link set {BR_CLIENT} up",
    ]
    for r in lay.routers:
        sw += _port(BR_SERVER, f"{r.name}s", IF_SERVER, r.netns)
        sw += _port(BR_CLIENT, f"{r.name}c", IF_CLIENT, r.netns)
    for a in lay.agents:
        sw += _port(BR_SERVER, a.name, IF_SERVER, a.netns)
    for d in lay.dips:
        sw += _port(BR_SERVER, d.name, IF_SERVER, d.netns)
    sw += _port(BR_CLIENT, "c", IF_CLIENT, lay.client.netns)
    batch(lay.switch_netns, sw)

    root = [
        f"link add {lay.mgmt_bridge} type bridge",
        f"addr add {lay.mgmt_gateway}/24 dev {lay.mgmt_bridge}",
        f"link set {lay.mgmt_bridge} up",
    ]
    members = [(r.name, r.netns) for r in lay.routers] + [(a.name, a.netns) for a in lay.agents]
    for member, netns in members:
        root += _port(lay.mgmt_bridge, f"{lay.spec.name}-m{member}", IF_MGMT, netns)
    batch(None, root)


def _iface(
    ifname: str,
    addr4: ipaddress.IPv4Address,
    len4: int,
    addr6: ipaddress.IPv6Address,
    len6: int,
) -> list[str]:
    return [
        f"link set {ifname} up",
        f"addr add {addr4}/{len4} dev {ifname}",
        f"addr add {addr6}/{len6} dev {ifname} nodad",
    ]


def configure_members(lay: Layout) -> None:
    s4, s6 = SERVER_NET4.prefixlen, SERVER_NET6.prefixlen
    c4, c6 = CLIENT_NET4.prefixlen, CLIENT_NET6.prefixlen
    first = lay.routers[0]
    for r in lay.routers:
        lines = ["link set lo up"]
        lines += _iface(IF_SERVER, r.server_ip, s4, r.server_ip6, s6)
        lines += _iface(IF_CLIENT, r.client_ip, c4, r.client_ip6, c6)
        lines += [f"link set {IF_MGMT} up", f"addr add {r.mgmt_ip}/24 dev {IF_MGMT}"]
        batch(r.netns, lines)
    for a in lay.agents:
        lines = ["link set lo up"]
        lines += _iface(IF_SERVER, a.address, s4, a.address6, s6)
        lines += [f"link set {IF_MGMT} up", f"addr add {a.mgmt_ip}/24 dev {IF_MGMT}"]
        lines += [f"route add default via {first.server_ip}"]
        lines += [f"route add default via {first.server_ip6}"]
        batch(a.netns, lines)
    for d in lay.dips:
        lines = ["link set lo up"]
        lines += _iface(IF_SERVER, d.address, s4, d.address6, s6)
        lines += [f"route add default via {first.server_ip}"]
        lines += [f"route add default via {first.server_ip6}"]
        batch(d.netns, lines)
    c = lay.client
    lines = ["link set lo up"]
    lines += _iface(IF_CLIENT, c.address, c4, c.address6, c6)
    if lay.spec.bgp and len(lay.routers) > 1:
        # A pool: the client's connections spread over every router, as an upstream would.
        lines += [
            "route add default " + " ".join(f"nexthop via {r.client_ip}" for r in lay.routers),
            "route add default " + " ".join(f"nexthop via {r.client_ip6}" for r in lay.routers),
        ]
    else:
        lines += [
            f"route add default via {first.client_ip}",
            f"route add default via {first.client_ip6}",
        ]
    batch(c.netns, lines)
    for ns in [r.netns for r in lay.routers] + [a.netns for a in lay.agents]:
        run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=_MGMT_GUARD)


def root_links(prefix: str) -> list[str]:
    """Root-namespace links whose name starts with ``prefix``."""
    links = json.loads(run(["ip", "-j", "link", "show"]).stdout or "[]")
    return [str(link["ifname"]) for link in links if str(link["ifname"]).startswith(prefix)]
