"""Crash tests reach into a run through a hook that only tests install (no environment switch
in production code); tests/failpoints.py arms it in a process of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbauto.core.plan import Plan
from lbauto.orchestrate import executor
from tests import failpoints
from tests.unit.test_executor import D1, D2, VIP1, enable, multi, setup


def test_the_hook_sees_every_point_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int]] = []
    monkeypatch.setattr(executor, "failpoint_hook", lambda point, n: seen.append((point, n)))
    _, _, ex, _ = setup(tmp_path, {VIP1: multi(VIP1, D1, D2)})
    ex.execute(Plan((enable("web", VIP1, D1, [D2]),)))
    steps = [n for point, n in seen if point == "after-step"]
    assert steps == list(range(len(steps))) and len(steps) == 5  # set, wait, push, verify, off
    assert ("before-confirm", 0) in seen
    assert seen.index(("before-confirm", 0)) < seen.index(("after-step", 2))  # before push ends


def test_production_reads_no_environment_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The old switch: if anything still read it, this test process would be SIGKILLed here.
    monkeypatch.setenv("LBAUTO_FAILPOINT", "kill-after-step:0")
    monkeypatch.setattr(executor, "failpoint_hook", None)
    _, _, ex, _ = setup(tmp_path, {VIP1: multi(VIP1, D1, D2)})
    assert ex.execute(Plan((enable("web", VIP1, D1, [D2]),))).completed == ["web"]


def test_the_launcher_arms_only_the_named_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "failpoint_hook", None)
    failpoints.arm("kill-after-step:3")
    hook = executor.failpoint_hook
    assert hook is not None
    hook("after-step", 2)  # not the armed one: returns
    hook("before-confirm", 3)
    with pytest.raises(SystemExit, match="is not kill-<point>:<N>"):
        failpoints.arm("after-step")
    assert failpoints.command("kill-before-confirm:0", "apply")[1:] == [
        "-m",
        "tests.failpoints",
        "kill-before-confirm:0",
        "--",
        "apply",
    ]
