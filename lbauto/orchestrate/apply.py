"""``apply`` and ``scale vip``: observe, plan, confirm, execute, check convergence.

The devices come in through :class:`Devices` so the same flow runs against the lab, production
or the unit tests' fakes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lbauto.agent.protocol import AgentApi
from lbauto.core.model import Inventory, IPAddress, ObservedState
from lbauto.core.plan import Kind, Plan, PlanOptions
from lbauto.core.planner import make_plan
from lbauto.errors import AbortedError, InventoryError, LbautoError
from lbauto.inventory import load_inventory
from lbauto.orchestrate.executor import EventHook, ExecResult, Executor
from lbauto.orchestrate.journal import Journal
from lbauto.orchestrate.lock import apply_lock
from lbauto.orchestrate.ports import RouterPort
from lbauto.orchestrate.vipsfile import new_dips, rewrite_dips, write_atomic


@dataclass
class Devices:
    agents: Sequence[AgentApi]
    routers: RouterPort
    #: Reads agents and routers now (raises before anything is changed if one is unreachable).
    observe: Callable[[], ObservedState]
    #: Device-side diffs of a plan's router changes, per router (dry run on the devices).
    diffs: Callable[[Plan, ObservedState], Mapping[str, str]] = lambda plan, observed: {}
    close: Callable[[], None] = lambda: None


@dataclass
class ApplyOutcome:
    plan: Plan
    observed: ObservedState
    diffs: Mapping[str, str] = field(default_factory=dict)
    executed: ExecResult | None = None
    converged: bool | None = None
    remaining: tuple[str, ...] = ()


def state_dir(inv: Inventory) -> Path:
    return inv.state_dir or inv.path / ".lbauto"


def run_apply(
    inv: Inventory,
    devices: Devices,
    *,
    options: PlanOptions,
    dry_run: bool,
    confirm: Callable[[ApplyOutcome], bool],
    only: Collection[str] | None = None,
    on_event: EventHook | None = None,
) -> ApplyOutcome:
    """Plan from live state and, unless ``dry_run`` or declined, execute the plan."""
    if dry_run:
        return _plan_only(inv, devices, options, only)
    with apply_lock(state_dir(inv)):
        outcome = _plan_only(inv, devices, options, only)
        if not outcome.plan.has_changes:
            return outcome
        if not confirm(outcome):
            raise AbortedError("plan not confirmed: nothing was changed")
        journal = Journal(state_dir(inv))
        executor = Executor(devices.agents, devices.routers, journal, outcome.observed, on_event)
        outcome.executed = executor.execute(outcome.plan)
        after = make_plan(inv, devices.observe(), options, only)
        outcome.remaining = tuple(t.vip for t in after.transitions if t.kind is not Kind.NONE)
        outcome.converged = not outcome.remaining
        return outcome


def _plan_only(
    inv: Inventory, devices: Devices, options: PlanOptions, only: Collection[str] | None
) -> ApplyOutcome:
    observed = devices.observe()
    plan = make_plan(inv, observed, options, only)
    diffs = devices.diffs(plan, observed) if plan.has_changes else {}
    return ApplyOutcome(plan=plan, observed=observed, diffs=diffs)


@dataclass
class ScaleRequest:
    vip: str
    dips: Sequence[str] | None = None
    add: str | None = None
    remove: str | None = None


def scaled_inventory(inv: Inventory, req: ScaleRequest) -> tuple[Inventory, str]:
    """The inventory with ``req`` applied and the new vips.yaml text; nothing is written.

    The new file is validated as a whole (in a scratch copy of the inventory) before anyone
    sees it, so a bad DIP is refused with the inventory's own error lines.
    """
    vips_file = inv.path / "vips.yaml"
    current = {v.name: v for v in inv.vips}
    if req.vip not in current:
        known = ", ".join(sorted(current)) or "none"
        raise LbautoError(f"{vips_file}: no VIP named {req.vip!r} (known: {known})")
    dips: list[IPAddress] = new_dips(
        current[req.vip].dips,
        dips=req.dips,
        add=req.add,
        remove=req.remove,
        path=vips_file,
        vip=req.vip,
    )
    text = rewrite_dips(vips_file, req.vip, dips)
    with tempfile.TemporaryDirectory(prefix="lbauto-scale-") as tmp:
        scratch = Path(tmp) / "inventory"
        shutil.copytree(inv.path, scratch, ignore=shutil.ignore_patterns(".lbauto"))
        (scratch / "vips.yaml").write_text(text, encoding="utf-8")
        try:
            new_inv = load_inventory(scratch)
        except InventoryError as exc:
            raise InventoryError(
                [p.replace(str(scratch), str(inv.path)) for p in exc.problems]
            ) from None
    # Keep the real paths: state and templates belong to the real inventory.
    new_inv = Inventory(
        path=inv.path,
        routers=new_inv.routers,
        agents=new_inv.agents,
        vips=new_inv.vips,
        template_dir=inv.template_dir,
        state_dir=state_dir(inv),
    )
    return new_inv, text


def run_scale(
    inv: Inventory,
    req: ScaleRequest,
    devices: Devices,
    *,
    options: PlanOptions,
    dry_run: bool,
    confirm: Callable[[ApplyOutcome], bool],
    on_event: EventHook | None = None,
) -> ApplyOutcome:
    """Change one VIP's DIPs in vips.yaml and apply that VIP's transition.

    The file is written only once the transition has succeeded, so a refused, declined or
    failed scale leaves vips.yaml byte-identical (and the devices as they were).
    """
    new_inv, text = scaled_inventory(inv, req)
    outcome = run_apply(
        new_inv,
        devices,
        options=options,
        dry_run=dry_run,
        confirm=confirm,
        only=[req.vip],
        on_event=on_event,
    )
    if not dry_run:
        write_atomic(inv.path / "vips.yaml", text)
    return outcome
