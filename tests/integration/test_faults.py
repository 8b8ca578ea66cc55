"""Faults injected for real on the orchestrator's side (issue 11): lbauto SIGKILLed between a
router commit and its confirm, a state directory that really fills up (a small tmpfs), a real
exception inside verification against a real FRR router, two real processes editing vips.yaml,
Ctrl-C on ``lab traffic``, and the CI rule that a missing prerequisite fails instead of skipping.

Each test judges by what the devices really carry afterwards (the router's running config and
pending commit, the agent's VIP), not by what lbauto says it did.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lbauto.core.model import Inventory
from lbauto.core.plan import PlanOptions
from lbauto.core.planner import make_plan
from lbauto.errors import TransitionError
from lbauto.inventory import load_inventory
from lbauto.lab import Lab
from lbauto.lab.traffic import TrafficHandle, TrafficReport, start_traffic
from lbauto.orchestrate.apply import ScaleRequest, run_apply, run_scale
from lbauto.orchestrate.live import live_devices
from lbauto.orchestrate.vipsfile import rewrite_dips, write_atomic
from lbauto.push.drivers import open_driver
from tests import failpoints
from tests.integration.conftest import MakeLab

#: The repository root: ``python -m tests.failpoints`` runs from there.
REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration]

LAB = "offa"
WEB = ipaddress.ip_address("192.0.2.10")
ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def lab(make_lab: MakeLab) -> Lab:
    lab = make_lab(LAB, start_agents=True)
    converge(lab)
    return lab


@pytest.fixture
def fresh(lab: Lab) -> Iterator[Lab]:
    """The test starts and ends with web on all three DIPs, converged, nothing pending."""
    path = lab.inventory_dir / "vips.yaml"
    original = path.read_bytes()
    set_dips(lab, "web", dips(lab))
    converge(lab)
    yield lab
    path.write_bytes(original)
    set_dips(lab, "web", dips(lab))
    converge(lab)


def dips(lab: Lab) -> list[str]:
    return [str(d.address) for d in lab.dips]


def inventory(lab: Lab) -> Inventory:
    return load_inventory(lab.inventory_dir)


def state_dir(lab: Lab) -> Path:
    inv = inventory(lab)
    return inv.state_dir or inv.path / ".lbauto"


def set_dips(lab: Lab, vip: str, new: list[str]) -> None:
    path = lab.inventory_dir / "vips.yaml"
    write_atomic(path, rewrite_dips(path, vip, [ipaddress.ip_address(d) for d in new]))


def converge(lab: Lab) -> None:
    inv = inventory(lab)
    devices = live_devices(inv)
    try:
        run_apply(
            inv,
            devices,
            options=PlanOptions(transit_seconds=30, drain_timeout=3),
            dry_run=False,
            confirm=lambda _: True,
        )
    finally:
        devices.close()


def lbauto(
    lab: Lab,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 180,
    failpoint: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``lbauto ARGS`` in a process of its own; ``failpoint`` (``kill-<point>:<N>``) arms a
    crash through tests/failpoints.py (production code has no such switch)."""
    argv = ["--inventory", str(lab.inventory_dir), *args]
    cmd = (
        failpoints.command(failpoint, *argv)
        if failpoint
        else [sys.executable, "-m", "lbauto", *argv]
    )
    return subprocess.run(
        cmd,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def lbauto_bg(lab: Lab, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lbauto", "--inventory", str(lab.inventory_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def running_config(lab: Lab) -> str:
    r = lab.routers[0]
    return subprocess.run(
        ["vtysh", "-N", r.pathspace, "-c", "show running-config no-header"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def bypass_lines(lab: Lab) -> list[str]:
    """The router's static routes for web that do not go to an agent (the bypass)."""
    agents = {str(a.address) for a in inventory(lab).agents}
    return [
        line
        for line in running_config(lab).splitlines()
        if line.startswith(f"ip route {WEB}/32 ") and line.split()[3] not in agents
    ]


def router_pending(lab: Lab) -> dict[str, Any] | None:
    """What the router itself says is pending (its own commit-confirm timer), or None."""
    driver = open_driver(inventory(lab).routers[0])
    try:
        if not driver.has_pending_commit():
            return None
        info = getattr(driver, "pending_commit", None)
        return dict(info) if isinstance(info, dict) else {}
    finally:
        driver.close()


def agent_web(lab: Lab) -> tuple[str, list[str], bool]:
    inv = inventory(lab)
    devices = live_devices(inv)
    try:
        v = devices.observe().agents[inv.agents[0].name][WEB]
    finally:
        devices.close()
    return v.mode.value, [str(d) for d in v.dips], v.flow_tracking


def traffic(lab: Lab, connections: int, lifetime: float | None = None) -> TrafficHandle:
    handle = start_traffic(
        lab, str(WEB), connections=connections, lifetime=lifetime, new_per_second=5
    )
    handle.wait_ready(timeout=30)
    time.sleep(1.0)
    return handle


def summary(report: TrafficReport) -> str:
    return f"counts={report.counts} broken[:5]={report.broken[:5]} failures={report.failures[:5]}"


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def journal_size(lab: Lab) -> int:
    log = state_dir(lab) / "journal.log"
    return log.stat().st_size if log.exists() else 0


def journal_has(lab: Lab, text: str, since: int = 0) -> bool:
    """Does the journal, from byte ``since`` on (this run's part), contain ``text``?"""
    log = state_dir(lab) / "journal.log"
    if not log.exists():
        return False
    with log.open("rb") as fh:
        fh.seek(since)
        return text.encode() in fh.read()


def wait_for_drain(lab: Lab, since: int) -> None:
    wait_for(
        lambda: journal_has(lab, "START vip=web step=1 agent.wait_drain", since), 30, "the drain"
    )


# ------------------------------------------------- 1. a commit left unconfirmed is resolved


@pytest.mark.slow
def test_sigkill_between_commit_and_confirm_then_apply_confirms_it(fresh: Lab) -> None:
    """bypass-disable (1 -> 3 DIPs) dies after the router committed the bypass removal and
    before the confirm: plan and status show the pending commit with its deadline, and the
    next apply confirms it (it is lbauto's verified step towards what the inventory still
    wants), so the router's timer can never put the bypass back. No connection breaks."""
    lab = fresh
    d = dips(lab)
    set_dips(lab, "web", [d[0]])
    converge(lab)
    assert bypass_lines(lab), "web is not bypassed to start with"
    handle = traffic(lab, connections=40)
    try:
        set_dips(lab, "web", d)
        killed = lbauto(lab, "apply", "--yes", failpoint="kill-before-confirm:0")
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
        pending = router_pending(lab)
        assert pending is not None, "the kill left no pending commit on the router"
        assert not bypass_lines(lab), "the committed (unconfirmed) removal is not in effect"

        status = lbauto(lab, "status", "--output", "json")
        doc = json.loads(status.stdout)
        assert doc["in_sync"] is False
        [p] = doc["pending_commits"]
        assert p["router"] == "r1" and p["deadline"] > time.time()
        plan = lbauto(lab, "plan", "--detailed-exitcode")
        assert plan.returncode == 2, plan.stdout + plan.stderr
        assert "awaits confirmation" in plan.stdout

        again = lbauto(lab, "apply", "--yes")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "confirm pending commit" in again.stdout
        assert router_pending(lab) is None, "the commit is still pending: the router reverts it"
        assert not bypass_lines(lab)
        assert agent_web(lab) == ("multi", d, True)
        time.sleep(1.0)
    finally:
        report = handle.stop_and_report()
    assert report.counts.broken == 0, summary(report)


@pytest.mark.slow
def test_pending_commit_the_inventory_no_longer_wants_is_rolled_back(fresh: Lab) -> None:
    """bypass-enable (3 -> 1) dies between commit and confirm; the operator then puts the
    three DIPs back. apply rolls the pending bypass back (its transition was heading for a
    target the inventory no longer wants) and converges from there."""
    lab = fresh
    d = dips(lab)
    set_dips(lab, "web", [d[0]])
    killed = lbauto(
        lab,
        "apply",
        "--yes",
        "--drain-timeout",
        "1",
        failpoint="kill-before-confirm:0",
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert router_pending(lab) is not None
    assert bypass_lines(lab), "the committed bypass is not in effect"
    set_dips(lab, "web", d)
    again = lbauto(lab, "apply", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "roll back pending commit" in again.stdout and "now wants multi" in again.stdout
    assert router_pending(lab) is None
    assert not bypass_lines(lab)
    assert agent_web(lab) == ("multi", d, True)
    inv = inventory(lab)
    devices = live_devices(inv)
    try:
        assert not make_plan(inv, devices.observe()).has_changes
    finally:
        devices.close()


# ------------------------------------------------------------- 2. a state directory fills up


@pytest.fixture
def small_state_dir(fresh: Lab, tmp_path: Path) -> Iterator[Path]:
    """The inventory's state directory on its own 1 MiB filesystem (a disk that can fill).

    ext2 with 1 KiB blocks and no reserve: a full disk leaves at most 1 KiB of slack at the
    end of a file, so the journal's next few lines really do not fit (tmpfs would leave up
    to a 4 KiB page, enough for a whole transition's journal).
    """
    path = state_dir(fresh)
    path.mkdir(parents=True, exist_ok=True)
    image = tmp_path / "of-state.img"
    subprocess.run(["truncate", "-s", "1M", str(image)], check=True)
    subprocess.run(["mkfs.ext2", "-q", "-F", "-b", "1024", "-m", "0", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def fill(path: Path) -> None:
    """Fill the filesystem of ``path`` to the last byte."""
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={path / 'filler'}", "bs=1k"],
        check=False,
        capture_output=True,
    )
    probe = path / "probe"
    with pytest.raises(OSError):
        probe.write_bytes(b"x" * 2048)
    probe.unlink(missing_ok=True)


@pytest.mark.slow
def test_state_directory_filling_up_mid_run_undoes_the_vip(
    fresh: Lab, small_state_dir: Path
) -> None:
    """The state directory fills up while scale waits for a drain: the next step is not run
    (its journal entry cannot be written), the steps done are undone (the agent is back to
    multi with three DIPs, the router never got the bypass), the error is one line, and the
    journal that is there still reads."""
    lab = fresh
    d = dips(lab)
    before_file = (lab.inventory_dir / "vips.yaml").read_bytes()
    handle = traffic(lab, connections=20)  # long-lived: the drain waits for its timeout
    try:
        since = journal_size(lab)
        proc = lbauto_bg(
            lab, "scale", "vip", "web", "--dips", d[0], "--yes", "--drain-timeout", "6"
        )
        wait_for_drain(lab, since)
        fill(small_state_dir)
        out, err = proc.communicate(timeout=60)
        time.sleep(1.0)
    finally:
        report = handle.stop_and_report()
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err, err
    assert "No space left on device" in err and "journal" in err
    assert agent_web(lab) == ("multi", d, True)
    assert not bypass_lines(lab)
    assert router_pending(lab) is None
    assert (lab.inventory_dir / "vips.yaml").read_bytes() == before_file
    lines = (small_state_dir / "journal.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines), "a journal line was cut short"
    # Where the disk runs out depends on the slack left in the journal's last blocks: before
    # the router push nothing breaks; after it, the connections the drain timeout gave up on
    # were cut by the bypass, as in any scale-down (the router is put back either way).
    if "step agent.wait_drain failed" in err:
        assert report.counts.broken == 0, summary(report)


def test_state_directory_full_at_start_is_one_line_and_changes_nothing(
    fresh: Lab, small_state_dir: Path
) -> None:
    lab = fresh
    before_cfg = running_config(lab)
    before = agent_web(lab)
    fill(small_state_dir)
    res = lbauto(lab, "scale", "vip", "web", "--dips", dips(lab)[0], "--yes")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0], res.stderr
    assert running_config(lab) == before_cfg and agent_web(lab) == before


# ---------------------------------------------------- 3. an exception inside verification


def _kill_router_sessions(lab: Lab) -> int:
    """SIGKILL every SSH session the router's sshd serves (the listener stays)."""
    r = lab.routers[0]
    listener = int((r.dir / "sshd.pid").read_text())
    pids = lab.run(r.netns, "ip", "netns", "pids", r.netns).stdout.split()
    killed = 0
    for pid in map(int, pids):
        comm = Path(f"/proc/{pid}/comm")
        if pid != listener and comm.exists() and comm.read_text().strip() == "sshd":
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


class _CutAtVerify(logging.Handler):
    """When the push reaches verification on r1, cut lbauto's SSH session to it for real."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(logging.DEBUG)
        self.lab, self.killed = lab, -1

    def emit(self, record: logging.LogRecord) -> None:
        if self.killed < 0 and record.getMessage() == "r1: verifying":
            self.killed = _kill_router_sessions(self.lab)
            time.sleep(0.2)


def test_exception_during_verification_is_rolled_back_over_a_new_session(fresh: Lab) -> None:
    """Verification of the bypass commit raises (the SSH session to the router dies under it):
    the commit is rolled back at once over a new session, named by its commit id - not left
    pending until the router's timer fires - the agent side is undone, and the error says so."""
    lab = fresh
    d = dips(lab)
    before_cfg = running_config(lab)
    inv = inventory(lab)
    devices = live_devices(inv)
    cut = _CutAtVerify(lab)
    log = logging.getLogger("lbauto.push")
    level = log.level
    log.addHandler(cut)
    log.setLevel(logging.DEBUG)
    try:
        with pytest.raises(TransitionError) as err:
            run_scale(
                inv,
                ScaleRequest("web", dips=[d[0]]),
                devices,
                options=PlanOptions(30, 1),
                dry_run=False,
                confirm=lambda _: True,
            )
    finally:
        log.removeHandler(cut)
        log.setLevel(level)
        devices.close()
    assert cut.killed > 0, "no SSH session was cut"
    text = str(err.value)
    assert "verification" in text and "over a new session" in text, text
    assert router_pending(lab) is None, "the commit is left pending"
    assert running_config(lab) == before_cfg
    assert agent_web(lab) == ("multi", d, True)


# ----------------------------------------------------- 4. two processes editing vips.yaml


def _append_vip_from_another_process(path: Path, dip: str) -> None:
    added = f"  - name: ofadded\n    address: 192.0.2.77\n    dips: [{dip}]\n"
    script = (
        "import sys, pathlib; p = pathlib.Path(sys.argv[1]); "
        "p.write_text(p.read_text() + sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", script, str(path), added], check=True)


@pytest.mark.slow
def test_scale_keeps_a_vip_added_by_another_process_during_its_drain(fresh: Lab) -> None:
    lab = fresh
    d = dips(lab)
    path = lab.inventory_dir / "vips.yaml"
    handle = traffic(lab, connections=10)  # long-lived: the drain waits for its timeout
    try:
        since = journal_size(lab)
        proc = lbauto_bg(
            lab, "scale", "vip", "web", "--dips", d[0], "--yes", "--drain-timeout", "4"
        )
        wait_for_drain(lab, since)
        _append_vip_from_another_process(path, d[1])
        other = lbauto(lab, "scale", "vip", "web", "--dips", ",".join(d), "--yes")
        out, err = proc.communicate(timeout=60)
    finally:
        handle.stop_and_report()
    assert proc.returncode == 0, out + err
    after = load_inventory(lab.inventory_dir)
    names = {v.name: [str(x) for x in v.dips] for v in after.vips}
    assert names.get("ofadded") == [d[1]], f"the VIP added meanwhile is gone: {names}"
    assert names["web"] == [d[0]]
    # a second scale meanwhile is refused, naming the one that holds the inventory
    assert other.returncode == 1 and "locked by pid" in other.stderr, other.stderr
    assert "scale vip web" in other.stderr


@pytest.mark.slow
def test_scale_refuses_to_overwrite_an_edit_of_its_own_vip(fresh: Lab) -> None:
    lab = fresh
    d = dips(lab)
    path = lab.inventory_dir / "vips.yaml"
    handle = traffic(lab, connections=10)
    try:
        since = journal_size(lab)
        proc = lbauto_bg(
            lab, "scale", "vip", "web", "--dips", d[0], "--yes", "--drain-timeout", "4"
        )
        wait_for_drain(lab, since)
        edit = (
            "import sys, pathlib, ipaddress\n"
            "from lbauto.orchestrate.vipsfile import rewrite_dips, write_atomic\n"
            "p = pathlib.Path(sys.argv[1])\n"
            "new = [ipaddress.ip_address(a) for a in sys.argv[2:]]\n"
            "write_atomic(p, rewrite_dips(p, 'web', new))\n"
        )
        subprocess.run([sys.executable, "-c", edit, str(path), d[0], d[1]], check=True, cwd=ROOT)
        theirs = path.read_bytes()
        out, err = proc.communicate(timeout=60)
    finally:
        handle.stop_and_report()
    assert proc.returncode == 1, out + err
    assert "was edited by someone else" in err and "Traceback" not in err, err
    assert path.read_bytes() == theirs


# --------------------------------------------------------------- Ctrl-C on lab traffic


def _clients_in(lab: Lab) -> list[int]:
    ns = lab.client.netns
    pids = lab.run(ns, "ip", "netns", "pids", ns).stdout.split()
    out = []
    for pid in map(int, pids):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"lbauto.lab.client" in cmd:
            out.append(pid)
    return out


@pytest.mark.parametrize("target", ["terminal", "lbauto-only"])
def test_ctrl_c_on_lab_traffic_stops_the_client_and_prints_the_report(
    lab: Lab, target: str
) -> None:
    """Ctrl-C reaches the whole foreground group from a terminal ("terminal"), or only lbauto
    when sent with kill ("lbauto-only"): either way the client in the namespace ends and the
    report so far is printed."""
    assert not _clients_in(lab)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "lbauto", "lab", "traffic", "--name", lab.name),
            *("--vip", str(WEB), "--connections", "5", "--duration", "60"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(lambda: bool(_clients_in(lab)), 30, "the traffic client")
        time.sleep(2.0)
        if target == "terminal":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _clients_in(lab):
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err, err
    assert "long-lived connections opened" in out and "answers checked" in out, out
    wait_for(lambda: not _clients_in(lab), 5, "the client to end")


# --------------------------------------------------------------- CI: skips are failures


def test_lab_host_is_usable(lab_host: None) -> None:
    """Runs only where labs can run; the test below runs it where they cannot."""


@pytest.mark.parametrize(("ci", "outcome"), [("", "1 skipped"), ("true", "1 error")])
def test_missing_prerequisite_skips_locally_and_fails_in_ci(
    lab_host: None, ci: str, outcome: str
) -> None:
    """With the lab's tools really absent (a PATH without vtysh), the test above skips on a
    laptop and fails in CI."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(PATH="/nonexistent", CI=ci)
    test = f"{Path(__file__).relative_to(ROOT)}::test_lab_host_is_usable"
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", test, "-o", "addopts="],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert outcome in res.stdout, res.stdout + res.stderr
    if ci:  # a failed fixture is an error: the run is red (exit 1)
        assert res.returncode == 1 and "must run, not skip" in res.stdout
    else:
        assert res.returncode == 0
