"""The live agent API (real process, real nftables): auth and fuzzing of its OpenAPI document."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.agent_net import Net, network

pytestmark = pytest.mark.integration

VIP = "192.0.2.10"
BODY = {"mode": "single", "dips": ["198.51.100.21"], "flow_tracking": False}


@pytest.fixture
def net() -> Iterator[Net]:
    with network(dips=1, prefix="ah") as n:
        yield n


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "Basic Zm9vOmJhcg=="])
def test_no_or_wrong_token_is_401_and_changes_nothing(net: Net, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    kernel_before = net.nft("list", "table", "netdev", "lbauto")
    with httpx.Client(base_url=net.api, headers=headers, timeout=5) as h:
        assert h.get("/v1/health").json() == {"status": "ok"}  # no version, no VIP count
        assert h.get("/v1/vips").status_code == 401
        assert h.get("/openapi.json").status_code == 401
        r = h.put(f"/v1/vips/{VIP}", json=BODY)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert h.delete(f"/v1/vips/{VIP}").status_code == 401
        assert h.get("/metrics").status_code == 401
    assert net.nft("list", "table", "netdev", "lbauto") == kernel_before
    with net.client() as c:
        assert c.list_vips() == {}
    assert net.token not in (net.dir / "agent.log").read_text()


@pytest.mark.slow
def test_fuzzing_the_openapi_document_finds_no_server_error(net: Net) -> None:
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a dev dependency"
    # one VIP exists, so GET/PUT/DELETE on it reach the data plane too
    with net.client() as c:
        c._http.put(f"/v1/vips/{VIP}", json=BODY).raise_for_status()
    # the OpenAPI document needs the token too: fetch it, then fuzz from the file
    schema = net.dir / "openapi.json"
    with httpx.Client(base_url=net.api, timeout=5) as h:
        assert h.get("/openapi.json").status_code == 401
        h.headers["Authorization"] = f"Bearer {net.token}"
        schema.write_bytes(h.get("/openapi.json").raise_for_status().content)
    p = subprocess.run(
        [st, "run", str(schema), "--url", net.api, "--checks", "not_a_server_error",
         "-H", f"Authorization: Bearer {net.token}", "--max-examples", "60",
         "--seed", "4242", "--request-timeout", "20", "--no-color"],
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )  # fmt: skip
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    log = (net.dir / "agent.log").read_text()
    assert "Exception in ASGI application" not in log and " ERROR " not in log
    m = re.search(r"(\d+) generated, (\d+) passed", out)
    assert m and int(m.group(1)) >= 100 and m.group(1) == m.group(2), out[-2000:]
    with net.client() as c:  # the agent still answers and its state is consistent
        c.health()
        c.list_vips()
