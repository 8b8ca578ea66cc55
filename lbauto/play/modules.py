"""The playbook modules. Each maps onto the library (``lbauto.orchestrate``), never onto the CLI.

A module gets its validated arguments, the :class:`Context` of the run and the variables in
scope, and returns a :class:`Result`. It raises :class:`~lbauto.errors.LbautoError` for a
failure the operator must see (the runner turns it into a failed task); anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from lbauto.core.model import Inventory, IPAddress, Mode, ObservedState
from lbauto.core.plan import Kind, Plan, PlanOptions
from lbauto.core.planner import make_plan
from lbauto.errors import LbautoError
from lbauto.orchestrate.apply import ApplyOutcome, Devices, ScaleRequest, run_apply, run_scale
from lbauto.orchestrate.executor import EventHook
from lbauto.orchestrate.status import bypass_on
from lbauto.platforms.render import render_changes
from lbauto.play import templating
from lbauto.play.drain import Removal, record_for, removals, restored_dips, wait_for_drain
from lbauto.play.models import (
    ApplyArgs,
    AssertArgs,
    ConditionArgs,
    DrainDipArgs,
    FlowRange,
    PlanArgs,
    PlanKnobs,
    RestoreDipArgs,
    ScaleArgs,
    WaitArgs,
    address,
)


@dataclass
class Result:
    status: str  # ok | changed | failed | skipped
    msg: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    #: Lines shown under the task with --diff (router config changes, device diffs).
    diff: list[str] = field(default_factory=list)

    def register(self) -> dict[str, Any]:
        """What ``register:`` stores (Ansible's shape: changed/failed/skipped/msg + data)."""
        return {
            **self.data,
            "changed": self.status == "changed",
            "failed": self.status == "failed",
            "skipped": self.status == "skipped",
            "msg": self.msg,
        }


@dataclass
class Context:
    """What a module works with: the inventory as the run has it now and the devices."""

    inventory: Inventory
    devices: Devices
    check: bool
    limit: frozenset[str] | None
    reload: Callable[[], Inventory]
    on_event: EventHook | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def allowed(self, vip: str) -> bool:
        return self.limit is None or vip in self.limit

    def only(self, vips: Collection[str] | None) -> list[str] | None:
        """The VIPs a task may touch: its own list, narrowed by --limit (None: all)."""
        if vips is None:
            return None if self.limit is None else sorted(self.limit)
        return [v for v in vips if self.allowed(v)]


def _yes(_: ApplyOutcome) -> bool:
    return True  # the playbook is the reviewed artifact; --check shows what it would do


def _options(args: PlanKnobs) -> PlanOptions:
    return PlanOptions(transit_seconds=args.transit, drain_timeout=args.drain_timeout)


def plan_doc(plan: Plan) -> dict[str, Any]:
    """The plan as plain values (``register:`` of plan, scale and apply)."""
    return {
        "changes": plan.has_changes,
        "max_seconds": max((t.max_seconds for t in plan.transitions), default=0.0),
        "transitions": [
            {
                "vip": t.vip,
                "address": str(t.address),
                "kind": t.kind.value,
                "from": t.from_.to_json(),
                "to": t.to.to_json(),
                "steps": [s.action.value for s in t.steps],
            }
            for t in plan.transitions
            if t.kind is not Kind.NONE
        ],
    }


def diff_lines(outcome: ApplyOutcome, inv: Inventory) -> list[str]:
    """Transitions, then each router's config change (device diff when the device gave one)."""
    lines = [
        f"~ {t.vip}: {t.kind.value}: {_state(t.from_.to_json())} -> {_state(t.to.to_json())}"
        for t in outcome.plan.transitions
        if t.kind is not Kind.NONE
    ]
    for rp in outcome.plan.routers:
        if not (rp.add or rp.remove):
            continue
        device = outcome.diffs.get(rp.router, "").strip()
        lines.append(f"router {rp.router} ({rp.platform}):")
        if device:
            lines += [f"  {x}" for x in device.splitlines()]
            continue
        router = inv.router(rp.router)
        rendered = render_changes(
            router,
            rp.remove,
            rp.add,
            observed=outcome.observed.router_objects(rp.router),
            template_dir=inv.template_dir,
        )
        for line in rendered:
            sign = "-" if line.lstrip().startswith(("no ", "delete ")) else "+"
            lines.append(f"  {sign} {line}")
    return lines


def _state(doc: dict[str, Any]) -> str:
    return str(doc["mode"]) + (f" [{', '.join(doc['dips'])}]" if doc["dips"] else "")


def _summary(outcome: ApplyOutcome) -> str:
    moved = [f"{t.vip} {t.kind.value}" for t in outcome.plan.transitions if t.kind is not Kind.NONE]
    if not moved:
        return "in sync"
    took = f" in {outcome.executed.seconds:.1f} s" if outcome.executed else ""
    return ", ".join(moved) + took


def _applied(outcome: ApplyOutcome, inv: Inventory, extra: dict[str, Any]) -> Result:
    doc = plan_doc(outcome.plan)
    doc["converged"] = outcome.converged if outcome.executed else True
    doc.update(extra)
    status = "changed" if outcome.plan.has_changes else "ok"
    return Result(status, _summary(outcome), doc, diff_lines(outcome, inv))


# ------------------------------------------------------------------------------ modules


def scale(args: ScaleArgs, ctx: Context, variables: Mapping[str, Any]) -> Result:
    if not ctx.allowed(args.vip):
        return Result("skipped", f"{args.vip} is not in --limit")
    vip = next(v for v in ctx.inventory.vips if v.name == args.vip)
    if args.add is not None and address(args.add) in vip.dips:
        return Result("ok", f"{args.add} is already a DIP of {vip.name}", {"vip": vip.name})
    if args.remove is not None and address(args.remove) not in vip.dips:
        return Result("ok", f"{args.remove} is not a DIP of {vip.name}", {"vip": vip.name})
    req = ScaleRequest(args.vip, dips=args.dips, add=args.add, remove=args.remove)
    inv = ctx.inventory
    outcome = run_scale(
        inv,
        req,
        ctx.devices,
        options=_options(args),
        dry_run=False,
        confirm=_yes,
        on_event=ctx.on_event,
    )
    ctx.inventory = ctx.reload()
    now = next(v for v in ctx.inventory.vips if v.name == args.vip)
    return _applied(outcome, inv, {"vip": now.name, "dips": [str(d) for d in now.dips]})


def apply(args: ApplyArgs, ctx: Context, variables: Mapping[str, Any]) -> Result:
    only = ctx.only(args.vips)
    if only == []:
        return Result("skipped", "no VIP of this task is in --limit")
    outcome = run_apply(
        ctx.inventory,
        ctx.devices,
        options=_options(args),
        dry_run=False,
        confirm=_yes,
        only=only,
        on_event=ctx.on_event,
    )
    return _applied(outcome, ctx.inventory, {})


def plan(args: PlanArgs, ctx: Context, variables: Mapping[str, Any]) -> Result:
    only = ctx.only(args.vips)
    if only == []:
        return Result("skipped", "no VIP of this task is in --limit")
    outcome = run_apply(
        ctx.inventory, ctx.devices, options=_options(args), dry_run=True, confirm=_yes, only=only
    )
    doc = plan_doc(outcome.plan)
    pending = [f"{t['vip']} {t['kind']}" for t in doc["transitions"]]
    msg = f"{len(pending)} transition(s) pending: {', '.join(pending)}" if pending else "in sync"
    return Result("ok", msg, doc, diff_lines(outcome, ctx.inventory))


def drain_dip(args: DrainDipArgs, ctx: Context, variables: Mapping[str, Any]) -> Result:
    started = ctx.clock()
    only = ctx.only(args.vips)
    todo = removals(
        ctx.inventory, args.addresses(), set(only) if only is not None else None, args.allow_empty
    )
    record = record_for(ctx.inventory)
    done: list[Removal] = []
    diff: list[str] = []
    options = PlanOptions(drain_timeout=args.timeout)
    for r in todo:
        outcome = run_scale(
            ctx.inventory,
            ScaleRequest(r.vip.name, remove=str(r.dip)),
            ctx.devices,
            options=options,
            dry_run=False,
            confirm=_yes,
            on_event=ctx.on_event,
        )
        # Recorded at once: a failure at the next VIP still lets restore_dip undo this one.
        record.add(r.dip, r.vip.name, r.vip.dips)
        diff += diff_lines(outcome, ctx.inventory)
        ctx.inventory = ctx.reload()
        done.append(r)
    waited = wait_for_drain(
        ctx.devices, done, args.timeout, started, clock=ctx.clock, sleep=ctx.sleep
    )
    data = {
        "dips": [str(d) for d in args.addresses()],
        "vips": sorted({r.vip.name for r in done}),
        "drained": waited.drained,
        "left": waited.left,
        "seconds": round(waited.seconds, 3),
    }
    names = ", ".join(f"{r.vip.name} -{r.dip}" for r in done) or "no VIP uses it"
    if not waited.drained:
        msg = f"{names}; timeout after {args.timeout:g} s with {waited.left} connection(s) left"
        if args.fail_on_timeout:
            return Result("failed", msg, data, diff)
    else:
        msg = f"{names}; drained in {waited.seconds:.1f} s"
    return Result("changed" if done else "ok", msg, data, diff)


def restore_dip(args: RestoreDipArgs, ctx: Context, variables: Mapping[str, Any]) -> Result:
    record = record_for(ctx.inventory)
    only = ctx.only(args.vips)
    back: list[str] = []
    diff: list[str] = []
    for dip in args.addresses():
        recorded = record.vips_of(dip)
        targets = list(args.vips) if args.vips is not None else sorted(recorded)
        if not targets:
            raise LbautoError(
                f"restore_dip: {dip} was not drained by lbauto (no entry in {record.path}); "
                "name the VIPs to put it back into with vips:"
            )
        for name in targets:
            if only is not None and name not in only:
                continue
            vip = next((v for v in ctx.inventory.vips if v.name == name), None)
            if vip is None:
                raise LbautoError(
                    f"restore_dip: VIP {name!r} (where {dip} was drained from) is no longer in "
                    f"the inventory; remove it from {record.path} or name the VIPs with vips:"
                )
            if vip.address.version != dip.version:
                continue  # a host's IPv4 and IPv6 addresses go back to their own VIPs
            new = restored_dips(vip.dips, dip, recorded.get(name))
            if new != list(vip.dips):
                outcome = run_scale(
                    ctx.inventory,
                    ScaleRequest(name, dips=[str(d) for d in new]),
                    ctx.devices,
                    options=_options(args),
                    dry_run=False,
                    confirm=_yes,
                    on_event=ctx.on_event,
                )
                diff += diff_lines(outcome, ctx.inventory)
                ctx.inventory = ctx.reload()
                back.append(f"{name} +{dip}")
            if name in recorded:
                record.remove(dip, name)
    data = {"dips": [str(d) for d in args.addresses()], "vips": back}
    return Result("changed" if back else "ok", ", ".join(back) or "already in place", data, diff)


# ------------------------------------------------------------------------------ conditions


def _flows(
    ctx: Context, observed: ObservedState, address: IPAddress, dip: IPAddress | None
) -> int | None:
    """Flow entries for the VIP on all agents (of one DIP if given); None when not knowable
    (check mode predicts only "none" for a VIP without flow tracking)."""
    total = 0
    for agent in ctx.devices.agents:
        have = observed.agents.get(agent.name, {}).get(address)
        if have is None:
            continue
        if ctx.check:
            if have.flow_tracking:
                return None
            continue
        counts = agent.flows(address)
        total += counts.per_dip.get(dip, 0) if dip is not None else counts.total
    return total


def check_conditions(
    cond: ConditionArgs, ctx: Context, variables: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """(failed conditions, conditions that could not be evaluated in check mode)."""
    failed: list[str] = []
    unknown: list[str] = []
    inv = ctx.inventory
    observed = ctx.devices.observe()
    vip = next((v for v in inv.vips if v.name == cond.vip), None)
    if vip is not None:
        agents = {a.name: observed.agents.get(a.name, {}).get(vip.address) for a in inv.agents}
        for name, have in agents.items():
            where = f"agent {name}"
            if cond.mode is not None and (have.mode if have else None) != cond.mode:
                failed.append(
                    f"{vip.name}: mode is {have.mode if have else 'absent'} on {where}, "
                    f"wanted {cond.mode}"
                )
            if cond.dips is not None:
                want = sorted(str(address(d)) for d in cond.dips)
                got = sorted(str(d) for d in have.dips) if have else []
                if want != got:
                    failed.append(f"{vip.name}: DIPs on {where} are {got}, wanted {want}")
            if cond.flow_tracking is not None and (
                have is None or have.flow_tracking != cond.flow_tracking
            ):
                failed.append(
                    f"{vip.name}: flow tracking is "
                    f"{'absent' if have is None else have.flow_tracking} on {where}"
                )
        if cond.bypass is not None:
            failed += _bypass(vip.name, vip.address, cond.bypass, observed, ctx, agents)
    if cond.flows is not None:
        addresses = [vip.address] if vip else [v.address for v in inv.vips]
        dip = address(cond.dip) if cond.dip else None
        if dip is not None and vip is None:
            addresses = [v.address for v in inv.vips if dip in v.dips] or addresses
        counts = [_flows(ctx, observed, a, dip) for a in addresses]
        subject = (vip.name if vip else f"DIP {dip}") + ": flow entries"
        if any(c is None for c in counts):
            unknown.append(f"{subject} (not predictable in check mode)")
        else:
            n = sum(c or 0 for c in counts)
            if not _in_range(n, cond.flows):
                failed.append(f"{subject} are {n}, wanted {_range_text(cond.flows)}")
    if cond.in_sync is not None:
        only = [vip.name] if vip else ctx.only(None)
        the_plan = make_plan(inv, observed, PlanOptions(), only)
        pending = [
            f"{t.vip} {t.kind.value}" for t in the_plan.transitions if t.kind is not Kind.NONE
        ]
        if (not the_plan.has_changes) != cond.in_sync:
            failed.append(
                f"drift: {', '.join(pending) or 'router changes'} pending"
                if cond.in_sync
                else "in sync, wanted drift"
            )
    for expr in cond.that or []:
        try:
            ok = templating.evaluate(expr, variables)
        except LbautoError as exc:
            failed.append(f"{expr}: {exc}")
            continue
        if not ok:
            failed.append(f"{expr} is false")
    return failed, unknown


def _bypass(
    name: str,
    address: IPAddress,
    want: bool,
    observed: ObservedState,
    ctx: Context,
    agents: Mapping[str, Any],
) -> list[str]:
    on = bypass_on(observed, address, ctx.inventory.agents)
    routers = [r.name for r in ctx.inventory.routers]
    if not want:
        return [f"{name}: bypass active on {r} ({on[r]})" for r in routers if r in on]
    problems = [f"{name}: no bypass on router {r}" for r in routers if r not in on]
    singles = {str(a.dips[0]) for a in agents.values() if a and a.mode is Mode.SINGLE and a.dips}
    for r, text in on.items():
        if singles and not any(text.endswith(f"-> {d}") for d in singles):
            problems.append(
                f"{name}: bypass on {r} is {text}, the agents' DIP is {sorted(singles)}"
            )
    return problems


def _in_range(n: int, want: int | FlowRange) -> bool:
    if isinstance(want, int):
        return n == want
    return (want.min is None or n >= want.min) and (want.max is None or n <= want.max)


def _range_text(want: int | FlowRange) -> str:
    if isinstance(want, int):
        return str(want)
    parts = ([f">= {want.min}"] if want.min is not None else []) + (
        [f"<= {want.max}"] if want.max is not None else []
    )
    return " and ".join(parts)


def _limited(cond: ConditionArgs, ctx: Context) -> bool:
    return cond.vip is not None and not ctx.allowed(cond.vip)


def assert_(args: AssertArgs, ctx: Context, variables: Mapping[str, Any]) -> Result:
    if _limited(args, ctx):
        return Result("skipped", f"{args.vip} is not in --limit")
    failed, unknown = check_conditions(args, ctx, variables)
    data = {"failed_conditions": failed, "unchecked": unknown}
    if failed:
        msg = templating.render(args.msg, variables) if args.msg else "; ".join(failed)
        return Result("failed", str(msg), data)
    note = f" ({'; '.join(unknown)})" if unknown else ""
    return Result("ok", "all conditions hold" + note, data)


def wait(args: WaitArgs, ctx: Context, variables: Mapping[str, Any]) -> Result:
    if args.seconds is not None:
        if ctx.check:
            return Result("ok", f"would wait {args.seconds:g} s", {"seconds": 0.0})
        ctx.sleep(args.seconds)
        return Result("ok", f"waited {args.seconds:g} s", {"seconds": args.seconds})
    assert args.until is not None
    if _limited(args.until, ctx):
        return Result("skipped", f"{args.until.vip} is not in --limit")
    start = ctx.clock()
    while True:
        failed, unknown = check_conditions(args.until, ctx, variables)
        elapsed = ctx.clock() - start
        data = {"seconds": round(elapsed, 3), "failed_conditions": failed}
        if not failed:
            note = f" ({'; '.join(unknown)})" if unknown else ""
            return Result("ok", f"conditions hold after {elapsed:.1f} s{note}", data)
        if ctx.check or elapsed >= args.timeout:
            took = "in check mode" if ctx.check else f"after {args.timeout:g} s"
            return Result("failed", f"still not true {took}: {'; '.join(failed)}", data)
        ctx.sleep(min(args.interval, max(args.timeout - elapsed, 0.01)))


Module = Callable[[Any, Context, Mapping[str, Any]], Result]

RUNNERS: dict[str, Module] = {
    "scale": scale,
    "apply": apply,
    "plan": plan,
    "drain_dip": drain_dip,
    "restore_dip": restore_dip,
    "assert": assert_,
    "wait": wait,
}

__all__ = ["RUNNERS", "Context", "Result"]
