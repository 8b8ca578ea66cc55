"""The mission end to end in the lab: real FRR over SSH, the real agent, real TCP traffic.

Transitions are judged by ``lab traffic``'s report (every broken connection, with its time) and
by the agent's kernel counters and flow maps, not by what lbauto believes it did.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lbauto.core.model import Inventory, IPAddress, Mode
from lbauto.core.plan import Kind, PlanOptions
from lbauto.core.planner import make_plan
from lbauto.errors import StateError, TransitionError
from lbauto.inventory import load_inventory
from lbauto.lab import Lab, sshd
from lbauto.lab.traffic import TrafficReport, start_traffic
from lbauto.orchestrate.apply import ScaleRequest, run_apply, run_scale
from lbauto.orchestrate.live import live_devices
from lbauto.orchestrate.lock import apply_lock
from lbauto.orchestrate.vipsfile import rewrite_dips, write_atomic
from tests import failpoints

#: The repository root: ``python -m tests.failpoints`` runs from there.
REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration]

LAB = os.environ.get("LBAUTO_E2E_LAB", "lbte")  # another name lets two runs share a host
WEB = ipaddress.ip_address("192.0.2.10")
WEB6 = ipaddress.ip_address("2001:db8:10::10")


@pytest.fixture(scope="module")
def lab(make_lab) -> Lab:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(LAB, start_agents=True)
    converge(lab)
    return lab


@pytest.fixture(autouse=True)
def back_to_three(lab: Lab) -> Iterator[None]:
    """Every test starts and ends with web on all three DIPs, converged."""
    set_dips(lab, "web", dips(lab))
    converge(lab)
    yield
    for agent in lab.agents:
        lab.start_agent(agent.name)  # a fault test may have stopped it
    set_dips(lab, "web", dips(lab))
    converge(lab)


def dips(lab: Lab) -> list[str]:
    return [str(d.address) for d in lab.dips]


def inventory(lab: Lab) -> Inventory:
    return load_inventory(lab.inventory_dir)


def set_dips(lab: Lab, vip: str, new: list[str]) -> None:
    path = lab.inventory_dir / "vips.yaml"
    write_atomic(path, rewrite_dips(path, vip, [ipaddress.ip_address(d) for d in new]))


def converge(lab: Lab, options: PlanOptions | None = None) -> None:
    inv = inventory(lab)
    devices = live_devices(inv)
    try:
        run_apply(
            inv,
            devices,
            options=options or PlanOptions(transit_seconds=30, drain_timeout=5),
            dry_run=False,
            confirm=lambda _: True,
        )
    finally:
        devices.close()


def scale(
    lab: Lab, new: list[str], transit: float = 30, drain: float = 8, vip: str = "web"
) -> float:
    inv = inventory(lab)
    devices = live_devices(inv)
    start = time.monotonic()
    try:
        run_scale(
            inv,
            ScaleRequest(vip, dips=new),
            devices,
            options=PlanOptions(transit_seconds=transit, drain_timeout=drain),
            dry_run=False,
            confirm=lambda _: True,
        )
    finally:
        devices.close()
    return time.monotonic() - start


def agent_snapshot(lab: Lab, vip: IPAddress = WEB) -> tuple[int, int]:
    """(packets counted for the VIP, its flow entries) read from the agent's kernel state."""
    from lbauto.lab.demo import agent_counters

    return agent_counters(inventory(lab).agents[0], vip)


def assert_single_in_kernel(lab: Lab) -> None:
    p0, flows = agent_snapshot(lab)
    time.sleep(1.5)
    p1, flows2 = agent_snapshot(lab)
    assert p1 == p0, f"agent still forwards web while single: {p1 - p0} packets in 1.5 s"
    assert flows == flows2 == 0, f"flow entries while single: {flows}, {flows2}"


def assert_multi_in_kernel(lab: Lab, vip: IPAddress = WEB) -> None:
    p0, _ = agent_snapshot(lab, vip)
    time.sleep(1.5)
    p1, flows = agent_snapshot(lab, vip)
    assert p1 > p0, "agent counters do not move while web is multi"
    assert flows > 0, "no flow entries while web is multi"


def traffic(  # type: ignore[no-untyped-def]
    lab: Lab,
    connections: int = 200,
    lifetime: float | None = None,
    vip: IPAddress = WEB,
    source_port_base: int = 0,
):
    handle = start_traffic(
        lab,
        str(vip),
        connections=connections,
        lifetime=lifetime,
        new_per_second=10,
        source_port_base=source_port_base,
    )
    handle.wait_ready(timeout=30)
    time.sleep(1.0)
    return handle


def summary(report: TrafficReport) -> str:
    return f"counts={report.counts} broken[:5]={report.broken[:5]} failures={report.failures[:5]}"


# ------------------------------------------------------------------ the whole cycle under load


@pytest.mark.slow
def test_cycle_3_1_3_1_2_1_breaks_nothing_and_kernel_follows(lab: Lab) -> None:
    """With lifetimes shorter than the drain timeout, nothing breaks and no DIP ever changes."""
    d = dips(lab)
    handle = traffic(lab, connections=200, lifetime=3.0)
    try:
        assert_multi_in_kernel(lab)
        for target in ([d[0]], d, [d[1]], [d[1], d[2]], [d[2]]):
            scale(lab, target, drain=8)
            if len(target) == 1:
                assert_single_in_kernel(lab)
            else:
                assert_multi_in_kernel(lab)
    finally:
        report = handle.stop_and_report()
    assert report.counts.broken == 0, summary(report)  # wrong-dip counts as broken
    assert report.counts.new_failed == 0, summary(report)
    assert report.counts.long_lived_failed == 0, summary(report)
    assert report.counts.closed_lifetime > 200


@dataclass(frozen=True)
class Family:
    """One VIP of the lab per address family: the transition tests run for both."""

    vip: str
    address: IPAddress
    version: int

    def dips(self, lab: Lab) -> list[str]:
        return [str(d.address if self.version == 4 else d.address6) for d in lab.dips]


FAMILIES = [Family("web", WEB, 4), Family("v6web", WEB6, 6)]


@pytest.fixture(params=FAMILIES, ids=["ipv4", "ipv6"])
def fam(request: pytest.FixtureRequest, lab: Lab) -> Iterator[Family]:
    """The family's VIP on all three DIPs; v6web goes back to its lab DIPs afterwards."""
    f: Family = request.param
    before = [str(d) for v in inventory(lab).vips if v.name == f.vip for d in v.dips]
    set_dips(lab, f.vip, f.dips(lab))
    converge(lab)
    yield f
    set_dips(lab, f.vip, before if f.version == 6 else f.dips(lab))
    converge(lab)


#: Transit pin of the scale-up tests: short, so the connections are seen to outlive it.
PIN = 4.0
#: Client port of the first long-lived connection of the scale-up tests (k-th: + k): above the
#: ephemeral range (32768-60999), and one range per run, as closed ports stay in TIME_WAIT (an
#: IPv6 wildcard bind also collides with an IPv4 one).
SOURCE_PORTS = {(4, PIN): 61000, (4, 0.0): 61400, (6, PIN): 61800, (6, 0.0): 62200}


def open_flow_ports(lab: Lab, vip: IPAddress) -> set[int]:
    """Client ports of the VIP's open flows as the agent reads them from the kernel."""
    from lbauto.agent.client import HttpAgentClient

    with HttpAgentClient.for_agent(inventory(lab).agents[0]) as c:
        r = c._http.get(f"/v1/vips/{vip}/flows", params={"limit": 10_000})
        r.raise_for_status()
    return {e["client_port"] for e in r.json()["entries"] if not e["closing"]}


@pytest.mark.slow
@pytest.mark.parametrize("transit", [PIN, 0.0], ids=["with-transit-pin", "control-no-pin"])
def test_scale_up_from_single_keeps_long_lived_connections(
    lab: Lab, fam: Family, transit: float
) -> None:
    """1 -> 3 with 200 connections opened before the scale and still pinging after the pin
    expired: 0 break, 0 new connections fail. The control run without the pin breaks many (so
    this test can fail), in IPv6 too."""
    d = fam.dips(lab)
    scale(lab, [d[0]], vip=fam.vip)
    ports = SOURCE_PORTS[fam.version, transit]
    handle = traffic(lab, connections=200, vip=fam.address, source_port_base=ports)
    try:
        if transit:
            scale(lab, d, transit=transit, vip=fam.vip)
        else:
            _scale_without_pin(lab, d, fam)
        time.sleep(PIN + 3.0)  # the pin has expired: flow state alone keeps them now
        assert_multi_in_kernel(lab, fam.address)
        held = open_flow_ports(lab, fam.address)
    finally:
        report = handle.stop_and_report()
    if transit:  # the kernel holds an open flow for each connection, under its real port
        alive = set(range(ports, ports + 200))
        assert alive <= held, (
            f"no flow entry for {len(alive - held)} client ports "
            f"{sorted(alive - held)[:10]}; {summary(report)}"
        )
    assert report.counts.long_lived_failed == 0, summary(report)
    if transit:
        assert report.counts.broken == 0, summary(report)
        assert report.counts.new_failed == 0, summary(report)
        assert sum(report.distribution["final"].values()) == 200, summary(report)
    else:
        assert report.counts.broken >= 40, summary(report)


def _scale_without_pin(lab: Lab, new: list[str], fam: Family) -> None:
    """The patent taken literally: the agent switches to multi without a transit pin."""
    inv = inventory(lab)
    devices = live_devices(inv)
    set_dips(lab, fam.vip, new)
    inv = inventory(lab)
    try:
        observed = devices.observe()
        plan = make_plan(inv, observed, PlanOptions(transit_seconds=30, drain_timeout=5))
        (t,) = [t for t in plan.transitions if t.kind is Kind.BYPASS_DISABLE]
        agent = devices.agents[0]
        have = observed.agents[agent.name][fam.address]
        agent.put_vip(
            fam.address,
            name=fam.vip,
            mode=Mode.MULTI,
            dips=t.to.dips,
            flow_tracking=True,
            if_match=have.generation,
        )
        devices.routers.push([rc for s in t.steps[1:2] for rc in s.routers])
    finally:
        devices.close()


@pytest.mark.slow
def test_scale_down_cuts_removed_dips_only_after_the_drain_timeout(lab: Lab, fam: Family) -> None:
    """3 -> 1 with 200 connections that never end: those on the kept DIP survive; those on the
    removed DIPs are not cut before the drain timeout passes."""
    d = fam.dips(lab)
    handle = traffic(lab, connections=200, vip=fam.address)
    drain = 4.0
    try:
        started = time.time()
        scale(lab, [d[0]], drain=drain, vip=fam.vip)
        time.sleep(2.0)
    finally:
        report = handle.stop_and_report()
    kept = lab.dips[0].name
    assert report.counts.new_failed == 0, summary(report)
    assert all(b.dip != kept for b in report.broken), summary(report)
    cut_at = [report.started_at + b.t for b in report.broken]
    assert cut_at and min(cut_at) >= started + drain, summary(report)
    assert report.distribution["final"].get(kept, 0) >= 50, summary(report)


@pytest.mark.slow
def test_2_1_2_three_times_breaks_nothing_on_the_kept_dip(lab: Lab, fam: Family) -> None:
    """2 -> 1 -> 2, three times back to back, under 200 connections that never end: no
    connection on the kept DIP breaks (those on the other DIP are cut by the drain timeout)."""
    d = fam.dips(lab)
    scale(lab, d[:2], vip=fam.vip)
    handle = traffic(lab, connections=200, vip=fam.address)
    try:
        for _ in range(3):
            scale(lab, d[:1], drain=2.0, vip=fam.vip)
            scale(lab, d[:2], transit=3.0, vip=fam.vip)
        time.sleep(4.0)  # the last pin has expired
    finally:
        report = handle.stop_and_report()
    kept = lab.dips[0].name
    assert report.counts.new_failed == 0, summary(report)
    assert all(b.dip != kept for b in report.broken), summary(report)
    assert report.distribution["final"].get(kept, 0) >= 100, summary(report)


# ------------------------------------------------------------------ many VIPs in one apply


@pytest.mark.slow
def test_many_kinds_in_one_apply_converge_with_one_commit_per_router_step(lab: Lab) -> None:
    """create, delete, bypass-enable, bypass-disable and rebalance in one apply."""
    d = dips(lab)
    for addr in ("192.0.2.20", "192.0.2.21"):
        lab.add_vip(addr)
    path = lab.inventory_dir / "vips.yaml"
    original = path.read_text()
    old = "  - name: old\n    address: 192.0.2.21\n    dips: [" + ", ".join(d[:2]) + "]\n"
    try:
        path.write_text(original + old)
        converge(lab)  # "old" exists now, so the next apply can delete it
        path.write_text(original)
        set_dips(lab, "api", d[:2])  # single -> multi: bypass-disable
        set_dips(lab, "web", [d[2]])  # multi -> single: bypass-enable
        set_dips(lab, "v6web", [str(x.address6) for x in lab.dips])  # rebalance
        path.write_text(
            path.read_text()
            + "  - name: extra\n    address: 192.0.2.20\n    dips: ["
            + ", ".join(d)
            + "]\n"
        )
        inv = inventory(lab)
        devices = live_devices(inv)
        try:
            out = run_apply(
                inv, devices, options=PlanOptions(30, 2), dry_run=False, confirm=lambda _: True
            )
        finally:
            devices.close()
        kinds = {t.vip: t.kind for t in out.plan.transitions}
        assert kinds == {
            "web": Kind.BYPASS_ENABLE,
            "api": Kind.BYPASS_DISABLE,
            "v6web": Kind.REBALANCE,
            "extra": Kind.CREATE,
            "old": Kind.DELETE,
        }
        assert out.converged and out.executed is not None
        push_rounds = {
            k
            for t in out.plan.transitions
            for k, s in enumerate(t.steps)
            if s.action.value == "router.push"
        }
        assert out.executed.router_commits == {"r1": len(push_rounds)}
    finally:
        path.write_text(original)
        converge(lab)
        for addr in ("192.0.2.20", "192.0.2.21"):
            lab.remove_vip(addr)


# ------------------------------------------------------------------ faults


def _running_config(lab: Lab) -> str:
    r = lab.routers[0]
    return subprocess.run(
        ["vtysh", "-N", r.pathspace, "-c", "show running-config no-header"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_router_failure_mid_transition_undoes_the_agent_side(lab: Lab) -> None:
    d = dips(lab)
    before_cfg = _running_config(lab)
    inv = inventory(lab)
    devices = live_devices(inv)
    observed = devices.observe()
    before = observed.agents[inv.agents[0].name][WEB]
    sshd_pid = int((lab.routers[0].dir / "sshd.pid").read_text())
    routers = devices.routers
    real_push = routers.push

    def push_after_sshd_dies(changes, **kw):  # type: ignore[no-untyped-def]
        # The SSH server and every session it serves (lbauto keeps one per router per run).
        pids = lab.run(lab.routers[0].netns, "ip", "netns", "pids", lab.routers[0].netns).stdout
        for pid in {int(p) for p in pids.split()} | {sshd_pid}:
            comm = Path(f"/proc/{pid}/comm")
            if comm.exists() and comm.read_text().strip() == "sshd":
                os.kill(pid, signal.SIGTERM)
        time.sleep(0.3)
        return real_push(changes, **kw)

    routers.push = push_after_sshd_dies  # type: ignore[method-assign,assignment]
    try:
        with pytest.raises(TransitionError, match=r"VIP web: step router.push failed on router r1"):
            run_scale(
                inv,
                ScaleRequest("web", dips=[d[0]]),
                devices,
                options=PlanOptions(30, 1),
                dry_run=False,
                confirm=lambda _: True,
            )
    finally:
        devices.close()
        sshd.start(lab.routers[0], lab.name)  # bring the router's SSH server back
    again = live_devices(inv)
    try:
        after = again.observe().agents[inv.agents[0].name][WEB]
    finally:
        again.close()
    assert (after.mode, after.dips, after.flow_tracking) == (before.mode, before.dips, True)
    assert _running_config(lab) == before_cfg
    assert [str(x) for x in load_inventory(lab.inventory_dir).vips[0].dips] == d


def test_agent_unreachable_at_start_touches_no_router(lab: Lab) -> None:
    before_cfg = _running_config(lab)
    lab.stop_agent(lab.agents[0].name)
    inv = inventory(lab)
    devices = live_devices(inv)
    try:
        with pytest.raises(StateError, match="cannot observe"):
            run_scale(
                inv,
                ScaleRequest("web", dips=dips(lab)[:1]),
                devices,
                options=PlanOptions(30, 1),
                dry_run=False,
                confirm=lambda _: True,
            )
    finally:
        devices.close()
        lab.start_agent(lab.agents[0].name)
    assert _running_config(lab) == before_cfg


def test_second_concurrent_apply_refuses(lab: Lab) -> None:
    inv = inventory(lab)
    with apply_lock(inv.state_dir or inv.path / ".lbauto", command="apply (test)"):
        res = _lbauto(lab, "apply", "--yes")
    assert res.returncode == 1
    assert "locked by pid" in res.stderr and "apply (test)" in res.stderr


def test_scale_dry_run_changes_nothing(lab: Lab) -> None:
    path = lab.inventory_dir / "vips.yaml"
    before_file = path.read_bytes()
    before_cfg = _running_config(lab)
    inv = inventory(lab)
    before_gen = _web_generation(inv)
    res = _lbauto(lab, "scale", "vip", "web", "--dips", dips(lab)[0], "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "bypass-enable" in res.stdout
    assert path.read_bytes() == before_file
    assert _running_config(lab) == before_cfg
    assert _web_generation(inv) == before_gen


def _web_generation(inv: Inventory) -> int | None:
    # closed explicitly: an agent client left to the garbage collector warns (ResourceWarning)
    devices = live_devices(inv)
    try:
        return devices.observe().agents[inv.agents[0].name][WEB].generation
    finally:
        devices.close()


def _lbauto(lab: Lab, *args: str, failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    """``lbauto ARGS`` in a process of its own; ``failpoint`` (``kill-<point>:<N>``) arms a
    crash through tests/failpoints.py (production code has no such switch)."""
    argv = ["--inventory", str(lab.inventory_dir), *args]
    plain = [sys.executable, "-m", "lbauto", *argv]
    cmd = failpoints.command(failpoint, *argv) if failpoint else plain
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("to_single", "boundary"),
    [(True, k) for k in range(4)] + [(False, k) for k in range(2)],
    ids=[f"bypass-enable-after-step-{k}" for k in range(4)]
    + [f"bypass-disable-after-step-{k}" for k in range(2)],
)
def test_sigkill_between_steps_then_apply_converges(
    lab: Lab, to_single: bool, boundary: int
) -> None:
    """lbauto dies by SIGKILL right after step ``boundary``; re-running apply converges and no
    connection breaks (connections live 3 s, shorter than the drain timeout)."""
    d = dips(lab)
    if not to_single:
        set_dips(lab, "web", [d[0]])
        converge(lab)
    handle = traffic(lab, connections=100, lifetime=3.0)
    try:
        set_dips(lab, "web", [d[0]] if to_single else d)
        killed = _lbauto(
            lab,
            "apply",
            "--yes",
            "--drain-timeout",
            "6",
            failpoint=f"kill-after-step:{boundary}",
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        again = _lbauto(lab, "apply", "--yes", "--drain-timeout", "6")
        assert again.returncode == 0, again.stderr
        inv = inventory(lab)
        devices = live_devices(inv)
        try:
            assert not make_plan(inv, devices.observe()).has_changes
        finally:
            devices.close()
        time.sleep(1.0)
    finally:
        report = handle.stop_and_report()
    assert report.counts.broken == 0, summary(report)
    assert report.counts.new_failed == 0, summary(report)


def test_journal_records_the_run(lab: Lab) -> None:
    scale(lab, dips(lab)[:1], drain=1)
    log = (inventory(lab).state_dir or Path()) / "journal.log"
    text = log.read_text()
    for action in (
        "agent.set_vip",
        "agent.wait_drain",
        "router.push",
        "router.verify",
        "agent.flow_tracking",
    ):
        assert action in text
    assert "vip=web" in text


def test_creating_many_single_vips_at_once_installs_every_bypass(lab: Lab) -> None:
    """Regression: FRR 8.4 loses one of two next hops of a new prefix sent in one vtysh run;
    the FRR driver applies them in separate runs, so every LB route and bypass is installed."""
    d = dips(lab)
    new = [f"192.0.2.{i}" for i in range(30, 38)]
    path = lab.inventory_dir / "vips.yaml"
    original = path.read_text()
    for addr in new:
        lab.add_vip(addr)
    path.write_text(
        original
        + "".join(
            f"  - name: s{i}\n    address: {a}\n    dips: [{d[i % 3]}]\n" for i, a in enumerate(new)
        )
    )
    try:
        converge(lab)
        r = lab.routers[0]
        for i, addr in enumerate(new):
            out = lab.run(r.netns, "ip", "-4", "route", "show", "exact", f"{addr}/32").stdout
            assert f"via {d[i % 3]} " in out, f"{addr}: bypass not in the kernel: {out!r}"
            rib = subprocess.run(
                ["vtysh", "-N", r.pathspace, "-c", f"show ip route {addr}/32"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            assert "distance 200," in rib and "distance 1," in rib, f"{addr}: RIB: {rib}"
    finally:
        path.write_text(original)
        converge(lab)
        for addr in new:
            lab.remove_vip(addr)


def test_plan_without_state_shows_a_bypass_deleted_by_hand(lab: Lab) -> None:
    d = dips(lab)
    scale(lab, [d[0]], drain=1)
    assert _lbauto(lab, "plan", "--detailed-exitcode").returncode == 0
    r = lab.routers[0]
    subprocess.run(
        [
            "vtysh",
            "-N",
            r.pathspace,
            "-c",
            "configure terminal",
            "-c",
            f"no ip route 192.0.2.10/32 {d[0]}",
        ],
        check=True,
        capture_output=True,
    )
    res = _lbauto(lab, "plan", "--detailed-exitcode", "--output", "json")
    assert res.returncode == 2, res.stderr
    assert f"ip route 192.0.2.10/32 {d[0]} tag 4242" in res.stdout
    assert _lbauto(lab, "apply", "--yes").returncode == 0
    assert _lbauto(lab, "plan", "--detailed-exitcode").returncode == 0
