"""napalm_frr's docker transport: registration and option checks (no Docker needed; the
transport itself runs against a real FRR container in tests/integration/test_containerlab.py)."""

from __future__ import annotations

from typing import Any

import pytest
from napalm.base.exceptions import ConnectionException

from napalm_frr import FRRDriver
from napalm_frr.docker import DockerTransport
from napalm_frr.transport import TRANSPORT_OPTIONS, TRANSPORTS


def driver(**opts: Any) -> FRRDriver:
    return FRRDriver("frr1", "root", "", optional_args={"transport": "docker", **opts})


def test_docker_is_a_registered_transport_and_its_options_are_not_netmikos() -> None:
    assert {"ssh", "local", "docker"} <= set(TRANSPORTS)
    d = driver(container="clab-lbauto-frr1", docker_user="root", conn_timeout=5)
    assert d.transport_name == "docker"
    assert {"container", "docker", "docker_user"} <= TRANSPORT_OPTIONS
    assert d.netmiko_args == {"conn_timeout": 5}


def test_unknown_transport_names_every_known_one() -> None:
    with pytest.raises(ConnectionException, match="'ssh', 'local', 'docker'"):
        FRRDriver("frr1", "root", "", optional_args={"transport": "telnet"})


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({}, "needs optional_args container"),
        ({"container": "clab-x; rm -rf /"}, "invalid container name"),
        ({"container": "-e"}, "invalid container name"),
        ({"container": "c1", "docker": "docker"}, "absolute path"),
        ({"container": "c1", "docker": "/nonexistent/docker"}, "existing executable"),
        ({"container": "c1", "docker_user": "root\nx"}, "invalid docker_user"),
    ],
)
def test_bad_docker_options_are_refused_when_the_driver_is_made(
    opts: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConnectionException, match=message):
        driver(**opts)


def test_a_missing_docker_client_is_a_connection_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConnectionException, match="no docker client"):
        DockerTransport("c1")
