"""Pure parsers for FRR output: frr-reload diffs, ``show ip route json``, uptimes, secrets."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from typing import Any

_SECTION_DELETE = "Lines To Delete"
_SECTION_ADD = "Lines To Add"


def _entries(lines: list[str]) -> list[list[str]]:
    """Group frr-reload lines: a top-level line plus the indented lines that follow it."""
    entries: list[list[str]] = []
    for line in lines:
        if not line.strip() or set(line.strip()) == {"="}:
            continue
        if line.startswith(" ") and entries:
            entries[-1].append(line)
        else:
            entries.append([line])
    return entries


def _present(running: str, line: str) -> bool:
    """Whether ``line`` (or a longer line starting with it) is in the running config."""
    return any(r == line or r.startswith(line + " ") for r in running.splitlines())


def _signed(line: str, deleting: bool) -> str:
    indent = len(line) - len(line.lstrip(" "))
    body = line.strip()
    if body.startswith("no "):
        return "-" + " " * indent + body[3:]
    return ("-" if deleting else "+") + " " * indent + body


def format_reload_diff(output: str, running: str) -> str:
    """Turn ``frr-reload.py --test`` output into one ordered +/- diff.

    frr-reload lists some removals as ``no ...`` lines under "Lines To Add" and repeats a
    context line (``interface X``) before each of its sub-lines; the result shows every change
    once, a removal as ``-``, an addition as ``+`` and an unchanged context as a blank column.
    Removing something the running config does not have is a no-op, so it is left out.
    """
    sections: dict[str, list[str]] = {_SECTION_DELETE: [], _SECTION_ADD: []}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.strip() in sections:
            current = sections[line.strip()]
        elif current is not None:
            current.append(line)
    out: list[str] = []
    last_header: str | None = None
    for deleting, name in ((True, _SECTION_DELETE), (False, _SECTION_ADD)):
        for entry in _entries(sections[name]):
            head = entry[0].rstrip()
            if len(entry) == 1:
                if head.startswith("no ") and not _present(running, head[3:]):
                    continue
                out.append(_signed(head, deleting))
                last_header = head
                continue
            if head != last_header:
                out.append(" " + head)
                last_header = head
            out.extend(_signed(sub.rstrip(), deleting) for sub in entry[1:])
    return "\n".join(out)


def diff_size(diff: str) -> int:
    """Number of changed lines in a +/- diff."""
    return sum(1 for line in diff.splitlines() if line[:1] in "+-")


_AGE_PARTS = re.compile(r"(\d+)([wdhms])")
_AGE_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_age(text: str) -> int:
    """FRR route uptime (``00:01:02``, ``1d02h03m``, ``02w3d04h``) in seconds; -1 if unknown."""
    text = text.strip()
    if re.fullmatch(r"\d+:\d\d:\d\d", text):
        h, m, s = (int(p) for p in text.split(":"))
        return h * 3600 + m * 60 + s
    parts = _AGE_PARTS.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return -1
    return sum(int(n) * _AGE_UNITS[u] for n, u in parts)


def routes_from_json(data: dict[str, Any], protocol: str = "") -> dict[str, list[dict[str, Any]]]:
    """``show ip[v6] route ... json`` -> NAPALM ``get_route_to`` (one entry per next hop)."""
    result: dict[str, list[dict[str, Any]]] = {}
    for prefix, entries in data.items():
        for entry in entries or []:
            proto = str(entry.get("protocol", ""))
            if protocol and proto != protocol.lower():
                continue
            selected = bool(entry.get("selected", False))
            attrs = {
                "tag": int(entry.get("tag", 0)),
                "metric": int(entry.get("metric", 0)),
                "installed": bool(entry.get("installed", False)),
                "table": int(entry.get("table", 0)),
            }
            for nh in entry.get("nexthops", []) or [{}]:
                result.setdefault(prefix, []).append(
                    {
                        "protocol": proto,
                        "current_active": selected,
                        "last_active": False,
                        "age": parse_age(str(entry.get("uptime", ""))),
                        "next_hop": str(nh.get("ip", "")),
                        "outgoing_interface": str(nh.get("interfaceName", "")),
                        "selected_next_hop": selected and bool(nh.get("fib", False)),
                        "preference": int(entry.get("distance", 0)),
                        "inactive_reason": "" if selected else "not selected",
                        "routing_table": str(entry.get("vrfName", "default")),
                        "protocol_attributes": dict(attrs),
                    }
                )
    return result


_SECRET_LINE = re.compile(
    r"^(?P<head>\s*(?:enable\s+)?password\s+|.*\bneighbor\s+\S+\s+password\s+"
    r"|\s*(?:ip\s+ospf\s+)?(?:message-digest-key\s+\d+\s+md5|authentication-key)\s+"
    r"|\s*key-string\s+|\s*snmp-server\s+community\s+)(?P<secret>\S+)",
    re.MULTILINE,
)


def sanitize(config: str) -> str:
    """Replace passwords, keys and communities in an FRR config with ``<removed>``."""
    return _SECRET_LINE.sub(lambda m: m.group("head") + "<removed>", config)


_VERSION = re.compile(r"FRRouting\s+(?P<version>\S+)\s+\((?P<host>[^)]*)\)")


def parse_version(text: str) -> tuple[str, str]:
    """``show version`` -> (os_version, hostname); empty strings if the banner is unknown."""
    m = _VERSION.search(text)
    return (m.group("version"), m.group("host")) if m else ("", "")


_ROUTE_LINE = re.compile(r"^(?:no\s+)?ipv?6?\s+route\s+(\S+)")


def split_waves(candidate: str) -> list[str]:
    """Split a merge candidate so that no prefix gets two route lines in one ``vtysh -f``.

    FRR 8.4's staticd can lose one of two next hops of a new prefix configured in the same
    ``vtysh -f`` run (a next-hop-tracking registration race, fixed upstream in 2024): both lines
    reach the running config, but only one route reaches the RIB. Applying the n-th route line
    of each prefix in the n-th run avoids it. Other lines (PBR blocks, interfaces) stay in the
    first run, in their order; every run keeps the candidate's order.
    """
    waves: list[list[str]] = [[]]
    seen: dict[str, int] = {}
    for line in candidate.splitlines():
        m = _ROUTE_LINE.match(line)
        wave = 0
        if m:
            wave = seen.get(m.group(1), 0)
            seen[m.group(1)] = wave + 1
        while len(waves) <= wave:
            waves.append([])
        waves[wave].append(line)
    return ["\n".join(w) + "\n" for w in waves if w]


# ------------------------------------------------------------------ merge diffs without frr-reload

_STATIC_LINE = re.compile(
    r"(?P<no>no )?(?P<af>ip|ipv6) route (?P<prefix>\S+) (?P<nh>\S+)(?: tag \d{1,10})?(?: \d{1,3})?"
)


def _canonical_static(line: str) -> bool:
    """``line`` is a default-VRF static route (or its ``no`` form) to an address next hop,
    written exactly as FRR prints it: the only candidate lines :func:`static_merge_diff`
    takes, because for them frr-reload's parse is the line itself."""
    m = _STATIC_LINE.fullmatch(line)
    if m is None:
        return False
    version = 4 if m["af"] == "ip" else 6
    try:
        net = ipaddress.ip_network(m["prefix"])  # strict: host bits set is not canonical
        hop = ipaddress.ip_address(m["nh"])
    except ValueError:
        return False
    return net.version == hop.version == version and (
        str(net) == m["prefix"] and str(hop) == m["nh"]
    )


def _reload_key(line: str) -> str:
    """A top-level line as frr-reload keys its context: stripped, runs of blanks made one,
    IPv6 words normalised (``get_normalized_ipv6_line``, FRR 8.4)."""
    words = []
    for word in line.split():
        if ":" in word:
            norm = None
            if "/" in word:
                with contextlib.suppress(ValueError):
                    v6 = ipaddress.IPv6Network(word, strict=False)
                    norm = f"{v6.network_address}/{v6.prefixlen}"
            if norm is None:
                try:
                    norm = str(ipaddress.IPv6Address(word))
                except ValueError:
                    norm = word
            word = norm
        words.append(word)
    return " ".join(words)


def static_only(candidate: str) -> bool:
    """Whether :func:`static_merge_diff` computes ``candidate``'s diff (else: frr-reload)."""
    lines = [line for line in candidate.splitlines() if line.strip()]
    return bool(lines) and all(_canonical_static(line) for line in lines)


def static_merge_diff(candidate: str, running: str) -> str:
    """What ``frr-reload.py --test --input RUNNING RUNNING+CANDIDATE`` prints, computed here,
    for a merge candidate made only of default-VRF static route lines (:func:`static_only`;
    for any other candidate the driver runs frr-reload).

    For such lines frr-reload's parse is exact and simple: each top-level line is a context of
    its own keyed by the line; the merged file holds every running context, so nothing is to
    delete; a candidate line is to add unless the running config has the same top-level line,
    once per distinct line, in the candidate's order (a ``no`` line included: FRR prints no
    top-level ``no ip route``). Starting frr-reload costs the router a Python start and two
    ``vtysh -m`` runs (about 0.2 s of CPU) for that. ``tests/integration/
    test_frr_compare.py`` checks that the two give the same diff on real FRR."""
    lines = [line for line in candidate.splitlines() if line.strip()]
    have = {_reload_key(line) for line in running.splitlines() if line[:1] not in ("", " ")}
    add = [line for line in dict.fromkeys(lines) if _reload_key(line) not in have]
    if not add:
        return ""
    return "\nLines To Add\n============\n" + "\n".join(add) + "\n"
