"""Running playbooks: --check changes nothing, when/register/loop, stop at the first failure,
ignore_errors, --limit, drain and restore, the recap and the exit codes.

Real runs go against the hand-written device fakes (tests/unit/fakes.py) seeded from the
example's observed state, over a copy of the example inventory; --check runs read the state
file, as CI would."""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import shutil
import textwrap
from pathlib import Path

import pytest

from lbauto.core.model import Inventory, ObservedState
from lbauto.inventory import load_inventory
from lbauto.inventory.statefile import load_state
from lbauto.orchestrate.apply import Devices
from lbauto.play import PlayResult, Task, TextReport, read_play, run_play
from tests.unit.conftest import run_cli
from tests.unit.fakes import FakeAgent, FakeRouters

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories" / "example"
STATE = EXAMPLE / "state.json"
PLAYBOOKS = ROOT / "playbooks"
D21, D22, D23 = "198.51.100.21", "198.51.100.22", "198.51.100.23"


@pytest.fixture
def inv(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "inv")
    return tmp_path / "inv"


def tree_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    } | {"dirs": ",".join(sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_dir()))}


def converged(inv: Inventory) -> tuple[Devices, list[FakeAgent], FakeRouters]:
    """Fake devices that already match the inventory (the example's state, then an apply)."""
    devices, agents, routers = fakes(inv, load_state(STATE))
    from lbauto.core.plan import PlanOptions
    from lbauto.orchestrate.apply import run_apply

    run_apply(inv, devices, options=PlanOptions(60, 0), dry_run=False, confirm=lambda _: True)
    return devices, agents, routers


def fakes(inv: Inventory, observed: ObservedState) -> tuple[Devices, list[FakeAgent], FakeRouters]:
    agents = [FakeAgent(a.name, vips=dict(observed.agents.get(a.name, {}))) for a in inv.agents]
    routers = FakeRouters(
        objects={r.name: set(observed.router_objects(r.name)) for r in inv.routers}
    )

    def observe() -> ObservedState:
        return ObservedState(
            agents={a.name: dict(a.vips) for a in agents}, routers=routers.observed()
        )

    return Devices(agents=agents, routers=routers, observe=observe), agents, routers


def play(
    path: Path, inv: Path, devices: Devices | None = None, **kw: object
) -> tuple[PlayResult, str]:
    extra = kw.pop("extra_vars", None)
    out = io.StringIO()
    p = read_play(path, inventory=inv, extra_vars=extra, check=bool(kw.get("check")))  # type: ignore[arg-type]
    result = run_play(p, TextReport(out, diff=True), devices=devices, sleep=lambda s: None, **kw)  # type: ignore[arg-type]
    return result, out.getvalue()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pb.yml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def dips_of(inv: Path, vip: str) -> list[str]:
    return [str(d) for v in load_inventory(inv).vips if v.name == vip for d in v.dips]


# ----------------------------------------------------------------------------- check mode


@pytest.mark.parametrize("name", sorted(p.name for p in PLAYBOOKS.glob("*.yml")))
def test_check_mode_changes_nothing_anywhere(inv: Path, name: str) -> None:
    """Every example playbook in --check: the inventory directory (vips.yaml, no .lbauto, no
    journal, lock or drain record) and the devices are exactly as before."""
    devices, agents, routers = converged(load_inventory(inv))
    before = tree_digest(inv)
    calls = {a.name: len(a.calls) for a in agents}
    pushes = len(routers.pushes)
    agents_before = {a.name: dict(a.vips) for a in agents}
    routers_before = {n: set(o) for n, o in routers.objects.items()}
    result, out = play(PLAYBOOKS / name, inv, devices, check=True)
    assert not result.failed, out
    assert result.stats.changed >= 1 or name == "reconcile.yml", out
    assert tree_digest(inv) == before
    assert {a.name: dict(a.vips) for a in agents} == agents_before
    assert {n: set(o) for n, o in routers.objects.items()} == routers_before
    assert {c for a in agents for c in a.calls[calls[a.name] :]} <= {"list_vips"}, "reads only"
    assert len(routers.pushes) == pushes
    assert "check mode: nothing was changed" in out


def test_control_the_same_playbook_without_check_changes_files_and_devices(inv: Path) -> None:
    """The control of the test above: without --check the same digest and devices move."""
    devices, _agents, routers = converged(load_inventory(inv))
    before, pushes = tree_digest(inv), len(routers.pushes)
    result, out = play(PLAYBOOKS / "scale-down-single.yml", inv, devices)
    assert not result.failed, out
    assert tree_digest(inv) != before
    assert len(routers.pushes) > pushes
    assert "check mode" not in out


def test_check_mode_predicts_what_the_real_run_does(inv: Path) -> None:
    """--check from the state file reports the same tasks changed as the real run then does."""
    path = PLAYBOOKS / "scale-down-single.yml"
    checked, _ = play(path, inv, check=True, observed_file=STATE)
    devices, _, _ = fakes(load_inventory(inv), load_state(STATE))
    real, out = play(path, inv, devices)
    assert [t.status for t in checked.tasks] == [t.status for t in real.tasks], out
    assert dips_of(inv, "web") == [D21]


def test_state_file_needs_check(inv: Path) -> None:
    res = run_cli("play", str(PLAYBOOKS / "reconcile.yml"), "-i", str(inv), "--state", str(STATE))
    assert res.returncode == 1
    assert "--state needs --check" in res.stderr


# ----------------------------------------------------------------------- when/register/loop


def test_when_register_and_loop(tmp_path: Path, inv: Path) -> None:
    devices, agents, _ = converged(load_inventory(inv))
    path = write(
        tmp_path,
        """
        name: keywords
        vars:
          more: [198.51.100.41, 198.51.100.42]
        tasks:
          - name: plan
            plan: {}
            register: before
          - name: skipped when in sync
            apply: {}
            when: before.changes
          - name: add each
            scale: {vip: blog, add: "{{ item }}"}
            loop: "{{ more }}"
            register: added
          - name: registered loop results
            assert:
              that:
                - added.changed
                - added.results | length == 2
                - added.results[1].dips | length == 4
                - not before.changes
          - name: when with a loop item
            scale: {vip: blog, remove: "{{ item }}"}
            loop: "{{ more }}"
            when: item != '198.51.100.41'
        """,
    )
    result, out = play(path, inv, devices)
    assert not result.failed, out
    statuses = [t.status for t in result.tasks]
    assert statuses == ["ok", "skipped", "changed", "ok", "changed"], out
    assert [r.status for r in result.tasks[4].results] == ["skipped", "changed"]
    assert dips_of(inv, "blog") == ["198.51.100.27", "198.51.100.28", "198.51.100.41"]
    web = next(v for v in agents[0].vips.values() if v.name == "blog")
    assert [str(d) for d in web.dips] == dips_of(inv, "blog")
    assert "(item=198.51.100.42)" in out
    assert (result.stats.ok, result.stats.changed, result.stats.skipped) == (4, 2, 1)


def test_stops_at_the_first_failed_task_unless_ignore_errors(tmp_path: Path, inv: Path) -> None:
    devices, _, _ = converged(load_inventory(inv))
    text = """
        name: failing
        tasks:
          - name: web is single (it is not)
            assert: {vip: web, mode: single}
            IGNORE
          - name: then scale
            scale: {vip: web, add: 198.51.100.41}
        """
    stop = write(tmp_path, text.replace("IGNORE", ""))
    result, out = play(stop, inv, devices)
    assert [t.status for t in result.tasks] == ["failed"]
    assert "fatal: [inv]: FAILED! => web: mode is multi on agent lb1, wanted single" in out
    assert dips_of(inv, "web") == [D21, D22, D23]
    assert (
        "inv                       : ok=0    changed=0    failed=1    skipped=0    ignored=0" in out
    )

    go_on = write(tmp_path, text.replace("IGNORE", "ignore_errors: true"))
    result, out = play(go_on, inv, devices)
    assert [t.status for t in result.tasks] == ["failed", "changed"]
    assert "...ignoring" in out
    assert not result.failed
    assert (result.stats.failed, result.stats.ignored, result.stats.changed) == (0, 1, 1)


def test_limit_skips_tasks_on_other_vips(tmp_path: Path, inv: Path) -> None:
    devices, _, _ = converged(load_inventory(inv))
    path = write(
        tmp_path,
        """
        name: limited
        tasks:
          - name: web
            scale: {vip: web, add: 198.51.100.41}
          - name: blog
            scale: {vip: blog, add: 198.51.100.41}
          - name: drain everywhere
            drain_dip: {dip: 198.51.100.41, timeout: 0}
        """,
    )
    result, out = play(path, inv, devices, limit=frozenset({"blog"}))
    assert [t.status for t in result.tasks] == ["skipped", "changed", "changed"], out
    assert dips_of(inv, "web") == [D21, D22, D23]
    assert dips_of(inv, "blog") == ["198.51.100.27", "198.51.100.28"]


# ------------------------------------------------------------------------- drain and restore


def test_maintenance_drains_then_restores_in_place(inv: Path) -> None:
    devices, agents, _ = converged(load_inventory(inv))
    record = inv / ".lbauto" / "drained.json"
    seen: dict[str, object] = {}

    def hook(task: Task, event: str) -> None:
        name = task.module
        if name == "wait" and event == "start":
            seen["record"] = json.loads(record.read_text())
            seen["web"] = dips_of(inv, "web")

    p = read_play(PLAYBOOKS / "dip-maintenance.yml", inventory=inv, extra_vars={"host": [D22]})
    out = io.StringIO()
    result = run_play(p, TextReport(out), devices=devices, sleep=lambda s: None, hook=hook)
    assert not result.failed, out.getvalue()
    assert seen["record"] == {D22: {"web": [D21, D22, D23]}}
    assert seen["web"] == [D21, D23]
    assert dips_of(inv, "web") == [D21, D22, D23]  # back in its place, not appended
    web = agents[0].vips[ipaddress.ip_address("192.0.2.10")]
    assert [str(d) for d in web.dips] == [D21, D22, D23]
    assert not record.exists() or json.loads(record.read_text()) == {}


def test_drain_waits_for_connections_and_the_playbook_stops_if_they_stay(inv: Path) -> None:
    """Connections that never end on the drained DIP: the drain times out and the playbook's
    assertion stops the run before the maintenance window (the DIP stays out)."""
    devices, agents, _ = converged(load_inventory(inv))
    agents[0].flows_of[ipaddress.ip_address("192.0.2.10")] = {ipaddress.ip_address(D22): 3}
    result, out = play(
        PLAYBOOKS / "dip-maintenance.yml",
        inv,
        devices,
        extra_vars={"host": [D22], "drain_timeout": 0.3},
    )
    assert [t.status for t in result.tasks] == ["changed", "failed"], out
    assert f"3 connection(s) still on {D22} after 0.3 s" in out
    assert dips_of(inv, "web") == [D21, D23]


def test_drain_refuses_to_empty_a_vip_and_changes_nothing(tmp_path: Path, inv: Path) -> None:
    devices, _, _ = converged(load_inventory(inv))
    before = (inv / "vips.yaml").read_bytes()
    path = write(tmp_path, "name: x\ntasks:\n  - name: d\n    drain_dip: {dip: 198.51.100.24}\n")
    result, out = play(path, inv, devices)
    assert result.failed
    assert "198.51.100.24 is the only DIP of VIP api" in out
    assert (inv / "vips.yaml").read_bytes() == before


def test_restore_without_a_record_names_the_fix(tmp_path: Path, inv: Path) -> None:
    devices, _, _ = converged(load_inventory(inv))
    path = write(tmp_path, "name: x\ntasks:\n  - name: r\n    restore_dip: {dip: 198.51.100.99}\n")
    result, out = play(path, inv, devices)
    assert result.failed
    assert "198.51.100.99 was not drained by lbauto" in out and "vips:" in out


# ------------------------------------------------------------------------------- the CLI


def test_cli_exit_codes_and_output(inv: Path) -> None:
    base = ["play", str(PLAYBOOKS / "scale-out.yml"), "-i", str(inv), "--check"]
    base += ["--state", str(STATE)]
    ok = run_cli(*base)
    assert ok.returncode == 0, ok.stderr
    assert "TASK [Add the next DIP to web]" in ok.stdout
    assert "changed: [inv] (item=198.51.100.24) => web rebalance" in ok.stdout
    assert "PLAY RECAP" in ok.stdout
    assert run_cli(*base, "--detailed-exitcode").returncode == 2
    # api's DIP is already there, but its agent still has a second one in the example's state:
    # the playbook's assertion fails, the run stops there and exits 1.
    failing = run_cli(*base, "-e", "add=[198.51.100.24]", "-e", "vip=api")
    assert failing.returncode == 1
    assert "ok: [inv] (item=198.51.100.24) => 198.51.100.24 is already a DIP of api" in (
        failing.stdout
    )
    assert "fatal: [inv]: FAILED! => api: DIPs on agent lb1 are" in failing.stdout
    assert "failed=1" in failing.stdout
    limited = run_cli(*base, "--limit", "b*")
    assert limited.returncode == 0 and "skipping: [inv]" in limited.stdout
    assert run_cli(*base, "--limit", "nope").returncode == 1


def test_cli_reports_playbook_errors_before_running(tmp_path: Path, inv: Path) -> None:
    path = write(tmp_path, "name: x\ntasks:\n  - name: t\n    scale: {vip: web, dip: 1}\n")
    res = run_cli("play", str(path), "-i", str(inv), "--check", "--state", str(STATE))
    assert res.returncode == 1
    assert res.stdout == ""
    assert f"error: {path}:4: task 1 't': scale: unknown argument 'dip'" in res.stderr
    bad_e = run_cli("play", str(path), "-i", str(inv), "-e", "novalue")
    assert bad_e.returncode == 1 and "write KEY=VALUE" in bad_e.stderr


def test_wait_sleeps_or_polls_until_its_conditions_hold(tmp_path: Path, inv: Path) -> None:
    devices, agents, _ = converged(load_inventory(inv))
    web = ipaddress.ip_address("192.0.2.10")
    agents[0].flows_of[web] = {ipaddress.ip_address(D21): 2}
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:  # the connections end while the task polls
            agents[0].flows_of[web] = {}

    path = write(
        tmp_path,
        """
        name: waits
        tasks:
          - name: pause
            wait: {seconds: 7}
          - name: until web has no flows
            wait:
              until: {vip: web, flows: 0}
              timeout: 30
              interval: 0.5
            register: w
          - name: registered
            assert: {that: "w.failed_conditions == []"}
        """,
    )
    p = read_play(path, inventory=inv)
    out = io.StringIO()
    result = run_play(p, TextReport(out), devices=devices, sleep=sleep)
    assert not result.failed, out.getvalue()
    assert slept == [7, 0.5, 0.5], slept

    agents[0].flows_of[web] = {ipaddress.ip_address(D21): 2}
    never = write(
        tmp_path,
        "name: x\ntasks:\n  - name: w\n    wait: {until: {vip: web, flows: 0}, timeout: 0.2,"
        " interval: 0.05}\n",
    )
    result, text = play(never, inv, devices)
    assert result.failed
    assert "still not true after 0.2 s: web: flow entries are 2, wanted 0" in text
