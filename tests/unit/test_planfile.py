"""Saved plans: what a plan file holds (and does not), reading it back, and `apply PLAN`
refusing a stale plan, naming what changed, unless --replan."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lbauto.core.model import AgentVip, Drain, Inventory, ObservedState, Transit
from lbauto.core.plan import PlanOptions
from lbauto.errors import PlanFileError, StalePlanError
from lbauto.inventory import load_inventory
from lbauto.inventory.statefile import load_state, state_to_json
from lbauto.orchestrate.apply import ApplyOutcome, Devices
from lbauto.orchestrate.planfile import (
    PLAN_FILE_VERSION,
    apply_saved,
    load_plan_file,
    state_changes,
    state_digest,
)
from tests.unit.conftest import run_cli as run_lbauto
from tests.unit.fakes import FakeAgent, FakeRouters
from tests.unit.test_cli_exitcodes import EXAMPLE, STATE

SECRET = "s3cret-Value-never-printed"


@pytest.fixture
def inv_dir(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "inv")
    return tmp_path / "inv"


def _plan(inv_dir: Path, out: Path, *extra: str) -> dict[str, object]:
    res = run_lbauto(
        "plan",
        "-i",
        str(inv_dir),
        "--state",
        str(inv_dir / "state.json"),
        "--out",
        str(out),
        "-o",
        "json",
        *extra,
    )
    assert res.returncode == 0, res.stderr
    doc: dict[str, object] = json.loads(res.stdout)
    return doc


def test_a_plan_file_holds_plan_digests_state_options_version(
    inv_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "plan.lbauto"
    doc = _plan(inv_dir, out, "--transit", "45", "--limit", "web,api")
    raw = json.loads(out.read_text())
    assert raw["format"] == "lbauto-plan" and raw["version"] == PLAN_FILE_VERSION
    assert raw["lbauto_version"]
    assert raw["plan"] == doc  # exactly what was printed
    assert raw["inventory"]["digest"].startswith("sha256:")
    assert set(raw["inventory"]["files"]) >= {"vips.yaml", "agents.yaml", "hosts.yaml"}
    state = load_state(inv_dir / "state.json")
    assert raw["state"]["content"] == state_to_json(state)
    assert raw["state"]["digest"] == state_digest(state) and raw["state"]["source"] == "file"
    assert raw["options"]["transit_seconds"] == 45 and raw["options"]["limit"] == ["web", "api"]
    assert raw["options"]["only"] == ["192.0.2.10", "192.0.2.11"]
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    pf = load_plan_file(out)
    assert pf.plan == doc


def test_a_plan_file_holds_no_secrets(inv_dir: Path, tmp_path: Path) -> None:
    env = {f"LBAUTO_R{i}_PASSWORD": SECRET for i in range(1, 6)}
    env["LBAUTO_TOKEN_LB1"] = SECRET
    token = inv_dir / "token"
    token.write_text(SECRET)
    out = tmp_path / "plan.lbauto"
    res = run_lbauto(
        "plan",
        "-i",
        str(inv_dir),
        "--state",
        str(inv_dir / "state.json"),
        "--out",
        str(out),
        env=env,
    )
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert SECRET not in text
    # the inventory is recorded by digest only: no file content is copied in
    assert "key_file" not in text and "lbauto_password_env" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", ":1:2: not a plan file: invalid JSON"),
        ('{"format": "terraform"}', 'not an lbauto plan file: no "format": "lbauto-plan"'),
        ('{"format": "lbauto-plan", "version": 99}', "format version 99 is newer"),
    ],
)
def test_unreadable_plan_files_are_one_clear_error(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.lbauto"
    path.write_text(content)
    with pytest.raises(PlanFileError) as err:
        load_plan_file(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    res = run_lbauto("show", str(path))
    assert res.returncode == 1 and message in res.stderr


def test_a_damaged_field_names_the_field_and_the_fix(inv_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.lbauto"
    _plan(inv_dir, out)
    raw = json.loads(out.read_text())
    raw["options"]["transit_seconds"] = -5
    raw["state"]["content"]["agents"]["lb1"]["vips"][0]["mode"] = "sideways"
    out.write_text(json.dumps(raw))
    with pytest.raises(PlanFileError) as err:
        load_plan_file(out)
    assert f"{out}: options.transit_seconds:" in str(err.value)
    assert "lbauto plan --out" in str(err.value)
    raw["options"]["transit_seconds"] = 5
    out.write_text(json.dumps(raw))
    with pytest.raises(Exception, match="sideways"):
        load_plan_file(out)


def test_show_prints_the_saved_plan(inv_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.lbauto"
    _plan(inv_dir, out)
    table = run_lbauto("show", str(out), env={"COLUMNS": "120"})
    assert (
        table.returncode == 0 and "bypass-enable" in table.stdout and "file state" in table.stdout
    )
    md = run_lbauto("show", str(out), "-o", "markdown")
    assert md.returncode == 0 and md.stdout.startswith("### lbauto plan (saved: plan.lbauto)")


def test_apply_refuses_a_plan_whose_inventory_changed_before_touching_devices(
    inv_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "plan.lbauto"
    _plan(inv_dir, out)
    vips = inv_dir / "vips.yaml"
    vips.write_text(vips.read_text().replace("198.51.100.23", "198.51.100.33"))
    res = run_lbauto("apply", str(out), "--yes")
    assert res.returncode == 1
    assert f"error: {out}: stale plan: inventory file vips.yaml changed" in res.stderr
    assert "--replan" in res.stderr
    # the example's devices are unreachable: an attempt to observe would say "cannot observe"
    assert "cannot observe" not in res.stderr
    # --replan goes on to the devices (and so fails on them here, not on the plan)
    forced = run_lbauto("apply", str(out), "--yes", "--replan")
    assert forced.returncode == 1 and "stale plan" not in forced.stderr


def test_apply_refuses_a_saved_plan_with_limit(inv_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.lbauto"
    _plan(inv_dir, out)
    res = run_lbauto("apply", str(out), "--limit", "web")
    assert res.returncode == 1 and "--limit cannot narrow a saved plan" in res.stderr


# --------------------------------------------------- stale live state, over the fake devices


def _fake_devices(inv: Inventory, observed: ObservedState) -> tuple[Devices, list[FakeAgent]]:
    agents = [FakeAgent(a.name, vips=dict(observed.agents.get(a.name, {}))) for a in inv.agents]
    routers = FakeRouters(
        objects={r.name: set(observed.router_objects(r.name)) for r in inv.routers}
    )

    def observe() -> ObservedState:
        return ObservedState(
            agents={a.name: dict(a.vips) for a in agents}, routers=routers.observed()
        )

    return Devices(agents=agents, routers=routers, observe=observe, resolve=routers.resolve), agents


def _yes(_: ApplyOutcome) -> bool:
    return True


def test_apply_saved_runs_exactly_the_plan_or_refuses_when_the_state_moved(
    inv_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "plan.lbauto"
    _plan(inv_dir, out, "--drain-timeout", "0")
    pf = load_plan_file(out)
    inv = load_inventory(inv_dir)
    observed = load_state(inv_dir / "state.json")

    # someone changes one VIP on the agent between plan and apply
    devices, agents = _fake_devices(inv, observed)
    web = next(v for v in agents[0].vips.values() if v.name == "web")
    agents[0].vips[web.address] = AgentVip(
        address=web.address,
        mode=web.mode,
        dips=web.dips[:1],
        flow_tracking=True,
        generation=(web.generation or 0) + 1,
        name="web",
    )
    with pytest.raises(StalePlanError) as err:
        apply_saved(pf, out, inv, devices, dry_run=False, confirm=_yes)
    assert f"{out}: stale plan: agent lb1: VIP 192.0.2.10 changed" in str(err.value)
    assert agents[0].vips[web.address].dips == web.dips[:1]  # nothing was applied

    # unchanged devices: the saved plan runs, and it is the plan the file holds
    devices, agents = _fake_devices(inv, observed)
    done = apply_saved(pf, out, inv, devices, dry_run=False, confirm=_yes)
    assert done.outcome.executed is not None and done.replanned == []
    from lbauto.orchestrate.plandoc import plan_document, same_plan

    assert same_plan(plan_document(done.outcome.plan, inv, done.outcome.observed), pf.plan)

    # applying the same file again: the state moved (the plan ran), so it is stale now
    with pytest.raises(StalePlanError):
        apply_saved(pf, out, inv, devices, dry_run=True, confirm=_yes)
    # --replan plans anew: nothing left to do, and the reasons are reported
    again = apply_saved(pf, out, inv, devices, dry_run=False, confirm=_yes, replan=True)
    assert again.replanned and not again.outcome.plan.has_changes


def test_state_changes_name_each_difference_and_ignore_ticking_timers() -> None:
    before = load_state(STATE)
    lb1 = dict(before.agents["lb1"])
    addr, vip = next(iter(lb1.items()))
    ticking = dict(lb1)
    ticking[addr] = AgentVip(
        address=vip.address,
        mode=vip.mode,
        dips=vip.dips,
        flow_tracking=vip.flow_tracking,
        generation=vip.generation,
        name=vip.name,
        transit=Transit(vip.dips[0], 50.0),
        drain=Drain(vip.dips, 20.0),
    )
    later = dict(ticking)
    later[addr] = AgentVip(
        address=vip.address,
        mode=vip.mode,
        dips=vip.dips,
        flow_tracking=vip.flow_tracking,
        generation=vip.generation,
        name=vip.name,
        transit=Transit(vip.dips[0], 12.5),
        drain=Drain(vip.dips, 3.0),
    )
    a = ObservedState(agents={"lb1": ticking}, routers=before.routers)
    b = ObservedState(agents={"lb1": later}, routers=before.routers)
    assert state_changes(a, b) == [] and state_digest(a) == state_digest(b)
    # a router object gone by hand is named
    r1 = before.routers["r1"]
    gone = next(iter(r1.objects))
    from lbauto.core.model import ObservedRouter

    c = ObservedState(
        agents=before.agents,
        routers={**before.routers, "r1": ObservedRouter("r1", r1.objects - {gone})},
    )
    lines = state_changes(before, c)
    assert len(lines) == 1 and lines[0].startswith("router r1: ") and lines[0].endswith("is gone")


def test_plan_options_of_the_file_are_used(inv_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.lbauto"
    _plan(inv_dir, out, "--transit", "7", "--drain-timeout", "3")
    assert load_plan_file(out).options.plan_options() == PlanOptions(7.0, 3.0)
    assert os.access(out, os.R_OK)
