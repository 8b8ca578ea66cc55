"""Find lbauto-owned objects in a router's running config (the inverse of :mod:`lbauto.render`).

lbauto owns static routes carrying its tag and policy objects named ``LBAUTO...`` (DESIGN
section 5); everything else in the config is ignored. FRR is parsed from its real
``show running-config no-header`` output (checked on FRR 8.4); the other platforms from the form
lbauto renders plus the variants their running configs are documented to print (IOS upper-case
IPv6, optional ACL sequence numbers, EOS/NX-OS default distance left out, Junos ``set`` lines).

A PBR rule is returned only when it is complete (match and next hop found); a binding's
version comes from the policy it names, or, where one policy serves both families (FRR, EOS),
from the families of the rules present (IPv4 when there are none, so a dangling binding is still
seen and can be removed).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from lbauto.errors import StateError
from lbauto.core.model import (
    POLICY_PREFIX,
    IPAddress,
    IPNetwork,
    OwnedObject,
    PbrBinding,
    PbrRule,
    Platform,
    StaticRoute,
)
from lbauto.platforms import PLATFORMS

POLICY6 = f"{POLICY_PREFIX}6"
_EOS_BINDING = ["service-policy", "type", "pbr", "input", POLICY_PREFIX]
RULE_PREFIX = f"{POLICY_PREFIX}-"
#: Distance a static route has when the config does not print one.
DEFAULT_DISTANCE = {Platform.JUNOS: 5}


# Parsing an address costs microseconds in ipaddress and configs repeat the same VIPs, agents
# and DIPs on every line and router: memoize (bounded; the values are immutable).
@functools.lru_cache(maxsize=1 << 16)
def _addr(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1 << 16)
def _net(text: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        return None


def _host(text: str) -> IPNetwork | None:
    a = _addr(text)
    return ipaddress.ip_network(a) if a is not None else None


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _rule_seq(name: str) -> int | None:
    """``LBAUTO-12`` -> 12; any other name is not lbauto's."""
    return _int(name[len(RULE_PREFIX) :]) if name.startswith(RULE_PREFIX) else None


@dataclass
class _Found:
    """What a parser collected; :meth:`objects` assembles complete objects from it."""

    platform: Platform
    tag: int
    routes: set[StaticRoute] = field(default_factory=set)
    #: rule seq -> prefix (FRR/Junos direct, or via an ACL name for the others)
    match: dict[int, IPNetwork] = field(default_factory=dict)
    hop: dict[int, IPAddress] = field(default_factory=dict)
    #: ACL name -> prefix; class-map name -> ACL name (EOS)
    acls: dict[str, IPNetwork] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)
    #: policy entry seq -> ACL or class name it matches
    entry_match: dict[int, str] = field(default_factory=dict)
    #: interface -> versions bound (0 = "whatever the shared policy carries")
    bound: dict[str, set[int]] = field(default_factory=dict)

    def route(self, prefix: IPNetwork | None, hop: IPAddress | None, dist: int, tag: int) -> None:
        if prefix is not None and hop is not None and tag == self.tag:
            self.routes.add(StaticRoute(prefix, hop, dist, tag))

    def set_match(self, seq: int, text: str) -> None:
        p = _net(text)
        if p is not None:
            self.match[seq] = p

    def set_hop(self, seq: int, text: str) -> None:
        a = _addr(text)
        if a is not None:
            self.hop[seq] = a

    def bind(self, interface: str, version: int) -> None:
        self.bound.setdefault(interface, set()).add(version)

    def objects(self) -> frozenset[OwnedObject]:
        for seq, name in self.entry_match.items():
            acl = self.classes.get(name, name)
            if acl in self.acls:
                self.match[seq] = self.acls[acl]
        out: set[OwnedObject] = set(self.routes)
        rules = [PbrRule(s, p, self.hop[s]) for s, p in self.match.items() if s in self.hop]
        out.update(rules)
        shared = {r.prefix.version for r in rules} or {4}
        for iface, versions in self.bound.items():
            for v in versions:
                out.update(PbrBinding(iface, x) for x in (shared if v == 0 else {v}))
        return frozenset(out)


def _blocks(text: str) -> Iterator[tuple[list[str], list[list[str]]]]:
    """(header tokens, child lines' tokens) for an indented config; comments dropped."""
    header: list[str] | None = None
    children: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.lstrip()
        if not stripped or stripped[0] in "!#":
            continue
        if line[0] in " \t":
            if header is not None:
                children.append(stripped.split())
            continue
        if header is not None:
            yield header, children
        header, children = line.split(), []
    if header is not None:
        yield header, children


def _route_tail(tokens: list[str], f: _Found, distance_first: bool) -> tuple[int, int] | None:
    """(distance, tag) from the words after the next hop, or None for a form lbauto never
    renders (interface next hops, VRFs, tracking...)."""
    distance = DEFAULT_DISTANCE.get(f.platform, 1)
    tag: int | None = None
    i = 0
    while i < len(tokens):
        word = tokens[i]
        if word == "tag" and i + 1 < len(tokens) and tokens[i + 1].isdigit():
            tag = int(tokens[i + 1])
            i += 2
        elif word.isdigit() and (distance_first or tag is not None or f.platform is Platform.FRR):
            distance = int(word)
            i += 1
        elif word == "name" and i + 1 < len(tokens):
            i += 2
        else:
            return None
    return (distance, tag) if tag is not None else None


# ------------------------------------------------------------------------------------------ FRR


def _parse_frr(text: str, f: _Found) -> None:
    for head, body in _blocks(text):
        if len(head) >= 4 and head[0] in ("ip", "ipv6") and head[1] == "route":
            tail = _route_tail(head[4:], f, distance_first=False)
            if tail:
                f.route(_net(head[2]), _addr(head[3]), *tail)
        elif head[:3] == ["pbr-map", POLICY_PREFIX, "seq"] and len(head) == 4:
            seq = _int(head[3])
            if seq is None:
                continue
            for words in body:
                if words[:2] == ["match", "dst-ip"] and len(words) == 3:
                    f.set_match(seq, words[2])
                elif words[:2] == ["set", "nexthop"] and len(words) == 3:
                    f.set_hop(seq, words[2])
        elif head[0] == "interface" and len(head) == 2 and ["pbr-policy", POLICY_PREFIX] in body:
            f.bind(head[1], 0)


# ------------------------------------------------------------------------------------------ EOS


def _parse_eos(text: str, f: _Found) -> None:
    for head, body in _blocks(text):
        kind = head[:2]
        if len(head) >= 4 and head[0] in ("ip", "ipv6") and head[1] == "route":
            tail = _route_tail(head[4:], f, distance_first=True)
            if tail:
                f.route(_net(head[2]), _addr(head[3]), *tail)
        elif kind in (["ip", "access-list"], ["ipv6", "access-list"]) and len(head) == 3:
            if _rule_seq(head[2]) is not None:
                _acl_entries(head[2], body, f, ("host",))
        elif head[:4] == ["class-map", "type", "pbr", "match-any"] and len(head) == 5:
            for words in body:
                words = words[1:] if words and words[0].isdigit() else words
                if len(words) == 4 and words[0] == "match" and words[2] == "access-group":
                    f.classes[head[4]] = words[3]
        elif head == ["policy-map", "type", "pbr", POLICY_PREFIX]:
            seq: int | None = None
            for words in body:
                if len(words) == 3 and words[1] == "class" and words[0].isdigit():
                    seq = int(words[0])
                    f.entry_match[seq] = words[2]
                elif seq is not None and words[:2] == ["set", "nexthop"] and len(words) == 3:
                    f.set_hop(seq, words[2])
        elif head[0] == "interface" and len(head) == 2 and _EOS_BINDING in body:
            f.bind(head[1], 0)


def _acl_entries(name: str, body: list[list[str]], f: _Found, host_words: tuple[str, ...]) -> None:
    """An ACL counts when it is exactly one ``permit ip any host A`` (or ``any A/len``)."""
    permits: list[IPNetwork] = []
    for words in body:
        if words and words[0] == "sequence" and len(words) > 2:
            words = words[2:]
        elif words and words[0].isdigit():
            words = words[1:]
        if len(words) >= 4 and words[0] == "permit" and words[1] in ("ip", "ipv6"):
            if words[2] != "any":
                continue
            p = _host(words[4]) if words[3] in host_words and len(words) == 5 else None
            if p is None and len(words) == 4:
                p = _net(words[3])
            if p is not None:
                permits.append(p)
    if len(permits) == 1:
        f.acls[name] = permits[0]


# -------------------------------------------------------------------------------- IOS and NX-OS


def _parse_cisco(text: str, f: _Found) -> None:
    mask_notation = f.platform is Platform.IOS
    for head, body in _blocks(text):
        if len(head) >= 4 and head[:2] == ["ip", "route"] and mask_notation:
            net = _net(f"{head[2]}/{head[3]}") if len(head) >= 5 else None
            tail = _route_tail(head[5:], f, distance_first=True) if net else None
            if tail:
                f.route(net, _addr(head[4]), *tail)
        elif len(head) >= 4 and head[0] in ("ip", "ipv6") and head[1] == "route":
            tail = _route_tail(head[4:], f, distance_first=mask_notation)
            if tail:
                f.route(_net(head[2]), _addr(head[3]), *tail)
        elif head[:2] in (["ip", "access-list"], ["ipv6", "access-list"]):
            name = head[-1]
            if _rule_seq(name) is not None and len(head) in (3, 4):
                if len(head) == 4 and head[2] != "extended":
                    continue
                _acl_entries(name, body, f, ("host",))
        elif head[0] == "route-map" and len(head) == 4 and head[1] in (POLICY_PREFIX, POLICY6):
            seq = _int(head[3])
            if head[2] != "permit" or seq is None:
                continue
            family = "ip" if head[1] == POLICY_PREFIX else "ipv6"
            for words in body:
                if words[:3] == ["match", family, "address"] and len(words) == 4:
                    f.entry_match[seq] = words[3]
                elif words[:3] == ["set", family, "next-hop"] and len(words) == 4:
                    f.set_hop(seq, words[3])
        elif head[0] == "interface" and len(head) == 2:
            if ["ip", "policy", "route-map", POLICY_PREFIX] in body:
                f.bind(head[1], 4)
            if ["ipv6", "policy", "route-map", POLICY6] in body:
                f.bind(head[1], 6)


# ---------------------------------------------------------------------------------------- Junos


@dataclass
class _JunosRoute:
    hops: dict[IPAddress, int | None] = field(default_factory=dict)
    preference: int = 5
    tag: int | None = None


def _parse_junos(text: str, f: _Found) -> None:
    routes: dict[IPNetwork, _JunosRoute] = {}
    term_instance: dict[int, str] = {}
    instance_hop: dict[str, IPAddress] = {}
    for raw in text.splitlines():
        w = raw.split()
        if len(w) < 4 or w[0] != "set":
            continue
        if w[1] == "routing-options":
            _junos_static(w[2:], routes)
        elif w[1] == "firewall" and len(w) >= 10 and w[2] == "family":
            fam, name = w[3], w[5]
            if w[4] != "filter" or (fam, name) not in (("inet", POLICY_PREFIX), ("inet6", POLICY6)):
                continue
            seq = _rule_seq(w[7]) if w[6] == "term" else None
            if seq is None:
                continue
            if w[8:10] == ["from", "destination-address"] and len(w) == 11:
                f.set_match(seq, w[10])
            elif w[8:10] == ["then", "routing-instance"] and len(w) == 11:
                term_instance[seq] = w[10]
        elif w[1] == "routing-instances" and _rule_seq(w[2]) is not None and w[-2] == "next-hop":
            a = _addr(w[-1])
            if a is not None and w[-4:-2] in (["route", "0.0.0.0/0"], ["route", "::/0"]):
                instance_hop[w[2]] = a
        elif w[1] == "interfaces" and len(w) == 10 and w[3] == "unit" and w[5] == "family":
            if w[7:9] != ["filter", "input"]:
                continue
            iface = w[2] if w[4] == "0" else f"{w[2]}.{w[4]}"
            if w[6] == "inet" and w[9] == POLICY_PREFIX:
                f.bind(iface, 4)
            elif w[6] == "inet6" and w[9] == POLICY6:
                f.bind(iface, 6)
    for seq, instance in term_instance.items():
        if instance in instance_hop:
            f.hop[seq] = instance_hop[instance]
    for prefix, r in routes.items():
        if r.tag is not None:
            for hop, pref in r.hops.items():
                f.route(prefix, hop, r.preference if pref is None else pref, r.tag)


def _junos_static(w: list[str], routes: dict[IPNetwork, _JunosRoute]) -> None:
    """``static route P ...`` or ``rib inet6.0 static route P ...`` after routing-options."""
    if w[:2] == ["rib", "inet6.0"]:
        w = w[2:]
    if w[:2] != ["static", "route"] or len(w) < 5:
        return
    prefix = _net(w[2])
    if prefix is None:
        return
    r = routes.setdefault(prefix, _JunosRoute())
    rest = w[3:]
    if rest[0] == "tag" and len(rest) == 2 and rest[1].isdigit():
        r.tag = int(rest[1])
    elif rest[0] == "preference" and len(rest) == 2 and rest[1].isdigit():
        r.preference = int(rest[1])
    elif rest[0] in ("qualified-next-hop", "next-hop") and (hop := _addr(rest[1])) is not None:
        pref = r.hops.get(hop)
        if rest[0] == "qualified-next-hop" and rest[2:3] == ["preference"] and len(rest) == 4:
            pref = _int(rest[3])
        r.hops[hop] = pref


# ---------------------------------------------------------------------------------------- entry

_PARSERS: dict[Platform, Callable[[str, _Found], None]] = {
    Platform.FRR: _parse_frr,
    Platform.EOS: _parse_eos,
    Platform.IOS: _parse_cisco,
    Platform.NXOS: _parse_cisco,
    Platform.JUNOS: _parse_junos,
}


def parse_owned(platform: Platform, running_config: str, tag: int) -> frozenset[OwnedObject]:
    """The lbauto-owned objects in ``running_config``: static routes carrying ``tag`` and the
    LBAUTO-named PBR rules and interface bindings. Junos expects ``set`` format."""
    if platform not in PLATFORMS:
        raise StateError(f"no running-config parser for platform {platform!r}")
    found = _Found(platform, tag)
    _PARSERS[platform](running_config, found)
    return found.objects()
