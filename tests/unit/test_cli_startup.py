"""Start-up cost of the command line: a command imports what it uses, nothing more.

Every ``lbauto`` invocation, ``--help`` included, imports :mod:`lbauto.cli`, which registers
every command (typer needs their signatures). Before the command modules imported their
libraries in their bodies that cost about 0.8 s of CPU per invocation (pydantic models of the
agent config, the orchestrator, the lab, jinja2, Nornir). These tests start fresh interpreters,
the only place where "what got imported" means anything, and name the modules that must stay
out; they also run every command's ``--help``, which builds each command's options.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from lbauto.cli import app
from tests.builders import EXAMPLE
from tests.unit.conftest import run_cli

#: Heavy or device-facing libraries: none of them is needed to parse a command line.
LIBRARIES = (
    "pydantic",
    "rich",
    "jinja2",
    "yaml",
    "ruamel",
    "httpx",
    "napalm",
    "netmiko",
    "nornir",
    "fastapi",
    "uvicorn",
    "etcd3gw",
)
#: lbauto's own modules that a command loads when it runs, never at registration.
LBAUTO_HEAVY = (
    "lbauto.agent.config",
    "lbauto.agent.server",
    "lbauto.cli.present",
    "lbauto.core",
    "lbauto.inventory",
    "lbauto.lab",
    "lbauto.orchestrate",
    "lbauto.platforms",
    "lbauto.play",
    "lbauto.push",
)

_PROBE = """
import json, sys
out, *args = sys.argv[1:]
before = set(sys.modules)
code = 0
if args == ["--import-only"]:
    import lbauto.cli
else:
    from lbauto.cli import main
    sys.argv = ["lbauto", *args]
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
with open(out, "w") as f:
    json.dump({"code": code, "imported": sorted(set(sys.modules) - before)}, f)
"""


def _fresh(tmp_path: Path, *args: str) -> tuple[int, set[str]]:
    """Run ``lbauto ARGS`` (or only ``import lbauto.cli`` for ``--import-only``) in a new
    interpreter: its exit code and every module it imported."""
    report = tmp_path / "modules.json"
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.is_file(), res.stderr
    doc = json.loads(report.read_text())
    return doc["code"], set(doc["imported"])


def _hits(imported: set[str], names: tuple[str, ...]) -> list[str]:
    """The modules of ``imported`` that are one of ``names`` or inside one of them."""
    return sorted(m for m in imported if any(m == n or m.startswith(n + ".") for n in names))


def _imported_by_typer(tmp_path: Path) -> set[str]:
    report = tmp_path / "typer.json"
    probe = (
        "import json, sys; before = set(sys.modules); import typer; "
        "json.dump(sorted(set(sys.modules) - before), open(sys.argv[1], 'w'))"
    )
    subprocess.run([sys.executable, "-c", probe, str(report)], check=True, timeout=60)
    return set(json.loads(report.read_text()))


def test_importing_the_cli_loads_no_library_and_no_command_body(tmp_path: Path) -> None:
    code, imported = _fresh(tmp_path, "--import-only")
    assert code == 0
    # Whatever typer itself loads is typer's start-up, not lbauto's.
    by_lbauto = imported - _imported_by_typer(tmp_path)
    assert _hits(by_lbauto, LIBRARIES + LBAUTO_HEAVY) == []


@pytest.mark.parametrize("args", [("plan", "--help"), ("scale", "vip", "--help")])
def test_help_loads_no_command_body(tmp_path: Path, args: tuple[str, ...]) -> None:
    # typer builds a subcommand's help with rich and coerces the root options through
    # pydantic: those are typer's. lbauto's command modules and device libraries stay out.
    code, imported = _fresh(tmp_path, *args)
    assert code == 0
    device_libraries = ("jinja2", "yaml", "ruamel", "httpx", "napalm", "netmiko", "nornir")
    assert _hits(imported, device_libraries + LBAUTO_HEAVY) == []


def test_an_offline_plan_loads_no_agent_lab_or_device_client(tmp_path: Path) -> None:
    code, imported = _fresh(tmp_path, "plan", "-i", str(EXAMPLE), "--state", "empty")
    assert code == 0
    unused = (
        "lbauto.agent.config",
        "lbauto.agent.server",
        "lbauto.agent.client",
        "lbauto.lab",
        "lbauto.play",
        "lbauto.orchestrate.live",
        "httpx",
        "napalm",
        "netmiko",
        "fastapi",
        "uvicorn",
    )
    assert _hits(imported, unused) == []
    assert "lbauto.core.planner" in imported  # the probe did run a plan


def _command_paths(group: typer.core.TyperGroup, prefix: tuple[str, ...] = ()) -> list[str]:
    paths = []
    for name, cmd in sorted(group.commands.items()):
        paths.append(" ".join((*prefix, name)))
        if isinstance(cmd, typer.core.TyperGroup):
            paths += _command_paths(cmd, (*prefix, name))
    return paths


COMMANDS = _command_paths(typer.main.get_group(app))


def test_the_command_tree_is_the_documented_one() -> None:
    # A command lost at registration (a module no longer imported by lbauto.cli) shows here.
    assert set(COMMANDS) >= {
        "validate",
        "plan",
        "state",
        "render",
        "show",
        "apply",
        "scale",
        "scale vip",
        "status",
        "journal",
        "push",
        "play",
        "demo",
        "lab",
        "lab up",
        "lab down",
        "lab status",
        "lab traffic",
        "agent",
        "agent serve",
    }


# Every command's --help exits 0 with an example: tests/unit/test_cli_exitcodes.py.


def test_push_default_revert_in_is_the_pipelines() -> None:
    # written out in lbauto.cli.push so that registering `push` needs no push pipeline
    from lbauto.cli import push as command
    from lbauto.push import pipeline

    assert command.DEFAULT_REVERT_IN == pipeline.DEFAULT_REVERT_IN
    help_text = run_cli("push", "--help", env={"COLUMNS": "200"}).stdout
    assert f"[default: {pipeline.DEFAULT_REVERT_IN}]" in help_text
