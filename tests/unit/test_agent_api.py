"""Agent API: validation, auth, generations, drains and pins, persistence (no kernel)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lbauto.agent import cli as agent_cli
from lbauto.agent.api import create_app
from lbauto.agent.config import ConfigError, load_config, read_token
from lbauto.agent.dataplane import FlowEntry, RecordingDataplane, TableSpec, VipCounters, suffix
from lbauto.agent.service import AgentService
from lbauto.agent.store import StateStore

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VIP = "192.0.2.10"
SFX = suffix(ipaddress.ip_address(VIP))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Agent:
    def __init__(self, tmp: Path) -> None:
        self.dp = RecordingDataplane()
        self.clock = Clock()
        self.state = tmp / "state.json"
        self.svc = AgentService(
            TableSpec("lbauto", "veth0"), self.dp, StateStore(self.state), clock=self.clock
        )
        self.client = TestClient(create_app(self.svc, TOKEN))

    def put(self, body: dict[str, Any], vip: str = VIP, **headers: str) -> Any:
        return self.client.put(f"/v1/vips/{vip}", json=body, headers={**AUTH, **headers})

    def get(self, vip: str = VIP) -> Any:
        return self.client.get(f"/v1/vips/{vip}", headers=AUTH)

    def applied(self) -> int:
        return len(self.dp.transactions)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = Agent(tmp_path)
    with a.client:
        yield a


MULTI = {"mode": "multi", "dips": ["198.51.100.21", "198.51.100.22"], "flow_tracking": True}


def test_health_needs_no_token(agent: Agent) -> None:
    r = agent.client.get("/v1/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
def test_missing_or_wrong_token_is_401_and_changes_nothing(
    agent: Agent, headers: dict[str, str]
) -> None:
    before = agent.applied()
    assert agent.client.put(f"/v1/vips/{VIP}", json=MULTI, headers=headers).status_code == 401
    assert agent.client.get("/v1/vips", headers=headers).status_code == 401
    assert agent.client.get("/metrics", headers=headers).status_code == 401
    assert agent.client.delete(f"/v1/vips/{VIP}", headers=headers).status_code == 401
    assert agent.applied() == before
    assert agent.get().status_code == 404


def test_openapi_document_is_served(agent: Agent) -> None:
    doc = agent.client.get("/openapi.json").json()
    assert "/v1/vips/{address}" in doc["paths"]
    assert "put" in doc["paths"]["/v1/vips/{address}"]


def test_create_get_update_delete_with_generations(agent: Agent) -> None:
    r = agent.put(MULTI)
    assert r.status_code == 201
    assert r.headers["ETag"] == '"1"'
    doc = r.json()
    assert doc["generation"] == 1
    assert doc["dips"] == MULTI["dips"]
    assert doc["transit"] is None and doc["drain"] is None
    n = agent.applied()
    # identical body: no-op, same generation, no kernel transaction
    r = agent.put(MULTI)
    assert (r.status_code, r.json()["generation"], agent.applied()) == (200, 1, n)
    r = agent.put({**MULTI, "dips": ["198.51.100.21"], "name": "web"})
    assert r.json()["generation"] == 2
    assert agent.get().json()["name"] == "web"
    assert agent.client.get("/v1/vips", headers=AUTH).json()["vips"][0]["address"] == VIP
    assert agent.client.delete(f"/v1/vips/{VIP}", headers=AUTH).status_code == 204
    assert agent.get().status_code == 404
    assert agent.client.delete(f"/v1/vips/{VIP}", headers=AUTH).status_code == 404


def test_if_match_mismatch_is_412_and_changes_nothing(agent: Agent) -> None:
    agent.put(MULTI)
    n = agent.applied()
    other = {**MULTI, "dips": ["198.51.100.23"]}
    assert agent.put(other, **{"If-Match": '"7"'}).status_code == 412
    d = agent.client.delete(f"/v1/vips/{VIP}", headers={**AUTH, "If-Match": '"7"'})
    assert d.status_code == 412
    assert agent.applied() == n
    assert agent.get().json()["dips"] == MULTI["dips"]
    assert agent.put(other, **{"If-Match": '"1"'}).json()["generation"] == 2
    assert agent.put(other, vip="192.0.2.99", **{"If-Match": '"1"'}).status_code == 412
    assert agent.put(MULTI, **{"If-None-Match": "*"}).status_code == 412


BAD: list[tuple[str, str, dict[str, Any], str]] = [
    ("malformed VIP", "192.0.2.300", MULTI, "not a valid VIP address"),
    ("multicast VIP", "224.0.0.1", MULTI, "multicast"),
    ("malformed DIP", VIP, {**MULTI, "dips": ["198.51.100.x"]}, "not an IPv4 or IPv6"),
    ("DIP equals VIP", VIP, {**MULTI, "dips": [VIP]}, "the VIP itself"),
    ("mixed families", VIP, {**MULTI, "dips": ["2001:db8::1"]}, "IPv6 but VIP"),
    ("unknown field", VIP, {**MULTI, "weight": 3}, "Extra inputs"),
    ("missing field", VIP, {"mode": "multi", "dips": []}, "Field required"),
    ("unknown mode", VIP, {**MULTI, "mode": "double"}, "mode must be one of"),
    ("single with two DIPs", VIP, {**MULTI, "mode": "single"}, "exactly one DIP"),
    ("multi without DIPs", VIP, {**MULTI, "dips": []}, "at least 1 DIP"),
    ("empty with DIPs", VIP, {**MULTI, "mode": "empty"}, "no DIPs"),
    ("duplicate DIPs", VIP, {**MULTI, "dips": ["198.51.100.21"] * 2}, "duplicate"),
    ("string bool", VIP, {**MULTI, "flow_tracking": "yes"}, "valid boolean"),
    (
        "transit DIP not in the list",
        VIP,
        {**MULTI, "transit": {"dip": "198.51.100.99", "seconds": 5}},
        "must be in dips or in drain.dips",
    ),
    (
        "transit with tracking off",
        VIP,
        {**MULTI, "flow_tracking": False, "transit": {"dip": "198.51.100.21", "seconds": 5}},
        "needs flow_tracking",
    ),
    (
        "negative transit",
        VIP,
        {**MULTI, "transit": {"dip": "198.51.100.21", "seconds": -1}},
        "greater than 0",
    ),
    (
        "draining DIP also active",
        VIP,
        {**MULTI, "drain": {"dips": ["198.51.100.21"], "timeout": 5}},
        "both in dips and drain.dips",
    ),
    ("bad name", VIP, {**MULTI, "name": "a b;c"}, "pattern"),
]


@pytest.mark.parametrize(("vip", "body", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_requests_are_4xx_with_a_reason_and_change_nothing(
    agent: Agent, vip: str, body: dict[str, Any], message: str
) -> None:
    agent.put({"mode": "single", "dips": ["198.51.100.30"], "flow_tracking": False})
    n = agent.applied()
    r = agent.put(body, vip=vip)
    assert 400 <= r.status_code < 500
    assert message in r.text
    assert agent.applied() == n
    assert agent.get().json()["dips"] == ["198.51.100.30"]


def flow(mark: int, port: int) -> FlowEntry:
    return FlowEntry("203.0.113.100", port, 80, mark, 100.0)


def test_drain_keeps_dip_until_its_flows_end(agent: Agent) -> None:
    agent.put(MULTI)
    body = {
        "mode": "single",
        "dips": ["198.51.100.21"],
        "flow_tracking": True,
        "drain": {"dips": ["198.51.100.22"], "timeout": 30},
    }
    agent.put(body)
    mark_b = agent.svc.vips[ipaddress.ip_address(VIP)].marks[ipaddress.ip_address("198.51.100.22")]
    agent.dp.flow_entries[SFX] = [flow(mark_b, 1000), flow(mark_b, 1001)]
    doc = agent.get().json()
    assert doc["drain"]["remaining_flows"] == {"198.51.100.22": 2}
    fl = agent.client.get(f"/v1/vips/{VIP}/flows?limit=1", headers=AUTH).json()
    assert fl["total"] == 2 and fl["per_dip"] == {"198.51.100.22": 2} and len(fl["entries"]) == 1
    agent.svc.tick()
    assert agent.get().json()["drain"] is not None
    agent.dp.flow_entries[SFX] = []
    agent.svc.tick()
    assert agent.get().json()["drain"] is None
    last = agent.dp.transactions[-1]
    assert not any(
        "198.51.100.22" in c for c in last if c.startswith("add element netdev lbauto d")
    )


def test_flows_active_within_counts_only_recently_used_entries(agent: Agent) -> None:
    agent.put(MULTI)
    mark = agent.svc.vips[ipaddress.ip_address(VIP)].marks[ipaddress.ip_address("198.51.100.22")]
    timeout = agent.svc.spec.flow_timeout
    agent.dp.flow_entries[SFX] = [
        FlowEntry("203.0.113.100", 1000, 80, mark, float(timeout - 1)),  # packet 1 s ago
        FlowEntry("203.0.113.100", 1001, 80, mark, float(timeout - 60)),  # quiet for 60 s
    ]
    url = f"/v1/vips/{VIP}/flows?limit=0"
    assert agent.client.get(url, headers=AUTH).json()["per_dip"] == {"198.51.100.22": 2}
    active = agent.client.get(url + "&active_within=5", headers=AUTH).json()
    assert active["total"] == 1 and active["per_dip"] == {"198.51.100.22": 1}
    bad = agent.client.get(url + "&active_within=0", headers=AUTH)
    assert bad.status_code in (400, 422)


def test_drain_timeout_cuts_remaining_flows(agent: Agent) -> None:
    agent.put(MULTI)
    agent.put(
        {**MULTI, "dips": ["198.51.100.21"], "drain": {"dips": ["198.51.100.22"], "timeout": 5}}
    )
    mark_b = agent.svc.vips[ipaddress.ip_address(VIP)].marks[ipaddress.ip_address("198.51.100.22")]
    agent.dp.flow_entries[SFX] = [flow(mark_b, 1000)]
    agent.clock.now += 6
    agent.svc.tick()
    assert agent.get().json()["drain"] is None
    assert any(
        c.startswith(f"delete element netdev lbauto f{SFX}") for c in agent.dp.transactions[-1]
    )


def test_transit_pin_expires_and_is_reported_with_remaining_seconds(agent: Agent) -> None:
    agent.put({"mode": "single", "dips": ["198.51.100.21"], "flow_tracking": False})
    agent.put({**MULTI, "transit": {"dip": "198.51.100.21", "seconds": 60}})
    agent.clock.now += 20
    t = agent.get().json()["transit"]
    assert t["dip"] == "198.51.100.21" and t["seconds"] == 40
    # omitting transit in a later PUT keeps the running pin
    agent.put({**MULTI, "name": "x"})
    assert agent.get().json()["transit"] is not None
    agent.clock.now += 41
    agent.svc.tick()
    assert agent.get().json()["transit"] is None
    assert not any("tcp flags" in c for c in agent.dp.transactions[-1])


def test_state_survives_restart_without_flushing_tracked_flows(
    agent: Agent, tmp_path: Path
) -> None:
    agent.put(MULTI)
    agent.put(
        {"mode": "single", "dips": ["198.51.100.23"], "flow_tracking": False}, vip="192.0.2.11"
    )
    agent.put({**MULTI, "dips": ["198.51.100.21"]})
    again = Agent(tmp_path)
    with again.client:
        docs = {v["address"]: v for v in again.client.get("/v1/vips", headers=AUTH).json()["vips"]}
        assert docs[VIP]["generation"] == 2
        assert docs["192.0.2.11"]["flow_tracking"] is False
        cmds = [c for t in again.dp.transactions for c in t]
        assert f"flush map netdev lbauto f{SFX}" not in cmds
        assert not any(c.startswith("delete") for c in cmds)


def test_metrics_report_vips_and_apply_latency(agent: Agent) -> None:
    agent.put(MULTI)
    agent.dp.counter_values[VIP] = VipCounters(10, 1500, 0)
    text = agent.client.get("/metrics", headers=AUTH).text
    assert f'lbauto_agent_vip_mode{{mode="multi",vip="{VIP}"}} 1.0' in text
    assert f'lbauto_agent_vip_packets_total{{vip="{VIP}"}} 10.0' in text
    assert "lbauto_agent_apply_seconds_count" in text


# ---------------------------------------------------------------------------- configuration


def test_config_file_and_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("interface: eth1\nport: 9000\ntoken_env: LBA_TOKEN\nflow_timeout: 60\n")
    c = load_config(cfg, {"port": 9100, "listen": "198.18.1.21", "interface": None})
    assert (c.interface, c.port, c.listen, c.flow_timeout, c.table) == (
        "eth1",
        9100,
        "198.18.1.21",
        60,
        "lbauto",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port: 80\n", "interface (the server-facing interface) is required"),
        ("interface: eth0\n", "no token_file or token_env"),
        ("interface: eth0\ninsecure_no_auth: true\ncolour: red\n", "unknown setting(s) colour"),
        ("interface: 'eth0; rm'\ninsecure_no_auth: true\n", "not a valid interface name"),
        ("interface: eth0\ninsecure_no_auth: true\nport: '80'\n", "port must be an integer"),
        ("interface: eth0\ninsecure_no_auth: true\ntls_cert: /c.pem\n", "given together"),
        ("- a\n", "must be a mapping"),
    ],
)
def test_bad_config_is_refused_with_the_file_and_fix(
    tmp_path: Path, text: str, message: str
) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        load_config(cfg)
    assert str(cfg) in str(e.value)


def test_token_from_file_or_env_and_never_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok = tmp_path / "token"
    tok.write_text("abc\n")
    assert read_token(load_config(None, {"interface": "eth0", "token_file": tok})) == "abc"
    tok.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        read_token(load_config(None, {"interface": "eth0", "token_file": tok}))
    monkeypatch.setenv("LBA_T", "xyz")
    assert read_token(load_config(None, {"interface": "eth0", "token_env": "LBA_T"})) == "xyz"
    monkeypatch.delenv("LBA_T")
    with pytest.raises(ConfigError, match="LBA_T"):
        read_token(load_config(None, {"interface": "eth0", "token_env": "LBA_T"}))
    insecure = load_config(None, {"interface": "eth0", "insecure_no_auth": True})
    assert read_token(insecure) is None


def test_serve_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"interface: eth0\nstate_file: {tmp_path / 's.json'}\n")
    r = CliRunner().invoke(agent_cli.app, ["serve", "--config", str(cfg)])
    assert r.exit_code == 1
    assert "no token_file or token_env" in r.output
    assert not (tmp_path / "s.json").exists()


def test_serve_refuses_an_interface_that_does_not_exist(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t\n")
    args = ["serve", "--interface", "lba-nosuch0", "--token-file", str(tmp_path / "token")]
    r = CliRunner().invoke(agent_cli.app, [*args, "--state-file", str(tmp_path / "s.json")])
    assert r.exit_code == 1
    assert "interface 'lba-nosuch0' does not exist" in r.output
