"""Pure parsers from FRR / iproute2 / procfs output to NAPALM getter shapes
(``napalm.base.models``). No I/O: the driver collects the text, these functions shape it."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

DEFAULT_VRF = "default"


def loads(text: str, default: Any) -> Any:
    """JSON from a command, or ``default`` when the command printed nothing usable."""
    try:
        return json.loads(text) if text.strip() else default
    except ValueError:
        return default


def loads_all(text: str) -> list[Any]:
    """Every JSON document in ``text``: FRR 8.4 prints ``vrf all`` route tables as one
    document per VRF, back to back."""
    decoder = json.JSONDecoder()
    out: list[Any] = []
    i, end = 0, len(text)
    while i < end:
        while i < end and text[i].isspace():
            i += 1
        if i >= end:
            break
        try:
            value, i = decoder.raw_decode(text, i)
        except ValueError:
            break
        out.append(value)
    return out


# ------------------------------------------------------------------------------ interfaces


def interfaces(frr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``show interface vrf all json`` -> get_interfaces."""
    out: dict[str, dict[str, Any]] = {}
    for name, data in sorted(frr.items()):
        speed = data.get("speed", 0)
        out[name] = {
            "is_up": data.get("operationalStatus") == "up",
            "is_enabled": data.get("administrativeStatus") == "up",
            "description": str(data.get("description", "")),
            # FRR 8.4 keeps no time of the last flap for interfaces (only counts)
            "last_flapped": -1.0,
            "mtu": int(data.get("mtu", 0)),
            # Mbit/s; FRR reports 0 (or 2^32-1) when the kernel does not know
            "speed": float(speed) if isinstance(speed, int) and 0 <= speed < 2**31 else 0.0,
            "mac_address": str(data.get("hardwareAddress", "")),
        }
    return out


def interfaces_ip(frr: dict[str, Any]) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
    """``show interface vrf all json`` -> get_interfaces_ip."""
    out: dict[str, dict[str, dict[str, dict[str, int]]]] = {}
    for name, data in sorted(frr.items()):
        for entry in data.get("ipAddresses", []) or []:
            iface = ipaddress.ip_interface(str(entry["address"]))
            family = "ipv4" if iface.version == 4 else "ipv6"
            out.setdefault(name, {}).setdefault(family, {})[str(iface.ip)] = {
                "prefix_length": iface.network.prefixlen
            }
    return out


def interfaces_counters(links: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """``ip -j -s link show`` -> get_interfaces_counters.

    Linux counts received multicast but neither sent multicast nor broadcast: those are -1,
    and the unicast counters are all packets minus the multicast that is known."""
    out: dict[str, dict[str, int]] = {}
    for link in links:
        stats = link.get("stats64") or link.get("stats") or {}
        rx, tx = stats.get("rx", {}), stats.get("tx", {})
        rx_mc = int(rx.get("multicast", 0))
        out[str(link["ifname"])] = {
            "tx_errors": int(tx.get("errors", 0)),
            "rx_errors": int(rx.get("errors", 0)),
            "tx_discards": int(tx.get("dropped", 0)),
            "rx_discards": int(rx.get("dropped", 0)),
            "tx_octets": int(tx.get("bytes", 0)),
            "rx_octets": int(rx.get("bytes", 0)),
            "tx_unicast_packets": int(tx.get("packets", 0)),
            "rx_unicast_packets": int(rx.get("packets", 0)) - rx_mc,
            "tx_multicast_packets": -1,
            "rx_multicast_packets": rx_mc,
            "tx_broadcast_packets": -1,
            "rx_broadcast_packets": -1,
        }
    return out


def neighbors(entries: list[dict[str, Any]], family: int) -> list[dict[str, Any]]:
    """``ip -j -s -<family> neigh show`` -> get_arp_table / get_ipv6_neighbors_table
    (entries without a link-layer address, i.e. FAILED or INCOMPLETE, are left out)."""
    out: list[dict[str, Any]] = []
    for entry in entries:
        if "lladdr" not in entry:
            continue
        row: dict[str, Any] = {
            "interface": str(entry.get("dev", "")),
            "mac": str(entry["lladdr"]).upper(),
            "ip": str(entry.get("dst", "")),
            "age": float(entry.get("updated", entry.get("used", -1))),
        }
        if family == 6:
            states = entry.get("state", []) or ["NONE"]
            row["state"] = str(states[0]).lower()
        out.append(row)
    return out


# ------------------------------------------------------------------------------ facts


def hostname(startup: str, running: str) -> str:
    """FRR's hostname: the ``hostname`` line of the integrated frr.conf, else of the running
    config. FRR 8.4's vtysh does not pass ``hostname`` on to the daemons (they keep the host's
    name, which is also what ``show version`` prints), so the configured name is only in the
    file."""
    for text in (startup, running):
        m = re.search(r"^hostname\s+(\S+)\s*$", text, re.MULTILINE)
        if m:
            return m.group(1)
    return ""


def uptime(text: str) -> float:
    value = text.strip()
    return float(value) if value.isdigit() else -1.0


# ------------------------------------------------------------------------------ environment


def environment(meminfo: str, cpu: str, thermal: str) -> dict[str, Any]:
    """procfs/sysfs of the router's host -> get_environment.

    ``cpu``: two samples of the ``cpuN`` lines of /proc/stat separated by a ``--`` line;
    ``thermal``: ``<zone type> <millidegrees>`` lines. Fans and power supplies are not visible
    to a Linux host in general, so they are empty."""
    mem = {
        m.group(1): int(m.group(2)) * 1024
        for m in re.finditer(r"^(\w+):\s+(\d+) kB", meminfo, re.MULTILINE)
    }
    total = mem.get("MemTotal", 0)
    available = mem.get("MemAvailable", mem.get("MemFree", 0))
    first, _, second = cpu.partition("--")
    before, after = _cpu_times(first), _cpu_times(second)
    cpus: dict[int, dict[str, float]] = {}
    for n in sorted(set(before) & set(after)):
        (busy0, all0), (busy1, all1) = before[n], after[n]
        span = all1 - all0
        cpus[n] = {"%usage": round(100.0 * (busy1 - busy0) / span, 1) if span > 0 else 0.0}
    temperature: dict[str, dict[str, Any]] = {}
    for line in thermal.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            celsius = int(parts[1]) / 1000.0
            temperature[parts[0]] = {
                "temperature": celsius,
                "is_alert": celsius >= 85.0,
                "is_critical": celsius >= 100.0,
            }
    return {
        "fans": {},
        "power": {},
        "temperature": temperature,
        "cpu": cpus,
        "memory": {"available_ram": total, "used_ram": total - available},
    }


def _cpu_times(text: str) -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    for m in re.finditer(r"^cpu(\d+)\s+([\d ]+)$", text, re.MULTILINE):
        values = [int(v) for v in m.group(2).split()]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        out[int(m.group(1))] = (sum(values) - idle, sum(values))
    return out


# ------------------------------------------------------------------------------ BGP


def bgp_neighbors(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``show bgp vrf all neighbors json`` -> get_bgp_neighbors (default VRF as ``global``)."""
    out: dict[str, dict[str, Any]] = {}
    for vrf, body in data.items():
        if not isinstance(body, dict):
            continue
        peers: dict[str, dict[str, Any]] = {}
        router_id = ""
        for address, peer in body.items():
            if not isinstance(peer, dict):
                continue
            router_id = router_id or str(peer.get("localRouterId", ""))
            families = {}
            for af, info in (peer.get("addressFamilyInfo") or {}).items():
                accepted = int(info.get("acceptedPrefixCounter", 0))
                families[_AF_NAMES.get(af, af)] = {
                    "received_prefixes": accepted,
                    "accepted_prefixes": accepted,
                    "sent_prefixes": int(info.get("sentPrefixCounter", 0)),
                }
            up = peer.get("bgpState") == "Established"
            peers[address] = {
                "local_as": int(peer.get("localAs", 0)),
                "remote_as": int(peer.get("remoteAs", 0)),
                "remote_id": str(peer.get("remoteRouterId", "")),
                "is_up": up,
                "is_enabled": "adminShutDown" not in peer
                and peer.get("bgpState") != "Idle (Admin)",
                "description": str(peer.get("nbrDesc", "")),
                "uptime": int(peer.get("bgpTimerUpMsec", 0)) // 1000 if up else -1,
                "address_family": families,
            }
        name = "global" if vrf == DEFAULT_VRF else str(vrf)
        out[name] = {"router_id": router_id, "peers": peers}
    return out


def bgp_neighbors_detail(data: dict[str, Any], neighbor: str = "") -> dict[str, Any]:
    """``show bgp vrf all neighbors json`` -> get_bgp_neighbors_detail
    (``{vrf: {remote_as: [details]}}``, default VRF as ``global``)."""
    out: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for vrf, body in data.items():
        if not isinstance(body, dict):
            continue
        name = "global" if vrf == DEFAULT_VRF else str(vrf)
        for address, peer in body.items():
            if not isinstance(peer, dict) or (neighbor and address != neighbor):
                continue
            detail = _peer_detail(address, peer, str(body.get("vrfName", vrf)))
            out.setdefault(name, {}).setdefault(detail["remote_as"], []).append(detail)
    return out


def _peer_detail(address: str, peer: dict[str, Any], vrf: str) -> dict[str, Any]:
    stats = peer.get("messageStats", {}) or {}
    families = (peer.get("addressFamilyInfo") or {}).values()
    accepted = sum(int(f.get("acceptedPrefixCounter", 0)) for f in families)
    sent = sum(int(f.get("sentPrefixCounter", 0)) for f in families)
    first: dict[str, Any] = next(iter(families), {})
    return {
        "up": peer.get("bgpState") == "Established",
        "local_as": int(peer.get("localAs", 0)),
        "remote_as": int(peer.get("remoteAs", 0)),
        "router_id": str(peer.get("localRouterId", "")),
        "local_address": str(peer.get("hostLocal", "")),
        "routing_table": vrf,
        "local_address_configured": "updateSource" in peer,
        "local_port": int(peer.get("portLocal", 0)),
        "remote_address": address,
        "remote_port": int(peer.get("portForeign", 0)),
        "multihop": int(peer.get("externalBgpNbrMaxHopsAway", 1)) > 1,
        "multipath": False,
        "remove_private_as": False,
        "import_policy": str(first.get("routeMapForIncomingAdvertisements", "")),
        "export_policy": str(first.get("routeMapForOutgoingAdvertisements", "")),
        "input_messages": int(stats.get("totalRecv", 0)),
        "output_messages": int(stats.get("totalSent", 0)),
        "input_updates": int(stats.get("updatesRecv", 0)),
        "output_updates": int(stats.get("updatesSent", 0)),
        "messages_queued_out": int(stats.get("depthOutq", 0)),
        "connection_state": str(peer.get("bgpState", "")),
        "previous_connection_state": "",
        "last_event": str(peer.get("lastResetDueTo", "")),
        "suppress_4byte_as": False,
        "local_as_prepend": False,
        "holdtime": int(peer.get("bgpTimerHoldTimeMsecs", 0)) // 1000,
        "configured_holdtime": int(peer.get("bgpTimerConfiguredHoldTimeMsecs", 0)) // 1000,
        "keepalive": int(peer.get("bgpTimerKeepAliveIntervalMsecs", 0)) // 1000,
        "configured_keepalive": int(peer.get("bgpTimerConfiguredKeepAliveIntervalMsecs", 0))
        // 1000,
        "active_prefix_count": accepted,
        "received_prefix_count": accepted,
        "accepted_prefix_count": accepted,
        "suppressed_prefix_count": 0,
        "advertised_prefix_count": sent,
        "flap_count": int(peer.get("connectionsDropped", 0)),
    }


_AF_NAMES = {"ipv4Unicast": "ipv4", "ipv6Unicast": "ipv6"}


def _bgp_block(running: str) -> list[str]:
    lines: list[str] = []
    inside = False
    for line in running.splitlines():
        if re.match(r"^router bgp \d+\s*$", line):
            inside = True
            lines.append(line)
        elif inside:
            if line == "exit":
                inside = False
            else:
                lines.append(line)
    return lines


def bgp_config(running: str, group: str = "", neighbor: str = "") -> dict[str, dict[str, Any]]:
    """The ``router bgp`` block of the default VRF -> get_bgp_config. Neighbors outside a
    peer-group are reported in the group ``_`` (as NAPALM's other drivers do)."""
    local_as = 0
    groups: dict[str, dict[str, Any]] = {}
    members: dict[str, str] = {}
    conf: dict[str, dict[str, Any]] = {}
    af_policy: dict[str, dict[str, str]] = {}
    for line in _bgp_block(running):
        words = line.split()
        if words[:2] == ["router", "bgp"] and len(words) == 3:
            local_as = int(words[2])
            continue
        if len(words) < 3 or words[0] != "neighbor":
            continue
        peer, key, rest = words[1], words[2], words[3:]
        if key == "peer-group" and not rest:
            groups.setdefault(peer, {})
        elif key == "peer-group" and rest:
            members[peer] = rest[0]
        elif key == "route-map" and len(rest) == 2:
            af_policy.setdefault(peer, {})["import" if rest[1] == "in" else "export"] = rest[0]
        else:
            conf.setdefault(peer, {})[key] = rest
    out: dict[str, dict[str, Any]] = {}
    for name in [*sorted(groups), "_"]:
        gconf = conf.get(name, {}) if name != "_" else {}
        entry = _bgp_group(gconf, af_policy.get(name, {}), local_as)
        for peer, pconf in sorted(conf.items()):
            if peer in groups or members.get(peer, "_") != name:
                continue
            if neighbor and peer != neighbor:
                continue
            policy = {**af_policy.get(name, {}), **af_policy.get(peer, {})}
            entry["neighbors"][peer] = _bgp_neighbor({**gconf, **pconf}, policy, local_as)
        if name == "_" and not entry["neighbors"]:
            continue
        if group and name != group:
            continue
        out[name] = entry
    return out


def _as_number(words: list[str] | None) -> int:
    return int(words[0]) if words and words[0].isdigit() else 0


def _bgp_group(conf: dict[str, list[str]], policy: dict[str, str], local_as: int) -> dict[str, Any]:
    remote = _as_number(conf.get("remote-as"))
    return {
        "type": "" if not remote else ("internal" if remote == local_as else "external"),
        "description": " ".join(conf.get("description", [])),
        "apply_groups": [],
        "multihop_ttl": _as_number(conf.get("ebgp-multihop")),
        "multipath": False,
        "local_address": " ".join(conf.get("update-source", [])),
        "local_as": _as_number(conf.get("local-as")) or local_as,
        "remote_as": remote,
        "import_policy": policy.get("import", ""),
        "export_policy": policy.get("export", ""),
        "remove_private_as": "remove-private-AS" in conf,
        "prefix_limit": {},
        "neighbors": {},
    }


def _bgp_neighbor(
    conf: dict[str, list[str]], policy: dict[str, str], local_as: int
) -> dict[str, Any]:
    return {
        "description": " ".join(conf.get("description", [])),
        "import_policy": policy.get("import", ""),
        "export_policy": policy.get("export", ""),
        "local_address": " ".join(conf.get("update-source", [])),
        # never the key itself: FRR keeps it in clear text
        "authentication_key": "<removed>" if "password" in conf else "",
        "nhs": "next-hop-self" in conf,
        "route_reflector_client": "route-reflector-client" in conf,
        "local_as": _as_number(conf.get("local-as")) or local_as,
        "remote_as": _as_number(conf.get("remote-as")),
        "prefix_limit": {},
    }


# ------------------------------------------------------------------------------ VRFs, LLDP


def network_instances(frr: dict[str, Any], vrfs: list[dict[str, Any]]) -> dict[str, Any]:
    """Interfaces by ``vrfName`` (``show interface vrf all json``) plus the kernel's VRF
    devices (``ip -j link show type vrf``) -> get_network_instances."""
    names = {DEFAULT_VRF} | {str(v["ifname"]) for v in vrfs if "ifname" in v}
    by_vrf: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in names}
    for iface, data in frr.items():
        if iface in names - {DEFAULT_VRF}:
            continue  # the VRF device itself
        by_vrf.setdefault(str(data.get("vrfName", DEFAULT_VRF)), {})[iface] = {}
    return {
        name: {
            "name": name,
            "type": "DEFAULT_INSTANCE" if name == DEFAULT_VRF else "L3VRF",
            "state": {"route_distinguisher": ""},
            "interfaces": {"interface": dict(sorted(ifaces.items()))},
        }
        for name, ifaces in sorted(by_vrf.items())
    }


def lldp_neighbors(data: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """``lldpctl -f json`` -> get_lldp_neighbors."""
    out: dict[str, list[dict[str, str]]] = {}
    ifaces = data.get("lldp", {}).get("interface", [])
    if isinstance(ifaces, dict):
        ifaces = [{k: v} for k, v in ifaces.items()]
    for item in ifaces:
        for name, info in item.items():
            chassis = info.get("chassis", {})
            system = next(iter(chassis), "") if isinstance(chassis, dict) else ""
            port = info.get("port", {}).get("id", {}).get("value", "")
            out.setdefault(name, []).append({"hostname": str(system), "port": str(port)})
    return out
