"""apply and scale end to end over the real planner and hand-written fakes of the devices."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import pytest

from lbauto.core.model import Inventory, ObservedState, PendingCommit
from lbauto.core.plan import Kind, PlanOptions
from lbauto.core.planner import make_plan
from lbauto.errors import (
    AbortedError,
    EditConflictError,
    InventoryError,
    LockedError,
    TransitionError,
)
from lbauto.inventory import load_inventory
from lbauto.inventory.statefile import load_state
from lbauto.orchestrate import vipsfile
from lbauto.orchestrate.apply import (
    ApplyOutcome,
    Devices,
    ScaleRequest,
    run_apply,
    run_scale,
)
from lbauto.orchestrate.lock import apply_lock
from lbauto.orchestrate.vipsfile import rewrite_dips, write_atomic
from tests.unit.fakes import FakeAgent, FakeRouters, SimulatedCrash

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example"
FAST = PlanOptions(transit_seconds=60, drain_timeout=0.0)


def yes(_: ApplyOutcome) -> bool:
    return True


def fake_devices(
    inv: Inventory, observed: ObservedState
) -> tuple[Devices, list[FakeAgent], FakeRouters]:
    agents = [FakeAgent(a.name, vips=dict(observed.agents.get(a.name, {}))) for a in inv.agents]
    routers = FakeRouters(
        objects={r.name: set(observed.router_objects(r.name)) for r in inv.routers}
    )

    def observe() -> ObservedState:
        return ObservedState(
            agents={a.name: dict(a.vips) for a in agents}, routers=routers.observed()
        )

    devices = Devices(agents=agents, routers=routers, observe=observe, resolve=routers.resolve)
    return devices, agents, routers


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    shutil.copytree(EXAMPLE, tmp_path / "inv")
    return load_inventory(tmp_path / "inv")


def test_apply_converges_every_kind_of_the_example(inv: Inventory) -> None:
    observed = load_state(inv.path / "state.json")
    devices, _agents, routers = fake_devices(inv, observed)
    out = run_apply(inv, devices, options=FAST, dry_run=False, confirm=yes)
    kinds = {t.kind for t in out.plan.transitions}
    assert {Kind.CREATE, Kind.DELETE, Kind.BYPASS_ENABLE, Kind.BYPASS_DISABLE} <= kinds
    assert out.converged, out.remaining
    assert make_plan(inv, devices.observe(), FAST).has_changes is False
    # one commit per router per router step, whatever the number of VIPs
    assert out.executed is not None
    rounds_with_push = {
        k
        for t in out.plan.transitions
        for k, s in enumerate(t.steps)
        if s.action.value == "router.push"
    }
    assert max(routers.commits.values()) <= len(rounds_with_push)


def test_dry_run_changes_nothing(inv: Inventory) -> None:
    observed = load_state(inv.path / "state.json")
    devices, agents, routers = fake_devices(inv, observed)
    out = run_apply(inv, devices, options=FAST, dry_run=True, confirm=yes)
    assert out.plan.has_changes and out.executed is None
    assert routers.pushes == [] and all(c == "get_vip" for a in agents for c in a.calls)


def test_declined_plan_changes_nothing(inv: Inventory) -> None:
    devices, agents, routers = fake_devices(inv, load_state(inv.path / "state.json"))
    with pytest.raises(AbortedError):
        run_apply(inv, devices, options=FAST, dry_run=False, confirm=lambda _: False)
    assert routers.pushes == [] and not any(a.calls for a in agents)


def test_second_apply_refuses_while_the_lock_is_held(inv: Inventory) -> None:
    devices, _, _ = fake_devices(inv, ObservedState())
    with (
        apply_lock(inv.path / ".lbauto", command="apply --yes"),
        pytest.raises(LockedError, match=r"locked by pid \d+ .*apply --yes.* since 20"),
    ):
        run_apply(inv, devices, options=FAST, dry_run=False, confirm=yes)


def test_scale_dry_run_keeps_vips_yaml_byte_identical(inv: Inventory) -> None:
    before = (inv.path / "vips.yaml").read_bytes()
    devices, _agents, routers = fake_devices(inv, ObservedState())
    out = run_scale(
        inv,
        ScaleRequest("web", add="198.51.100.40"),
        devices,
        options=FAST,
        dry_run=True,
        confirm=yes,
    )
    assert [t.vip for t in out.plan.transitions if t.kind is not Kind.NONE] == ["web"]
    assert (inv.path / "vips.yaml").read_bytes() == before
    assert routers.pushes == []


def test_scale_writes_the_file_after_success_and_keeps_comments(inv: Inventory) -> None:
    devices, agents, _ = fake_devices(inv, ObservedState())
    run_apply(inv, devices, options=FAST, dry_run=False, confirm=yes)
    text_before = (inv.path / "vips.yaml").read_text()
    web = next(v for v in inv.vips if v.name == "web")
    run_scale(
        inv,
        ScaleRequest("web", dips=[str(web.dips[0])]),
        devices,
        options=FAST,
        dry_run=False,
        confirm=yes,
    )
    after = load_inventory(inv.path)
    assert next(v for v in after.vips if v.name == "web").dips == (web.dips[0],)
    comments = [ln for ln in text_before.splitlines() if ln.strip().startswith("#")]
    assert comments and all(c in (inv.path / "vips.yaml").read_text() for c in comments)
    vip = agents[0].vips[web.address]
    assert vip.mode.value == "single" and not vip.flow_tracking


def test_failed_scale_leaves_the_file_and_the_vip_as_they_were(inv: Inventory) -> None:
    devices, agents, routers = fake_devices(inv, ObservedState())
    run_apply(inv, devices, options=FAST, dry_run=False, confirm=yes)
    before = (inv.path / "vips.yaml").read_bytes()
    web = next(v for v in inv.vips if v.name == "web")
    snapshot = dict(agents[0].vips)
    routers.fail_push = {inv.routers[0].name}
    with pytest.raises(TransitionError, match="VIP web"):
        run_scale(
            inv,
            ScaleRequest("web", dips=[str(web.dips[0])]),
            devices,
            options=FAST,
            dry_run=False,
            confirm=yes,
        )
    assert (inv.path / "vips.yaml").read_bytes() == before
    restored = agents[0].vips[web.address]
    assert (restored.mode, restored.dips, restored.flow_tracking) == (
        snapshot[web.address].mode,
        snapshot[web.address].dips,
        True,
    )


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (ScaleRequest("nope", add="198.51.100.40"), "no VIP named 'nope'"),
        (ScaleRequest("web", add="not-an-ip"), "is not an IP address"),
        (ScaleRequest("web", add="192.0.2.10"), "equals the VIP"),
        (ScaleRequest("web", remove="198.51.100.99"), "is not a DIP of this VIP"),
        (ScaleRequest("web", add="2001:db8:100::5"), "famil"),
        (ScaleRequest("web"), "exactly one of"),
    ],
)
def test_bad_scale_requests_are_refused_and_change_nothing(
    inv: Inventory, req: ScaleRequest, message: str
) -> None:
    before = (inv.path / "vips.yaml").read_bytes()
    devices, _, routers = fake_devices(inv, ObservedState())
    with pytest.raises((InventoryError, Exception), match=message):
        run_scale(inv, req, devices, options=FAST, dry_run=False, confirm=yes)
    assert (inv.path / "vips.yaml").read_bytes() == before and routers.pushes == []


# ------------------------------------------------------------------ commits left pending


def _crash_mid_push(inv: Inventory, devices: Devices, routers: FakeRouters) -> None:
    """Run apply until its first router commit, and "kill" it before the confirm."""
    routers.crash_before_confirm = True
    with pytest.raises(SimulatedCrash):
        run_apply(inv, devices, options=FAST, dry_run=False, confirm=yes)
    routers.crash_before_confirm = False
    assert routers.pending, "the crash left no pending commit"


def _converged_then_scaled(inv: Inventory, dips: list[str]) -> tuple[Devices, FakeRouters]:
    devices, _, routers = fake_devices(inv, ObservedState())
    run_apply(inv, devices, options=FAST, dry_run=False, confirm=yes)
    path = inv.path / "vips.yaml"
    write_atomic(path, rewrite_dips(path, "web", [ipaddress.ip_address(d) for d in dips]))
    return devices, routers


def test_apply_confirms_its_own_verified_pending_commit(inv: Inventory) -> None:
    web = next(v for v in inv.vips if v.name == "web")
    devices, routers = _converged_then_scaled(inv, [str(web.dips[0])])
    new_inv = load_inventory(inv.path)
    _crash_mid_push(new_inv, devices, routers)
    dry = run_apply(new_inv, devices, options=FAST, dry_run=True, confirm=yes)
    assert [r.confirm for r in dry.pending] == [True] * len(routers.pending)
    out = run_apply(new_inv, devices, options=FAST, dry_run=False, confirm=yes)
    assert {c for _, _, c in routers.resolved} == {True} and not routers.pending
    assert any("confirm pending commit" in line for line in out.resolved)
    assert out.converged in (True, None)
    assert not make_plan(new_inv, devices.observe(), FAST).has_changes
    # the router's timer cannot bring the old config back: nothing is pending any more
    assert not devices.observe().pending_commits()


def test_apply_rolls_back_a_pending_commit_the_inventory_no_longer_wants(
    inv: Inventory,
) -> None:
    web = next(v for v in inv.vips if v.name == "web")
    devices, routers = _converged_then_scaled(inv, [str(web.dips[0])])
    _crash_mid_push(load_inventory(inv.path), devices, routers)
    # meanwhile the operator changes their mind: web keeps all its DIPs
    path = inv.path / "vips.yaml"
    write_atomic(path, rewrite_dips(path, "web", list(web.dips)))
    again = load_inventory(inv.path)
    out = run_apply(again, devices, options=FAST, dry_run=False, confirm=yes)
    assert {c for _, _, c in routers.resolved} == {False}
    assert any("now wants multi" in line for line in out.resolved), out.resolved
    assert not routers.pending
    assert not make_plan(again, devices.observe(), FAST).has_changes


def test_apply_rolls_back_a_pending_commit_the_journal_does_not_know(inv: Inventory) -> None:
    devices, _, routers = fake_devices(inv, ObservedState())
    run_apply(inv, devices, options=FAST, dry_run=False, confirm=yes)
    name = inv.routers[0].name
    objs = routers.objects[name]
    stray = next(iter(objs))
    routers.pending[name] = (PendingCommit("someone-else", deadline=4e9), set(objs))
    objs.discard(stray)  # another tool's commit, waiting for its confirm
    out = run_apply(inv, devices, options=FAST, dry_run=False, confirm=yes)
    assert routers.resolved == [(name, "someone-else", False)]
    assert "journal has no verified lbauto commit" in out.resolved[0]
    assert stray in routers.objects[name]


def test_pending_commits_make_plan_and_status_drift(inv: Inventory) -> None:
    from lbauto.orchestrate.status import status_doc

    devices, _, routers = fake_devices(inv, ObservedState())
    run_apply(inv, devices, options=FAST, dry_run=False, confirm=yes)
    name = inv.routers[0].name
    routers.pending[name] = (PendingCommit("c9", deadline=4e9), set(routers.objects[name]))
    observed = devices.observe()
    doc = status_doc(inv, observed, make_plan(inv, observed, FAST), {})
    assert doc["in_sync"] is False
    assert doc["pending_commits"] == [
        {"router": name, "commit": "c9", "deadline": 4e9, "session": None}
    ]


# ------------------------------------------------------------------ scale and concurrent edits

NEW_VIP = """  - name: added-meanwhile
    address: 192.0.2.99
    dips: [198.51.100.77]
"""


def test_scale_keeps_a_vip_added_to_the_file_while_it_ran(inv: Inventory) -> None:
    devices, _, _ = fake_devices(inv, ObservedState())
    run_apply(inv, devices, options=FAST, dry_run=False, confirm=yes)
    path = inv.path / "vips.yaml"
    web = next(v for v in inv.vips if v.name == "web")

    def edit_meanwhile(_: ApplyOutcome) -> bool:
        path.write_text(path.read_text() + NEW_VIP)  # someone edits the file by hand
        return True

    run_scale(
        inv,
        ScaleRequest("web", dips=[str(web.dips[0])]),
        devices,
        options=FAST,
        dry_run=False,
        confirm=edit_meanwhile,
    )
    after = load_inventory(inv.path)
    assert "added-meanwhile" in {v.name for v in after.vips}
    assert next(v for v in after.vips if v.name == "web").dips == (web.dips[0],)


def test_scale_refuses_to_overwrite_an_edit_of_the_same_vip(inv: Inventory) -> None:
    devices, _, _ = fake_devices(inv, ObservedState())
    run_apply(inv, devices, options=FAST, dry_run=False, confirm=yes)
    path = inv.path / "vips.yaml"
    web = next(v for v in inv.vips if v.name == "web")
    theirs: list[bytes] = []

    def edit_meanwhile(_: ApplyOutcome) -> bool:
        write_atomic(path, rewrite_dips(path, "web", list(web.dips[:2])))
        theirs.append(path.read_bytes())
        return True

    with pytest.raises(EditConflictError, match="VIP 'web' was edited by someone else"):
        run_scale(
            inv,
            ScaleRequest("web", dips=[str(web.dips[0])]),
            devices,
            options=FAST,
            dry_run=False,
            confirm=edit_meanwhile,
        )
    assert path.read_bytes() == theirs[0]


def test_scale_holds_the_lock_until_the_file_is_written(inv: Inventory) -> None:
    devices, _, _ = fake_devices(inv, ObservedState())
    run_apply(inv, devices, options=FAST, dry_run=False, confirm=yes)
    web = next(v for v in inv.vips if v.name == "web")
    seen: list[str] = []
    real_write = vipsfile.write_atomic

    def write_and_probe(p: Path, text: str) -> None:
        try:
            with apply_lock(inv.path / ".lbauto", command="probe"):
                seen.append("free")
        except LockedError:
            seen.append("held")
        real_write(p, text)

    vipsfile_write = "lbauto.orchestrate.apply.write_atomic"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vipsfile_write, write_and_probe)
        run_scale(
            inv,
            ScaleRequest("web", dips=[str(web.dips[0])]),
            devices,
            options=FAST,
            dry_run=False,
            confirm=yes,
        )
    assert seen == ["held"]
