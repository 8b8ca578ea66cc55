"""One address policy for the inventory loader and the agent API (lbauto.core.addresses):
each class of unusable address is refused by both, with the same reason, and both refuse more
DIPs than an agent accepts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lbauto.agent.api import create_app
from lbauto.agent.dataplane import RecordingDataplane, TableSpec
from lbauto.agent.service import AgentService
from lbauto.agent.store import StateStore
from lbauto.core.addresses import MAX_DIPS, parse_address
from lbauto.errors import InventoryError
from lbauto.inventory import load_inventory

TOKEN = "policy-test-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VIP4, VIP6 = "192.0.2.10", "2001:db8:10::10"

#: (class, address, reason) for every address class refused as VIP or DIP.
REFUSED: list[tuple[str, str, str]] = [
    ("IPv4 unspecified", "0.0.0.0", "unspecified"),
    ("IPv4 loopback", "127.0.0.1", "loopback"),
    ("IPv4 multicast", "224.0.0.5", "multicast"),
    ("IPv4 link-local", "169.254.1.1", "link-local"),
    ("IPv4 broadcast", "255.255.255.255", "broadcast"),
    ("IPv6 unspecified", "::", "unspecified"),
    ("IPv6 loopback", "::1", "loopback"),
    ("IPv6 multicast", "ff02::1", "multicast"),
    ("IPv6 link-local", "fe80::1", "link-local"),
    ("IPv4-mapped loopback", "::ffff:127.0.0.1", "IPv4-mapped IPv6 address of a loopback"),
    ("IPv4-mapped multicast", "::ffff:224.0.0.1", "IPv4-mapped IPv6 address of a multicast"),
    ("IPv4-mapped unicast", "::ffff:198.51.100.21", "IPv4-mapped IPv6 address"),
    ("scoped link-local", "fe80::1%eth0", "%scope"),
    ("scoped global", "2001:db8::21%eth0", "%scope"),
    ("network", "198.51.100.0/24", "network"),
    ("not an address", "198.51.100.300", "not a valid"),
    ("huge text", "1" * 5000, "not a valid"),
]
IDS = [r[0] for r in REFUSED]
AGENTS = """\
agents:
  - name: lb1
    api: https://lb1.example.net:8443
    address: 198.51.100.10
    address6: 2001:db8:100::10
    token_env: LBAUTO_TOKEN_LB1
"""


def write(root: Path, vips: str) -> None:
    (root / "agents.yaml").write_text(AGENTS)
    (root / "vips.yaml").write_text(vips)


def problems_of(root: Path) -> list[str]:
    with pytest.raises(InventoryError) as info:
        load_inventory(root)
    return info.value.problems


def _vip_for(address: str) -> str:
    return VIP4 if "." in address and ":" not in address else VIP6


@pytest.mark.parametrize(("address", "reason"), [r[1:] for r in REFUSED], ids=IDS)
def test_policy_refuses_the_class(address: str, reason: str) -> None:
    result = parse_address(address)
    assert isinstance(result, str) and reason in result


@pytest.mark.parametrize(("address", "reason"), [r[1:] for r in REFUSED], ids=IDS)
def test_inventory_refuses_the_class_as_dip_and_vip(
    tmp_path: Path, address: str, reason: str
) -> None:
    vip = _vip_for(address)
    dip = "198.51.100.21" if vip == VIP4 else "2001:db8:100::21"
    write(tmp_path, vips=f"vips:\n  - name: web\n    address: {vip}\n    dips: ['{address}']\n")
    assert any(reason in p and "DIP" in p for p in problems_of(tmp_path)), address
    write(tmp_path, vips=f"vips:\n  - name: web\n    address: '{address}'\n    dips: [{dip}]\n")
    assert any(reason in p and "VIP" in p for p in problems_of(tmp_path)), address


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    svc = AgentService(
        TableSpec("lbauto", "eth0"), RecordingDataplane(), StateStore(tmp_path / "s")
    )
    with TestClient(create_app(svc, TOKEN)) as c:
        yield c


def _put(api: TestClient, vip: str, dips: list[str]) -> Any:
    body = {"mode": "multi", "dips": dips, "flow_tracking": True}
    return api.put(f"/v1/vips/{vip.replace('%', '%25')}", json=body, headers=AUTH)


@pytest.mark.parametrize(("address", "reason"), [r[1:] for r in REFUSED], ids=IDS)
def test_agent_refuses_the_class_as_dip_and_vip(api: TestClient, address: str, reason: str) -> None:
    vip = _vip_for(address)
    dip = "198.51.100.21" if vip == VIP4 else "2001:db8:100::21"
    r = _put(api, vip, [address])
    assert r.status_code in (400, 422) and reason in r.text, r.text[:300]
    if "/" not in address:  # a slash is another path, not a VIP
        r = _put(api, address, [dip])
        assert r.status_code in (400, 404, 422), r.text[:300]
        if r.status_code != 404:
            assert reason in r.text or "not a valid" in r.text, r.text[:300]
    assert api.get("/v1/vips", headers=AUTH).json()["vips"] == []


@pytest.mark.parametrize("address", ["198.51.100.21", "2001:db8:100::21", "203.0.113.255"])
def test_both_accept_unicast_addresses(tmp_path: Path, api: TestClient, address: str) -> None:
    vip = _vip_for(address)
    assert not isinstance(parse_address(address), str)
    assert _put(api, vip, [address]).status_code == 201


def test_more_dips_than_an_agent_accepts_is_refused_by_both(
    tmp_path: Path, api: TestClient
) -> None:
    dips = [f"2001:db8:100::{i:x}" for i in range(1, MAX_DIPS + 2)]
    items = "".join(f"      - '{d}'\n" for d in dips)
    write(tmp_path, vips=f"vips:\n  - name: web\n    address: {VIP6}\n    dips:\n{items}")
    assert any(f"more than an agent accepts ({MAX_DIPS})" in p for p in problems_of(tmp_path))
    assert _put(api, VIP6, dips).status_code == 422
    assert _put(api, VIP6, dips[:MAX_DIPS]).status_code == 201
    write(
        tmp_path,
        vips=f"vips:\n  - name: web\n    address: {VIP6}\n    dips:\n"
        + items[: -len(items.splitlines()[-1]) - 1],
    )
    assert load_inventory(tmp_path).vips[0].dips[-1] == parse_address(dips[MAX_DIPS - 1])
