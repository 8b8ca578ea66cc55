"""``apply`` and ``scale vip``: observe, plan, confirm, execute, check convergence.

The devices come in through :class:`Devices` so the same flow runs against the lab, production
or the unit tests' fakes.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbauto.agent.protocol import AgentApi
from lbauto.core.model import Inventory, IPAddress, ObservedState
from lbauto.core.plan import Kind, Plan, PlanOptions
from lbauto.core.planner import make_plan
from lbauto.errors import AbortedError, EditConflictError, InventoryError, LbautoError, PushError
from lbauto.inventory import load_inventory
from lbauto.orchestrate.backends import StateBackend, backend_for
from lbauto.orchestrate.executor import EventHook, ExecResult, Executor
from lbauto.orchestrate.pending import Resolution, Resolver, decide, resolve
from lbauto.orchestrate.ports import RouterPort
from lbauto.orchestrate.vipsfile import (
    new_dips,
    rewrite_dips_text,
    vip_entry,
    write_atomic,
)


@dataclass
class Devices:
    agents: Sequence[AgentApi]
    routers: RouterPort
    #: Reads agents and routers now (raises before anything is changed if one is unreachable).
    observe: Callable[[], ObservedState]
    #: Device-side diffs of a plan's router changes, per router (dry run on the devices).
    diffs: Callable[[Plan, ObservedState], Mapping[str, str]] = lambda plan, observed: {}
    close: Callable[[], None] = lambda: None
    #: Confirms or rolls back a commit an earlier run left pending on a router.
    resolve: Resolver | None = None


@dataclass
class ApplyOutcome:
    plan: Plan
    observed: ObservedState
    diffs: Mapping[str, str] = field(default_factory=dict)
    executed: ExecResult | None = None
    converged: bool | None = None
    remaining: tuple[str, ...] = ()
    #: Pending commits found before planning: what a dry run would do with them ...
    pending: tuple[Resolution, ...] = ()
    #: ... and, in a real run, what was done (one line each, also in the journal).
    resolved: tuple[str, ...] = ()


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
    """Plan from live state and, unless ``dry_run`` or declined, execute the plan.

    Commits an earlier run left pending on a router are resolved first (see
    :mod:`lbauto.orchestrate.pending`); a dry run only says what it would do with them.
    """
    if dry_run:
        return _plan_only(inv, devices, options, only)
    backend = backend_for(inv, state_dir(inv))
    with backend.lock():
        return _apply_locked(inv, devices, options, confirm, only, on_event, backend)


def _apply_locked(
    inv: Inventory,
    devices: Devices,
    options: PlanOptions,
    confirm: Callable[[ApplyOutcome], bool],
    only: Collection[str] | None,
    on_event: EventHook | None,
    backend: StateBackend,
) -> ApplyOutcome:
    # The journal first: a state directory that cannot take it stops the run before any
    # device is read or touched.
    journal = backend.journal()
    observed = devices.observe()
    resolved: list[str] = []
    if observed.pending_commits():
        events = list(backend.read_journal())
        resolved = resolve(inv, observed, journal, devices.resolve, events, options)
        observed = devices.observe()
        left = observed.pending_commits()
        if left:
            raise PushError(
                "commits still await confirmation after resolving them: "
                + ", ".join(f"router {r} ({p.commit_id or 'no id'})" for r, p in left.items())
            )
    outcome = _plan_only(inv, devices, options, only, observed, backend)
    outcome.resolved = tuple(resolved)
    if not outcome.plan.has_changes:
        return outcome
    if not confirm(outcome):
        raise AbortedError("plan not confirmed: nothing was changed")
    executor = Executor(devices.agents, devices.routers, journal, outcome.observed, on_event)
    outcome.executed = executor.execute(outcome.plan)
    after = make_plan(inv, devices.observe(), options, only)
    outcome.remaining = tuple(t.vip for t in after.transitions if t.kind is not Kind.NONE)
    outcome.converged = not outcome.remaining and not after.pool  # pool: BGP sessions
    return outcome


def _plan_only(
    inv: Inventory,
    devices: Devices,
    options: PlanOptions,
    only: Collection[str] | None,
    observed: ObservedState | None = None,
    backend: StateBackend | None = None,
) -> ApplyOutcome:
    observed = observed if observed is not None else devices.observe()
    plan = make_plan(inv, observed, options, only)
    diffs = devices.diffs(plan, observed) if plan.has_changes else {}
    pending: tuple[Resolution, ...] = ()
    if observed.pending_commits():
        events = list((backend or backend_for(inv, state_dir(inv))).read_journal())
        pending = tuple(decide(inv, observed, events, options))
    return ApplyOutcome(plan=plan, observed=observed, diffs=diffs, pending=pending)


@dataclass
class ScaleRequest:
    vip: str
    dips: Sequence[str] | None = None
    add: str | None = None
    remove: str | None = None


def scaled_inventory(
    inv: Inventory, req: ScaleRequest, text: str | None = None
) -> tuple[Inventory, str]:
    """The inventory with ``req`` applied and the new vips.yaml text; nothing is written.

    ``text`` is vips.yaml as read by the caller (default: read now). The new file is
    validated as a whole (in a scratch copy of the inventory) before anyone sees it, so a bad
    DIP is refused with the inventory's own error lines.
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
    if text is None:
        text = vips_file.read_text(encoding="utf-8")
    new_text = rewrite_dips_text(text, vips_file, req.vip, dips)
    with tempfile.TemporaryDirectory(prefix="lbauto-scale-") as tmp:
        scratch = Path(tmp) / "inventory"
        shutil.copytree(inv.path, scratch, ignore=shutil.ignore_patterns(".lbauto"))
        (scratch / "vips.yaml").write_text(new_text, encoding="utf-8")
        try:
            new_inv = load_inventory(scratch, allow_outside=inv.allow_outside)
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
        backend=inv.backend,
        workers=inv.workers,
    )
    return new_inv, new_text


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

    The inventory's lock is held from reading vips.yaml to writing it, so two scales (or a
    scale and an apply) never interleave. The file is written only once the transition has
    succeeded (a refused, declined or failed scale leaves it byte-identical), and the DIP
    change is made to the file *as it is then*: an edit by hand meanwhile (a VIP added during
    a drain wait) is kept. If the scaled VIP itself was edited meanwhile, nothing is written
    and :class:`EditConflictError` says what the devices now carry.
    """
    if dry_run:
        new_inv, _ = scaled_inventory(inv, req)
        return run_apply(
            new_inv, devices, options=options, dry_run=True, confirm=confirm, only=[req.vip]
        )
    vips_file = inv.path / "vips.yaml"
    backend = backend_for(inv, state_dir(inv))
    with backend.lock(command=f"scale vip {req.vip}"):
        before, fresh = _read_inventory(inv)
        new_inv, _ = scaled_inventory(fresh, req, before)
        outcome = _apply_locked(new_inv, devices, options, confirm, [req.vip], on_event, backend)
        dips = next(v.dips for v in new_inv.vips if v.name == req.vip)
        _write_scaled(vips_file, req.vip, before, dips)
        return outcome


def _read_inventory(inv: Inventory) -> tuple[str, Inventory]:
    """vips.yaml's text and the inventory loaded from that same text (state and template
    directories kept): the DIP change starts from the file as it is under the lock."""
    path = inv.path / "vips.yaml"
    while True:
        text = path.read_text(encoding="utf-8")
        fresh = load_inventory(inv.path, allow_outside=inv.allow_outside)
        if path.read_text(encoding="utf-8") == text:  # else edited during the load: again
            return text, dataclasses.replace(
                fresh, template_dir=inv.template_dir, state_dir=state_dir(inv), backend=inv.backend
            )


def _write_scaled(path: Path, vip: str, before: str, dips: Sequence[IPAddress]) -> None:
    """Write ``vip``'s new DIPs into vips.yaml as it is now, keeping others' edits."""
    now = path.read_text(encoding="utf-8")
    if now != before:
        was: Any = vip_entry(before, path, vip)
        is_: Any = vip_entry(now, path, vip)
        if was != is_:
            shown = ", ".join(str(d) for d in dips)
            raise EditConflictError(
                f"{path}: VIP {vip!r} was edited by someone else while this scale ran; the "
                f"devices now carry DIPs {shown}, and vips.yaml was left as that edit made it "
                "(not written): run `lbauto apply` to converge to the file, or scale again"
            )
    write_atomic(path, rewrite_dips_text(now, path, vip, dips))
