"""The FRR NAPALM driver against real FRR in the lab, over real SSH (and the local transport):
commits, commit-confirm, rollback, two concurrent sessions on one router, and the safety of the
driver's working files on the router."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import napalm
import pytest
from napalm.base.exceptions import (
    CommandErrorException,
    CommitError,
    ConnectionException,
    MergeConfigException,
)

from lbauto.lab import Lab
from tests.integration.conftest import MakeLab, wait_route

pytestmark = pytest.mark.integration

VIP = "192.0.2.10"
VIP2 = "192.0.2.11"
BYPASS = f"ip route {VIP}/32 198.51.100.21 tag 4242\n"
LB = f"ip route {VIP}/32 198.51.100.10 tag 4242 200\n"
OTHER = f"ip route {VIP2}/32 198.51.100.21 tag 4242\n"


@pytest.fixture(scope="module")
def lab(make_lab: MakeLab) -> Iterator[Lab]:
    lab = make_lab("nfdrv", routers=1, agents=1, dips=1)
    try:
        yield lab
    finally:  # the driver's records on the "router" (rollback points, logs)
        shutil.rmtree(_state_dir(lab), ignore_errors=True)


def _state_dir(lab: Lab) -> Path:
    return Path(pwd.getpwnam("root").pw_dir) / ".local/state/napalm-frr" / lab.routers[0].pathspace


def _kill_timers(lab: Lab) -> None:
    pending = _state_dir(lab) / "pending"
    with contextlib.suppress(OSError, ValueError, IndexError):
        os.killpg(int(pending.read_text().split()[1]), signal.SIGTERM)
    pending.unlink(missing_ok=True)


def running(lab: Lab) -> str:
    r = lab.routers[0]
    return subprocess.run(
        ["vtysh", "-N", r.pathspace, "-c", "show running-config no-header"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def vtysh_config(lab: Lab, *lines: str) -> None:
    """A change made by hand on the router, outside the driver."""
    argv = ["vtysh", "-N", lab.routers[0].pathspace, "-c", "configure"]
    for line in lines:
        argv += ["-c", line]
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def baseline(lab: Lab, tmp_path: Path) -> Iterator[str]:
    """The router's config before the test; restored after it (timers killed first)."""
    before = running(lab)
    saved = tmp_path / "baseline.conf"
    saved.write_text(before)
    startup = Path(f"/etc/frr/{lab.routers[0].pathspace}/frr.conf")
    startup_text = startup.read_bytes()
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
        # that frr-reload rewrote frr.conf (`vtysh write`): put the lab's file back
        startup.write_bytes(startup_text)


def driver(lab: Lab, transport: str = "ssh", **extra: str) -> napalm.base.NetworkDriver:
    r = lab.routers[0]
    cls = napalm.get_network_driver("frr")
    if transport == "ssh":
        opts = {"pathspace": r.pathspace, "key_file": str(r.key_file), **extra}
        drv = cls(str(r.mgmt_ip), r.ssh_user, "", timeout=30, optional_args=opts)
    else:
        opts = {"pathspace": r.pathspace, "transport": "local", "netns": r.netns}
        drv = cls("localhost", "", "", timeout=30, optional_args=opts)
    drv.open()
    return drv


@contextlib.contextmanager
def opened(lab: Lab, transport: str = "ssh", **extra: str) -> Iterator[napalm.base.NetworkDriver]:
    drv = driver(lab, transport, **extra)
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
        # FRR's hostname (the lab's frr.conf names the router after its pathspace), not the
        # host's: every lab router shares the host's UTS name
        assert facts["hostname"] == lab.routers[0].pathspace != os.uname().nodename
        assert drv.platform == "frr"
        startup = drv.get_config(retrieve="startup")["startup"]
        assert startup == Path(f"/etc/frr/{lab.routers[0].pathspace}/frr.conf").read_text()
        assert drv.cli([]) == {}
        twice = drv.cli(["show version", "show version"])
        assert list(twice) == ["show version"] and "FRRouting" in twice["show version"]
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
    assert not (_state_dir(lab) / "pending").exists()


def test_invalid_line_leaves_the_router_unchanged(lab: Lab, baseline: str) -> None:
    with opened(lab) as drv:
        with pytest.raises(MergeConfigException, match=r"line 2: % Unknown command.*ip rute"):
            drv.load_merge_candidate(config=BYPASS + "ip rute 192.0.2.99/32 bogus\n")
        with pytest.raises(CommitError, match="no candidate"):
            drv.commit_config()
    assert running(lab) == baseline


def test_a_candidate_changed_after_its_check_is_checked_again_at_commit(
    lab: Lab, baseline: str
) -> None:
    """A load of a text this session already checked skips ``vtysh -C`` and the commit
    re-checks only the file's sha256 (each vtysh start costs the router ~50 ms of CPU); a
    candidate file that no longer holds the checked text gets the full check and is refused.
    Control: the same file, untouched, commits."""
    with opened(lab) as drv:
        drv.load_merge_candidate(config=BYPASS)
        drv.discard_config()
        drv.load_merge_candidate(config=BYPASS)  # the same text: known good
        path = f"{drv._state}/sessions/{drv.session_id}/candidate.conf"
        Path(path).write_text("ip rute 192.0.2.99/32 bogus\n")  # changed behind the driver
        with pytest.raises(CommitError, match=r"rejected by FRR \(vtysh -C\).*ip rute"):
            drv.commit_config()
        assert running(lab) == baseline
        drv.load_merge_candidate(config=BYPASS)  # control: untouched, it commits
        drv.commit_config()
        wait_route(lab, lab.routers[0].name, f"{VIP}/32", "198.51.100.21")
        drv.rollback()
    assert running(lab) == baseline


def test_control_without_the_commit_check_the_changed_file_reaches_the_router(
    lab: Lab, baseline: str
) -> None:
    """Control for the test above: with the commit's check switched off, the changed file is
    what ``vtysh -f`` applies (it fails there, and only the rollback point saves the router):
    the refusal above comes from the check."""
    with opened(lab) as drv:
        drv.load_merge_candidate(config=BYPASS)
        drv._commit_check = lambda candidate, quoted_file: "true"
        path = f"{drv._state}/sessions/{drv.session_id}/candidate.conf"
        Path(path).write_text("ip rute 192.0.2.99/32 bogus\n")
        with pytest.raises(CommitError, match="applying the candidate failed"):
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


# --- two sessions on one router -------------------------------------------------------------


def test_each_session_commits_only_its_own_candidate(lab: Lab, baseline: str) -> None:
    """Issue 14: A loaded one route, B another, and A's commit installed B's (one shared
    candidate file on the router). Now each session has its own candidate."""
    with opened(lab) as a, opened(lab) as b:
        a.load_merge_candidate(config=BYPASS)
        b.load_merge_candidate(config=OTHER)
        assert a.compare_config() == f"+{BYPASS.strip()}"
        assert b.compare_config() == f"+{OTHER.strip()}"
        a.commit_config()
        wait_route(lab, "r1", f"{VIP}/32", "198.51.100.21")
        assert OTHER.strip() not in running(lab)
        assert b.compare_config() == f"+{OTHER.strip()}"  # B's candidate is intact
        b.discard_config()
        a.rollback()
    assert running(lab) == baseline


def test_control_one_shared_working_directory_mixes_candidates(lab: Lab, baseline: str) -> None:
    """Control for the test above: with the protection off (B made to use A's session
    directory, as every session shared one directory before), A's commit installs B's route."""
    with opened(lab) as a, opened(lab) as b:
        a.load_merge_candidate(config=BYPASS)
        b.session_id = a.session_id  # protection off
        b.load_merge_candidate(config=OTHER)
        a.commit_config()
        wait_route(lab, "r1", f"{VIP2}/32", "198.51.100.21")
        assert OTHER.strip() in running(lab) and BYPASS.strip() not in running(lab)
        a.rollback()
    assert running(lab) == baseline


def test_another_sessions_pending_commit_is_seen_and_never_confirmed(
    lab: Lab, baseline: str
) -> None:
    with opened(lab) as a, opened(lab) as b:
        a.load_merge_candidate(config=BYPASS)
        a.commit_config(revert_in=4)
        assert b.has_pending_commit()  # any session's pending commit is reported
        assert b.pending_commit is not None and not b.pending_commit["mine"]
        assert b.pending_commit["commit_id"] == a.commit_id
        assert b.pending_commit["deadline"] >= time.time() + 1
        with pytest.raises(CommitError, match="No pending commit-confirm found for this session"):
            b.confirm_commit()
        with pytest.raises(CommitError, match="this session made no commit"):
            b.rollback()
        b.load_merge_candidate(config=OTHER)
        with pytest.raises(CommitError, match=f"Pending commit.*{a.commit_id}"):
            b.commit_config()
        assert a.has_pending_commit() and a.pending_commit["mine"]
    # nobody confirmed: the router reverts A's commit by itself
    wait_route(lab, "r1", f"{VIP}/32", None, timeout=10)
    assert running(lab) == baseline


def test_naming_the_wrong_commit_confirms_nothing(lab: Lab, baseline: str) -> None:
    with opened(lab) as a:
        a.load_merge_candidate(config=BYPASS)
        a.commit_config()  # confirmed right away (no timer)
        first = a.commit_id
        a.rollback()
        a.load_merge_candidate(config=BYPASS)
        a.commit_config(revert_in=30)
        with opened(lab, commit_id=first) as b:
            with pytest.raises(CommitError, match="not the pending one"):
                b.confirm_commit()
            assert b.has_pending_commit()
        a.confirm_commit()
        assert not a.has_pending_commit()
        a.rollback()
    assert running(lab) == baseline


def test_concurrent_commits_exactly_one_wins(lab: Lab, baseline: str) -> None:
    """Two sessions commit at the same moment with revert_in: the router-side lock lets one
    commit; the other is refused as pending and changes nothing."""
    a, b = driver(lab), driver(lab)
    try:
        a.load_merge_candidate(config=BYPASS)
        b.load_merge_candidate(config=OTHER)
        errors: dict[str, Exception] = {}
        go = threading.Barrier(2)

        def commit(name: str, drv: napalm.base.NetworkDriver) -> None:
            go.wait()
            try:
                drv.commit_config(revert_in=30)
            except CommitError as exc:
                errors[name] = exc

        threads = [threading.Thread(target=commit, args=x) for x in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(errors) == 1, errors
        loser = next(iter(errors))
        winner, lost = (b, a) if loser == "a" else (a, b)
        assert "Pending commit" in str(errors[loser])
        config = running(lab)
        assert (BYPASS.strip() in config) == (winner is a)
        assert (OTHER.strip() in config) == (winner is b)
        with pytest.raises(CommitError):
            lost.confirm_commit()
        winner.confirm_commit()
        winner.rollback()
    finally:
        a.close()
        b.close()
    assert running(lab) == baseline


# --- rollback refuses what it cannot undo exactly ------------------------------------------


def test_rollback_without_a_commit_refuses_and_keeps_a_hand_made_route(
    lab: Lab, baseline: str
) -> None:
    """Issue 14: a session that never committed rolled back an earlier session's rollback
    point and deleted a route added by hand."""
    with opened(lab) as earlier:
        earlier.load_merge_candidate(config=BYPASS)
        earlier.commit_config()
        earlier_id = earlier.commit_id
    vtysh_config(lab, OTHER.strip())
    with opened(lab) as fresh, pytest.raises(CommitError, match="this session made no commit"):
        fresh.rollback()
    assert OTHER.strip() in running(lab) and BYPASS.strip() in running(lab)
    # naming the earlier commit is explicit, but the hand change came after it: refused too
    with (
        opened(lab, commit_id=earlier_id) as named,
        pytest.raises(CommitError, match="running config changed since"),
    ):
        named.rollback()
    assert OTHER.strip() in running(lab)


def test_rollback_refuses_while_a_later_commit_is_in_effect(lab: Lab, baseline: str) -> None:
    with opened(lab) as a, opened(lab) as b:
        a.load_merge_candidate(config=BYPASS)
        a.commit_config()
        b.load_merge_candidate(config=OTHER)
        b.commit_config()
        with pytest.raises(CommitError, match=f"commit {b.commit_id} was made after it"):
            a.rollback()
        assert BYPASS.strip() in running(lab) and OTHER.strip() in running(lab)
        b.rollback()
        assert OTHER.strip() not in running(lab) and BYPASS.strip() in running(lab)
        with pytest.raises(CommitError, match="already rolled-back"):
            b.rollback()
        a.rollback()  # now the last commit in effect
    assert running(lab) == baseline


def test_a_reverted_commit_cannot_be_rolled_back_again(lab: Lab, baseline: str) -> None:
    with opened(lab) as a:
        a.load_merge_candidate(config=BYPASS)
        a.commit_config(revert_in=1)
        wait_route(lab, "r1", f"{VIP}/32", None, timeout=10)
        deadline = time.monotonic() + 5
        while a.has_pending_commit() and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(CommitError, match="already reverted"):
            a.rollback()
    assert running(lab) == baseline


# --- working files on the router (issue 11 item 9) -----------------------------------------


def _as_nobody(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )


def test_working_files_are_private_and_removed_on_close(lab: Lab, baseline: str) -> None:
    drv = driver(lab)
    try:
        session = _state_dir(lab) / "sessions" / drv.session_id
        for directory in (_state_dir(lab), session):
            info = os.lstat(directory)
            assert stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            assert stat.S_IMODE(info.st_mode) == 0o700
        drv.load_merge_candidate(config=BYPASS + "password s3cret-frr\n")
        candidate = session / "candidate.conf"
        assert stat.S_IMODE(candidate.stat().st_mode) == 0o600
        denied = _as_nobody(f"cat {candidate}")
        assert denied.returncode != 0 and "s3cret" not in denied.stdout
        drv.compare_config()
        assert (session / "running.conf").exists()
    finally:
        drv.close()
    assert not session.exists()


def test_planted_symlink_or_foreign_dir_is_refused(lab: Lab, tmp_path: Path) -> None:
    """An unprivileged user plants a symlink (or a directory of their own) where the state
    directory will be; the driver refuses to open and the target stays intact."""
    target = tmp_path / "precious"
    target.write_text("root's data\n")
    planted = Path(f"/var/tmp/nfdrv-{os.getpid()}")
    made = _as_nobody(f"ln -s {target} {planted}")
    assert made.returncode == 0, made.stderr
    try:
        assert planted.is_symlink() and planted.lstat().st_uid != 0
        # control: what the driver did before (mkdir -p; write a file in it) follows the link
        control = tmp_path / "control-target"
        control.mkdir()
        ctl_link = Path(f"/var/tmp/nfdrv-ctl-{os.getpid()}")
        assert _as_nobody(f"ln -s {control} {ctl_link}").returncode == 0
        try:
            subprocess.run(
                ["sh", "-c", f"mkdir -p {ctl_link} && echo x > {ctl_link}/candidate.conf"],
                check=True,
            )
            assert (control / "candidate.conf").exists()  # the attack works without checks
        finally:
            ctl_link.unlink()
        with pytest.raises(ConnectionException, match=r"symlink|owned by uid"):
            driver(lab, state_dir=str(planted))
        assert target.read_text() == "root's data\n"
        assert sorted(os.listdir(tmp_path)) == ["control-target", "precious"]
    finally:
        planted.unlink()
    foreign = Path(f"/var/tmp/nfdrv-dir-{os.getpid()}")
    assert _as_nobody(f"mkdir -m 777 {foreign}").returncode == 0
    try:
        with pytest.raises(ConnectionException, match="owned by uid"):
            driver(lab, state_dir=str(foreign / "state"))
        assert not (foreign / "state").exists()
    finally:
        shutil.rmtree(foreign)


# --- executables (issue 11 item 6) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("vtysh", "vtysh", "must be an absolute path"),
        ("vtysh", "/usr/bin/no-such-vtysh", "not an existing executable"),
        ("vtysh", "/etc/frr", "not an existing executable"),
        ("frr_reload", "/etc/passwd", "not an existing executable"),
    ],
)
def test_local_transport_accepts_only_absolute_existing_executables(
    lab: Lab, option: str, value: str, error: str
) -> None:
    cls = napalm.get_network_driver("frr")
    opts = {"transport": "local", "netns": lab.routers[0].netns, option: value}
    with pytest.raises(ConnectionException, match=error):
        cls("localhost", "", "", optional_args=opts)


def test_ssh_transport_checks_the_executables_on_the_router(lab: Lab) -> None:
    with pytest.raises(ConnectionException, match="not an executable file: /usr/bin/nope"):
        driver(lab, vtysh="/usr/bin/nope")


def test_commits_and_rollbacks_leave_the_startup_config_alone(lab: Lab, baseline: str) -> None:
    """frr-reload ends with `vtysh write` (FRR 8.4 then writes the host's name as hostname);
    the driver keeps frr.conf as it was, for replace commits, rollbacks and reverts alike."""
    startup = Path(f"/etc/frr/{lab.routers[0].pathspace}/frr.conf")
    before = startup.read_bytes()
    with opened(lab) as drv:
        drv.load_replace_candidate(config=baseline.replace("end\n", "") + BYPASS)
        drv.commit_config(revert_in=1)
        wait_route(lab, "r1", f"{VIP}/32", "198.51.100.21")
        wait_route(lab, "r1", f"{VIP}/32", None, timeout=10)  # reverted by the timer
        drv.load_replace_candidate(config=baseline.replace("end\n", "") + BYPASS)
        drv.commit_config()
        drv.rollback()
        assert drv.get_facts()["hostname"] == lab.routers[0].pathspace
    assert startup.read_bytes() == before
    assert running(lab) == baseline
