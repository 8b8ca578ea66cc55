"""Shared pieces of the running-config parsers (one per platform folder).

lbauto owns static routes carrying its tag and policy objects named ``LBAUTO...`` (DESIGN
section 5); everything else in a config is ignored. A parser (``<platform>/parser.py``) walks
the config and records what it sees in a :class:`Found`; :meth:`Found.objects` assembles the
complete objects. A PBR rule counts only when it is complete (match and next hop found); a
binding's version comes from the policy it names, or, where one policy serves both families
(FRR, EOS), from the families of the rules present (IPv4 when there are none, so a dangling
binding is still seen and can be removed).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field

from lbauto.core.model import (
    POLICY_PREFIX,
    BgpAccept,
    BgpGroup,
    BgpPeer,
    IPAddress,
    IPNetwork,
    OwnedObject,
    PbrBinding,
    PbrRule,
    PoolObject,
    StaticRoute,
)

POLICY6 = f"{POLICY_PREFIX}6"
RULE_PREFIX = f"{POLICY_PREFIX}-"


# Parsing an address costs microseconds in ipaddress and configs repeat the same VIPs, agents
# and DIPs on every line and router: memoize (bounded; the values are immutable).
@functools.lru_cache(maxsize=1 << 16)
def addr(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1 << 16)
def net(text: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        return None


def host(text: str) -> IPNetwork | None:
    a = addr(text)
    return ipaddress.ip_network(a) if a is not None else None


def as_int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def rule_seq(name: str) -> int | None:
    """``LBAUTO-12`` -> 12; any other name is not lbauto's."""
    return as_int(name[len(RULE_PREFIX) :]) if name.startswith(RULE_PREFIX) else None


@dataclass
class Found:
    """What a parser collected; :meth:`objects` assembles complete objects from it."""

    tag: int
    #: Distance of a static route whose line prints none (the platform's default).
    default_distance: int = 1
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
    #: BGP LB routes: VIP prefixes the import policy accepts, agent neighbors, the peer group
    #: (set by a parser only when every line of it is as lbauto renders it).
    accepts: set[IPNetwork] = field(default_factory=set)
    peers: set[IPAddress] = field(default_factory=set)
    group: BgpGroup | None = None

    def pool(self) -> frozenset[PoolObject]:
        out: set[PoolObject] = {BgpPeer(a) for a in self.peers}
        if self.group is not None:
            out.add(self.group)
        return frozenset(out)

    def route(self, prefix: IPNetwork | None, hop: IPAddress | None, dist: int, tag: int) -> None:
        if prefix is not None and hop is not None and tag == self.tag:
            self.routes.add(StaticRoute(prefix, hop, dist, tag))

    def set_match(self, seq: int, text: str) -> None:
        p = net(text)
        if p is not None:
            self.match[seq] = p

    def set_hop(self, seq: int, text: str) -> None:
        a = addr(text)
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
        out.update(BgpAccept(p) for p in self.accepts)
        rules = [PbrRule(s, p, self.hop[s]) for s, p in self.match.items() if s in self.hop]
        out.update(rules)
        shared = {r.prefix.version for r in rules} or {4}
        for iface, versions in self.bound.items():
            for v in versions:
                out.update(PbrBinding(iface, x) for x in (shared if v == 0 else {v}))
        return frozenset(out)


def blocks(text: str) -> Iterator[tuple[list[str], list[list[str]]]]:
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


def route_tail(tokens: list[str], f: Found, distance_first: bool) -> tuple[int, int] | None:
    """(distance, tag) from the words after the next hop, or None for a form lbauto never
    renders (interface next hops, VRFs, tracking...)."""
    distance = f.default_distance
    tag: int | None = None
    i = 0
    while i < len(tokens):
        word = tokens[i]
        if word == "tag" and i + 1 < len(tokens) and tokens[i + 1].isdigit():
            tag = int(tokens[i + 1])
            i += 2
        elif word.isdigit() and (distance_first or tag is not None):
            distance = int(word)
            i += 1
        elif word == "name" and i + 1 < len(tokens):
            i += 2
        else:
            return None
    return (distance, tag) if tag is not None else None


def acl_entries(name: str, body: list[list[str]], f: Found, host_words: tuple[str, ...]) -> None:
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
            p = host(words[4]) if words[3] in host_words and len(words) == 5 else None
            if p is None and len(words) == 4:
                p = net(words[3])
            if p is not None:
                permits.append(p)
    if len(permits) == 1:
        f.acls[name] = permits[0]
