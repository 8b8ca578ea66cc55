"""IOS and NX-OS running configs -> owned objects (route-maps, ACLs, ``ip policy``); IOS writes
IPv4 static routes in mask notation and prints upper-case IPv6."""

from __future__ import annotations

from lbauto.core.model import POLICY_PREFIX
from lbauto.platforms._parsing import (
    POLICY6,
    Found,
    acl_entries,
    addr,
    as_int,
    blocks,
    net,
    route_tail,
    rule_seq,
)


def parse_cisco(text: str, f: Found, mask_notation: bool) -> None:
    for head, body in blocks(text):
        if len(head) >= 4 and head[:2] == ["ip", "route"] and mask_notation:
            prefix = net(f"{head[2]}/{head[3]}") if len(head) >= 5 else None
            tail = route_tail(head[5:], f, distance_first=True) if prefix else None
            if tail:
                f.route(prefix, addr(head[4]), *tail)
        elif len(head) >= 4 and head[0] in ("ip", "ipv6") and head[1] == "route":
            tail = route_tail(head[4:], f, distance_first=mask_notation)
            if tail:
                f.route(net(head[2]), addr(head[3]), *tail)
        elif head[:2] in (["ip", "access-list"], ["ipv6", "access-list"]):
            name = head[-1]
            if rule_seq(name) is not None and len(head) in (3, 4):
                if len(head) == 4 and head[2] != "extended":
                    continue
                acl_entries(name, body, f, ("host",))
        elif head[0] == "route-map" and len(head) == 4 and head[1] in (POLICY_PREFIX, POLICY6):
            seq = as_int(head[3])
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
