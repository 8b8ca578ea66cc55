"""Agent API: validation, auth, generations, drains and pins, persistence (no kernel)."""

from __future__ import annotations

import ipaddress
import os
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

TOKEN = "s3cret-token-0123456789"
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


def test_health_without_a_token_is_minimal(agent: Agent) -> None:
    agent.put(MULTI)
    r = agent.client.get("/v1/health")
    assert r.status_code == 200
    # no version, no VIP count: nothing an unauthenticated client can use
    assert r.json() == {"status": "ok"}
    wrong = agent.client.get("/v1/health", headers={"Authorization": "Bearer wrong"})
    assert wrong.json() == {"status": "ok"}
    full = agent.client.get("/v1/health", headers=AUTH).json()
    assert full["status"] == "ok" and full["vips"] == 1 and full["version"]


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


def test_openapi_document_needs_the_token_and_docs_pages_are_off(agent: Agent) -> None:
    for path in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"):
        r = agent.client.get(path)
        assert r.status_code == 401, path
        assert "lbauto" not in r.text and "version" not in r.text
    doc = agent.client.get("/openapi.json", headers=AUTH).json()
    assert "/v1/vips/{address}" in doc["paths"]
    assert "put" in doc["paths"]["/v1/vips/{address}"]
    assert agent.client.get("/docs", headers=AUTH).status_code == 404
    assert agent.client.get("/redoc", headers=AUTH).status_code == 404


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
    ("malformed VIP", "192.0.2.300", MULTI, "not a valid IPv4 or IPv6 address"),
    ("multicast VIP", "224.0.0.1", MULTI, "multicast"),
    ("malformed DIP", VIP, {**MULTI, "dips": ["198.51.100.x"]}, "not a valid IPv4 or IPv6"),
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
    assert not any("@th4" in c for c in agent.dp.transactions[-1])  # no pin rule left


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
        # only the metadata element is replaced (add, delete, add): no VIP object is deleted
        assert not any(c.startswith("delete") and " lbmeta" not in c for c in cmds)


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
    ("text", "where", "message"),
    [
        ("port: 80\n", "", "interface: is required (the server-facing interface"),
        ("interface: eth0\n", "", "no token_file or token_env"),
        ("interface: eth0\ninsecure_no_auth: true\ncolour: red\n", ":3", "colour: unknown setting"),
        ("interface: 'eth0; rm'\ninsecure_no_auth: true\n", ":1", "not a valid interface name"),
        ("interface: eth0\ninsecure_no_auth: true\nport: '80'\n", ":3", "port: Input should be"),
        ("interface: eth0\ninsecure_no_auth: true\nport: 0\n", ":3", "port: Input should be"),
        ("interface: eth0\ninsecure_no_auth: true\ntls_cert: /c.pem\n", "", "given together"),
        ("interface: eth0\ninsecure_no_auth: yes-please\n", ":2", "insecure_no_auth:"),
        ("interface: eth0\ninsecure_no_auth: true\nmax_body_bytes: 1\n", ":3", "max_body_bytes:"),
        ("- a\n", ":1", "must be a mapping"),
        ("interface: [\n", ":2", "invalid YAML"),
    ],
)
def test_bad_config_is_refused_with_file_line_setting_and_fix(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        load_config(cfg)
    assert str(e.value).startswith(f"{cfg}{where}: ")


def test_every_config_problem_is_reported_at_once(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("interface: eth0\ninsecure_no_auth: true\nport: 70000\nflow_timeout: 0\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    lines = str(e.value).splitlines()
    assert [ln.split(": ")[0] for ln in lines] == [f"{cfg}:3", f"{cfg}:4"]
    assert "port:" in lines[0] and "(1..65535)" in lines[0]


def test_config_errors_never_quote_the_file(tmp_path: Path) -> None:
    """--config pointing at the wrong (secret) file: the message names it, never its content."""
    secret = "hunter2-very-secret-value"
    for text in (f"password {secret}\n", f"key: [{secret}\n", f"- {secret}\n", f"x: {secret}\n"):
        cfg = tmp_path / "shadow"
        cfg.write_text(text)
        with pytest.raises(ConfigError) as e:
            load_config(cfg)
        assert secret not in str(e.value) and str(cfg) in str(e.value)
    cfg.write_bytes(b"interface: \xff\xfe eth0\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(cfg)


def test_token_from_file_or_env_and_never_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok = tmp_path / "token"
    tok.write_text(TOKEN + "\n")
    assert read_token(load_config(None, {"interface": "eth0", "token_file": tok})) == TOKEN
    tok.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        read_token(load_config(None, {"interface": "eth0", "token_file": tok}))
    monkeypatch.setenv("LBA_T", TOKEN)
    assert read_token(load_config(None, {"interface": "eth0", "token_env": "LBA_T"})) == TOKEN
    monkeypatch.delenv("LBA_T")
    with pytest.raises(ConfigError, match="LBA_T"):
        read_token(load_config(None, {"interface": "eth0", "token_env": "LBA_T"}))
    insecure = load_config(None, {"interface": "eth0", "insecure_no_auth": True})
    assert read_token(insecure) is None


SECRET = "Zq9-secret-part-of-the-token"
BAD_TOKENS: list[tuple[str, bytes, str]] = [
    ("two lines", f"{SECRET}\n{SECRET}\n".encode(), "more than one line"),
    ("CRLF inside", f"{SECRET}\r\nx{SECRET}".encode(), "more than one line"),
    ("non-ASCII", f"{SECRET}\u00e9\n".encode(), "non-ASCII byte"),
    ("invalid UTF-8", SECRET.encode() + b"\xff\n", "non-ASCII byte"),
    ("space inside", f"{SECRET} {SECRET}".encode(), "space or control character"),
    ("control char", f"{SECRET}\x07".encode(), "space or control character"),
    ("too short", b"Zq9-short\n", "shorter than 16"),
    ("another file", ("root:x:0:0:" + SECRET + ":/root:/bin/bash\n" * 300).encode(), "larger than"),
    ("only blanks", b"  \n\n", "is empty"),
]


@pytest.mark.parametrize(
    ("raw", "message"), [b[1:] for b in BAD_TOKENS], ids=[b[0] for b in BAD_TOKENS]
)
def test_bad_token_files_are_refused_without_printing_them(
    tmp_path: Path, raw: bytes, message: str
) -> None:
    tok = tmp_path / "token"
    tok.write_bytes(raw)
    with pytest.raises(ConfigError, match=message) as e:
        read_token(load_config(None, {"interface": "eth0", "token_file": tok}))
    text = str(e.value)
    assert str(tok) in text and "Zq9" not in text and "root:" not in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("raw", "message"), [b[1:] for b in BAD_TOKENS[:7]], ids=[b[0] for b in BAD_TOKENS[:7]]
)
def test_bad_token_env_is_refused_without_printing_it(raw: bytes, message: str) -> None:
    os.environb[b"LBA_TOK"] = raw
    try:
        with pytest.raises(ConfigError, match=message) as e:
            read_token(load_config(None, {"interface": "eth0", "token_env": "LBA_TOK"}))
    finally:
        del os.environb[b"LBA_TOK"]
    assert "LBA_TOK" in str(e.value) and "Zq9" not in str(e.value)


def test_a_token_file_that_is_a_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_token(load_config(None, {"interface": "eth0", "token_file": fifo}))


def test_serve_with_a_multi_line_token_file_prints_one_clean_line(tmp_path: Path) -> None:
    """The old agent put a multi-line token into an 'Illegal header value' error."""
    (tmp_path / "token").write_text(f"{SECRET}\n{SECRET}\n")
    args = ["serve", "--interface", "lo", "--token-file", str(tmp_path / "token")]
    r = CliRunner().invoke(agent_cli.app, [*args, "--state-file", str(tmp_path / "s.json")])
    assert r.exit_code == 1
    assert "Zq9" not in r.output and isinstance(r.exception, SystemExit)
    assert r.output.count("\n") == 1 and "more than one line" in r.output


def test_serve_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"interface: eth0\nstate_file: {tmp_path / 's.json'}\n")
    r = CliRunner().invoke(agent_cli.app, ["serve", "--config", str(cfg)])
    assert r.exit_code == 1
    assert "no token_file or token_env" in r.output
    assert not (tmp_path / "s.json").exists()


def test_serve_refuses_an_interface_that_does_not_exist(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    args = ["serve", "--interface", "lba-nosuch0", "--token-file", str(tmp_path / "token")]
    r = CliRunner().invoke(agent_cli.app, [*args, "--state-file", str(tmp_path / "s.json")])
    assert r.exit_code == 1
    assert "interface 'lba-nosuch0' does not exist" in r.output


# ---------------------------------------------------------------------------- hostile requests


def test_unauthenticated_request_is_refused_before_its_body_is_read(tmp_path: Path) -> None:
    """The guard answers 401 without calling ``receive``; the bare FastAPI app (the old
    behaviour: the body is read before dependencies run) reads it first: the control."""
    import asyncio

    svc = AgentService(
        TableSpec("lbauto", "veth0"), RecordingDataplane(), StateStore(tmp_path / "s")
    )
    guarded = create_app(svc, TOKEN)

    def run(app: Any) -> tuple[int, int]:
        reads = 0
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            nonlocal reads
            reads += 1
            return {"type": "http.request", "body": b"x" * 65536, "more_body": reads < 16}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT",
            "scheme": "http", "path": f"/v1/vips/{VIP}", "raw_path": f"/v1/vips/{VIP}".encode(),
            "query_string": b"", "root_path": "", "client": ("203.0.113.9", 5000),
            "server": ("127.0.0.1", 8080),
            "headers": [(b"content-type", b"application/json"), (b"host", b"agent")],
        }  # fmt: skip
        asyncio.run(app(scope, receive, send))
        return sent[0]["status"], reads

    assert run(guarded) == (401, 0)
    status, reads = run(guarded.app)  # control: without the guard
    assert reads == 16 and status in (401, 422)  # read (and parsed) before the token check


def test_body_over_the_limit_is_413_and_changes_nothing(agent: Agent) -> None:
    n = agent.applied()
    big = {**MULTI, "name": "x" * (1 << 20)}
    r = agent.put(big)
    assert r.status_code == 413 and "max_body_bytes" in r.text and len(r.content) < 300

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused as it grows
        yield b'{"mode": "multi", "name": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}'

    r = agent.client.put(
        f"/v1/vips/{VIP}", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert agent.applied() == n and agent.get().status_code == 404


def test_body_limit_is_configurable(tmp_path: Path) -> None:
    svc = AgentService(
        TableSpec("lbauto", "veth0"), RecordingDataplane(), StateStore(tmp_path / "s")
    )
    with TestClient(create_app(svc, TOKEN, max_body_bytes=2048)) as c:
        body = {**MULTI, "dips": [f"198.51.100.{i}" for i in range(1, 200)]}
        assert c.put(f"/v1/vips/{VIP}", json=body, headers=AUTH).status_code == 413
        assert c.put(f"/v1/vips/{VIP}", json=MULTI, headers=AUTH).status_code == 201
    assert load_config(None, {"interface": "eth0", "insecure_no_auth": True}).max_body_bytes == (
        1 << 20
    )


@pytest.mark.parametrize(
    "body",
    [
        {**MULTI, "dips": ["198.51.100.x" + "A" * 50_000]},
        {**MULTI, "weight" + "B" * 50_000: 1},
        {**MULTI, "name": "C" * 50_000},
        {**MULTI, "mode": "D" * 50_000},
        {**MULTI, "dips": ["E" * 100] * 5000},
    ],
    ids=["bad DIP", "unknown key", "bad name", "bad mode", "many bad DIPs"],
)
def test_422_never_echoes_the_body(agent: Agent, body: dict[str, Any]) -> None:
    r = agent.put(body)
    assert r.status_code == 422
    assert len(r.content) < 6000
    assert not re.search(r"([A-E])\1{200}", r.text)
    detail = r.json()["detail"]
    assert all(set(p) == {"loc", "msg", "type"} for p in detail)
    assert len(detail) <= 21


def test_json_syntax_error_does_not_echo_the_body(agent: Agent) -> None:
    raw = b'{"mode": "multi", "dips": [' + b'"secret-ish", ' * 3000 + b"}"
    r = agent.client.put(
        f"/v1/vips/{VIP}", content=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 422 and "secret-ish" not in r.text


def test_scoped_vip_in_the_path_is_400_not_500(agent: Agent) -> None:
    for vip in ("fe80::1%25eth0", "2001:db8::10%25eth0"):
        r = agent.client.put(f"/v1/vips/{vip}", json=MULTI, headers=AUTH)
        assert r.status_code == 400, r.text
        assert "scope" in r.text
