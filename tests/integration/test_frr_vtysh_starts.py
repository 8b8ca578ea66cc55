"""Fewer vtysh starts on the FRR driver's scale path, against real FRR over SSH: the merge diff
of a static-route candidate computed without frr-reload is frr-reload's diff; reads that go
together take one vtysh start (each start costs the router ~50 ms of CPU whatever it runs).

vtysh starts are counted with a logging shim named by the driver's ``vtysh`` option."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import napalm
import pytest
from napalm.base.exceptions import CommandErrorException

from lbauto.lab import Lab
from napalm_frr.parse import format_reload_diff, static_only
from tests.integration.conftest import MakeLab, vtysh

pytestmark = pytest.mark.integration

VIP = "192.0.2.10"
NEW = "192.0.2.77"
VIP6 = "2001:db8:10::77"
STATIC = ["show ip route static json", "show ipv6 route static json"]
PBR = ["show pbr map json", "show pbr nexthop-groups json", "show pbr interface json"]


@pytest.fixture(scope="module")
def lab(make_lab: MakeLab) -> Iterator[Lab]:
    lab = make_lab("hafvs", routers=1, agents=1, dips=1)
    state = Path(os.path.expanduser("~root")) / ".local/state/napalm-frr" / lab.routers[0].pathspace
    try:
        yield lab
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vtysh that logs each start (one line) and runs the real one."""
    d = tmp_path_factory.mktemp("vtysh-shim")
    d.chmod(0o755)
    log = d / "starts.log"
    script = d / "vtysh"
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec /usr/bin/vtysh "$@"\n')
    script.chmod(0o755)
    return script


def starts(shim: Path) -> list[str]:
    log = shim.parent / "starts.log"
    lines = log.read_text().splitlines() if log.exists() else []
    log.write_text("")
    return lines


@contextlib.contextmanager
def opened(lab: Lab, **extra: str) -> Iterator[napalm.base.NetworkDriver]:
    r = lab.routers[0]
    opts = {"pathspace": r.pathspace, "key_file": str(r.key_file), **extra}
    drv = napalm.get_network_driver("frr")(
        str(r.mgmt_ip), r.ssh_user, "", timeout=30, optional_args=opts
    )
    drv.open()
    try:
        yield drv
    finally:
        drv.close()


def frr_reload_diff(lab: Lab, tmp: Path, running: str, candidate: str) -> str:
    """What the driver shows with frr-reload (``--test`` on running + candidate)."""
    run, new = tmp / "running.conf", tmp / "new.conf"
    run.write_text(running)
    new.write_text(running + candidate)
    out = lab.run(
        lab.routers[0].netns,
        "/usr/lib/frr/frr-reload.py",
        "--test",
        "--input",
        str(run),
        str(new),
    )
    return format_reload_diff(out.stdout, running)


def timeless(data: Any) -> Any:
    """``data`` without FRR's route ``uptime`` fields (they tick between two reads)."""
    if isinstance(data, dict):
        return {k: timeless(v) for k, v in data.items() if k != "uptime"}
    if isinstance(data, list):
        return [timeless(v) for v in data]
    return data


def running_config(drv: napalm.base.NetworkDriver) -> str:
    return str(drv.get_config(retrieve="running")["running"])


def test_static_route_diffs_are_frr_reloads(lab: Lab, tmp_path: Path) -> None:
    """Every shape of candidate lbauto renders for static routes (adds, removals of routes
    there and not there, re-adds, another distance, duplicates, both families, a
    bypass-enable's remove + add): the diff computed in the driver equals frr-reload's. The
    driver's frr_reload is /bin/false here, so no diff below came from frr-reload."""
    routes = [
        f"ip route {VIP}/32 198.51.100.10 tag 4242 200",
        f"ip route {VIP}/32 198.51.100.21 tag 4242",
        f"ipv6 route {VIP6}/128 2001:db8:100::10 tag 4242 200",
    ]
    vtysh(lab, "r1", *routes)
    try:
        _compare_shapes(lab, tmp_path)
    finally:
        vtysh(lab, "r1", *(f"no {' '.join(r.split()[:4])}" for r in routes))


def _compare_shapes(lab: Lab, tmp_path: Path) -> None:
    with opened(lab, frr_reload="/bin/false") as drv:
        running = running_config(drv)
        have = [x for x in running.splitlines() if x.startswith(("ip route ", "ipv6 route "))]
        assert len(have) == 3, running
        words = have[0].split()
        there = " ".join(words[:4])  # "ip route P NH"
        candidates = [
            f"ip route {NEW}/32 198.51.100.21 tag 4242\n",
            f"ip route {NEW}/32 198.51.100.21 tag 4242 200\nip route {NEW}/32 198.51.100.22\n",
            f"{have[0]}\n",
            f"{have[0]}\n{have[0]}\nip route {NEW}/32 198.51.100.21 tag 4242\n",
            f"no {there}\n",
            f"no ip route {NEW}/32 198.51.100.21\n",
            f"no {there}\n{there} tag 4242 7\n",
            f"{there} tag 4242 150\n",
            "".join(f"no {' '.join(x.split()[:4])}\n" for x in have),
            f"ipv6 route {VIP6}/128 2001:db8:100::21 tag 4242\n"
            f"no ipv6 route {VIP6}/128 2001:db8:100::22\n",
        ]
        seen = set()
        for cand in candidates:
            assert static_only(cand), cand
            drv.load_merge_candidate(config=cand)
            ours = drv.compare_config()
            assert ours == frr_reload_diff(lab, tmp_path, running, cand), cand
            seen.add(ours[:1])
            drv.discard_config()
        assert seen == {"", "+", "-"}  # additions, removals and no-change all compared


def test_other_candidates_still_diff_with_frr_reload(lab: Lab, tmp_path: Path) -> None:
    """A candidate that is not only canonical static routes goes to frr-reload (with
    /bin/false as frr-reload its diff fails), and shows frr-reload's diff."""
    cand = f"ip route {NEW}/24 198.51.100.21 tag 4242\n"  # FRR prints 192.0.2.0/24
    assert not static_only(cand)
    with opened(lab, frr_reload="/bin/false") as drv:
        drv.load_merge_candidate(config=cand)
        with pytest.raises(CommandErrorException, match="frr-reload --test failed"):
            drv.compare_config()
    with opened(lab) as drv:
        running = running_config(drv)
        drv.load_merge_candidate(config=cand)
        assert drv.compare_config() == frr_reload_diff(lab, tmp_path, running, cand)


def test_reads_that_go_together_take_one_vtysh_start(lab: Lab, shim: Path) -> None:
    with opened(lab, vtysh=str(shim)) as drv:
        assert starts(shim) == [f"-N {lab.routers[0].pathspace} -c show version"]  # open
        both = drv._pending_and_running()
        assert len(starts(shim)) == 1
        assert both == (drv.has_pending_commit(), running_config(drv))
        starts(shim)

        for commands in (STATIC, PBR, [*STATIC, STATIC[0]]):
            out = drv._show_json(commands)
            assert len(starts(shim)) == 1, commands
            assert timeless(out) == timeless(drv.cli(commands, encoding="json"))
            assert len(starts(shim)) == len(set(commands))  # control: cli starts one each

        drv.load_merge_candidate(config=f"ip route {NEW}/32 198.51.100.21 tag 4242\n")
        assert len(starts(shim)) == 1  # the candidate check (vtysh -C)
        assert drv.compare_config() == f"+ip route {NEW}/32 198.51.100.21 tag 4242"
        assert len(starts(shim)) == 1  # the running config; no frr-reload
        drv.discard_config()


def test_one_start_falls_back_to_one_each_when_the_answer_does_not_split(
    lab: Lab, shim: Path
) -> None:
    """A failing command stops vtysh: the commands are rerun one each, and the error is
    cli's; a ``vrf all`` command (one document per VRF on FRR 8.4) never shares a start."""
    with opened(lab, vtysh=str(shim)) as drv:
        starts(shim)
        with pytest.raises(CommandErrorException, match="show bogus"):
            drv._show_json([STATIC[0], "show bogus json"])
        assert len(starts(shim)) == 3  # the shared start, then one each
        vrfs = [STATIC[0], "show ip route vrf all json"]
        assert timeless(drv._show_json(vrfs)) == timeless(drv.cli(vrfs, encoding="json"))
        assert len(starts(shim)) == 4  # two, and the control's two


def test_a_pending_commit_is_seen_with_the_running_config(lab: Lab) -> None:
    with opened(lab) as drv:
        before = drv._pending_and_running()
        assert before[0] is False
        drv.load_merge_candidate(config=f"ip route {NEW}/32 198.51.100.21 tag 4242\n")
        drv.commit_config(revert_in=60)
        try:
            pending, running = drv._pending_and_running()
            assert pending and drv.pending_commit["mine"]
            assert f"ip route {NEW}/32 198.51.100.21 tag 4242" in running
        finally:
            drv.rollback()
        assert drv._pending_and_running() == before
