"""The command line as a user runs it: exit codes, one-line errors, JSON.

Most tests run :func:`lbauto.cli.main` in process (``run_cli``, tests/unit/conftest.py): the
same entry point, argument parsing and error handling as the console script, a second faster.
One test starts a real ``python -m lbauto`` process: the byte-identical plan (a second
interpreter has another ``hash()`` seed, so set or dict order leaking into the output would
show); it also runs the console entry point as a shell does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import EXAMPLE
from tests.unit.conftest import run_cli as lbauto

STATE = EXAMPLE / "state.json"


def lbauto_process(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m lbauto ARGS...`` as a separate interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "lbauto", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_plan_json_has_the_documented_schema_and_every_kind() -> None:
    res = lbauto("plan", "--inventory", str(EXAMPLE), "--state", str(STATE), "--output", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    kinds = {t["kind"] for t in doc["transitions"]}
    assert kinds >= {
        "create",
        "delete",
        "bypass-enable",
        "bypass-disable",
        "bypass-move",
        "rebalance",
        "repair",
        "none",
    }
    for t in doc["transitions"]:
        assert set(t) >= {"vip", "address", "kind", "from", "to", "steps"}
        assert set(t["from"]) == {"mode", "dips"} and set(t["to"]) == {"mode", "dips"}
        for step in t["steps"]:
            assert step["action"] in {
                "agent.set_vip",
                "agent.wait_drain",
                "agent.flow_tracking",
                "agent.remove_vip",
                "router.push",
                "router.verify",
            }
            if step["action"] in {"router.push", "router.verify"}:
                for group in step["routers"]:  # version 2: routers by shared set
                    assert doc["router_sets"][group["set"]]
                    assert set(group) == {"set", "remove", "add"}
    assert doc["version"] == 2
    assert {r["platform"] for r in doc["routers"]} == {"frr", "eos", "ios", "nxos", "junos"}
    frr = next(r for r in doc["routers"] if r["platform"] == "frr")
    lines = doc["change_lists"][frr["change_list"]]
    assert all(isinstance(line, str) for line in lines) and lines and frr["lines"] == len(lines)


def test_plan_is_byte_identical_across_runs() -> None:
    args = ("plan", "--inventory", str(EXAMPLE), "--state", str(STATE), "--output", "json")
    # One run here, one in an interpreter with a fixed, different hash seed.
    other = lbauto_process(*args, env={"PYTHONHASHSEED": "1"})
    assert other.returncode == 0, other.stderr
    assert lbauto(*args).stdout == other.stdout


def test_detailed_exitcode_is_2_with_changes_and_0_without(tmp_path: Path) -> None:
    pending = lbauto("plan", "-i", str(EXAMPLE), "--state", str(STATE), "--detailed-exitcode")
    assert pending.returncode == 2, pending.stderr
    # the state a perfect apply would leave: no changes
    from lbauto.core.planner import make_plan
    from lbauto.inventory import load_inventory
    from lbauto.inventory.statefile import load_state, state_to_json
    from tests.simulate import apply_plan

    inv = load_inventory(EXAMPLE)
    observed = load_state(STATE)
    done = apply_plan(inv, observed, make_plan(inv, observed))
    (tmp_path / "done.json").write_text(json.dumps(state_to_json(done)))
    clean = lbauto(
        "plan", "-i", str(EXAMPLE), "--state", str(tmp_path / "done.json"), "--detailed-exitcode"
    )
    assert clean.returncode == 0, clean.stderr


def test_inventory_errors_are_one_line_each_and_exit_1(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    shutil.copytree(EXAMPLE, inv)
    text = (inv / "vips.yaml").read_text()
    text = text.replace("address: 192.0.2.10", "address: 192.0.2.999", 1)
    text = text.replace("name: api", 'name: "api;reload"', 1)
    (inv / "vips.yaml").write_text(text)
    res = lbauto("validate", "--inventory", str(inv))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) >= 2 and all(line.startswith("error: ") for line in lines)
    assert any("vips.yaml:" in ln and "192.0.2.999" in ln for ln in lines)
    assert any("vips.yaml:" in ln and "api;reload" in ln for ln in lines)
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("plan",),
        ("plan", "--inventory", "/nonexistent/inventory"),
        ("render", "--inventory", str(EXAMPLE), "no-such-router"),
        ("plan", "--inventory", str(EXAMPLE), "--state", __file__),
    ],
    ids=["no-inventory", "missing-dir", "unknown-router", "bad-state"],
)
def test_bad_input_is_a_one_line_error(args: tuple[str, ...]) -> None:
    res = lbauto(*args)
    assert res.returncode == 1, res.stdout
    assert res.stderr.startswith("error: ") and "Traceback" not in res.stderr


def test_render_prints_each_router_with_its_comment_marker() -> None:
    res = lbauto("render", "--inventory", str(EXAMPLE), "--state", str(STATE))
    assert res.returncode == 0, res.stderr
    assert "! ---- r1 (frr)" in res.stdout and "# ---- r5 (junos)" in res.stdout
    assert "ip route 192.0.2.10/32 198.51.100.10 tag 4242 200" in res.stdout


def test_help_explains_every_command() -> None:
    res = lbauto("--help")
    assert res.returncode == 0
    for cmd in (
        "validate",
        "plan",
        "render",
        "apply",
        "scale",
        "status",
        "push",
        "lab",
        "agent",
        "demo",
    ):
        assert cmd in res.stdout


@pytest.mark.parametrize(
    "args",
    [("plan", "--transit", "-1"), ("scale", "vip"), ("plan", "--no-such-option")],
    ids=["negative-transit", "missing-name", "unknown-option"],
)
def test_usage_errors_exit_1_with_usage_and_no_traceback(args: tuple[str, ...]) -> None:
    # 1 like every error: 2 means "changes pending" under --detailed-exitcode (lbauto --help).
    res = lbauto(*args)
    assert res.returncode == 1
    assert "Usage:" in res.stderr and "Traceback" not in res.stderr
