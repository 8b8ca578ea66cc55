"""Junos configuration in ``set`` format -> owned objects (static routes with ``tag`` and
``preference``, filter-based forwarding through per-rule routing instances)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lbauto.core.model import POLICY_PREFIX, IPAddress, IPNetwork
from lbauto.platforms._parsing import POLICY6, Found, addr, as_int, net, rule_seq


@dataclass
class _JunosRoute:
    hops: dict[IPAddress, int | None] = field(default_factory=dict)
    preference: int = 5
    tag: int | None = None


def parse(text: str, f: Found) -> None:
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
            seq = rule_seq(w[7]) if w[6] == "term" else None
            if seq is None:
                continue
            if w[8:10] == ["from", "destination-address"] and len(w) == 11:
                f.set_match(seq, w[10])
            elif w[8:10] == ["then", "routing-instance"] and len(w) == 11:
                term_instance[seq] = w[10]
        elif w[1] == "routing-instances" and rule_seq(w[2]) is not None and w[-2] == "next-hop":
            a = addr(w[-1])
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
    prefix = net(w[2])
    if prefix is None:
        return
    r = routes.setdefault(prefix, _JunosRoute())
    rest = w[3:]
    if rest[0] == "tag" and len(rest) == 2 and rest[1].isdigit():
        r.tag = int(rest[1])
    elif rest[0] == "preference" and len(rest) == 2 and rest[1].isdigit():
        r.preference = int(rest[1])
    elif rest[0] in ("qualified-next-hop", "next-hop") and (hop := addr(rest[1])) is not None:
        pref = r.hops.get(hop)
        if rest[0] == "qualified-next-hop" and rest[2:3] == ["preference"] and len(rest) == 4:
            pref = as_int(rest[3])
        r.hops[hop] = pref
