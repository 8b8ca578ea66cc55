"""EOS running config -> owned objects (the form lbauto renders and the variants EOS prints:
distance before tag, the default distance left out)."""

from __future__ import annotations

from lbauto.core.model import POLICY_PREFIX
from lbauto.platforms._parsing import Found, acl_entries, addr, blocks, net, route_tail, rule_seq

_BINDING = ["service-policy", "type", "pbr", "input", POLICY_PREFIX]


def parse(text: str, f: Found) -> None:
    for head, body in blocks(text):
        kind = head[:2]
        if len(head) >= 4 and head[0] in ("ip", "ipv6") and head[1] == "route":
            tail = route_tail(head[4:], f, distance_first=True)
            if tail:
                f.route(net(head[2]), addr(head[3]), *tail)
        elif kind in (["ip", "access-list"], ["ipv6", "access-list"]) and len(head) == 3:
            if rule_seq(head[2]) is not None:
                acl_entries(head[2], body, f, ("host",))
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
        elif head[0] == "interface" and len(head) == 2 and _BINDING in body:
            f.bind(head[1], 0)
