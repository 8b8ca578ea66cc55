"""Outside clients of the FRR driver against a live lab router (real FRR 8.4, real SSH):

- NAPALM's own conformance suite, live: ``napalm.base.test.getters.BaseTestGetters`` and
  ``napalm.base.test.base.TestConfigNetworkDriver`` (the same tests as tests/unit, but every
  getter asks the router, and the config tests really replace, merge, commit and roll back);
- Nornir 3 with nornir-napalm (``napalm_get``, ``napalm_configure`` dry-run and real with
  revert, ``napalm_cli``) on the lab's own inventory files;
- the ``napalm`` command line tool with ``-v frr``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from napalm.base import models
from napalm.base.test import base as napalm_base
from napalm.base.test import conftest as napalm_conftest
from napalm.base.test import helpers

from lbauto.lab import Lab
from lbauto.lab.frr import PEER_PREFIX
from napalm_frr import FRRDriver
from tests.integration.conftest import MakeLab, wait_route

pytestmark = [
    pytest.mark.integration,
    # NAPALM's live wrappers return the getter's result (the mocked ones compare it)
    pytest.mark.filterwarnings("ignore::pytest.PytestReturnNotNoneWarning"),
]

ROUTE = "ip route 192.0.2.99/32 198.51.100.21 tag 4242"
MERGE = "ip route 192.0.2.97/32 198.51.100.21 tag 4242"
LLDP_REASON = "FRR has no LLDP; the lab runs no lldpd, so get_lldp_neighbors is {} (documented)"
VRF_REASON = "the lab router has no VRF 'TEST' (the suite's hard-coded VRF name)"


def _live_getters() -> Any:
    """A private copy of napalm.base.test.getters built with NAPALM_TEST_MOCK off: the suite
    picks mock or live wrappers when the module is imported, and tests/unit imports it mocked
    in the same pytest process."""
    spec = importlib.util.find_spec("napalm.base.test.getters")
    assert spec is not None and spec.origin is not None
    saved = napalm_conftest.NAPALM_TEST_MOCK
    napalm_conftest.NAPALM_TEST_MOCK = False
    try:
        live = importlib.util.spec_from_file_location("napalm_frr_live_getters", spec.origin)
        assert live is not None and live.loader is not None
        module = importlib.util.module_from_spec(live)
        live.loader.exec_module(module)
    finally:
        napalm_conftest.NAPALM_TEST_MOCK = saved
    return module


LIVE = _live_getters()
_LAB: list[Lab] = []


@pytest.fixture(scope="module", autouse=True)
def lab(make_lab: MakeLab) -> Iterator[Lab]:
    lab = make_lab("nfcli", routers=1, agents=1, dips=1)
    _LAB[:] = [lab]
    _wait_bgp(lab)
    try:
        yield lab
    finally:  # the driver's records on the "router" (rollback points, logs)
        _LAB.clear()
        state = Path.home() / ".local/state/napalm-frr" / lab.routers[0].pathspace
        shutil.rmtree(state, ignore_errors=True)


def _wait_bgp(lab: Lab, timeout: float = 30) -> None:
    argv = ["vtysh", "-N", lab.routers[0].pathspace, "-c", f"show ip route {PEER_PREFIX} json"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        if PEER_PREFIX in out:
            return
        time.sleep(0.2)
    raise AssertionError(f"the lab's BGP peer did not announce {PEER_PREFIX} in {timeout} s")


def _options(lab: Lab) -> dict[str, str]:
    r = lab.routers[0]
    return {"key_file": str(r.key_file), "pathspace": r.pathspace}


def _device(lab: Lab) -> FRRDriver:
    r = lab.routers[0]
    drv = FRRDriver(str(r.mgmt_ip), r.ssh_user, "", timeout=60, optional_args=_options(lab))
    drv.open()
    return drv


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "test_case" in metafunc.fixturenames:
        metafunc.parametrize("test_case", ["live"])


# --- NAPALM's getter suite, live -------------------------------------------------------------


@pytest.fixture(scope="class")
def live_device(request: pytest.FixtureRequest, lab: Lab) -> Iterator[None]:
    request.cls.driver = FRRDriver
    request.cls.device = _device(lab)
    yield
    request.cls.device.close()


def _routes_ok(routes: dict[str, Any]) -> None:
    assert len(routes) > 0
    for entries in routes.values():
        for route in entries:
            assert helpers.test_model(models.RouteDict, route)


@pytest.mark.documented_skips  # "Method not implemented" for data FRR has none of; see docs/push.md
@pytest.mark.usefixtures("live_device")
class TestFRRGettersLive(LIVE.BaseTestGetters):  # type: ignore[misc,name-defined]
    def test_get_route_to(self, test_case: str) -> Any:
        routes = self.device.get_route_to(destination=PEER_PREFIX, protocol="bgp")
        _routes_ok(routes)
        assert routes[PEER_PREFIX][0]["next_hop"] == "203.0.113.100"
        return routes

    def test_get_route_to_longer(self, test_case: str) -> Any:
        routes = self.device.get_route_to(destination="198.19.0.0/16", protocol="bgp", longer=True)
        _routes_ok(routes)
        assert list(routes) == [PEER_PREFIX]
        return routes

    def test_get_lldp_neighbors(self) -> None:
        assert self.device.get_lldp_neighbors() == {}
        pytest.skip(LLDP_REASON)

    def test_get_arp_table_with_vrf(self) -> None:
        pytest.skip(VRF_REASON)

    def test_bgp_session_is_established(self) -> None:
        peers = self.device.get_bgp_neighbors()["global"]["peers"]
        peer = peers["203.0.113.100"]
        assert peer["is_up"] and peer["remote_as"] == 64501
        assert peer["address_family"]["ipv4"]["accepted_prefixes"] == 1
        group = self.device.get_bgp_config()["_"]
        assert group["neighbors"]["203.0.113.100"]["import_policy"] == "LAB-PEER-IN"


# --- NAPALM's config suite, live -------------------------------------------------------------


class TestFRRConfigLive(napalm_base.TestConfigNetworkDriver):  # type: ignore[misc]
    """``TestConfigNetworkDriver`` is written for unittest; these two give it what it uses."""

    vendor = ""

    def assertEqual(self, first: Any, second: Any) -> None:  # noqa: N802 (unittest's name)
        assert first == second

    def assertTrue(self, value: Any) -> None:  # noqa: N802
        assert value

    @classmethod
    def setUpClass(cls) -> None:
        cls.device = _device(_LAB[0])
        initial = cls.device.get_config(retrieve="running")["running"]
        body = initial.replace("\nend\n", "\n")
        folder = Path(tempfile.mkdtemp(prefix="nfcli-frr-"))
        files = {
            "initial.conf": initial,
            "new_good.conf": body + ROUTE + "\n",
            "new_good.diff": "+" + ROUTE,
            "new_typo.conf": body + "ip routee 192.0.2.98/32 198.51.100.21\n",
            "merge_good.conf": MERGE + "\n",
            # the suite diffs the initial config against the merged one: the route goes away
            "merge_good.diff": "-" + MERGE,
            # (not "ip rout": vtysh takes unambiguous abbreviations)
            "merge_typo.conf": "ip rute 192.0.2.96/32 198.51.100.21\n",
        }
        for name, text in files.items():
            (folder / name).write_text(text)
        cls.vendor = str(folder)


# --- Nornir with nornir-napalm ---------------------------------------------------------------


def _nornir(lab: Lab) -> Any:
    from nornir import InitNornir

    inv = lab.inventory_dir
    return InitNornir(
        runner={"plugin": "threaded", "options": {"num_workers": 4}},
        inventory={
            "plugin": "SimpleInventory",
            "options": {
                "host_file": str(inv / "hosts.yaml"),
                "group_file": str(inv / "groups.yaml"),
                "defaults_file": str(inv / "defaults.yaml"),
            },
        },
        logging={"enabled": False},
    )


GETTERS = [
    "facts",
    "interfaces",
    "interfaces_ip",
    "interfaces_counters",
    "arp_table",
    "ipv6_neighbors_table",
    "bgp_neighbors",
    "bgp_config",
    "route_to",
    "config",
    "lldp_neighbors",
    "environment",
    "network_instances",
]


def test_nornir_napalm_get_configure_cli(lab: Lab) -> None:
    from nornir_napalm.plugins.tasks import napalm_cli, napalm_configure, napalm_get

    nr = _nornir(lab)
    assert nr.inventory.hosts["r1"].platform == "frr"
    got = nr.run(
        task=napalm_get,
        getters=GETTERS,
        getters_options={"route_to": {"destination": PEER_PREFIX, "protocol": "bgp"}},
    )
    assert not got.failed, got["r1"][0].exception
    result = got["r1"][0].result
    assert set(result) == set(GETTERS)
    assert result["facts"]["hostname"] == lab.routers[0].pathspace
    assert helpers.test_model(models.FactsDict, result["facts"])
    for iface in result["interfaces"].values():
        assert helpers.test_model(models.InterfaceDict, iface)
    assert result["route_to"][PEER_PREFIX][0]["protocol"] == "bgp"
    assert result["bgp_neighbors"]["global"]["peers"]["203.0.113.100"]["is_up"]

    before = result["config"]["running"]
    dry = nr.run(task=napalm_configure, configuration=ROUTE + "\n", dry_run=True)
    assert not dry.failed and dry["r1"].changed
    assert dry["r1"][0].diff == "+" + ROUTE
    r = lab.routers[0]
    assert _running(lab) == before

    real = nr.run(task=napalm_configure, configuration=ROUTE + "\n", dry_run=False, revert_in=3)
    assert not real.failed and real["r1"].changed
    wait_route(lab, "r1", "192.0.2.99/32", "198.51.100.21")
    # nornir-napalm never confirms: the router's timer puts the old config back
    wait_route(lab, "r1", "192.0.2.99/32", None, timeout=15)
    assert _running(lab) == before

    cli = nr.run(task=napalm_cli, commands=["show version", "show bgp summary"])
    assert not cli.failed
    assert "FRRouting" in cli["r1"][0].result["show version"]
    assert "64501" in cli["r1"][0].result["show bgp summary"]
    nr.close_connections()
    assert r.pathspace


def _running(lab: Lab) -> str:
    argv = ["vtysh", "-N", lab.routers[0].pathspace, "-c", "show running-config no-header"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


# --- the napalm command line tool --------------------------------------------------------------


def _napalm_cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    r = lab.routers[0]
    # the CLI reads each value as a Python literal
    opts = ",".join(f"{k}={v!r}" for k, v in _options(lab).items())
    exe = Path(sys.executable).with_name("napalm")
    argv = [str(exe), "--user", r.ssh_user, "--password", "", "-v", "frr", "-o", opts]
    return subprocess.run(
        [*argv, str(r.mgmt_ip), *args], capture_output=True, text=True, check=False, timeout=120
    )


def test_napalm_cli_with_vendor_frr(lab: Lab, tmp_path: Path) -> None:
    facts = _napalm_cli(lab, "call", "get_facts")
    assert facts.returncode == 0, facts.stderr
    assert json.loads(facts.stdout)["hostname"] == lab.routers[0].pathspace
    routes = _napalm_cli(
        lab, "call", "get_route_to", "--method-kwargs", f"destination='{PEER_PREFIX}'"
    )
    assert routes.returncode == 0, routes.stderr
    assert PEER_PREFIX in json.loads(routes.stdout)
    change = tmp_path / "change.conf"
    change.write_text(ROUTE + "\n")
    before = _running(lab)
    dry = _napalm_cli(lab, "configure", str(change), "--strategy", "merge", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+" + ROUTE in dry.stdout
    assert _running(lab) == before
