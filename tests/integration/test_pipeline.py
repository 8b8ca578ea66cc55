"""The example CI pipeline's command sequence, run for real against the lab (root).

The commands are read from examples/ci/github-actions.yml, so the example and this test cannot
drift apart. A pull request scales `web` to one DIP: validate, plan with --detailed-exitcode
(exit 2: changes pending), saved plan and markdown comment; the merge applies exactly that plan.
A second pull request's plan goes stale because the lab changes between plan and apply (the
bypass route is deleted by hand on the router): apply refuses, naming the change, and the
devices stay as they were; the control run with the protection off (--replan) applies.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lbauto.lab import Lab
from lbauto.orchestrate.vipsfile import rewrite_dips, write_atomic
from tests.integration.conftest import MakeLab, vtysh, wait_route
from tests.unit.test_cli_exitcodes import CI_DIR, lbauto_commands

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAB = "ci1"
WEB = "192.0.2.10"


def _run(lab: Lab, cwd: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    """One pipeline command, as the CI job runs it (env from the example, cwd = checkout)."""
    env = {
        **os.environ,
        "LBAUTO_INVENTORY": str(lab.inventory_dir),
        "NO_COLOR": "1",
        "COLUMNS": "120",
    }
    return subprocess.run(
        [sys.executable, "-m", "lbauto", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _set_dips(lab: Lab, vip: str, dips: list[str]) -> None:
    path = lab.inventory_dir / "vips.yaml"
    write_atomic(path, rewrite_dips(path, vip, [ipaddress.ip_address(d) for d in dips]))


def _web_on_agent(lab: Lab, cwd: Path) -> dict[str, object]:
    res = _run(lab, cwd, ["status", "-o", "json"])
    doc = json.loads(res.stdout)
    assert doc["version"] == 1 and doc["kind"] == "status"
    web = next(v for v in doc["vips"] if v["address"] == WEB)
    agent: dict[str, object] = web["agents"][lab.agents[0].name]
    return agent


def test_pull_request_plan_then_merge_apply_and_a_stale_plan_refused(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    lab: Lab = make_lab(LAB, start_agents=True)
    pipeline = {" ".join(c): c for c in lbauto_commands(CI_DIR / "github-actions.yml")}
    validate = pipeline["validate"]
    plan = pipeline["plan --detailed-exitcode --out plan.lbauto -o markdown"]
    show, apply, status = (
        pipeline["show plan.lbauto"],
        pipeline["apply plan.lbauto --yes"],
        ["status"],
    )
    dips = [str(d.address) for d in lab.dips]
    router = lab.routers[0].name
    work = tmp_path / "checkout"
    work.mkdir()

    # the lab as deployed before the pull request: web on three DIPs, converged
    _set_dips(lab, "web", dips)
    first = _run(lab, work, ["apply", "--yes"])
    assert first.returncode == 0, first.stderr
    assert _run(lab, work, ["plan", "--detailed-exitcode"]).returncode == 0

    # ---- pull request 1: web scales to one DIP (bypass-enable)
    _set_dips(lab, "web", dips[:1])
    assert _run(lab, work, validate).returncode == 0
    res = _run(lab, work, plan)
    assert res.returncode == 2, res.stderr  # changes pending: not a failure in the pipeline
    comment = res.stdout
    assert len(comment) <= 65536 and "1 bypass-enable" in comment
    assert f"| web | {WEB} |" in comment and "<details><summary>router" in comment
    assert (work / "plan.lbauto").is_file()
    # the other commands with --detailed-exitcode agree: changes are pending
    assert _run(lab, work, ["push", "--dry-run", "--detailed-exitcode"]).returncode == 2
    dry = _run(lab, work, ["apply", "--dry-run", "--detailed-exitcode", "-o", "json"])
    assert dry.returncode == 2, dry.stderr
    assert json.loads(dry.stdout)["kind"] == "apply" and json.loads(dry.stdout)["dry_run"]
    pushed = json.loads(_run(lab, work, ["push", "--dry-run", "-o", "json"]).stdout)
    assert pushed["kind"] == "push" and pushed["changes"] is True
    # --limit: api has nothing to do, so a run limited to it has nothing pending
    for args in (["apply", "--dry-run"], ["push", "--dry-run"]):
        limited = _run(lab, work, [*args, "--detailed-exitcode", "--limit", "api"])
        assert limited.returncode == 0, (args, limited.stdout, limited.stderr)
    skipped = json.loads(_run(lab, work, ["apply", "--dry-run", "-l", "api", "-o", "json"]).stdout)
    assert [s["vip"] for s in skipped["skipped"]] == ["web"]
    md = _run(lab, work, ["push", "--dry-run", "-o", "markdown"]).stdout
    assert md.startswith("### lbauto push --dry-run") and "<details>" in md

    # ---- merge: apply exactly the reviewed plan
    shown = _run(lab, work, show)
    assert shown.returncode == 0 and "bypass-enable" in shown.stdout
    applied = _run(lab, work, apply)
    assert applied.returncode == 0, applied.stderr
    assert _run(lab, work, status).returncode == 0
    assert "**3 VIP(s), in sync**" in _run(lab, work, ["status", "-o", "markdown"]).stdout
    wait_route(lab, router, f"{WEB}/32", dips[0])
    agent = _web_on_agent(lab, work)
    assert agent["mode"] == "single" and agent["flow_tracking"] is False
    for args in (["plan"], ["apply", "--dry-run"], ["push", "--dry-run"]):
        done = _run(lab, work, [*args, "--detailed-exitcode"])
        assert done.returncode == 0, (args, done.stdout, done.stderr)

    # ---- pull request 2: back to three DIPs; the lab changes between plan and apply
    _set_dips(lab, "web", dips)
    assert _run(lab, work, plan).returncode == 2
    vtysh(lab, router, f"no ip route {WEB}/32 {dips[0]}")  # a hand edit on the router
    wait_route(lab, router, f"{WEB}/32", str(lab.agents[0].address))
    stale = _run(lab, work, apply)
    assert stale.returncode == 1
    assert "stale plan: router " + router in stale.stderr, stale.stderr
    assert f"route {WEB}/32 via {dips[0]} distance 1 tag 4242 is gone" in stale.stderr
    assert "--replan" in stale.stderr
    assert _web_on_agent(lab, work)["mode"] == "single"  # nothing was applied

    # control: with the protection off (--replan) the same plan file goes through
    forced = _run(lab, work, [*apply, "--replan"])
    assert forced.returncode == 0, forced.stderr
    assert "replanned" in forced.stdout
    agent = _web_on_agent(lab, work)
    assert agent["mode"] == "multi" and agent["flow_tracking"] is True
    assert _run(lab, work, ["plan", "--detailed-exitcode"]).returncode == 0
