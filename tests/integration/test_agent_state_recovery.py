"""A broken or missing agent state file is not an outage (issue 11, item 5).

Real agent process in a namespace, real nftables, live TCP connections through it. The state
file is damaged for real on disk (bytes flipped, cut short, replaced, removed) while the agent
is down (kill -9); the agent restarts, must leave the kernel's VIPs exactly as they are, break
no connection, serve the VIPs it read back, report itself degraded, and become healthy once
``apply`` (here: the PUTs it would send) has rewritten every VIP.

Control (the agent before this change): the damaged file made it refuse to start, and with
the file removed it started empty and deleted every kernel VIP (all connections broke).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lbauto.agent.store import StateStore
from lbauto.core.model import Drain, Mode, Transit
from tests.integration.agent_net import Net, addr, network

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VIP_A, VIP_B, VIP_C, VIP_D = "192.0.2.10", "192.0.2.11", "2001:db8:10::12", "192.0.2.13"


def _flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    i = len(data) // 2
    data[i] = ord("7") if data[i] != ord("7") else ord("8")
    p.write_bytes(bytes(data))


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3])


def _garbage(p: Path) -> None:
    p.write_bytes(b"\x00\xff not json at all \xfe" * 10)


def _remove(p: Path) -> None:
    p.unlink()


def _remove_both(p: Path) -> None:
    p.unlink()
    p.with_name(p.name + ".prev").unlink(missing_ok=True)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "one byte changed": _flip,
    "cut short": _truncate,
    "garbage": _garbage,
    "removed": _remove,
    "removed with its previous copy": _remove_both,
}


@pytest.fixture
def net() -> Iterator[Net]:
    with network(dips=3, prefix="ah") as n:
        yield n


def _setup(net: Net) -> None:
    for v in (VIP_A, VIP_B, VIP_C, VIP_D):
        net.add_vip(v)
    d4, d6 = net.dip4, net.dip6
    with net.client() as c:
        c.put_vip(addr(VIP_A), mode=Mode.MULTI, dips=[addr(d4[n]) for n in ("d1", "d2", "d3")],
                  flow_tracking=True, name="web")  # fmt: skip
        c.put_vip(addr(VIP_B), mode=Mode.SINGLE, dips=[addr(d4["d2"])], flow_tracking=False)
        c.put_vip(addr(VIP_C), mode=Mode.MULTI, dips=[addr(d6["d1"]), addr(d6["d3"])],
                  flow_tracking=True)  # fmt: skip
        # one DIP, tracking on, a transit pin and a drain: the shapes a transition leaves
        c.put_vip(addr(VIP_D), mode=Mode.MULTI, dips=[addr(d4["d1"]), addr(d4["d2"])],
                  flow_tracking=True)  # fmt: skip
        pin, drain = Transit(addr(d4["d2"]), 600), Drain((addr(d4["d2"]),), 600)
        c.put_vip(addr(VIP_D), mode=Mode.SINGLE, dips=[addr(d4["d1"])], flow_tracking=True,
                  transit=pin, drain=drain)  # fmt: skip
    for v in (VIP_A, VIP_B, VIP_D):
        net.route(v, "198.51.100.10")
    net.route(VIP_C, "2001:db8:100::10")


def _vip_objects(net: Net) -> str:
    """Every VIP object of the table as nft prints it, without counters and flow entries."""
    text = net.nft("-t", "list", "table", "netdev", "lbauto")  # -t: no set elements
    out = [re.sub(r"counter packets \d+ bytes \d+", "counter", text)]
    for name in re.findall(r"map ([bd][46]_[0-9a-f]+) ", text):
        out.append(net.nft("list", "map", "netdev", "lbauto", name))
    vmaps = [net.nft("list", "map", "netdev", "lbauto", f"vips{v}") for v in "46"]
    out += [re.sub(r"counter packets \d+ bytes \d+ ", "", m) for m in vmaps]
    return "\n".join(out)


def _view(net: Net) -> dict[str, tuple[object, ...]]:
    with net.client() as c:
        vips = c.list_vips()
    return {
        str(a): (v.mode, v.dips, v.flow_tracking, v.generation, v.name,
                 v.transit.dip if v.transit else None, v.drain.dips if v.drain else None)
        for a, v in vips.items()
    }  # fmt: skip


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_damaged_state_file_breaks_no_connection_and_recovers_every_vip(
    net: Net, damage: str
) -> None:
    _setup(net)
    conns = net.open_conns(VIP_A, 60)
    conns6 = net.open_conns(VIP_C, 20)
    try:
        before = _view(net)
        with net.client() as c:
            flows_before = c.flows(addr(VIP_A))
        kernel_before = _vip_objects(net)
        state = net.dir / "state.json"
        net.stop_agent(kill=True)
        DAMAGE[damage](state)
        net.start_agent()

        conns.probe_for(1.5)
        conns6.probe_for(0.5)
        assert not conns.broken and not conns6.broken
        assert _vip_objects(net) == kernel_before  # no VIP object was touched
        assert _view(net) == before  # generation, mode, name, pin, drain: all read back
        with net.client() as c:
            assert c.flows(addr(VIP_A)).per_dip == flows_before.per_dip
        assert net.short_conns(VIP_B, 5) == {"d2": 5}

        # degraded, with the reason only for a client with the token
        assert httpx.get(f"{net.api}/v1/health").json() == {"status": "degraded"}
        with net.client() as c:
            health = c.health()
            # every recovered VIP carries the mark that makes `apply` send it again
            assert {a for a, v in c.list_vips().items() if v.needs_resend} == {
                addr(v) for v in before
            }
        assert health["status"] == "degraded"
        assert (
            "state file" in health["problems"][0] and "recovered 4 VIP(s)" in health["problems"][0]
        )
        assert StateStore(state).load().keys() == {addr(v) for v in before}  # rewritten, valid
        if damage not in ("removed", "removed with its previous copy"):
            assert (net.dir / "state.json.corrupt").exists()  # kept for the operator

        # apply rewrites the VIPs (same content): healthy again, nothing broken
        d4, d6 = net.dip4, net.dip6
        with net.client() as c:
            c.put_vip(addr(VIP_A), mode=Mode.MULTI, flow_tracking=True, name="web",
                      dips=[addr(d4[n]) for n in ("d1", "d2", "d3")])  # fmt: skip
            c.put_vip(addr(VIP_B), mode=Mode.SINGLE, dips=[addr(d4["d2"])], flow_tracking=False)
            c.put_vip(addr(VIP_C), mode=Mode.MULTI, dips=[addr(d6["d1"]), addr(d6["d3"])],
                      flow_tracking=True)  # fmt: skip
            assert c.health()["status"] == "degraded"  # one VIP not rewritten yet
            c.delete_vip(addr(VIP_D))
            health = c.health()
            assert (health["status"], health["vips"], health["problems"]) == ("ok", 3, [])
            assert not any(v.needs_resend for v in c.list_vips().values())
        conns.probe_for(0.5)
        conns6.probe_for(0.5)
        assert not conns.broken and not conns6.broken

        # a plain restart afterwards: healthy, same VIPs
        net.stop_agent()
        net.start_agent()
        assert httpx.get(f"{net.api}/v1/health").json() == {"status": "ok"}
        assert set(_view(net)) == {VIP_A, VIP_B, VIP_C}
        conns.probe_for(0.5)
        assert not conns.broken
    finally:
        conns.close()
        conns6.close()


def test_state_file_has_a_checksum_and_a_previous_copy(net: Net) -> None:
    _setup(net)
    state = net.dir / "state.json"
    header = json.loads(state.read_bytes().split(b"\n", 1)[0])
    assert header["version"] == 2 and len(header["sha256"]) == 64
    prev = state.with_name("state.json.prev")
    assert StateStore(prev).load().keys() <= StateStore(state).load().keys()
    assert prev.read_bytes() != state.read_bytes()
    # previous copy only: after a reboot (empty kernel) with a damaged file, the agent
    # rebuilds the VIPs from it and says so
    net.stop_agent(kill=True)
    net.nft("delete", "table", "netdev", "lbauto")
    _garbage(state)
    net.start_agent()
    with net.client() as c:
        health = c.health()
        vips = c.list_vips()
    assert health["status"] == "degraded" and "previous copy" in health["problems"][0]
    assert set(vips) == {addr(v) for v in (VIP_A, VIP_B, VIP_C, VIP_D)}
    assert net.short_conns(VIP_B, 3) == {"d2": 3}
