"""The httpx agent client against a real agent API served by uvicorn on loopback (TLS too)."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from lbauto.agent.api import create_app
from lbauto.agent.client import HttpAgentClient
from lbauto.agent.dataplane import RecordingDataplane, TableSpec
from lbauto.agent.service import AgentService
from lbauto.agent.store import StateStore
from lbauto.core.model import Agent, Drain, Mode, Transit
from lbauto.errors import AgentError, ConflictError

TOKEN = "client-test-token"
VIP = ipaddress.ip_address("192.0.2.10")
D1, D2 = ipaddress.ip_address("198.51.100.21"), ipaddress.ip_address("198.51.100.22")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A real agent app (recording data plane, no kernel) served by uvicorn on loopback."""

    def __init__(
        self,
        tmp: Path,
        cert: Path | None = None,
        key: Path | None = None,
        *,
        dataplane: RecordingDataplane | None = None,
        token: str = TOKEN,
    ) -> None:
        self.dp = dataplane or RecordingDataplane()
        self.state = tmp / "s.json"
        self.svc = AgentService(TableSpec("lbauto", "veth0"), self.dp, StateStore(self.state))
        self.port = free_port()
        cfg = uvicorn.Config(
            create_app(self.svc, token),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ssl_certfile=str(cert) if cert else None,
            ssl_keyfile=str(key) if key else None,
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        scheme = "https" if cert else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with Served(tmp_path) as s:
        yield s


@pytest.fixture
def client(served: Served) -> Iterator[HttpAgentClient]:
    with HttpAgentClient(served.url, token=TOKEN, name="a1") as c:
        yield c


def test_round_trip_returns_model_values(client: HttpAgentClient) -> None:
    assert client.get_vip(VIP) is None
    v = client.put_vip(VIP, mode=Mode.MULTI, dips=[D1, D2], flow_tracking=True, name="web")
    assert (v.address, v.mode, v.dips, v.generation, v.name) == (
        VIP,
        Mode.MULTI,
        (D1, D2),
        1,
        "web",
    )
    v = client.put_vip(
        VIP,
        mode=Mode.MULTI,
        dips=[D2],
        flow_tracking=True,
        transit=Transit(D1, 30),
        drain=Drain((D1,), 10),
        if_match=1,
    )
    assert v.generation == 2
    assert v.transit is not None and v.transit.dip == D1 and 0 < v.transit.seconds <= 30
    assert v.drain is not None and v.drain.dips == (D1,)
    listed = client.list_vips()[VIP]
    assert (listed.dips, listed.generation) == ((D2,), 2)
    fc = client.flows(VIP)
    assert fc.total == 0
    client.delete_vip(VIP, if_match=2)
    assert client.list_vips() == {}
    client.delete_vip(VIP)  # absent: fine by default
    with pytest.raises(AgentError, match="HTTP 404"):
        client.delete_vip(VIP, missing_ok=False)


def test_generation_mismatch_raises_conflict(client: HttpAgentClient) -> None:
    client.put_vip(VIP, mode=Mode.SINGLE, dips=[D1], flow_tracking=False)
    with pytest.raises(ConflictError) as e:
        client.put_vip(VIP, mode=Mode.SINGLE, dips=[D2], flow_tracking=False, if_match=5)
    assert e.value.status == 412 and e.value.agent == "a1"
    assert client.get_vip(VIP) is not None
    assert client.get_vip(VIP).dips == (D1,)  # type: ignore[union-attr]


def test_bad_request_message_reaches_the_caller(client: HttpAgentClient) -> None:
    with pytest.raises(AgentError, match="exactly one DIP") as e:
        client.put_vip(VIP, mode=Mode.SINGLE, dips=[D1, D2], flow_tracking=False)
    assert e.value.status == 400


def test_wrong_token_is_an_agent_error_without_the_token(served: Served) -> None:
    with HttpAgentClient(served.url, token="nope", name="a1") as c, pytest.raises(AgentError) as e:
        c.list_vips()
    assert e.value.status == 401
    assert "nope" not in str(e.value)


def test_unreachable_agent_is_an_agent_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        HttpAgentClient(url, name="gone", timeout=2) as c,
        pytest.raises(AgentError, match=r"agent gone: .*cannot reach"),
    ):
        c.health()


def test_for_agent_reads_token_from_env(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LBA_TEST_TOKEN", TOKEN)
    agent = Agent(name="a1", api=served.url, address=None, token_env="LBA_TEST_TOKEN")
    with HttpAgentClient.for_agent(agent) as c:
        assert c.list_vips() == {}
    monkeypatch.delenv("LBA_TEST_TOKEN")
    with pytest.raises(AgentError, match="LBA_TEST_TOKEN"):
        HttpAgentClient.for_agent(agent)


def test_injected_transport_is_used() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer t"
        return httpx.Response(500, json={"detail": "data plane error: nft failed"})

    transport = httpx.MockTransport(handler)
    with (
        HttpAgentClient("http://agent", token="t", transport=transport) as c,
        pytest.raises(AgentError, match="HTTP 500: data plane error") as e,
    ):
        c.list_vips()
    assert e.value.status == 500


def write_ca_and_cert(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 it signed (cryptography comes with paramiko)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: str,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            b = b.add_extension(san, critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("lbauto test CA", ca_key, "lbauto test CA", ca_key, ca=True)
    srv = cert("127.0.0.1", key, "lbauto test CA", ca_key, ca=False)
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def test_tls_with_ca_file(tmp_path: Path) -> None:
    ca, cert, key = write_ca_and_cert(tmp_path)
    with Served(tmp_path, cert, key) as s:
        with HttpAgentClient(s.url, token=TOKEN, ca_file=ca) as c:
            assert c.health()["status"] == "ok"
        with (
            HttpAgentClient(s.url, token=TOKEN) as c,
            pytest.raises(AgentError, match="cannot reach"),
        ):
            c.health()  # not signed by a CA the client trusts
