"""The agent's batch API on a real kernel (agent process, nftables, traffic): many VIPs in one
nft transaction, all or nothing, live connections kept across it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lbauto.agent.dataplane import suffix
from lbauto.agent.protocol import BatchRejectedError, VipChange, VipDelete, VipPut
from lbauto.core.model import Drain, Mode
from lbauto.errors import AgentError
from tests.integration.agent_net import Net, addr, network

pytestmark = pytest.mark.integration

VIPS = [f"192.0.2.{20 + i}" for i in range(20)]
TABLE = ("list", "table", "netdev", "lbauto")


@pytest.fixture
def net() -> Iterator[Net]:
    with network(dips=3, prefix="hba") as n:
        yield n


def put(net: Net, vip: str, names: list[str], **kw: object) -> VipPut:
    mode = Mode.SINGLE if len(names) == 1 else Mode.MULTI
    dips = tuple(addr(net.dip4[n]) for n in names)
    return VipPut(addr(vip), mode, dips, True, **kw)  # type: ignore[arg-type]


def generations(net: Net) -> dict[str, int | None]:
    with net.client() as c:
        return {str(a): v.generation for a, v in c.list_vips().items()}


def test_a_batch_moves_many_vips_at_once_and_keeps_their_connections(net: Net) -> None:
    for v in VIPS:
        net.add_vip(v)
    with net.client() as c:
        c.change_vips([put(net, v, ["d1", "d2", "d3"]) for v in VIPS])
    kernel = net.nft(*TABLE)
    assert all(f"v{suffix(addr(v))}" in kernel for v in VIPS)
    for v in VIPS[:3]:
        net.route(v, "198.51.100.10")
    conns = [net.open_conns(v, 20) for v in VIPS[:3]]
    try:
        # every VIP to d1 alone, d2 and d3 draining: one transaction for the 20 VIPs
        leaving = Drain((addr(net.dip4["d2"]), addr(net.dip4["d3"])), 60.0)
        with net.client() as c:
            out = c.change_vips([put(net, v, ["d1"], drain=leaving) for v in VIPS])
        assert all(x is not None and x.dips == (addr(net.dip4["d1"]),) for x in out)
        for cs in conns:
            cs.probe_for(1.0)
            assert not cs.broken, [x.broken for x in cs.broken]
        assert {str(v) for v in net.short_conns(VIPS[0], 20)} == {"d1"}
        with net.client() as c:
            counts = c.flows_per_dip_many([addr(v) for v in VIPS[:4]])
        for v, cs in zip(VIPS[:3], conns, strict=True):
            per = counts[addr(v)]
            assert per is not None
            for name in ("d2", "d3"):  # the draining DIPs still hold their connections
                assert per.get(addr(net.dip4[name]), 0) == cs.per_dip()[name]
        assert counts[addr(VIPS[3])] == {}
    finally:
        for cs in conns:
            cs.close()
    with net.client() as c:
        c.change_vips([VipDelete(addr(v)) for v in VIPS])
    kernel = net.nft(*TABLE)
    assert not any(f"v{suffix(addr(v))}" in kernel for v in VIPS)


def test_a_bad_entry_changes_nothing_in_the_kernel(net: Net) -> None:
    with net.client() as c:
        c.change_vips([put(net, v, ["d1", "d2"]) for v in VIPS[:5]])
    kernel, gens = net.nft(*TABLE), generations(net)
    state = (net.dir / "state.json").read_bytes()
    bad: list[VipChange] = [put(net, v, ["d3"]) for v in VIPS[:5]]
    bad[3] = VipPut(addr(VIPS[3]), Mode.SINGLE, (addr("2001:db8:100::21"),), True)
    with net.client() as c, pytest.raises(BatchRejectedError) as e:
        c.change_vips([*bad, put(net, VIPS[6], ["d1"])])
    assert [(r.index, r.status) for r in e.value.rejected] == [(3, 400)]
    assert "IPv6" in e.value.rejected[0].detail
    assert net.nft(*TABLE) == kernel
    assert generations(net) == gens and (net.dir / "state.json").read_bytes() == state


def test_a_transaction_the_kernel_refuses_changes_nothing(net: Net) -> None:
    """The kernel itself refuses the batch (an object of the new VIP's name exists with
    another type): the VIPs of the batch that the kernel would take are not changed
    either."""
    with net.client() as c:
        c.change_vips([put(net, v, ["d1", "d2"]) for v in VIPS[:5]])
    poisoned = addr(VIPS[10])
    net.nft("add", "map", "netdev", "lbauto", f"b{suffix(poisoned)}", "{ type ipv4_addr : mark; }")
    kernel, gens = net.nft(*TABLE), generations(net)
    with net.client() as c, pytest.raises(AgentError, match="data plane error") as e:
        c.change_vips([*(put(net, v, ["d3"]) for v in VIPS[:5]), put(net, str(poisoned), ["d1"])])
    assert e.value.status == 500
    assert net.nft(*TABLE) == kernel
    assert generations(net) == gens
    net.nft("delete", "map", "netdev", "lbauto", f"b{suffix(poisoned)}")
    with net.client() as c:
        c.change_vips([*(put(net, v, ["d3"]) for v in VIPS[:5]), put(net, str(poisoned), ["d1"])])
    assert set(generations(net)) == {*VIPS[:5], str(poisoned)}
