"""Exit codes, one table for every command (docs/cli.md): 0 done / nothing to change, 1 any
error (usage errors included), 2 changes pending only with --detailed-exitcode. The state
source is explicit, and errors keep their cause with a fix."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lbauto import __version__
from lbauto.cli import app
from tests.unit.conftest import CliResult, run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example"
STATE = EXAMPLE / "state.json"


Run = Callable[..., CliResult]


@pytest.fixture
def lbauto() -> Run:
    return run_cli


COMMANDS = ("validate", "plan", "render", "status", "push", "apply", "show", "scale vip")


@pytest.mark.parametrize(
    "args",
    [
        ("plan", "--no-such-option"),
        ("validate", "--no-such-option"),
        ("render", "--no-such-option"),
        ("status", "--no-such-option"),
        ("push", "--no-such-option"),
        ("apply", "--no-such-option"),
        ("show",),  # missing PLAN
        ("scale", "vip"),  # missing NAME
        ("plan", "--transit", "-1"),
        ("no-such-command",),
        ("--no-such-global-option", "plan"),
    ],
)
def test_usage_errors_exit_1_not_2(lbauto: Run, args: tuple[str, ...]) -> None:
    res = lbauto(*args)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "Usage:" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("command", ["validate", "plan", "render", "status", "push", "apply"])
def test_an_unknown_output_format_is_rejected_with_1(lbauto: Run, command: str) -> None:
    res = lbauto(command, "-i", str(EXAMPLE), "-o", "yaml")
    assert res.returncode == 1
    assert "yaml" in res.stderr and "table" in res.stderr  # names the choices


def test_show_rejects_an_unknown_output_format(lbauto: Run, tmp_path: Path) -> None:
    plan = tmp_path / "p.lbauto"
    assert (
        lbauto("plan", "-i", str(EXAMPLE), "--state", str(STATE), "--out", str(plan)).returncode
        == 0
    )
    assert lbauto("show", str(plan), "-o", "yaml").returncode == 1


def _converged_state(tmp_path: Path) -> Path:
    from lbauto.core.planner import make_plan
    from lbauto.inventory import load_inventory
    from lbauto.inventory.statefile import load_state, state_to_json
    from tests.simulate import apply_plan

    inv = load_inventory(EXAMPLE)
    observed = load_state(STATE)
    done = apply_plan(inv, observed, make_plan(inv, observed))
    path = tmp_path / "done.json"
    path.write_text(json.dumps(state_to_json(done)))
    return path


def test_plan_detailed_exitcode_2_0_and_1(lbauto: Run, tmp_path: Path) -> None:
    base = ("plan", "-i", str(EXAMPLE), "--detailed-exitcode")
    assert lbauto(*base, "--state", str(STATE)).returncode == 2
    assert lbauto(*base, "--state", str(_converged_state(tmp_path))).returncode == 0
    assert lbauto(*base, "--state", str(tmp_path / "state.jsn")).returncode == 1
    # without the flag, pending changes are success
    assert lbauto("plan", "-i", str(EXAMPLE), "--state", str(STATE)).returncode == 0
    # with JSON and a saved plan too: the document is still complete
    res = lbauto(*base, "--state", str(STATE), "-o", "json", "--out", str(tmp_path / "p.lbauto"))
    assert res.returncode == 2 and json.loads(res.stdout)["changes"] is True


def test_a_mistyped_state_file_is_an_error_naming_it(lbauto: Run, tmp_path: Path) -> None:
    typo = tmp_path / "state.jsn"
    for command in ("plan", "render"):
        res = lbauto(command, "-i", str(EXAMPLE), "--state", str(typo))
        assert res.returncode == 1, res.stdout
        assert res.stderr.startswith(f"error: {typo}: no such state file")
        assert "--state empty" in res.stderr
        assert res.stdout == ""  # no plan "from nothing" was printed


def test_state_empty_plans_from_nothing(lbauto: Run) -> None:
    res = lbauto("plan", "-i", str(EXAMPLE), "--state", "empty", "-o", "json")
    assert res.returncode == 0, res.stderr
    kinds = {t["kind"] for t in json.loads(res.stdout)["transitions"]}
    assert kinds == {"create"}


def test_version(lbauto: Run) -> None:
    res = lbauto("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"lbauto {__version__}"


def test_lbauto_errors_are_error_lines_and_exit_1(lbauto: Run) -> None:
    res = lbauto("plan", "-i", "/nonexistent/inventory", "--state", "empty")
    assert res.returncode == 1
    assert res.stderr.startswith("error: /nonexistent/inventory: not a directory")
    assert "Traceback" not in res.stderr


def _inventory_with_router(tmp_path: Path, hosts: str) -> Path:
    inv = tmp_path / "inv"
    inv.mkdir()
    shutil.copy(EXAMPLE / "vips.yaml", inv / "vips.yaml")
    (inv / "agents.yaml").write_text(
        "agents:\n  - name: lb1\n    api: http://127.0.0.1:9/\n    address: 198.51.100.10\n"
        "    address6: 2001:db8:100::10\n    token_env: LBAUTO_TEST_NO_SUCH_TOKEN\n"
    )
    (inv / "hosts.yaml").write_text(hosts)
    return inv


def test_a_connection_error_keeps_its_cause_and_says_how_to_fix(
    lbauto: Run, tmp_path: Path
) -> None:
    """The cause used to be dropped: 'SSH connection to ... failed: ValueError'."""
    inv = _inventory_with_router(
        tmp_path,
        "r1:\n  hostname: 127.0.0.1\n  platform: frr\n  connection_options:\n    napalm:\n"
        "      extras:\n        optional_args:\n          key_file: /nonexistent/lbauto-key\n",
    )
    res = lbauto("push", "-i", str(inv), "--dry-run")
    assert res.returncode == 1, res.stdout
    lines = res.stderr.splitlines()
    assert all(line.startswith("error: ") for line in lines), res.stderr
    assert any("caused by" in ln and "/nonexistent/lbauto-key" in ln for ln in lines), res.stderr
    assert any("fix:" in ln and "key_file" in ln for ln in lines), res.stderr


def test_an_unreachable_agent_keeps_its_cause(lbauto: Run, tmp_path: Path) -> None:
    inv = _inventory_with_router(tmp_path, "{}\n")
    (inv / "hosts.yaml").unlink()
    # live observation of an agent whose port is closed
    res = lbauto(
        "plan",
        "-i",
        str(inv),
        env={"LBAUTO_TEST_NO_SUCH_TOKEN": "0123456789abcdef0123456789abcdef"},
    )
    assert res.returncode == 1, res.stdout
    assert "cannot observe" in res.stderr and "fix:" in res.stderr, res.stderr


@pytest.mark.parametrize("command", [c.split() for c in COMMANDS])
def test_every_command_help_has_an_example_and_flags_as_flags(
    lbauto: Run, command: list[str]
) -> None:
    res = lbauto(*command, "--help")
    assert res.returncode == 0
    assert "Example" in res.stdout, res.stdout
    assert "<bool>" not in res.stdout and "<int>" not in res.stdout.split("--verbose")[-1][:0]


def test_root_help_has_no_bool_metavar_and_offers_completion(lbauto: Run) -> None:
    res = lbauto("--help")
    assert res.returncode == 0
    assert "<bool>" not in res.stdout
    assert "--install-completion" in res.stdout and "--version" in res.stdout


# ------------------------------------------------------------------- example CI pipelines

CI_DIR = Path(__file__).resolve().parents[2] / "examples" / "ci"
_AT_COMMAND = re.compile(r"(?:^|[;&|(]\s*|\bthen\s+)lbauto\s+(.*)")
_GLOBAL_WITH_VALUE = {"--inventory", "-i", "--log-level", "--log-format"}


def _scripts(path: Path) -> list[str]:
    """Every shell script of a GitHub Actions workflow (steps' run) or a GitLab CI file
    (before_script, script, after_script)."""
    doc = yaml.safe_load(path.read_text())
    scripts: list[str] = []
    if "jobs" in doc:  # GitHub Actions
        for job in doc["jobs"].values():
            scripts += [s["run"] for s in job.get("steps", []) if "run" in s]
    else:  # GitLab CI
        for value in doc.values():
            if isinstance(value, dict):
                for key in ("before_script", "script", "after_script"):
                    item = value.get(key, [])
                    scripts += [item] if isinstance(item, str) else list(item)
    return scripts


def lbauto_commands(path: Path) -> list[list[str]]:
    """The lbauto command lines a pipeline file runs, in order, as argument lists."""
    found = []
    for script in _scripts(path):
        for line in script.replace("\\\n", " ").splitlines():
            m = _AT_COMMAND.search(line.strip())
            if m:
                rest = re.split(r"\s(?:>|\|\||\||&&|;)\s?|\s>", m.group(1))[0]
                found.append(shlex.split(rest))
    return found


def subcommand(args: list[str]) -> tuple[str, list[str]]:
    """(command, its arguments) with global options before the command skipped."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in _GLOBAL_WITH_VALUE else 1
    return args[i], args[i + 1 :]


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_example_pipelines_parse_and_run_only_commands_and_options_that_exist(
    lbauto: Run, name: str
) -> None:
    path = CI_DIR / name
    commands = lbauto_commands(path)
    assert commands, f"{name}: no lbauto command found"
    top = lbauto("--help", env={"COLUMNS": "200"}).stdout
    for args in commands:
        cmd, rest = subcommand(args)
        assert re.search(rf"│ {cmd}\s", top), f"{name}: `lbauto {cmd}` is not a command"
        helptext = lbauto(cmd, "--help", env={"COLUMNS": "200"}).stdout
        for opt in (a.split("=")[0] for a in rest if a.startswith("-")):
            assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", helptext), (
                f"{name}: `lbauto {cmd}` has no option {opt}"
            )
    flat = [" ".join(c) for c in commands]
    assert "validate" in flat
    assert "plan --detailed-exitcode --out plan.lbauto -o markdown" in flat
    assert "apply plan.lbauto --yes" in flat
    assert flat.index("show plan.lbauto") < flat.index("apply plan.lbauto --yes")
    # exit 2 (changes pending) is not a failure of the plan step
    assert re.search(r'if \[ "\$rc" -ne 0 \] && \[ "\$rc" -ne 2 \]; then exit', path.read_text())


def test_shell_completion_completes_commands_and_options(lbauto: Run) -> None:
    """One real process: the shell calls the installed console script, whose name selects the
    completion variable (_LBAUTO_COMPLETE); more words are completed in process (the same
    click completion code, without an interpreter start each)."""
    script = Path(sys.executable).parent / "lbauto"
    if not script.exists():
        pytest.skip("the lbauto console script is not installed next to this python")

    def env(words: str) -> dict[str, str]:
        return {
            "_LBAUTO_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        }

    res = subprocess.run(
        [str(script)],
        env={**os.environ, **env("lbauto pl")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "plan" in res.stdout.split()

    def complete(words: str) -> list[str]:
        got = CliRunner().invoke(app, [], env=env(words), prog_name="lbauto")
        assert got.exit_code == 0, got.output
        return got.output.split()

    assert "--limit" in complete("lbauto plan --li")
    assert "--detailed-exitcode" in complete("lbauto plan --det")
    shown = lbauto("--show-completion", "bash")
    assert shown.returncode == 0 and "_lbauto_completion" in shown.stdout
