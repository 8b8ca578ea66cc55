"""The BGP LB route objects in an FRR running config (``show running-config no-header``, FRR
8.4): prefix-list entries of LBAUTO/LBAUTO6, the LBAUTO peer group with its members, route-maps
and bfd profile. The group counts only when every line lbauto renders is there as rendered
(anything else, e.g. a hand-added route-map entry, leaves it unseen, so the plan rewrites it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lbauto.core.model import POLICY_PREFIX, BgpGroup
from lbauto.platforms._parsing import Found, addr, as_int, net

P = POLICY_PREFIX
_LISTS = {("ip", P): 4, ("ipv6", f"{P}6"): 6}
#: route-map name -> the one entry lbauto renders: (action, seq, match lines).
_MAPS: dict[str, tuple[str, str, list[list[str]]]] = {
    f"{P}-IN": ("permit", "10", [["match", "ip", "address", "prefix-list", P]]),
    f"{P}-IN6": ("permit", "10", [["match", "ipv6", "address", "prefix-list", f"{P}6"]]),
    f"{P}-OUT": ("deny", "10", []),
}
#: FRR bfdd's defaults, which the running config does not print.
_BFD_DEFAULTS = {"detect-multiplier": 3, "receive-interval": 300, "transmit-interval": 300}


@dataclass
class BgpSeen:
    asn: int | None = None
    group: bool = False
    remote_as: int | None = None
    bfd: bool = False
    bfd_profile: bool = False
    paths: dict[int, int] = field(default_factory=dict)
    #: per address family: the neighbor lines of the group seen there
    af_lines: dict[int, set[str]] = field(default_factory=dict)
    maps_ok: set[str] = field(default_factory=set)
    maps_bad: set[str] = field(default_factory=set)
    profile: dict[str, int] | None = None


def prefix_list(head: list[str], f: Found) -> bool:
    """``ip prefix-list LBAUTO seq N permit P``; True when the line was one of lbauto's lists."""
    version = _LISTS.get((head[0], head[2])) if len(head) >= 3 else None
    if version is None:
        return False
    # The running config numbers entries (seq 5, 10, ...); lbauto renders them without.
    words = head[5:] if len(head) == 7 and head[3] == "seq" else head[3:]
    if len(words) == 2 and words[0] == "permit":
        p = net(words[1])
        if p is not None and p.version == version:
            f.accepts.add(p)
    return True


def router_bgp(head: list[str], body: list[list[str]], f: Found, seen: BgpSeen) -> None:
    if len(head) != 3 or as_int(head[2]) is None:
        return  # VRF instances are not lbauto's
    seen.asn = as_int(head[2])
    af = 0
    for words in body:
        if words[:1] == ["address-family"] and len(words) >= 2:
            af = {"ipv4": 4, "ipv6": 6}.get(words[1], -1) if words[2:] == ["unicast"] else -1
            continue
        if words == ["exit-address-family"]:
            af = 0
            continue
        if af == 0:
            _global_line(words, f, seen)
        elif af > 0:
            if words[0] == "maximum-paths" and len(words) == 2 and words[1].isdigit():
                seen.paths[af] = int(words[1])
            elif words[:2] == ["neighbor", P]:
                seen.af_lines.setdefault(af, set()).add(" ".join(words[2:]))


def _global_line(words: list[str], f: Found, seen: BgpSeen) -> None:
    if words[:1] != ["neighbor"] or len(words) < 3:
        return
    if words[1] == P:
        rest = words[2:]
        if rest == ["peer-group"]:
            seen.group = True
        elif rest[:1] == ["remote-as"] and len(rest) == 2:
            seen.remote_as = as_int(rest[1])
        elif rest == ["bfd"]:
            seen.bfd = True
        elif rest == ["bfd", "profile", P]:
            seen.bfd_profile = True
    elif words[2:] == ["peer-group", P]:
        a = addr(words[1])
        if a is not None:
            f.peers.add(a)


def route_map(head: list[str], body: list[list[str]], seen: BgpSeen) -> None:
    if len(head) != 4 or head[1] not in _MAPS:
        return
    action, seq, lines = _MAPS[head[1]]
    if head[2:] == [action, seq] and body == lines:
        seen.maps_ok.add(head[1])
    else:
        seen.maps_bad.add(head[1])


def bfd(body: list[list[str]], seen: BgpSeen) -> None:
    current: dict[str, int] | None = None
    for words in body:
        if words[:1] == ["profile"]:
            current = dict(_BFD_DEFAULTS) if words == ["profile", P] else None
            if current is not None:
                seen.profile = current
        elif words == ["exit"]:
            current = None
        elif current is not None and len(words) == 2 and words[0] in current:
            value = as_int(words[1])
            if value is not None:
                current[words[0]] = value


def group(seen: BgpSeen) -> BgpGroup | None:
    """The peer group, when all of it is as lbauto renders it."""
    if seen.asn is None or not seen.group or seen.remote_as is None:
        return None
    if seen.maps_bad or len(seen.maps_ok) != len(_MAPS):
        return None
    want4 = {f"route-map {P}-IN in", f"route-map {P}-OUT out"}
    want6 = {"activate", f"route-map {P}-IN6 in", f"route-map {P}-OUT out"}
    if not want4 <= seen.af_lines.get(4, set()) or not want6 <= seen.af_lines.get(6, set()):
        return None
    p4, p6 = seen.paths.get(4, 1), seen.paths.get(6, 1)
    paths = p4 if p4 == p6 else 0  # differing widths: drift, rewritten from the inventory
    if seen.bfd_profile and seen.profile is not None:
        rx, tx = seen.profile["receive-interval"], seen.profile["transmit-interval"]
        interval = rx if rx == tx else 0
        return BgpGroup(
            seen.asn, seen.remote_as, paths, True, interval, seen.profile["detect-multiplier"]
        )
    if seen.bfd or seen.bfd_profile:
        return BgpGroup(seen.asn, seen.remote_as, paths, True, 0, 0)  # incomplete: drift
    return BgpGroup(seen.asn, seen.remote_as, paths, False, 0, 0)
