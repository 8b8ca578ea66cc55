"""nftables ruleset rendering of the agent (no kernel needed)."""

from __future__ import annotations

import ipaddress
import random
from collections import Counter

import pytest

from lbauto.agent.dataplane import (
    CLOSED,
    HASH_SEED,
    FlowEntry,
    HintEntry,
    TableSpec,
    bucket_marks,
    count_flows,
    decode_flows,
    render_base,
    render_chain,
    render_delete_flows,
    render_remove,
    render_update,
    render_vip,
    suffix,
)
from lbauto.agent.store import DrainRecord, TransitRecord, VipRecord
from lbauto.core.model import Mode

SPEC = TableSpec(table="lbauto", interface="veth0", flow_timeout=120)
V4 = ipaddress.ip_address("192.0.2.10")
V6 = ipaddress.ip_address("2001:db8:10::10")
A, B, C = (ipaddress.ip_address(f"198.51.100.{i}") for i in (21, 22, 23))


def rec(**kw: object) -> VipRecord:
    base: dict[str, object] = {
        "address": V4,
        "mode": Mode.MULTI,
        "dips": (A, B),
        "flow_tracking": True,
        "generation": 1,
    }
    base.update(kw)
    return VipRecord(**base).with_marks()  # type: ignore[arg-type]


def chain(r: VipRecord) -> list[str]:
    return render_chain(r, SPEC, len(bucket_marks(r, 100)) or 257)


def test_suffix_names_family_and_address() -> None:
    assert suffix(V4) == "4_c000020a"
    assert suffix(V6) == "6_20010db8001000000000000000000010"


def test_base_hooks_the_interface_and_dispatches_by_vmap() -> None:
    text = "\n".join(render_base(SPEC))
    assert 'hook ingress device "veth0"' in text
    assert "ip daddr vmap @vips4" in text
    assert "ip6 daddr vmap @vips6" in text
    assert "delete" not in text


def test_multi_tracking_looks_up_flows_before_hashing_and_records_choice() -> None:
    rules = chain(rec())
    lookup = next(i for i, r in enumerate(rules) if "map @f4_c000020a update" in r)
    hashed = next(i for i, r in enumerate(rules) if "jhash ip saddr . th sport . ip daddr" in r)
    assert lookup < hashed
    assert "update @f4_c000020a" in rules[hashed]
    assert f"seed 0x{HASH_SEED:08x}" in rules[hashed]
    assert 'fwd ip to meta mark map @d4_c000020a device "veth0"' in rules[hashed]
    assert rules[-1] == "drop"


def test_tracking_off_has_no_lookup_no_update_and_flushes_flows() -> None:
    r = rec(mode=Mode.SINGLE, dips=(A,), flow_tracking=False)
    rules = chain(r)
    assert not any("@f4_" in x for x in rules)
    cmds = render_vip(r, SPEC)
    assert "flush map netdev lbauto f4_c000020a" in cmds


def test_tracking_on_never_flushes_or_recreates_the_flow_map() -> None:
    cmds = render_vip(rec(), SPEC)
    assert not any(c.startswith(("flush map netdev lbauto f", "delete")) for c in cmds)
    assert any(
        c.startswith("add map netdev lbauto f4_c000020a") and "timeout 120s" in c for c in cmds
    )


def test_update_touches_only_this_vips_objects() -> None:
    cmds = render_vip(rec(), SPEC) + render_remove(V4, SPEC)
    names = {w for c in cmds for w in c.replace("@", " ").split() if w[:1] in "vbdfct"}
    objs = {n for n in names if n[1:3] in ("4_", "6_")}
    assert objs == {f"{p}4_c000020a" for p in "vbdf"}


def test_transit_pins_non_openers_and_udp_to_the_pinned_dip_and_counts() -> None:
    r = rec(transit=TransitRecord(C, 1e12), drain=DrainRecord((C,), 1e12))
    rules = chain(r)
    pin = r.marks[C]
    tcp = next(x for x in rules if x.startswith("tcp flags & (syn | ack) != syn"))
    assert f"meta mark set {pin} " in tcp
    assert "update @th4 { ip daddr }" in tcp
    assert any(x.startswith("meta l4proto udp ") and f"set {pin} " in x for x in rules)
    # the pin comes after the flow lookup and before the bucket choice
    order = [i for i, x in enumerate(rules) if "@f4_" in x]
    assert order == sorted(order)


def test_draining_dip_gets_no_buckets_but_keeps_its_dip_map_entry() -> None:
    r = rec(dips=(A, B), drain=DrainRecord((C,), 1e12))
    marks = bucket_marks(r, 100)
    assert r.marks[C] not in set(marks)
    assert Counter(marks).keys() == {r.marks[A], r.marks[B]}
    dmap = next(c for c in render_vip(r, SPEC) if c.startswith("add element netdev lbauto d4_"))
    assert f"{r.marks[C]} : {C}" in dmap


def test_empty_vip_rejects() -> None:
    rules = chain(rec(mode=Mode.EMPTY, dips=(), flow_tracking=False))
    assert "meta l4proto tcp reject with tcp reset" in rules
    assert "reject with icmpx host-unreachable" in rules
    assert not any("fwd" in x for x in rules)


def test_ipv6_uses_ip6_everywhere() -> None:
    d1, d2 = ipaddress.ip_address("2001:db8:100::21"), ipaddress.ip_address("2001:db8:100::22")
    r = rec(address=V6, dips=(d1, d2))
    text = "\n".join(render_vip(r, SPEC))
    assert "fwd ip6 to meta mark map @d6_" in text
    assert "jhash ip6 saddr . th sport . ip6 daddr . th dport" in text
    assert " ip saddr" not in text
    assert f"add element netdev lbauto vips6 {{ {V6} : jump v{suffix(V6)} }}" in text


def test_marks_are_stable_and_never_reused() -> None:
    r = rec(dips=(A, B))
    first = dict(r.marks)
    r2 = VipRecord(**{**r.__dict__, "dips": (B,)}).with_marks()
    assert r2.marks == {B: first[B]}
    r3 = VipRecord(**{**r2.__dict__, "dips": (A, B)}).with_marks()
    assert r3.marks[B] == first[B]
    assert r3.marks[A] not in first.values()


def test_bucket_table_is_maglev_sized_and_balanced() -> None:
    dips = tuple(ipaddress.ip_address(f"198.51.100.{i}") for i in range(21, 24))
    marks = bucket_marks(rec(dips=dips), 100)
    assert len(marks) == 401
    counts = Counter(marks).values()
    assert max(counts) - min(counts) <= 1


def kernel_after(
    cmds: list[str], kernel: dict[str, dict[str, str]] | None = None
) -> dict[str, dict[str, str]]:
    """A tiny model of what the element/rule commands leave in the kernel."""
    k = {n: dict(v) for n, v in (kernel or {}).items()}
    for c in cmds:
        verb, what, _, _, name = c.split()[:5]
        body = c.split("{", 1)[1].rsplit("}", 1)[0].strip() if "{" in c else ""
        if name.startswith("f"):
            continue  # flow maps: covered by the tracking tests above
        if (verb, what) in (("flush", "chain"), ("flush", "map")):
            k[name] = {}
        elif (verb, what) == ("add", "rule"):
            rules = k.setdefault(name, {})
            rules[str(len(rules))] = c.split(" ", 5)[5]
        elif (verb, what) == ("add", "element") and name[0] in "bd":
            for kv in body.split(", "):
                key, val = kv.split(" : ")
                assert key not in k.setdefault(name, {}), f"{key} exists in {name}"
                k[name][key] = val
        elif (verb, what) == ("delete", "element") and name[0] in "bd":
            for key in body.split(", "):
                del k[name][key]
    return k


@pytest.mark.parametrize("seed", range(30))
def test_incremental_update_ends_where_a_full_render_would(seed: int) -> None:
    rnd = random.Random(seed)
    pool = [ipaddress.ip_address(f"198.51.100.{i}") for i in range(21, 31)]
    old = rec(dips=tuple(rnd.sample(pool, rnd.randint(1, 6))))
    for _ in range(5):
        dips = tuple(rnd.sample(pool, rnd.randint(0, 6)))
        rest = [d for d in pool if d not in dips]
        drain = DrainRecord(tuple(rnd.sample(rest, 1)), 1e12) if rnd.random() < 0.5 else None
        tracking = rnd.random() < 0.7
        transit = (
            TransitRecord(rnd.choice(dips), 1e12)
            if dips and tracking and rnd.random() < 0.4
            else None
        )
        new = VipRecord(
            **{
                **old.__dict__,
                "mode": Mode.MULTI if dips else Mode.EMPTY,
                "dips": dips,
                "flow_tracking": tracking,
                "drain": drain,
                "transit": transit,
                "generation": old.generation + 1,
            }
        ).with_marks()
        incremental = kernel_after(
            render_update(old, new, SPEC), kernel_after(render_vip(old, SPEC))
        )
        full = kernel_after(render_vip(new, SPEC))
        assert incremental == full
        old = new


def test_incremental_update_flushes_flows_only_when_tracking_turns_off() -> None:
    on = rec()
    off = VipRecord(**{**on.__dict__, "flow_tracking": False})
    flush = "flush map netdev lbauto f4_c000020a"
    assert flush in render_update(on, off, SPEC)
    moved = VipRecord(**{**on.__dict__, "dips": (A, C)}).with_marks()
    cmds = render_update(on, moved, SPEC)
    assert flush not in cmds
    assert not any(c.startswith("flush chain") for c in cmds)  # same M, same rules
    assert render_update(on, on, SPEC) == []


# ------------------------------------------------------------------ IPv6 flow state, FIN/RST

D6 = (ipaddress.ip_address("2001:db8:100::21"), ipaddress.ip_address("2001:db8:100::22"))


def _update_keys(rules: list[str]) -> list[str]:
    """The key of every ``update @<map> { key : value }`` (maps only: sets have no value)."""
    out = []
    for r in rules:
        for part in r.split("update @")[1:]:
            body = part.split("{", 1)[1].split("}", 1)[0]
            if " : " in body:
                out.append(body.split(" : ")[0].strip())
    return out


def test_ipv6_map_updates_have_keys_nft_106_stores_correctly() -> None:
    """nft 1.0.6 overwrites the fifth word of a map-update key longer than 16 bytes with the
    value: no IPv6 map update may carry the address; the exact set keeps it, last."""
    rules = chain(rec(address=V6, dips=D6, transit=TransitRecord(D6[0], 1e12)))
    keys = _update_keys(rules)
    assert keys and all("ip6 saddr" not in k.replace("jhash ip6 saddr", "") for k in keys)
    assert all(k.startswith("th sport . th dport . jhash ip6 saddr mod ") for k in keys)
    exact = [r for r in rules if "update @x6_" in r]
    assert exact and all("{ th sport . th dport . meta mark . ip6 saddr" in r for r in exact)
    # a flow counts as found only when the exact set confirms the hint's mark
    found = [r for r in rules if "map @h6_" in r]
    assert found and all("ip6 saddr @x6_" in r for r in found)


def test_ipv6_flow_objects_and_legacy_map_removal() -> None:
    cmds = render_vip(rec(address=V6, dips=D6), SPEC)
    s6 = suffix(V6)
    assert any(c.startswith(f"add map netdev lbauto h{s6} {{ typeof th sport . th dport . numgen")
               for c in cmds)  # fmt: skip
    assert any(c.startswith(f"add set netdev lbauto x{s6} {{ typeof th sport . th dport . meta "
                            "mark . ip6 saddr;") for c in cmds)  # fmt: skip
    flush = cmds.index(f"flush chain netdev lbauto v{s6}")
    drop = cmds.index(f"delete map netdev lbauto f{s6}")
    assert flush < drop  # the old map is deleted only after the chain stopped using it
    gone = render_remove(V6, SPEC)
    assert f"delete map netdev lbauto h{s6}" in gone and f"delete set netdev lbauto x{s6}" in gone


@pytest.mark.parametrize("address", [V4, V6], ids=["ipv4", "ipv6"])
def test_fin_rst_mark_flows_closed_and_a_bare_syn_on_a_closed_flow_chooses_afresh(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    dips = (A, B) if address.version == 4 else D6
    rules = chain(rec(address=address, dips=dips))
    flag = f"0x{CLOSED:08x}"
    reopen = next(i for i, r in enumerate(rules) if r.startswith("tcp flags & (syn | ack | fin"))
    assert f"meta mark & {flag} == {flag}" in rules[reopen] and "delete @" in rules[reopen]
    assert "fwd" not in rules[reopen]  # it falls through to the fresh choice
    close = next(i for i, r in enumerate(rules) if r.startswith("tcp flags & (fin | rst) != 0"))
    assert reopen < close
    assert f"meta mark set meta mark | {flag}" in rules[close]
    assert f"timeout {SPEC.close_timeout}s" in rules[close]
    hashed = [r for r in rules if "map @b" in r and r.startswith("tcp flags & (fin | rst)")]
    assert hashed and f"| {flag}" in hashed[0]  # FIN/RST without state: recorded closing


def test_dip_map_forwards_closing_marks_too() -> None:
    r = rec()
    dmap = next(c for c in render_vip(r, SPEC) if c.startswith("add element netdev lbauto d4_"))
    for d, mk in r.marks.items():
        assert f"{mk} : {d}" in dmap and f"{mk | CLOSED} : {d}" in dmap


def test_delete_flows_adds_each_element_first_so_an_expired_one_cannot_fail() -> None:
    e = FlowEntry("203.0.113.7", 40000, 80, 3, 10.0, closing=True)
    cmds = render_delete_flows(V4, SPEC, [e])
    assert cmds == [
        f"add element netdev lbauto f4_c000020a {{ 40000 . 80 . 203.0.113.7 : {3 | CLOSED} }}",
        "delete element netdev lbauto f4_c000020a { 40000 . 80 . 203.0.113.7 }",
    ]
    e6 = FlowEntry("2001:db8:203::7", 40000, 80, 3, 10.0)
    cmds = render_delete_flows(V6, SPEC, [e6], [HintEntry(40000, 80, 123456, 3)])
    s6 = suffix(V6)
    assert f"delete element netdev lbauto x{s6} {{ 40000 . 80 . 3 . 2001:db8:203::7 }}" in cmds
    assert f"add element netdev lbauto h{s6} {{ 40000 . 80 . 123456 : 3 }}" in cmds
    assert f"delete element netdev lbauto h{s6} {{ 40000 . 80 . 123456 }}" in cmds


def _reg(v: int) -> bytes:
    return v.to_bytes(4, "little" if __import__("sys").byteorder == "little" else "big")


def test_decode_kernel_elements_of_both_families() -> None:
    k4 = bytes([0x9C, 0x41, 0, 0, 0x1F, 0x40, 0, 0, 203, 0, 113, 100])
    k6 = bytes([0x9C, 0x41, 0, 0, 0x1F, 0x40, 0, 0]) + _reg(7 | CLOSED)
    k6 += ipaddress.ip_address("2001:db8:203::100").packed
    assert decode_flows(4, [(k4, _reg(5), 2500)]) == [
        FlowEntry("203.0.113.100", 40001, 8000, 5, 2.5)
    ]
    assert decode_flows(6, [(k6, None, None)]) == [
        FlowEntry("2001:db8:203::100", 40001, 8000, 7, None, closing=True)
    ]
    counts = count_flows(4, [(k4, _reg(5), 2500), (k4, _reg(5 | CLOSED), 9000)], 3000)
    assert counts == {5 | CLOSED: 1}


def test_netlink_set_element_messages_are_decoded() -> None:
    """A NEWSETELEM message as the kernel sends it (nested attributes, NLA_F_NESTED set)."""
    import struct

    from lbauto.agent import flows

    def attr(kind: int, payload: bytes, nested: bool = False) -> bytes:
        n = 4 + len(payload)
        return struct.pack("=HH", n, kind | (0x8000 if nested else 0)) + payload + b"\0" * (-n % 4)

    key = bytes([0x9C, 0x41, 0, 0, 0x1F, 0x40, 0, 0, 203, 0, 113, 100])
    elem = (
        attr(1, attr(1, key), nested=True)
        + attr(2, attr(1, _reg(5)), nested=True)
        + attr(5, struct.pack(">Q", 299_500))
    )
    body = struct.pack("=BBH", 5, 0, 0) + attr(1, b"lbauto\0") + attr(2, b"f4_c000020a\0")
    body += attr(3, attr(1, elem, nested=True) * 2, nested=True)
    out: list[flows.RawElement] = []
    flows._message(body, 0, len(body), out)
    assert out == [(key, _reg(5), 299_500)] * 2
    assert decode_flows(4, out)[0] == FlowEntry("203.0.113.100", 40001, 8000, 5, 299.5)
