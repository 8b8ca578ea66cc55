"""The agent's per-packet rule path (issue 16): few rules and lookups for the common packets,
without changing what any packet gets."""

from __future__ import annotations

import ipaddress

from lbauto.agent.dataplane import TableSpec, bucket_marks, render_chain
from lbauto.agent.store import DrainRecord, TransitRecord, VipRecord
from lbauto.core.model import Mode

SPEC = TableSpec(table="lbauto", interface="eth0")
VIP = ipaddress.ip_address("192.0.2.10")
A, B, C = (ipaddress.ip_address(f"198.51.100.{i}") for i in (21, 22, 23))


def chain(**kw: object) -> list[str]:
    base: dict[str, object] = {
        "address": VIP,
        "mode": Mode.MULTI,
        "dips": (A, B),
        "flow_tracking": True,
        "generation": 1,
    }
    base.update(kw)
    rec = VipRecord(**base).with_marks()  # type: ignore[arg-type]
    return render_chain(rec, SPEC, len(bucket_marks(rec, 100)) or 257)


def test_an_established_open_tcp_packet_is_decided_by_the_first_rule_with_one_lookup() -> None:
    first = chain()[0]
    assert first.startswith("tcp flags & (syn | fin | rst) == 0 ")
    assert first.count("map @f4_") == 1
    assert "meta mark & 0x80000000 == 0 update @f4_" in first
    assert first.endswith('fwd ip to meta mark map @d4_c000020a device "eth0"')


def test_a_single_dip_vip_without_tracking_is_one_fwd() -> None:
    assert chain(mode=Mode.SINGLE, dips=(A,), flow_tracking=False) == [
        f'fwd ip to {A} device "eth0"',
        "drop",
    ]


def test_one_mapped_dip_needs_neither_the_dip_map_nor_the_buckets() -> None:
    rules = chain(dips=(A,))
    assert not any("@d4_" in r or "@b4_" in r for r in rules)
    assert all(r.endswith(f'fwd ip to {A} device "eth0"') for r in rules if "fwd" in r)


def test_a_draining_dip_keeps_the_dip_map() -> None:
    rules = chain(dips=(A,), drain=DrainRecord((B,), 1e12))
    assert all("map @d4_" in r for r in rules if "fwd" in r)


def test_a_transit_pin_still_catches_udp_and_non_openers_before_any_balancing() -> None:
    rules = chain(dips=(A, B), transit=TransitRecord(C, 1e12), drain=DrainRecord((C,), 1e12))
    pin_udp = next(
        i for i, r in enumerate(rules) if r.startswith("meta l4proto udp meta mark set 3")
    )
    balanced = [i for i, r in enumerate(rules) if "jhash ip saddr . th sport" in r]
    # a balancing rule before the pin may only take bare SYNs (a pin holds non-openers)
    assert all(rules[i].startswith("tcp flags & (syn | ack | fin | rst) == syn ")
               for i in balanced if i < pin_udp)  # fmt: skip
    assert not any(r.startswith("meta l4proto udp meta mark set jhash") for r in rules)


def test_without_a_pin_a_new_udp_flow_is_balanced_after_one_miss() -> None:
    rules = chain()
    lookups = [i for i, r in enumerate(rules) if r.startswith("meta l4proto udp")]
    assert len(lookups) == 2
    assert "map @f4_" in rules[lookups[0]]
    assert "jhash" in rules[lookups[1]]
