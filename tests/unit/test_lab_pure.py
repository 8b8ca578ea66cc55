"""The lab's pure parts: spec checks, address plan, the inventory it writes, state and clashes.

No root, no namespaces: everything here is derived from ``(spec, index, state_dir)``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lbauto.core.model import Method
from lbauto.errors import LabError
from lbauto.inventory import load_inventory
from lbauto.lab import inventory as lab_inventory
from lbauto.lab import state
from lbauto.lab.spec import (
    BR_CLIENT,
    BR_SERVER,
    IF_CLIENT,
    IF_MGMT,
    IF_SERVER,
    MAX_AGENTS,
    MAX_DIPS,
    MAX_INDEX,
    MAX_ROUTERS,
    LabSpec,
    Layout,
    layout,
    mgmt_net,
)

IFNAMSIZ = 15  # Linux interface names: at most 15 characters


def v4(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(text)


# ------------------------------------------------------------------------------------ spec


@pytest.mark.parametrize(
    "name", ["", "Lab", "1lab", "a-b", "lab_1", "abcdefghi", "läb", "lab\n", "lab;x"]
)
def test_validate_refuses_unusable_names(name: str) -> None:
    with pytest.raises(LabError, match="is not usable"):
        LabSpec(name=name).validate()


@pytest.mark.parametrize(
    ("changes", "what"),
    [
        ({"routers": 0}, "routers must be between 1 and"),
        ({"routers": MAX_ROUTERS + 1}, "routers must be between 1 and"),
        ({"agents": 0}, "agents must be between 1 and"),
        ({"agents": MAX_AGENTS + 1}, "agents must be between 1 and"),
        ({"dips": 0}, "dips must be between 1 and"),
        ({"dips": MAX_DIPS + 1}, "dips must be between 1 and"),
        ({"method": "bgp"}, "method must be static or pbr"),
        ({"index": -1}, "index must be between 0 and"),
        ({"index": MAX_INDEX + 1}, "index must be between 0 and"),
    ],
)
def test_validate_refuses_out_of_range(changes: dict[str, object], what: str) -> None:
    spec = LabSpec(name="t1", **changes)  # type: ignore[arg-type]
    with pytest.raises(LabError, match=what):
        spec.validate()


def test_validate_accepts_the_limits() -> None:
    LabSpec().validate()
    LabSpec(name="a", routers=1, agents=1, dips=1, method="pbr", index=0).validate()
    big = LabSpec("abcdefgh", MAX_ROUTERS, MAX_AGENTS, MAX_DIPS, "static", index=MAX_INDEX)
    big.validate()


def test_same_shape_ignores_start_flag_and_index() -> None:
    spec = LabSpec(name="t1", routers=2)
    assert spec.same_shape(LabSpec(name="t1", routers=2, start_agents=True, index=7))
    assert not spec.same_shape(LabSpec(name="t1", routers=1))
    assert not spec.same_shape(LabSpec(name="t1", routers=2, method="pbr"))


# ------------------------------------------------------------------------------------ layout


@pytest.fixture
def lay(tmp_path: Path) -> Layout:
    return layout(LabSpec(name="t1", routers=2, agents=2, dips=3), 5, tmp_path / "t1")


def test_address_plan(lay: Layout) -> None:
    assert mgmt_net(5) == ipaddress.IPv4Network("198.18.5.0/24")
    assert lay.mgmt_gateway == v4("198.18.5.1")
    assert [r.server_ip for r in lay.routers] == [v4("198.51.100.1"), v4("198.51.100.2")]
    assert [str(r.server_ip6) for r in lay.routers] == ["2001:db8:100::1", "2001:db8:100::2"]
    assert [r.client_ip for r in lay.routers] == [v4("203.0.113.1"), v4("203.0.113.2")]
    assert [r.mgmt_ip for r in lay.routers] == [v4("198.18.5.11"), v4("198.18.5.12")]
    assert [a.address for a in lay.agents] == [v4("198.51.100.10"), v4("198.51.100.11")]
    assert [str(a.address6) for a in lay.agents] == ["2001:db8:100::10", "2001:db8:100::11"]
    assert [a.mgmt_ip for a in lay.agents] == [v4("198.18.5.21"), v4("198.18.5.22")]
    assert lay.agents[0].api_url == "http://198.18.5.21:8080"
    assert [str(d.address) for d in lay.dips] == [f"198.51.100.{h}" for h in (21, 22, 23)]
    assert [str(d.address6) for d in lay.dips] == [f"2001:db8:100::{h}" for h in (21, 22, 23)]
    assert lay.client.address == v4("203.0.113.100")
    assert str(lay.client.address6) == "2001:db8:203::100"


def test_member_names_and_files(lay: Layout, tmp_path: Path) -> None:
    assert [r.name for r in lay.routers] == ["r1", "r2"]
    assert [r.netns for r in lay.routers] == ["t1-r1", "t1-r2"]
    assert [r.pathspace for r in lay.routers] == ["t1-r1", "t1-r2"]
    assert {r.ingress for r in lay.routers} == {IF_CLIENT}
    assert [a.netns for a in lay.agents] == ["t1-a1", "t1-a2"]
    assert [d.netns for d in lay.dips] == ["t1-d1", "t1-d2", "t1-d3"]
    assert lay.client.netns == "t1-c"
    assert lay.mgmt_bridge == "t1-mgmt"
    assert lay.namespaces[-1] == lay.switch_netns == "t1-sw"
    assert len(set(lay.namespaces)) == len(lay.namespaces) == 2 + 2 + 3 + 1 + 1
    assert all(ns.startswith("t1-") for ns in lay.namespaces)
    base = tmp_path / "t1"
    assert lay.key_file == base / "id_ed25519" == lay.routers[0].key_file
    assert lay.inventory_dir == base / "inventory"
    assert lay.agents[1].config_file == base / "a2" / "agent.yaml"
    assert lay.routers[1].dir == base / "r2"


def test_the_largest_lab_keeps_names_short_and_addresses_apart(tmp_path: Path) -> None:
    spec = LabSpec("abcdefgh", MAX_ROUTERS, MAX_AGENTS, MAX_DIPS, index=MAX_INDEX)
    big = layout(spec, MAX_INDEX, tmp_path)
    # Every interface name the topology creates: the root namespace's management bridge and
    # veths (``<name>-m<member>``), the switch's bridges and ports, and in-namespace names.
    members = [r.name for r in big.routers] + [a.name for a in big.agents]
    names = [big.mgmt_bridge] + [f"{spec.name}-m{m}" for m in members]
    names += [BR_SERVER, BR_CLIENT, IF_SERVER, IF_CLIENT, IF_MGMT, "c"]
    names += [f"{r.name}{side}" for r in big.routers for side in "sc"]
    names += [a.name for a in big.agents] + [d.name for d in big.dips]
    too_long = [n for n in names if len(n) > IFNAMSIZ]
    assert not too_long
    server = [r.server_ip for r in big.routers] + [a.address for a in big.agents]
    server += [d.address for d in big.dips]
    assert len(set(server)) == len(server)
    assert all(a in ipaddress.IPv4Network("198.51.100.0/24") for a in server)
    server6 = [r.server_ip6 for r in big.routers] + [a.address6 for a in big.agents]
    server6 += [d.address6 for d in big.dips]
    assert len(set(server6)) == len(server6)
    mgmt = [r.mgmt_ip for r in big.routers] + [a.mgmt_ip for a in big.agents]
    mgmt.append(big.mgmt_gateway)
    assert len(set(mgmt)) == len(mgmt)
    assert all(a in ipaddress.IPv4Network(f"198.18.{MAX_INDEX}.0/24") for a in mgmt)


# ------------------------------------------------------------------------------------ inventory


@pytest.mark.parametrize("method", ["static", "pbr"])
def test_written_inventory_loads(tmp_path: Path, method: str) -> None:
    lay = layout(LabSpec(name="t1", routers=2, agents=2, dips=3, method=method), 5, tmp_path)
    directory = lab_inventory.write(lay)
    assert directory == lay.inventory_dir
    inv = load_inventory(directory)

    assert [r.name for r in inv.routers] == ["r1", "r2"]
    r1 = inv.routers[0]
    assert (r1.hostname, r1.port, r1.username) == ("198.18.5.11", 22, "root")
    assert r1.platform == "frr"
    assert r1.method is Method(method)
    assert r1.ingress == (IF_CLIENT,)
    assert r1.password_env is None
    assert r1.optional_args["key_file"] == str(lay.key_file)
    assert r1.optional_args["pathspace"] == "t1-r1"

    assert [a.name for a in inv.agents] == ["a1", "a2"]
    a2 = inv.agents[1]
    assert a2.api == "http://198.18.5.22:8080"
    assert a2.address == v4("198.51.100.11")
    assert str(a2.address6) == "2001:db8:100::11"
    assert a2.token_file == lay.agents[1].token_file

    vips = {v.name: v for v in inv.vips}
    assert set(vips) == {"web", "api", "v6web"}
    assert vips["web"].address == v4("192.0.2.10")
    assert vips["web"].dips == tuple(d.address for d in lay.dips)
    assert vips["api"].dips == (lay.dips[0].address,)
    assert vips["v6web"].dips == tuple(d.address6 for d in lay.dips[:2])


def test_written_inventory_loads_with_one_dip(tmp_path: Path) -> None:
    lay = layout(LabSpec(name="t1", dips=1), 0, tmp_path)
    inv = load_inventory(lab_inventory.write(lay))
    assert {v.name: len(v.dips) for v in inv.vips} == {"web": 1, "api": 1, "v6web": 1}


# ------------------------------------------------------------------------------------ state


def test_clash_with_host_networks() -> None:
    def net(text: str, dev: str) -> state.HostNet:
        return state.HostNet(ipaddress.IPv4Network(text), f"address {text} on {dev}", dev)

    host = [net("10.0.0.0/8", "eth0"), net("198.18.0.0/16", "wg0"), net("198.18.7.0/24", "t1-mgmt")]
    assert state.clash(5, host[:1], "t1-mgmt") is None
    reason = state.clash(5, host, "t1-mgmt")
    assert reason == "address 198.18.0.0/16 on wg0 overlaps the lab management subnet 198.18.5.0/24"
    # The lab's own bridge (``up`` again on a running lab) is not a clash; another lab's is.
    assert state.clash(7, [host[2]], "t1-mgmt") is None
    assert state.clash(7, [host[2]], "t2-mgmt") is not None


def test_state_file_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LBAUTO_LAB_DIR", str(tmp_path))
    assert state.read_state("t1") is None
    spec = LabSpec(name="t1", routers=2, method="pbr", index=3)
    state.write_state("t1", spec, 3, state.PHASE_BUILDING)
    state.write_state("t2", LabSpec(name="t2"), 4, state.PHASE_UP)
    data = state.read_state("t1")
    assert data is not None
    assert state.spec_from_state(data) == (spec, 3, state.PHASE_BUILDING)
    assert state.used_indexes() == {3: "t1", 4: "t2"}

    (tmp_path / "t2" / state.STATE_FILE).write_text("[1, 2]")
    with pytest.raises(LabError, match="not a JSON object"):
        state.read_state("t2")
    with pytest.raises(LabError, match="malformed"):
        state.spec_from_state({"name": "t3", "spec": {"name": "t3"}})
