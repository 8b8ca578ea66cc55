"""The FRR NAPALM driver against real FRR in the lab, over real SSH (and the local transport)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import napalm
import pytest
from napalm.base.exceptions import CommandErrorException, CommitError, MergeConfigException

from lbauto.lab import Lab
from tests.integration.conftest import MakeLab, wait_route

pytestmark = pytest.mark.integration

VIP = "192.0.2.10"
BYPASS = f"ip route {VIP}/32 198.51.100.21 tag 4242\n"
LB = f"ip route {VIP}/32 198.51.100.10 tag 4242 200\n"


@pytest.fixture(scope="module")
def lab(make_lab: MakeLab) -> Iterator[Lab]:
    lab = make_lab("lbpdrv", routers=1, agents=1, dips=1)
    try:
        yield lab
    finally:  # the driver's working files on the "router" (rollback point, logs)
        shutil.rmtree(_state_dir(lab), ignore_errors=True)


def _state_dir(lab: Lab) -> Path:
    return Path("/var/tmp/napalm-frr") / lab.routers[0].pathspace


def _kill_timers(lab: Lab) -> None:
    for name in ("pending.pid", "reverting.pid"):
        with contextlib.suppress(OSError, ValueError):
            os.killpg(int((_state_dir(lab) / name).read_text()), signal.SIGTERM)
        (_state_dir(lab) / name).unlink(missing_ok=True)


def running(lab: Lab) -> str:
    r = lab.routers[0]
    return subprocess.run(
        ["vtysh", "-N", r.pathspace, "-c", "show running-config no-header"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def baseline(lab: Lab, tmp_path: Path) -> Iterator[str]:
    """The router's config before the test; restored after it (timers killed first)."""
    before = running(lab)
    saved = tmp_path / "baseline.conf"
    saved.write_text(before)
    try:
        yield before
    finally:
        _kill_timers(lab)
        subprocess.run(
            [
                "python3",
                "/usr/lib/frr/frr-reload.py",
                "--reload",
                "--pathspace",
                lab.routers[0].pathspace,
                str(saved),
            ],
            capture_output=True,
            check=False,
        )


def driver(lab: Lab, transport: str = "ssh") -> napalm.base.NetworkDriver:
    r = lab.routers[0]
    cls = napalm.get_network_driver("frr")
    if transport == "ssh":
        opts = {"pathspace": r.pathspace, "key_file": str(r.key_file)}
        drv = cls(str(r.mgmt_ip), r.ssh_user, "", timeout=30, optional_args=opts)
    else:
        opts = {"pathspace": r.pathspace, "transport": "local", "netns": r.netns}
        drv = cls("localhost", "", "", timeout=30, optional_args=opts)
    drv.open()
    return drv


@contextlib.contextmanager
def opened(lab: Lab, transport: str = "ssh") -> Iterator[napalm.base.NetworkDriver]:
    drv = driver(lab, transport)
    try:
        yield drv
    finally:
        drv.close()


def kernel_route(lab: Lab, address: str) -> str:
    return lab.run(lab.routers[0].netns, "ip", "route", "get", address, check=False).stdout


def test_getters(lab: Lab, baseline: str) -> None:
    with opened(lab) as drv:
        assert drv.is_alive() == {"is_alive": True}
        facts = drv.get_facts()
        assert facts["vendor"] == "FRRouting"
        assert facts["os_version"].startswith("8.")
        assert {"srv", "cli"} <= set(facts["interface_list"])
        assert facts["uptime"] >= 0  # seconds since zebra started (-1 = unknown)
        config = drv.get_config(retrieve="running")
        assert config["running"] == baseline
        assert config["candidate"] == ""
        out = drv.cli(["show version", "show ip route summary"])
        assert "FRRouting" in out["show version"]
        data = drv.cli(["show interface"], encoding="json")["show interface"]
        assert isinstance(data, dict) and "srv" in data
        with pytest.raises(CommandErrorException, match="show bogus"):
            drv.cli(["show bogus"])
    with opened(lab) as drv:
        pass
    assert drv.is_alive() == {"is_alive": False}


def test_dry_run_shows_the_diff_and_changes_nothing(lab: Lab, baseline: str) -> None:
    with opened(lab) as drv:
        drv.load_merge_candidate(config=BYPASS + LB)
        diff = drv.compare_config()
        assert diff.splitlines() == [
            f"+ip route {VIP}/32 198.51.100.21 tag 4242",
            f"+ip route {VIP}/32 198.51.100.10 tag 4242 200",
        ]
        assert drv.get_config(retrieve="candidate")["candidate"] == BYPASS + LB
        drv.discard_config()
        assert drv.compare_config() == ""
    assert running(lab) == baseline
    assert "198.51.100.21" not in kernel_route(lab, VIP)


def test_commit_installs_the_route_and_rollback_restores(lab: Lab, baseline: str) -> None:
    with opened(lab) as drv:
        drv.load_merge_candidate(config=BYPASS + LB)
        drv.commit_config()
        wait_route(lab, "r1", f"{VIP}/32", "198.51.100.21")
        assert "via 198.51.100.21" in kernel_route(lab, VIP)
        routes = drv.get_route_to(f"{VIP}/32")[f"{VIP}/32"]
        hops = {(e["next_hop"], e["preference"], e["current_active"]) for e in routes}
        assert hops == {("198.51.100.21", 1, True), ("198.51.100.10", 200, False)}
        assert drv.get_route_to(VIP, protocol="connected") == {}
        # merging the same lines again is no change at all
        drv.load_merge_candidate(config=BYPASS)
        assert drv.compare_config() == ""
        drv.discard_config()
        drv.rollback()
    wait_route(lab, "r1", f"{VIP}/32", None)
    assert running(lab) == baseline


def test_revert_in_without_confirm_reverts_even_when_the_session_dies(
    lab: Lab, baseline: str
) -> None:
    with opened(lab) as drv:
        drv.load_merge_candidate(config=BYPASS)
        drv.commit_config(revert_in=2)
        assert drv.has_pending_commit()
        wait_route(lab, "r1", f"{VIP}/32", "198.51.100.21")
    # the SSH session is gone; the router reverts by itself
    wait_route(lab, "r1", f"{VIP}/32", None, timeout=10)
    assert running(lab) == baseline
    with opened(lab) as drv:
        assert not drv.has_pending_commit()
        with pytest.raises(CommitError, match="No pending commit-confirm"):
            drv.confirm_commit()


def test_confirm_commit_keeps_the_change(lab: Lab, baseline: str) -> None:
    with opened(lab) as drv:
        drv.load_merge_candidate(config=BYPASS)
        drv.commit_config(revert_in=2)
        drv.load_merge_candidate(config=LB)
        with pytest.raises(CommitError, match="Pending commit"):
            drv.commit_config(revert_in=2)
        drv.discard_config()
        drv.confirm_commit()
        assert not drv.has_pending_commit()
    time.sleep(3)
    assert "via 198.51.100.21" in kernel_route(lab, VIP)
    assert BYPASS.strip() in running(lab)


def test_rollback_of_a_pending_commit_cancels_its_timer(lab: Lab, baseline: str) -> None:
    with opened(lab) as drv:
        drv.load_merge_candidate(config=BYPASS)
        drv.commit_config(revert_in=30)
        drv.rollback()
        assert not drv.has_pending_commit()
    assert running(lab) == baseline
    assert not (_state_dir(lab) / "pending.pid").exists()


def test_invalid_line_leaves_the_router_unchanged(lab: Lab, baseline: str) -> None:
    with opened(lab) as drv:
        with pytest.raises(MergeConfigException, match=r"line 2: % Unknown command.*ip rute"):
            drv.load_merge_candidate(config=BYPASS + "ip rute 192.0.2.99/32 bogus\n")
        with pytest.raises(CommitError, match="no candidate"):
            drv.commit_config()
    assert running(lab) == baseline


def test_replace_candidate(lab: Lab, baseline: str) -> None:
    with opened(lab) as drv:
        drv.load_replace_candidate(config=baseline.replace("end\n", "") + BYPASS)
        assert drv.compare_config() == f"+ip route {VIP}/32 198.51.100.21 tag 4242"
        drv.commit_config()
        wait_route(lab, "r1", f"{VIP}/32", "198.51.100.21")
        drv.load_replace_candidate(config=baseline)
        assert drv.compare_config() == f"-ip route {VIP}/32 198.51.100.21 tag 4242"
        drv.commit_config()
    wait_route(lab, "r1", f"{VIP}/32", None)
    assert running(lab) == baseline


def test_local_transport(lab: Lab, baseline: str) -> None:
    with opened(lab, "local") as drv:
        assert drv.get_facts()["vendor"] == "FRRouting"
        drv.load_merge_candidate(config=BYPASS)
        assert drv.compare_config().startswith("+ip route")
        drv.commit_config(revert_in=60)
        wait_route(lab, "r1", f"{VIP}/32", "198.51.100.21")
        drv.confirm_commit()
        drv.rollback()
    wait_route(lab, "r1", f"{VIP}/32", None)
    assert running(lab) == baseline
