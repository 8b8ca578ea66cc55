"""The example playbooks (playbooks/) run in the lab: real FRR over SSH, the real agent, real
TCP traffic across every transition they cause.

Judged by the traffic client's report (every broken connection, with the DIP it was on) and
the agent's kernel counters, not by what the playbook says it did. The maintenance playbook
is also run with the drain turned off (timeout 0) as the control: the same cut of the DIP host
then breaks connections, so the drained run's 0 means the drain did its job.
"""

from __future__ import annotations

import io
import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbauto.core.model import AgentVip
from lbauto.core.plan import PlanOptions
from lbauto.core.planner import make_plan
from lbauto.inventory import load_inventory
from lbauto.lab import Lab
from lbauto.lab.demo import agent_counters
from lbauto.lab.traffic import TrafficHandle, TrafficReport, start_traffic
from lbauto.orchestrate.apply import run_apply
from lbauto.orchestrate.live import live_devices
from lbauto.play import Task, TextReport, read_play, run_play
from tests.integration.conftest import MakeLab

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
LAB = "pbplay"
WEB = "192.0.2.10"
API = "192.0.2.11"


@pytest.fixture(scope="module")
def lab(make_lab: MakeLab) -> Lab:
    lab = make_lab(LAB, start_agents=True)
    converge(lab)
    return lab


@pytest.fixture(autouse=True)
def fresh(lab: Lab) -> Iterator[None]:
    """Every test starts and ends with the lab's own vips.yaml, converged, no DIP cut."""
    vips = lab.inventory_dir / "vips.yaml"
    original = vips.read_text()
    yield
    for dip in lab.dips:
        uncut(lab, dip.netns)
    vips.write_text(original)
    (lab.inventory_dir / ".lbauto" / "drained.json").unlink(missing_ok=True)
    converge(lab)


def converge(lab: Lab) -> None:
    inv = load_inventory(lab.inventory_dir)
    devices = live_devices(inv)
    try:
        run_apply(
            inv,
            devices,
            options=PlanOptions(transit_seconds=30, drain_timeout=5),
            dry_run=False,
            confirm=lambda _: True,
        )
    finally:
        devices.close()


def in_sync(lab: Lab) -> bool:
    inv = load_inventory(lab.inventory_dir)
    devices = live_devices(inv)
    try:
        return not make_plan(inv, devices.observe()).has_changes
    finally:
        devices.close()


def lbauto_play(lab: Lab, playbook: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``lbauto play`` as an operator runs it (a separate process)."""
    argv = [sys.executable, "-m", "lbauto", "play", str(PLAYBOOKS / playbook)]
    return subprocess.run(
        [*argv, "-i", str(lab.inventory_dir), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )


def traffic(lab: Lab, vip: str, connections: int, lifetime: float | None) -> TrafficHandle:
    handle = start_traffic(lab, vip, connections=connections, lifetime=lifetime, new_per_second=10)
    handle.wait_ready(timeout=30)
    time.sleep(1.0)
    return handle


def summary(report: TrafficReport) -> str:
    return f"counts={report.counts} broken[:5]={report.broken[:5]} failures={report.failures[:5]}"


def counters(lab: Lab, vip: str) -> tuple[int, int]:
    return agent_counters(load_inventory(lab.inventory_dir).agents[0], ipaddress.ip_address(vip))


def agent_vip(lab: Lab, vip: str) -> AgentVip:
    inv = load_inventory(lab.inventory_dir)
    devices = live_devices(inv)
    try:
        return devices.observe().agents[inv.agents[0].name][ipaddress.ip_address(vip)]
    finally:
        devices.close()


def agent_dips(lab: Lab, vip: str) -> list[str]:
    return [str(d) for d in agent_vip(lab, vip).dips]


def cut(lab: Lab, netns: str) -> None:
    """The DIP host goes away for its clients: every packet it receives is dropped."""
    lab.run(netns, "nft", "add table inet pbcut")
    chain = "{ type filter hook input priority -300; policy drop; }"
    lab.run(netns, "nft", "add chain inet pbcut in " + chain)


def uncut(lab: Lab, netns: str) -> None:
    lab.run(netns, "nft", "delete table inet pbcut", check=False)


# ----------------------------------------------------------------------------- scale out


def test_scale_out_a_single_dip_vip_under_traffic(lab: Lab) -> None:
    """api: 1 DIP (bypassed) -> 2 -> 3 with 100 connections living through both steps: the
    first step leaves the bypass (transit pin), the second rebalances; none breaks."""
    d = [str(x.address) for x in lab.dips]
    handle = traffic(lab, API, connections=100, lifetime=None)
    try:
        res = lbauto_play(lab, "scale-out.yml", "-e", "vip=api", "-e", f"add=[{d[1]}, {d[2]}]")
        time.sleep(2.0)
    finally:
        report = handle.stop_and_report()
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"changed: [{LAB}] (item={d[1]}) => api bypass-disable" in res.stdout, res.stdout
    assert f"changed: [{LAB}] (item={d[2]}) => api rebalance" in res.stdout, res.stdout
    assert "failed=0" in res.stdout
    assert report.counts.broken == 0, summary(report)
    assert report.counts.new_failed == 0, summary(report)
    assert agent_dips(lab, API) == d
    p0, _ = counters(lab, API)
    time.sleep(1.0)
    assert counters(lab, API)[0] == p0, "no traffic left to count"  # traffic stopped
    assert in_sync(lab)


# ------------------------------------------------------------------ scale down to a bypass


def test_scale_down_to_a_single_dip_under_traffic(lab: Lab) -> None:
    """web: 3 DIPs -> 1 (bypass) with connections that end within the drain: none breaks, the
    agent stops forwarding web and keeps no flow state for it."""
    d = [str(x.address) for x in lab.dips]
    handle = traffic(lab, WEB, connections=100, lifetime=3.0)
    try:
        res = lbauto_play(
            lab, "scale-down-single.yml", "-e", f"keep={d[0]}", "-e", "drain_timeout=20"
        )
        p0, flows0 = counters(lab, WEB)
        time.sleep(1.5)
        p1, flows1 = counters(lab, WEB)
    finally:
        report = handle.stop_and_report()
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"changed: [{LAB}] => web bypass-enable" in res.stdout, res.stdout
    assert report.counts.broken == 0, summary(report)
    assert report.counts.new_failed == 0, summary(report)
    assert report.counts.closed_lifetime >= 100  # every first connection lived out its lifetime
    assert p1 == p0, f"the agent still forwards web: {p1 - p0} packets in 1.5 s"
    assert flows0 == flows1 == 0


# --------------------------------------------------------------------- planned maintenance


@pytest.mark.parametrize("drain_timeout", [30.0, 0.0], ids=["drained", "control-no-drain"])
def test_dip_maintenance_drains_before_the_host_goes_away(lab: Lab, drain_timeout: float) -> None:
    """d2 (IPv4 and IPv6) leaves web and v6web, its connections end, then the host is cut off
    for the maintenance window and put back. With the drain, no connection breaks: every one
    on d2 had ended before it went away. Without it (control), the cut breaks those on d2."""
    d2 = lab.dips[1]
    host = [str(d2.address), str(d2.address6)]
    web_before = [str(x.address) for x in lab.dips]

    def hook(task: Task, event: str) -> None:
        if task.module == "drain_dip" and event == "end":
            cut(lab, d2.netns)  # the maintenance starts: the host stops answering
        if task.module == "restore_dip" and event == "start":
            uncut(lab, d2.netns)

    play = read_play(
        PLAYBOOKS / "dip-maintenance.yml",
        inventory=lab.inventory_dir,
        extra_vars={"host": host, "drain_timeout": drain_timeout, "window": 3},
    )
    out = io.StringIO()
    # With the drain, connections come and go (2 s) so d2's end within the drain; the control
    # keeps them for the whole play: a drain that no longer waits (timeout 0) leaves them on d2
    # when it goes away, and they break there (FIN-aware drains end as soon as the short ones
    # close, so short connections could not show it).
    lifetime = 2.0 if drain_timeout else None
    handle = traffic(lab, WEB, connections=60, lifetime=lifetime)
    try:
        result = run_play(play, TextReport(out), hook=hook)
        time.sleep(1.0)
    finally:
        report = handle.stop_and_report()
        uncut(lab, d2.netns)
    assert report.distribution.get("long_lived", {}).get(d2.name, 0) > 0, summary(report)
    if drain_timeout:
        assert not result.failed, out.getvalue()
        assert report.counts.broken == 0, summary(report)
        assert report.counts.new_failed == 0, summary(report)
        assert agent_dips(lab, WEB) == web_before  # back in its place
        assert agent_dips(lab, "2001:db8:10::10") == [str(x.address6) for x in lab.dips[:2]]
        assert in_sync(lab)
    else:
        # Without a drain the agent moves d2's connections at once, and the cut takes the
        # rest: connections on d2 break, and only there.
        assert report.counts.broken > 0, summary(report)
        assert {b.dip for b in report.broken} == {d2.name}, summary(report)


# ------------------------------------------------------------------------------ reconcile


def test_reconcile_checks_then_converges_drift_under_traffic(lab: Lab) -> None:
    """Drift on two VIPs (web edited to 2 DIPs, api's router bypass deleted by hand): --check
    reports it and touches nothing (router config, vips.yaml, agent); the real run converges
    it, asserts, and breaks no connection."""
    d = [str(x.address) for x in lab.dips]
    vips = lab.inventory_dir / "vips.yaml"
    vips.write_text(vips.read_text().replace(f"dips: [{', '.join(d)}]", f"dips: [{d[0]}, {d[1]}]"))
    r = lab.routers[0]
    subprocess.run(
        [
            "vtysh",
            "-N",
            r.pathspace,
            "-c",
            "configure terminal",
            "-c",
            f"no ip route {API}/32 {d[0]}",
        ],
        check=True,
        capture_output=True,
    )

    def running() -> str:
        return subprocess.run(
            ["vtysh", "-N", r.pathspace, "-c", "show running-config no-header"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    config, file = running(), vips.read_bytes()
    generations = (agent_vip(lab, WEB).generation, agent_vip(lab, API).generation)
    checked = lbauto_play(lab, "reconcile.yml", "--check", "--diff", "--detailed-exitcode")
    assert checked.returncode == 2, checked.stdout + checked.stderr
    # api's agent is single but no router bypasses it any more: the bypass goes in again
    assert "web rebalance, api bypass-enable" in checked.stdout, checked.stdout
    assert f"ip route {API}/32 {d[0]} tag 4242" in checked.stdout  # the --diff lines
    assert running() == config and vips.read_bytes() == file
    assert (agent_vip(lab, WEB).generation, agent_vip(lab, API).generation) == generations

    handle = traffic(lab, WEB, connections=100, lifetime=3.0)
    try:
        res = lbauto_play(lab, "reconcile.yml", "-e", "drain_timeout=20")
        time.sleep(1.0)
    finally:
        report = handle.stop_and_report()
    assert res.returncode == 0, res.stdout + res.stderr
    assert "failed=0" in res.stdout
    assert report.counts.broken == 0, summary(report)
    assert report.counts.new_failed == 0, summary(report)
    assert in_sync(lab)
    assert f"ip route {API}/32 {d[0]} tag 4242" in running()
