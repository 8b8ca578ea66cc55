"""The push pipeline against five real FRR routers in the lab, over real SSH, in parallel."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lbauto.cli.push import push_command
from lbauto.core.model import Inventory, ObservedRouter, PbrBinding, PbrRule, Router, StaticRoute
from lbauto.core.plan import RouterChange
from lbauto.errors import PushAbortedError, PushError
from lbauto.inventory import load_inventory
from lbauto.lab import Lab
from lbauto.push.observe import observe_routers
from lbauto.push.pipeline import RouterFleet, RouterPush, Status, push
from lbauto.push.reconcile import reconcile_jobs
from lbauto.push.verify import Expectation
from tests.integration.conftest import MakeLab, vtysh, wait_route

pytestmark = pytest.mark.integration

VIP = ipaddress.ip_network("192.0.2.10/32")
DIP = ipaddress.ip_address("198.51.100.21")
AGENT = ipaddress.ip_address("198.51.100.10")
BYPASS = StaticRoute(VIP, DIP, 1, 4242)
LB = StaticRoute(VIP, AGENT, 200, 4242)
LINES = f"ip route {VIP} {DIP} tag 4242\nip route {VIP} {AGENT} tag 4242 200\n"


def driver_state(pathspace: str) -> Path:
    """napalm_frr's router-side state directory (napalm_frr/state.py): the timer's record is
    ``pending`` = "<commit> <timer pid> <deadline> <session>"."""
    return Path.home() / ".local/state/napalm-frr" / pathspace


@pytest.fixture(scope="module")
def lab(make_lab: MakeLab) -> Iterator[Lab]:
    lab = make_lab("lbppush", routers=5, agents=1, dips=1)
    try:
        yield lab
    finally:  # the driver's working files on the "routers" (rollback points, logs)
        for r in lab.routers:
            shutil.rmtree(driver_state(r.pathspace), ignore_errors=True)


@pytest.fixture(scope="module")
def inv(lab: Lab) -> Inventory:
    return load_inventory(lab.inventory_dir)


def running(lab: Lab, name: str) -> str:
    r = lab.router(name)
    argv = ["vtysh", "-N", r.pathspace, "-c", "show running-config no-header"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def baseline(lab: Lab, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Every router's config before the test, restored after it (timers killed first)."""
    before = {r.name: running(lab, r.name) for r in lab.routers}
    try:
        yield before
    finally:
        for r in lab.routers:
            pending = driver_state(r.pathspace) / "pending"
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.killpg(int(pending.read_text().split()[1]), signal.SIGTERM)
            pending.unlink(missing_ok=True)
            saved = tmp_path / f"{r.name}.conf"
            saved.write_text(before[r.name])
            subprocess.run(
                [
                    "python3",
                    "/usr/lib/frr/frr-reload.py",
                    "--reload",
                    "--pathspace",
                    r.pathspace,
                    str(saved),
                ],
                capture_output=True,
                check=False,
            )


def jobs(routers: tuple[Router, ...], lines: str = LINES) -> list[RouterPush]:
    return [RouterPush(r, lines, Expectation(present=(BYPASS, LB))) for r in routers]


def test_dry_run_shows_diffs_and_changes_nothing(
    lab: Lab, inv: Inventory, baseline: dict[str, str]
) -> None:
    result = push(jobs(inv.routers), dry_run=True)
    assert [r.status for r in result.results] == [Status.CHANGED] * 5
    for r in result.results:
        assert r.diff.splitlines() == [
            f"+ip route {VIP} {DIP} tag 4242",
            f"+ip route {VIP} {AGENT} tag 4242 200",
        ]
        assert r.diff_lines == 2
    assert {r.name: running(lab, r.name) for r in lab.routers} == baseline


def test_five_routers_in_parallel_install_the_bypass(
    lab: Lab, inv: Inventory, baseline: dict[str, str]
) -> None:
    result = push(jobs(inv.routers), revert_in=30)
    assert result.ok
    assert [r.status for r in result.results] == [Status.CHANGED] * 5
    for r in lab.routers:
        wait_route(lab, r.name, str(VIP), str(DIP))
        assert (
            f"via {DIP}" in lab.run(r.netns, "ip", "route", "get", str(VIP.network_address)).stdout
        )
        assert not (driver_state(r.pathspace) / "pending").exists()
    # the same push again changes nothing
    again = push(jobs(inv.routers))
    assert [r.status for r in again.results] == [Status.UNCHANGED] * 5


@pytest.mark.parametrize("how", ["verification", "invalid-line"])
def test_one_failing_router_rolls_back_the_others(
    lab: Lab, inv: Inventory, baseline: dict[str, str], how: str
) -> None:
    bad = inv.router("r3")
    work = [j for j in jobs(inv.routers) if j.router.name != "r3"]
    if how == "verification":
        # a next hop on no connected network: FRR keeps the line but the route never reaches
        # the routing table
        unreachable = StaticRoute(VIP, ipaddress.ip_address("198.18.250.9"), 1, 4242)
        work.append(
            RouterPush(bad, f"ip route {VIP} 198.18.250.9 tag 4242\n", Expectation((unreachable,)))
        )
    else:
        work.append(RouterPush(bad, LINES + "ip rute bogus\n", Expectation((BYPASS,))))
    with pytest.raises(PushAbortedError) as info:
        push(work, revert_in=60, verify_timeout=1.0)
    err = info.value
    assert err.router == "r3"
    expected = "198.18.250.9 distance 1 missing" if how == "verification" else "Unknown command"
    assert expected in str(err)
    statuses = {r.router: r.status for r in err.result.results}
    assert statuses.pop("r3") is Status.FAILED
    assert set(statuses.values()) == {Status.ROLLED_BACK}
    for r in lab.routers:
        wait_route(lab, r.name, str(VIP), None)
    assert {r.name: running(lab, r.name) for r in lab.routers} == baseline


def test_pbr_policy_is_verified(lab: Lab, inv: Inventory, baseline: dict[str, str]) -> None:
    router = inv.router("r1")
    lines = (
        f"pbr-map LBAUTO seq 1\n match dst-ip {VIP}\n set nexthop {DIP}\nexit\n"
        "interface cli\n pbr-policy LBAUTO\nexit\n"
    )
    rule, binding = PbrRule(1, VIP, DIP), PbrBinding("cli")
    result = push([RouterPush(router, lines, Expectation((rule, binding)))])
    assert result.results[0].status is Status.CHANGED
    assert "pbr-policy LBAUTO" in running(lab, "r1")
    # a wrong expectation (another next hop) fails verification and rolls the change back
    wrong = PbrRule(2, VIP, ipaddress.ip_address("198.51.100.22"))
    lines2 = f"pbr-map LBAUTO seq 2\n match dst-ip {VIP}\n set nexthop 198.51.100.23\nexit\n"
    with pytest.raises(PushAbortedError, match=r"seq 2 not set to 198\.51\.100\.22"):
        push([RouterPush(router, lines2, Expectation((wrong,)))], verify_timeout=0.5)
    assert "seq 2" not in running(lab, "r1")
    assert "pbr-map LBAUTO seq 1" in running(lab, "r1")


# ---------------------------------------------------------------- inventory-driven push, drift

API_VIP = "192.0.2.11"  # the lab's single-DIP VIP: bypass to 198.51.100.21


def cli_push(inv_dir: Path, *args: str) -> str:
    app = typer.Typer()
    app.command()(push_command)
    res = CliRunner().invoke(app, ["--inventory", str(inv_dir), *args])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res.output


def test_cli_push_observes_drift_and_repairs_it(
    lab: Lab, inv: Inventory, baseline: dict[str, str]
) -> None:
    bypass = StaticRoute(ipaddress.ip_network(f"{API_VIP}/32"), DIP, 1, 4242)
    out = cli_push(lab.inventory_dir, "--dry-run", "r1", "r2")
    assert f"+ip route {API_VIP}/32 {DIP} tag 4242" in out
    assert "would change" in out
    assert {r.name: running(lab, r.name) for r in lab.routers} == baseline

    out = cli_push(lab.inventory_dir, "r1", "r2")
    assert "changed" in out
    for name in ("r1", "r2"):
        wait_route(lab, name, f"{API_VIP}/32", str(DIP))
    assert running(lab, "r3") == baseline["r3"]  # not named: untouched
    seen = observe_routers(inv, ["r1", "r2"])
    assert bypass in seen["r1"].objects
    assert seen == observe_routers(inv, ["r1", "r2"])  # observing changes nothing

    # drift: someone removes the bypass by hand; observation shows it, a push repairs it
    vtysh(lab, "r1", f"no ip route {API_VIP}/32 {DIP}")
    wait_route(lab, "r1", f"{API_VIP}/32", "198.51.100.10")
    drifted = observe_routers(inv, ["r1"])["r1"].objects
    assert bypass not in drifted
    (job,) = reconcile_jobs(inv, {"r1": ObservedRouter("r1", drifted)}, ["r1"])
    assert job.config == f"ip route {API_VIP}/32 {DIP} tag 4242\n"
    out = cli_push(lab.inventory_dir, "r1", "r2")
    assert "unchanged" in out  # r2 did not drift
    wait_route(lab, "r1", f"{API_VIP}/32", str(DIP))


def test_router_fleet_is_the_executors_router_port(
    lab: Lab, inv: Inventory, baseline: dict[str, str]
) -> None:
    fleet = RouterFleet([inv.router("r4"), inv.router("r5")], revert_in=30, verify_timeout=2.0)
    add = RouterChange("r4", add=(LB, BYPASS))
    fleet.push([add, RouterChange("r5")])
    wait_route(lab, "r4", str(VIP), str(DIP))
    fleet.verify([add])
    assert fleet.last_result is not None
    assert [r.status for r in fleet.last_result.results] == [Status.CHANGED]
    with pytest.raises(
        PushError, match=re.escape("r4: route 192.0.2.10/32 via 198.51.100.21 still")
    ):
        fleet.verify([RouterChange("r4", remove=(BYPASS,))])
    fleet.push([RouterChange("r4", remove=(BYPASS,))])
    wait_route(lab, "r4", str(VIP), str(AGENT))
    fleet.verify([RouterChange("r4", remove=(BYPASS,))])
