"""The agent's BGP speaker: its config section and the FRR text it renders (pure; the daemons
themselves run in tests/integration/test_pool_failover.py)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lbauto.agent.api import create_app
from lbauto.agent.bgp import render_announce, render_bfdd, render_bgpd
from lbauto.agent.config import BgpConfig, ConfigError, load_config
from lbauto.agent.dataplane import RecordingDataplane, TableSpec
from lbauto.agent.models import BgpStatus
from lbauto.agent.service import AgentService
from lbauto.agent.store import StateStore
from lbauto.lab.spec import LabSpec

BASE = "interface: srv\ninsecure_no_auth: true\n"
BGP = (
    "bgp:\n"
    "  asn: 64510\n"
    "  router_id: 198.51.100.10\n"
    "  address6: 2001:db8:100::10\n"
    "  neighbors:\n"
    "    - {address: 198.51.100.1, remote_asn: 64500}\n"
    "    - {address: 198.51.100.2, remote_asn: 64500}\n"
)


def _cfg(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(BASE + text)
    return path


def _bgp(tmp_path: Path, extra: str = "") -> BgpConfig:
    cfg = load_config(_cfg(tmp_path, BGP + extra))
    assert cfg.bgp is not None
    return cfg.bgp


def test_no_bgp_section_means_no_speaker(tmp_path: Path) -> None:
    assert load_config(_cfg(tmp_path, "")).bgp is None


def test_bgpd_config_has_every_neighbor_with_bfd_and_exports_only_vips(tmp_path: Path) -> None:
    text = render_bgpd(_bgp(tmp_path))
    for router in ("198.51.100.1", "198.51.100.2"):
        assert f" neighbor {router} remote-as 64500" in text
        assert f" neighbor {router} bfd profile lbauto" in text
        assert f"  neighbor {router} route-map LBAUTO-IN in" in text
    assert "no bgp network import-check" in text  # VIPs are in nftables, not in the RIB
    assert "permit 0.0.0.0/0 ge 32" in text and "permit ::/0 ge 128" in text
    assert "set ipv6 next-hop global 2001:db8:100::10" in text
    assert " timers bgp 3 9" in text
    bfd = render_bfdd(_bgp(tmp_path))
    assert "receive-interval 100" in bfd and "detect-multiplier 3" in bfd


def test_without_bfd_no_neighbor_asks_for_it(tmp_path: Path) -> None:
    text = render_bgpd(_bgp(tmp_path, "  bfd: false\n  keepalive: 1\n  hold_time: 3\n"))
    assert " bfd" not in text
    assert " timers bgp 1 3" in text


def test_announcements_per_family_withdrawals_first() -> None:
    v4 = ipaddress.ip_address("192.0.2.40")
    old = ipaddress.ip_address("192.0.2.41")
    v6 = ipaddress.ip_address("2001:db8:40::40")
    text = render_announce(64510, add=[v6, v4], remove=[old])
    assert text.splitlines() == [
        "router bgp 64510",
        " address-family ipv4 unicast",
        "  no network 192.0.2.41/32",
        "  network 192.0.2.40/32",
        " exit-address-family",
        " address-family ipv6 unicast",
        "  network 2001:db8:40::40/128",
        " exit-address-family",
        "exit",
    ]
    assert render_announce(64510, add=[], remove=[]) == ""


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("  router_id_: 1\n", "router_id_: unknown setting"),
        ("  hold_time: 2\n", "hold_time: Input should be greater than or equal to 3"),
        ("  keepalive: 5\n", "bgp.hold_time must be at least 3 x bgp.keepalive"),
    ],
)
def test_bad_bgp_settings_name_file_line_and_setting(
    tmp_path: Path, extra: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_cfg(tmp_path, BGP + extra))
    assert f"{tmp_path / 'agent.yaml'}:3: bgp:" in str(err.value)
    assert problem in str(err.value)


def test_bad_neighbor_address_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bgp: neighbors\.0\.address: .* is not an IP"):
        load_config(_cfg(tmp_path, BGP.replace("198.51.100.1,", "router1,")))


def test_lab_spec_bgp_is_part_of_the_shape() -> None:
    assert not LabSpec(name="t1", bgp=True).same_shape(LabSpec(name="t1"))


def test_ipv6_vips_ride_ipv6_sessions_when_there_are_any(tmp_path: Path) -> None:
    both = BGP.replace(
        "    - {address: 198.51.100.2, remote_asn: 64500}\n",
        "    - {address: 2001:db8:100::1, remote_asn: 64500}\n",
    )
    cfg = load_config(_cfg(tmp_path, both)).bgp
    assert cfg is not None
    v4, v6 = render_bgpd(cfg).split(" address-family ipv6 unicast")
    assert "neighbor 198.51.100.1 activate" in v4 and "2001:db8:100::1 activate" not in v4
    assert "neighbor 2001:db8:100::1 activate" in v6 and "198.51.100.1 activate" not in v6
    # without IPv6 sessions, IPv6 VIPs go over the IPv4 ones
    assert "neighbor 198.51.100.1 activate" in render_bgpd(_bgp(tmp_path)).split("ipv6 unicast")[1]


def test_api_reports_bgp_off_without_a_speaker(tmp_path: Path) -> None:
    svc = AgentService(
        TableSpec("lbauto", "veth0"), RecordingDataplane(), StateStore(tmp_path / "s")
    )
    with TestClient(create_app(svc, "s3cret-token-0123456789")) as client:
        r = client.get("/v1/bgp", headers={"Authorization": "Bearer s3cret-token-0123456789"})
        assert r.status_code == 200
        assert BgpStatus.model_validate(r.json()) == BgpStatus(enabled=False)
        assert client.get("/v1/bgp").status_code == 401  # the token guards it like the rest
