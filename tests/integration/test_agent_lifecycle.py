"""Agent restarts and per-VIP isolation, under real traffic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lbauto.agent.dataplane import LibNftDataplane
from lbauto.core.model import Mode
from lbauto.errors import AgentError
from tests.integration.agent_net import Net, addr, in_netns, network

pytestmark = pytest.mark.integration

VIP_A, VIP_B, VIP_C = "192.0.2.10", "192.0.2.11", "2001:db8:10::12"


@pytest.fixture
def net() -> Iterator[Net]:
    with network(dips=3, prefix="ah") as n:
        yield n


def multi(net: Net, vip: str, names: list[str], tracking: bool = True) -> None:
    table = net.dip6 if ":" in vip else net.dip4
    with net.client() as c:
        c.put_vip(
            addr(vip),
            mode=Mode.MULTI if len(names) > 1 else Mode.SINGLE,
            dips=[addr(table[n]) for n in names],
            flow_tracking=tracking,
        )
    net.route(vip, "2001:db8:100::10" if ":" in vip else "198.51.100.10")


def test_kill_9_under_traffic_breaks_nothing_and_restart_restores_everything(net: Net) -> None:
    for v in (VIP_A, VIP_B, VIP_C):
        net.add_vip(v)
    multi(net, VIP_A, ["d1", "d2", "d3"])
    multi(net, VIP_B, ["d2"], tracking=False)
    multi(net, VIP_C, ["d1", "d3"])
    conns = net.open_conns(VIP_A, 100)
    conns6 = net.open_conns(VIP_C, 20)
    try:
        with net.client() as c:
            before = c.list_vips()
            flows_before = c.flows(addr(VIP_A))
        assert flows_before.total == 100
        net.stop_agent(kill=True)  # SIGKILL: no cleanup at all
        conns.probe_for(1.5)
        conns6.probe_for(0.5)
        assert not conns.broken and not conns6.broken
        assert net.short_conns(VIP_B, 5) == {"d2": 5}  # still forwarded by the kernel
        net.start_agent()
        with net.client() as c:
            after = c.list_vips()
            flows_after = c.flows(addr(VIP_A))
        assert {a: (v.generation, v.dips, v.mode, v.flow_tracking) for a, v in after.items()} == {
            a: (v.generation, v.dips, v.mode, v.flow_tracking) for a, v in before.items()
        }
        assert flows_after.total >= 100
        assert flows_after.per_dip == flows_before.per_dip
        conns.probe_for(1.0)
        assert not conns.broken
        assert set(net.short_conns(VIP_A, 30)) <= {"d1", "d2", "d3"}
    finally:
        conns.close()
        conns6.close()


def test_updating_or_removing_one_vip_keeps_other_vips_flows(net: Net) -> None:
    for v in (VIP_A, VIP_B):
        net.add_vip(v)
    multi(net, VIP_A, ["d1", "d2", "d3"])
    conns = net.open_conns(VIP_A, 60)
    try:
        with net.client() as c:
            n_a = c.flows(addr(VIP_A)).total
            assert n_a == 60
            multi(net, VIP_B, ["d1", "d2"])
            assert net.short_conns(VIP_B, 20).total() == 20
            assert c.flows(addr(VIP_B)).total == 20
            # B: rebalance, tracking off (flushes B), back on, then delete
            multi(net, VIP_B, ["d3"])
            multi(net, VIP_B, ["d3"], tracking=False)
            assert c.flows(addr(VIP_B)).total == 0
            multi(net, VIP_B, ["d1", "d3"])
            assert c.flows(addr(VIP_A)).total == n_a
            c.delete_vip(addr(VIP_B))
            assert c.flows(addr(VIP_A)).total == n_a
        conns.probe_for(1.0)
        assert not conns.broken
    finally:
        conns.close()


def test_restart_removes_kernel_vips_unknown_to_the_state_file(net: Net) -> None:
    net.add_vip(VIP_A)
    multi(net, VIP_A, ["d1"])
    net.stop_agent()
    (net.dir / "state.json").write_text('{"version": 1, "vips": []}')
    net.start_agent()
    out = net.nft("list", "table", "netdev", "lbauto")
    assert "c000020a" not in out
    assert "vips4" in out


def test_in_process_nft_applies_atomically_and_reports_errors(net: Net) -> None:
    def run() -> tuple[str, bool]:
        dp = LibNftDataplane()
        dp.apply(["add table netdev lbatest", "add chain netdev lbatest c"])
        with pytest.raises(AgentError, match="No such file or directory") as e:
            # one transaction: the chain is not created because the rule fails
            dp.apply(["add chain netdev lbatest d", "add rule netdev lbatest nochain drop"])
        return str(e.value), dp.kernel_table("lbatest").exists

    message, exists = in_netns(net.ns_agt, run)
    assert "nft transaction failed" in message and exists
    chains = net.nft("list", "chains", "netdev")
    assert "chain c " in chains and "chain d " not in chains
