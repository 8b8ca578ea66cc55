"""FRR running config (``show running-config no-header``, checked on FRR 8.4) -> owned objects."""

from __future__ import annotations

from lbauto.core.model import POLICY_PREFIX
from lbauto.platforms._parsing import Found, addr, as_int, blocks, net, route_tail
from lbauto.platforms.frr import bgp


def parse(text: str, f: Found) -> None:
    seen = bgp.BgpSeen()
    for head, body in blocks(text):
        if len(head) >= 4 and head[0] in ("ip", "ipv6") and head[1] == "route":
            tail = route_tail(head[4:], f, distance_first=True)
            if tail:
                f.route(net(head[2]), addr(head[3]), *tail)
        elif head[:3] == ["pbr-map", POLICY_PREFIX, "seq"] and len(head) == 4:
            seq = as_int(head[3])
            if seq is None:
                continue
            for words in body:
                if words[:2] == ["match", "dst-ip"] and len(words) == 3:
                    f.set_match(seq, words[2])
                elif words[:2] == ["set", "nexthop"] and len(words) == 3:
                    f.set_hop(seq, words[2])
        elif head[0] == "interface" and len(head) == 2 and ["pbr-policy", POLICY_PREFIX] in body:
            f.bind(head[1], 0)
        elif head[0] in ("ip", "ipv6") and head[1:2] == ["prefix-list"]:
            bgp.prefix_list(head, f)
        elif head[:2] == ["router", "bgp"]:
            bgp.router_bgp(head, body, f, seen)
        elif head[0] == "route-map":
            bgp.route_map(head, body, seen)
        elif head == ["bfd"]:
            bgp.bfd(body, seen)
    f.group = bgp.group(seen)
