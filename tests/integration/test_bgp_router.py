"""BGP LB routes on a real FRR 8.4 router (issue 17, router side).

Two network namespaces joined by a veth pair on the server segment: the router (zebra, staticd,
bgpd, bfdd) and one agent host whose bgpd + bfdd stand in for the agent's BGP speaker (it
announces two VIPs of the inventory, one VIP-looking /32 that is not in it, and a /24). lbauto
renders the router side, pushes it through its own push pipeline and ``napalm_frr`` (local
transport), observes it back and plans nothing more; the router installs exactly the inventory's
VIPs, the bypass (distance 1) beats the eBGP route (20), ``status`` reads each agent's BGP and
BFD state, and a ``kill -9`` of the agent's daemons is seen by BFD in well under a second.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from napalm.base import models
from napalm.base.test import helpers

from lbauto.core.model import BgpGroup, BgpPeer, Inventory, ObservedState, Router
from lbauto.core.planner import make_plan
from lbauto.inventory import load_inventory
from lbauto.lab.frr import with_mgmtd
from lbauto.orchestrate.executor import Executor
from lbauto.orchestrate.journal import Journal
from lbauto.orchestrate.sessions import read_sessions, sessions_json
from lbauto.platforms.driver import NapalmDriver
from lbauto.push.drivers import open_driver
from lbauto.push.observe import observe_router
from lbauto.push.pipeline import RouterFleet, push
from lbauto.push.reconcile import reconcile_jobs

pytestmark = pytest.mark.integration

FRR_BIN = Path("/usr/lib/frr")
ROUTER_IP, AGENT_IP = "198.51.100.1", "198.51.100.10"
VIP_MULTI, VIP_SINGLE, NOT_A_VIP, DIP = "192.0.2.10", "192.0.2.11", "192.0.2.99", "198.51.100.21"

AGENT_CONF = f"""\
frr defaults traditional
hostname bp-agent
router bgp 64512
 bgp router-id {AGENT_IP}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {ROUTER_IP} remote-as 64500
 neighbor {ROUTER_IP} bfd
 neighbor {ROUTER_IP} timers connect 1
 address-family ipv4 unicast
  network {VIP_MULTI}/32
  network {VIP_SINGLE}/32
  network {NOT_A_VIP}/32
  network 198.18.0.0/24
 exit-address-family
exit
bfd
 peer {ROUTER_IP}
  receive-interval 100
  transmit-interval 100
 exit
exit
"""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


class Frr:
    """One FRR instance in its own namespace and pathspace."""

    def __init__(self, name: str, daemons: tuple[str, ...], conf: str) -> None:
        self.name, self.daemons, self.conf = name, daemons, conf
        self.rundir, self.confdir = Path("/var/run/frr") / name, Path("/etc/frr") / name

    def start(self) -> None:
        for d in (self.rundir, self.confdir):
            sh("install", "-d", "-o", "frr", "-g", "frr", str(d))
        (self.confdir / "vtysh.conf").write_text("service integrated-vtysh-config\n")
        (self.confdir / "frr.conf").write_text(self.conf)
        shutil.chown(self.confdir / "frr.conf", "frr", "frr")
        for daemon in with_mgmtd(self.daemons):
            sh(
                "ip", "netns", "exec", self.name, str(FRR_BIN / daemon), "-N", self.name,
                "-d", "-A", "127.0.0.1", "-P", "0", "--log", "syslog",
            )  # fmt: skip
        sh("vtysh", "-N", self.name, "-b")

    def pids(self, *daemons: str) -> list[int]:
        out = []
        for d in daemons or with_mgmtd(self.daemons):
            with contextlib.suppress(OSError, ValueError):
                out.append(int((self.rundir / f"{d}.pid").read_text().strip()))
        return out

    def stop(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.rundir, ignore_errors=True)
        shutil.rmtree(self.confdir, ignore_errors=True)

    def vtysh_json(self, command: str) -> object:
        return json.loads(sh("vtysh", "-N", self.name, "-c", command).stdout or "{}")


@pytest.fixture(scope="module")
def boxes() -> Iterator[tuple[Frr, Frr]]:
    if os.geteuid() != 0 or not (FRR_BIN / "bfdd").exists() or not shutil.which("vtysh"):
        pytest.skip("needs root and FRR (zebra, staticd, bgpd, bfdd, vtysh)")
    tag = f"bp{os.getpid() % 100000}"
    router = Frr(f"{tag}r", ("zebra", "staticd", "bgpd", "bfdd"), "frr defaults traditional\n")
    agent = Frr(f"{tag}a", ("zebra", "bgpd", "bfdd"), AGENT_CONF)
    try:
        for box in (router, agent):
            sh("ip", "netns", "add", box.name)
            sh("ip", "-n", box.name, "link", "set", "lo", "up")
        sh("ip", "-n", router.name, "link", "add", "srv0", "type", "veth", "peer", "name",
           "eth0", "netns", agent.name)  # fmt: skip
        for box, dev, address in ((router, "srv0", ROUTER_IP), (agent, "eth0", AGENT_IP)):
            sh("ip", "-n", box.name, "addr", "add", f"{address}/24", "dev", dev)
            sh("ip", "-n", box.name, "link", "set", dev, "up")
        router.start()
        agent.start()
        yield router, agent
    finally:
        for box in (router, agent):
            box.stop()
            sh("ip", "netns", "del", box.name, check=False)


def write_inventory(root: Path, router: Frr, bfd: bool = True, mode: str = "bgp") -> Inventory:
    (root / "hosts.yaml").write_text(
        textwrap.dedent(
            f"""\
            r1:
              hostname: localhost
              platform: frr
              data:
                lbauto_lb_route: {mode}
                lbauto_bgp: {{asn: 64500, agent_asn: 64512, bfd: {str(bfd).lower()}}}
              connection_options:
                napalm:
                  extras:
                    optional_args:
                      transport: local
                      pathspace: {router.name}
                      netns: {router.name}
                      state_dir: {root / "frr-state"}
            """
        )
    )
    (root / "agents.yaml").write_text(
        f"agents:\n  - {{name: lb1, api: 'http://127.0.0.1:9', address: {AGENT_IP},"
        " token_env: BP_TOKEN}\n"
    )
    (root / "vips.yaml").write_text(
        textwrap.dedent(
            f"""\
            vips:
              - {{name: web, address: {VIP_MULTI}, dips: [198.51.100.21, 198.51.100.22]}}
              - {{name: one, address: {VIP_SINGLE}, dips: [{DIP}]}}
            """
        )
    )
    return load_inventory(root)


def wait(what: str, check: object, timeout: float = 15.0) -> float:
    start = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        time.sleep(0.02)
    return time.monotonic() - start


def bgp_routes(router: Frr) -> dict[str, list[str]]:
    table = router.vtysh_json("show ip route bgp json")
    assert isinstance(table, dict)
    return {
        prefix: [nh.get("ip", "") for e in entries for nh in e.get("nexthops", [])]
        for prefix, entries in table.items()
    }


def selected(router: Frr, prefix: str) -> str:
    table = router.vtysh_json(f"show ip route {prefix} json")
    assert isinstance(table, dict)
    return str(next((e["protocol"] for e in table.get(prefix, []) if e.get("selected")), ""))


@pytest.fixture(scope="module")
def deployed(boxes: tuple[Frr, Frr], tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    router, _ = boxes
    inv = write_inventory(tmp_path_factory.mktemp("bpinv"), router)
    observed = {"r1": observe_router(inv.routers[0])}
    result = push(reconcile_jobs(inv, observed), revert_in=60)
    assert result.ok, result.to_json()
    return inv


def test_pushed_router_side_observes_back_with_nothing_to_plan(
    boxes: tuple[Frr, Frr], deployed: Inventory
) -> None:
    seen = observe_router(deployed.routers[0])
    assert BgpPeer(ipaddress.ip_address(AGENT_IP)) in seen.pool
    assert BgpGroup(64500, 64512, 8, True, 100, 3) in seen.pool
    plan = make_plan(deployed, ObservedState(routers={"r1": seen}))
    assert not plan.pool
    assert all(not rp.add and not rp.remove for rp in plan.routers), plan.routers


def test_router_accepts_only_the_inventorys_vips_and_the_bypass_wins(
    boxes: tuple[Frr, Frr], deployed: Inventory
) -> None:
    router, _ = boxes
    wait("the VIP routes over BGP", lambda: f"{VIP_MULTI}/32" in bgp_routes(router))
    routes = bgp_routes(router)
    assert routes[f"{VIP_MULTI}/32"] == [AGENT_IP]
    assert f"{NOT_A_VIP}/32" not in routes and "198.18.0.0/24" not in routes
    # Control: the agent did announce them (the router's import policy dropped them).
    adj = router.vtysh_json(f"show bgp neighbors {AGENT_IP} json")
    assert isinstance(adj, dict)
    assert adj[AGENT_IP]["addressFamilyInfo"]["ipv4Unicast"]["acceptedPrefixCounter"] == 2
    assert selected(router, f"{VIP_MULTI}/32") == "bgp"
    assert selected(router, f"{VIP_SINGLE}/32") == "static"  # distance 1 beats eBGP's 20


def test_status_shows_bgp_and_bfd_per_agent_and_bfd_withdraws_a_cut_agent_fast(
    boxes: tuple[Frr, Frr], deployed: Inventory
) -> None:
    """The agent's link is cut silently (its host drops every packet, no carrier change, no
    TCP reset): only BFD can notice before BGP's 180 s hold timer."""
    router, agent = boxes
    r1 = deployed.routers[0]

    def session() -> dict[str, object]:
        doc = sessions_json([read_sessions(r1, deployed.agents)])
        return doc["r1"]["lb1"][AGENT_IP]  # type: ignore[no-any-return]

    wait("BGP and BFD up", lambda: session()["bgp"] == "up" and session()["bfd"] == "up")
    up = session()
    assert up["accepted"] == 2 and isinstance(up["uptime"], int)
    with opened(r1) as driver:  # the getter's output is in NAPALM's own model
        peer = driver.get_bgp_neighbors()["global"]["peers"][AGENT_IP]
        # As NAPALM's own getter test checks it (napalm.base.test.getters).
        assert helpers.test_model(models.PeerDict, peer)
        assert peer["address_family"]
        for family in peer["address_family"].values():
            assert helpers.test_model(models.AFDict, family)
    wait("the VIP route", lambda: f"{VIP_MULTI}/32" in bgp_routes(router))
    with cut(agent):
        gone = wait(
            "the cut agent's route withdrawn",
            lambda: f"{VIP_MULTI}/32" not in bgp_routes(router),
            timeout=5,
        )
        down = session()
    assert down["bgp"] == "down" and down["bfd"] == "down", down
    # BFD at 100 ms x 3 detects in about 0.3 s.
    assert gone < 1.0, f"withdrawn after {gone:.2f} s"
    print(f"agent cut: route withdrawn after {gone * 1000:.0f} ms")


def test_control_without_bfd_the_cut_agent_keeps_its_routes(
    boxes: tuple[Frr, Frr], deployed: Inventory, tmp_path: Path
) -> None:
    """Control for the test above: the same cut with BFD off (bfd: false, pushed by lbauto)
    leaves the dead agent's route in place for the whole second."""
    router, agent = boxes
    inv = write_inventory(tmp_path, router, bfd=False)
    result = push(reconcile_jobs(inv, {"r1": observe_router(inv.routers[0])}), revert_in=60)
    assert result.ok, result.to_json()
    assert BgpGroup(64500, 64512, 8, False, 0, 0) in observe_router(inv.routers[0]).pool
    wait("the VIP route", lambda: f"{VIP_MULTI}/32" in bgp_routes(router), timeout=20)
    with cut(agent):
        time.sleep(1.5)
        assert f"{VIP_MULTI}/32" in bgp_routes(router)


def test_apply_switches_the_router_to_static_and_back_through_the_executor(
    boxes: tuple[Frr, Frr], deployed: Inventory, tmp_path: Path
) -> None:
    """The executor's pool order on the real router (lbauto apply's path; the agent side is
    left out: no agent API runs here): to static, the VIP gets its static LB route before the
    sessions go; back to bgp, the sessions come first. Each run observes back to no change."""
    router, _ = boxes
    for mode in ("static", "bgp"):
        (tmp_path / mode).mkdir()
        inv = write_inventory(tmp_path / mode, router, mode=mode)
        seen = observe_router(inv.routers[0])
        observed = ObservedState(routers={"r1": seen})
        plan = make_plan(inv, observed)
        assert plan.pool, f"{mode}: the sessions change"
        fleet = RouterFleet(inv.routers, observed={"r1": seen.objects}, revert_in=60)
        Executor([], fleet, Journal(tmp_path / mode), observed).execute(plan)
        after = observe_router(inv.routers[0])
        replan = make_plan(inv, ObservedState(routers={"r1": after}))
        assert not replan.pool and all(not rp.add and not rp.remove for rp in replan.routers)
        if mode == "static":
            assert not after.pool
            assert selected(router, f"{VIP_MULTI}/32") == "static"  # the LB route, 200
        else:
            assert BgpGroup(64500, 64512, 8, True, 100, 3) in after.pool
            wait("the VIP over BGP", lambda: selected(router, f"{VIP_MULTI}/32") == "bgp", 20)
        assert selected(router, f"{VIP_SINGLE}/32") == "static"  # the bypass throughout


@contextlib.contextmanager
def cut(agent: Frr) -> Iterator[None]:
    """The agent host drops every packet it would send (no carrier change, no TCP reset)."""
    nft = ("ip", "netns", "exec", agent.name, "nft")
    sh(*nft, "add table inet bpcut")
    sh(*nft, "add chain inet bpcut o { type filter hook output priority 0; policy drop; }")
    try:
        yield
    finally:
        sh(*nft, "delete table inet bpcut", check=False)


@contextlib.contextmanager
def opened(router: Router) -> Iterator[NapalmDriver]:
    driver = open_driver(router)
    try:
        yield driver
    finally:
        driver.close()
