"""Every object lbauto writes can be read back from the kernel (lbauto.agent.recover).

Real nftables in a namespace: VIP records of every shape are rendered and applied exactly as
the agent applies them, then read back with ``nft -j list table`` and compared field by field.
A table written without the metadata sets (an older agent) still gives back the data plane
(DIPs, marks, tracking, pin, drain); only generation, name and the mode of a one-DIP VIP are
guessed, and said to be.
"""

from __future__ import annotations

import ipaddress
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import replace

import pytest

from lbauto.agent.dataplane import NftDataplane, TableSpec, render_base, render_vip
from lbauto.agent.recover import read_table, recover, render_meta, render_meta_base
from lbauto.agent.store import DrainRecord, TransitRecord, VipRecord
from lbauto.core.model import IPAddress, Mode

pytestmark = pytest.mark.integration

NOW = 1_900_000_000.0


def a(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def rec(vip: str, mode: Mode, dips: list[str], tracking: bool, gen: int, **kw: object) -> VipRecord:
    r = VipRecord(a(vip), mode, tuple(a(d) for d in dips), tracking, gen, **kw)  # type: ignore[arg-type]
    return r.with_marks()


RECORDS = [
    rec("192.0.2.10", Mode.MULTI, ["198.51.100.21", "198.51.100.22", "198.51.100.23"], True, 5,
        name="web"),
    rec("192.0.2.11", Mode.SINGLE, ["198.51.100.22"], False, 2),
    rec("192.0.2.12", Mode.SINGLE, ["198.51.100.21"], True, 3, name="half-way"),
    rec("192.0.2.13", Mode.MULTI, ["198.51.100.21"], True, 9,
        transit=TransitRecord(a("198.51.100.22"), NOW + 60),
        drain=DrainRecord((a("198.51.100.22"), a("198.51.100.23")), NOW + 30)),
    rec("192.0.2.14", Mode.EMPTY, [], False, 4),
    rec("2001:db8:10::10", Mode.MULTI, ["2001:db8:100::21", "2001:db8:100::22"], True, 7,
        transit=TransitRecord(a("2001:db8:100::21"), NOW + 45)),
    rec("2001:db8:10::11", Mode.SINGLE, ["2001:db8:100::23"], False, 1),
]  # fmt: skip


@pytest.fixture
def ns() -> Iterator[str]:
    name = "ah-rec-" + secrets.token_hex(2)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name",
                        "eth1"], check=True)  # fmt: skip
        subprocess.run(["ip", "-n", name, "link", "set", "eth0", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _write(ns: str, spec: TableSpec, meta: bool) -> list[str]:
    argv = ["ip", "netns", "exec", ns, "nft"]
    cmds = render_base(spec) + (render_meta_base(spec) if meta else [])
    for r in RECORDS:
        cmds += render_vip(r, spec) + (render_meta(r, spec) if meta else [])
    NftDataplane(argv).apply(cmds)
    return argv


def test_every_vip_shape_reads_back_exactly(ns: str) -> None:
    spec = TableSpec("lbauto", "eth0")
    argv = _write(ns, spec, meta=True)
    found = recover(read_table(argv, spec.table), spec, now=NOW)
    assert found.guessed == ()
    want = {r.address: replace(r, request="") for r in RECORDS}
    assert found.vips == want


def test_without_metadata_the_data_plane_still_reads_back(ns: str) -> None:
    spec = TableSpec("lbauto", "eth0")
    argv = _write(ns, spec, meta=False)
    found = recover(read_table(argv, spec.table), spec, now=NOW)
    assert set(found.guessed) == {r.address for r in RECORDS}
    for r in RECORDS:
        got = found.vips[r.address]
        assert (got.dips, got.marks, got.flow_tracking) == (r.dips, r.marks, r.flow_tracking)
        assert (got.transit.dip if got.transit else None) == (r.transit.dip if r.transit else None)
        assert (got.drain.dips if got.drain else None) == (r.drain.dips if r.drain else None)
        assert got.next_mark >= r.next_mark and got.generation == 1 and got.name is None
    guessed = {str(v.address): v.mode for v in found.vips.values()}
    # a one-DIP VIP with tracking on is ambiguous without metadata: multi is the safe guess
    # (an orchestrator's next PUT says which); every other shape has one reading
    assert guessed["192.0.2.12"] is Mode.MULTI
    assert {k: m for k, m in guessed.items() if k != "192.0.2.12"} == {
        str(r.address): r.mode for r in RECORDS if str(r.address) != "192.0.2.12"
    }


def test_no_table_reads_as_nothing(ns: str) -> None:
    argv = ["ip", "netns", "exec", ns, "nft"]
    assert read_table(argv, "lbauto") == []
