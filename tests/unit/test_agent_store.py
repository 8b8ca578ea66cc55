"""The agent's state file: checksummed, atomically replaced, previous good copy kept; a damaged
or missing file never stops the agent (the kernel's VIPs are read back instead)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lbauto.agent.api import create_app
from lbauto.agent.dataplane import KernelTable, RecordingDataplane, TableSpec, suffix
from lbauto.agent.service import AgentService
from lbauto.agent.store import StateStore, VipRecord
from lbauto.core.model import Mode
from lbauto.errors import StateError

TOKEN = "store-test-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
A = ipaddress.ip_address("192.0.2.10")
D1 = ipaddress.ip_address("198.51.100.21")


def record(gen: int = 1) -> VipRecord:
    return VipRecord(A, Mode.SINGLE, (D1,), False, gen, name="web").with_marks()


def test_checksum_detects_any_change_and_the_previous_copy_is_kept(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.save({A: record(1)})
    store.save({A: record(2)})
    assert store.load()[A].generation == 2
    assert StateStore(store.previous).load()[A].generation == 1
    data = store.path.read_bytes()
    for i in range(len(data.split(b"\n", 1)[0]) + 1, len(data), 7):
        damaged = bytearray(data)
        damaged[i] ^= 0x01
        store.path.write_bytes(bytes(damaged))
        with pytest.raises(StateError, match="unusable"):
            StateStore(store.path).load()
    store.path.write_bytes(data[:-5])
    loaded = StateStore(store.path).read()
    assert loaded.problem and loaded.from_previous and loaded.vips[A].generation == 1


def test_version_1_files_are_still_read(tmp_path: Path) -> None:
    p = tmp_path / "state.json"
    store = StateStore(p)
    store.save({A: record(3)})
    body = json.loads(p.read_bytes().split(b"\n", 1)[1])
    p.write_text(json.dumps({"version": 1, "vips": body["vips"]}))
    assert StateStore(p).load()[A].generation == 3


def _kernel() -> list[dict[str, Any]]:
    """A minimal ``nft -j list table`` of one single-DIP VIP without tracking."""
    sfx = suffix(A)
    return [
        {
            "map": {
                "name": "vips4",
                "elem": [[{"elem": {"val": str(A)}}, {"jump": {"target": f"v{sfx}"}}]],
            }
        },
        {"map": {"name": f"d{sfx}", "elem": [[1, str(D1)]]}},
        {"map": {"name": f"b{sfx}", "elem": [[i, 1] for i in range(257)]}},
        {
            "set": {
                "name": "lbmeta4",
                "elem": [{"elem": {"val": str(A), "comment": "g=7 m=s k=2 n=web"}}],
            }
        },
        {"rule": {"chain": f"v{sfx}", "expr": [{"drop": None}]}},
    ]


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_agent_starts_degraded_and_leaves_the_kernel_alone(tmp_path: Path, damage: str) -> None:
    state = tmp_path / "state.json"
    if damage == "garbage":
        state.write_bytes(b"\x00garbage")
    dp = RecordingDataplane()
    dp.table = KernelTable(True, frozenset({suffix(A)}), {str(A): suffix(A)})
    svc = AgentService(TableSpec("lbauto", "eth0"), dp, StateStore(state))
    svc.read_table = lambda table: _kernel()
    with TestClient(create_app(svc, TOKEN)) as c:
        cmds = [cmd for t in dp.transactions for cmd in t]
        assert not any(suffix(A) in cmd for cmd in cmds)  # no VIP object touched
        assert c.get("/v1/health").json() == {"status": "degraded"}
        h = c.get("/v1/health", headers=AUTH).json()
        assert (
            h["status"] == "degraded" and "recovered 1 VIP(s) from the kernel" in h["problems"][0]
        )
        doc = c.get(f"/v1/vips/{A}", headers=AUTH).json()
        assert (doc["generation"], doc["mode"], doc["name"], doc["dips"]) == (
            7,
            "single",
            "web",
            [str(D1)],
        )
        assert StateStore(state).load()[A].generation == 7
        assert (tmp_path / "state.json.corrupt").exists() == (damage == "garbage")
        body = {"mode": "single", "dips": [str(D1)], "flow_tracking": False, "name": "web"}
        r = c.put(f"/v1/vips/{A}", json=body, headers=AUTH)
        assert r.status_code == 200 and r.json()["generation"] == 8
        assert c.get("/v1/health").json() == {"status": "ok"}


def test_first_start_without_state_or_kernel_vips_is_healthy(tmp_path: Path) -> None:
    svc = AgentService(
        TableSpec("lbauto", "eth0"), RecordingDataplane(), StateStore(tmp_path / "s")
    )
    with TestClient(create_app(svc, TOKEN)) as c:
        assert c.get("/v1/health").json() == {"status": "ok"}


# ---------------------------------------------------------------------------- client tokens


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"Zq9-client-token-part\nZq9-second-line\n", "more than one line"),
        (b"Zq9-client-token-\xc3\xa9\n", "non-ASCII"),
        (b"Zq9-short\n", "shorter than 16"),
    ],
)
def test_client_refuses_a_bad_token_file_without_printing_it(
    tmp_path: Path, raw: bytes, message: str
) -> None:
    """The old client sent a multi-line token and httpx quoted it ("Illegal header value")."""
    from lbauto.agent.client import HttpAgentClient
    from lbauto.core.model import Agent
    from lbauto.errors import AgentError

    tok = tmp_path / "lb1.token"
    tok.write_bytes(raw)
    agent = Agent(
        "lb1", "http://127.0.0.1:9", ipaddress.IPv4Address("198.51.100.10"), token_file=tok
    )
    with pytest.raises(AgentError, match=message) as e:
        HttpAgentClient.for_agent(agent)
    assert "Zq9" not in str(e.value) and "lb1" in str(e.value)
