"""The presentation layer of every command: JSON documents for machines, rich tables for
people. Nothing here decides anything; it only turns plans, push results and status into text.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from lbauto.core.model import Inventory, ObservedState
from lbauto.core.plan import Kind, Plan, RouterPlan
from lbauto.orchestrate.apply import ApplyOutcome
from lbauto.orchestrate.executor import EventHook
from lbauto.platforms.render import render_changes
from lbauto.push.pipeline import PushResult, Status

JSON_SCHEMA_VERSION = 1


def router_change_lines(inv: Inventory, observed: ObservedState, rp: RouterPlan) -> list[str]:
    """The ordered config lines that move one router from observed to desired."""
    if not rp.add and not rp.remove:
        return []
    router = inv.router(rp.router)
    return render_changes(
        router,
        rp.remove,
        rp.add,
        observed=observed.router_objects(rp.router),
        template_dir=inv.template_dir,
    )


def plan_to_json(plan: Plan, inv: Inventory, observed: ObservedState) -> dict[str, Any]:
    """The documented ``lbauto plan --output json`` document (see README, "Plan JSON")."""
    return {
        "version": JSON_SCHEMA_VERSION,
        "changes": plan.has_changes,
        "options": {
            "transit_seconds": plan.options.transit_seconds,
            "drain_timeout": plan.options.drain_timeout,
        },
        "max_seconds": max((t.max_seconds for t in plan.transitions), default=0.0),
        "transitions": [
            {
                "vip": t.vip,
                "address": str(t.address),
                "kind": t.kind.value,
                "from": t.from_.to_json(),
                "to": t.to.to_json(),
                "max_seconds": t.max_seconds,
                "steps": [s.to_json() for s in t.steps],
            }
            for t in plan.transitions
        ],
        "routers": [
            {
                "name": rp.router,
                "platform": rp.platform,
                "changes": router_change_lines(inv, observed, rp),
            }
            for rp in plan.routers
        ],
    }


_KIND_STYLE = {
    Kind.NONE: "dim",
    Kind.CREATE: "green",
    Kind.DELETE: "red",
    Kind.BYPASS_ENABLE: "cyan",
    Kind.BYPASS_DISABLE: "magenta",
    Kind.BYPASS_MOVE: "yellow",
    Kind.REBALANCE: "blue",
    Kind.REPAIR: "bold red",
}


def _state_text(mode: str, dips: list[str]) -> str:
    if mode == "absent":
        return "absent"
    return f"{mode} " + ", ".join(dips) if dips else mode


def print_plan(console: Console, plan: Plan, inv: Inventory, observed: ObservedState) -> None:
    doc = plan_to_json(plan, inv, observed)
    table = Table(title="Transitions", show_lines=False)
    for col in ("VIP", "address", "from", "to", "kind", "steps"):
        table.add_column(col, overflow="fold")
    for t in doc["transitions"]:
        kind = Kind(t["kind"])
        table.add_row(
            Text(t["vip"]),
            t["address"],
            Text(_state_text(t["from"]["mode"], t["from"]["dips"])),
            Text(_state_text(t["to"]["mode"], t["to"]["dips"])),
            Text(kind.value, style=_KIND_STYLE[kind]),
            "\n".join(s["action"] for s in t["steps"]) or "-",
        )
    console.print(table)
    for r in doc["routers"]:
        if not r["changes"]:
            console.print(f"[dim]router {r['name']} ({r['platform']}): no changes[/]")
            continue
        console.print(f"[bold]router {r['name']}[/] ({r['platform']}):")
        for line in r["changes"]:
            style = "red" if line.lstrip().startswith(("no ", "delete ")) else "green"
            console.print(Text(f"  {line}", style=style))
    pending = sum(1 for t in plan.transitions if t.kind is not Kind.NONE)
    console.print(
        f"{pending} transition(s) pending; at most {doc['max_seconds']:.0f} s of drain waits "
        f"(transit pins run {plan.options.transit_seconds:.0f} s in the background)."
    )


# ----------------------------------------------------------------------------------- push

_STYLE = {
    Status.CHANGED: "green",
    Status.UNCHANGED: "dim",
    Status.FAILED: "bold red",
    Status.ROLLED_BACK: "yellow",
}


def result_table(result: PushResult) -> Table:
    title = "push (dry run: nothing changed)" if result.dry_run else "push"
    table = Table(title=title)
    for col in ("router", "platform", "result", "diff lines", "seconds", "error"):
        table.add_column(col, justify="right" if col in ("diff lines", "seconds") else "left")
    for r in result.results:
        status = "would change" if result.dry_run and r.status is Status.CHANGED else r.status
        table.add_row(
            r.router,
            r.platform,
            f"[{_STYLE[r.status]}]{status}[/]",
            str(r.diff_lines),
            f"{r.seconds:.2f}",
            r.error or "",
        )
    return table


def print_result(console: Console, result: PushResult, diffs: bool = True) -> None:
    """The per-router device diffs, then the result table."""
    if diffs:
        for r in result.results:
            if r.diff.strip():
                console.rule(f"{r.router} ({r.platform})")
                for line in r.diff.splitlines():
                    style = {"+": "green", "-": "red"}.get(line[:1], "")
                    console.print(line, style=style, highlight=False, markup=False)
    console.print(result_table(result))


# --------------------------------------------------------------------------------- status


def print_status(console: Console, doc: dict[str, Any]) -> None:
    table = Table(title="VIP status")
    for col in ("VIP", "address", "desired", "agents", "bypass", "flows", "timers", "pending"):
        table.add_column(col, overflow="fold")
    for v in doc["vips"]:
        want = v["desired"]
        desired = f"{want['mode']} {len(want['dips'])} DIP(s)" if want else "absent"
        agent_txt, flow_txt, timers = [], [], []
        for name, a in v["agents"].items():
            if a is None:
                agent_txt.append(f"{name}: absent")
                continue
            track = "tracking" if a["flow_tracking"] else "no tracking"
            agent_txt.append(f"{name}: {a['mode']} {len(a['dips'])} DIP(s), {track}")
            flow_txt.append(
                f"{name}: {a['flow_entries'] if a['flow_entries'] is not None else '?'}"
            )
            if a["transit"]:
                timers.append(f"pin {a['transit']['dip']} {a['transit']['seconds_left']:.0f}s")
            if a["drain"]:
                timers.append(f"drain {len(a['drain']['dips'])} {a['drain']['seconds_left']:.0f}s")
        bypass = "\n".join(f"{r}: {d}" for r, d in v["bypass"].items()) or "-"
        pending = Text(v["pending"], style="yellow" if v["drift"] else "green")
        table.add_row(
            Text(v["vip"]),
            v["address"],
            desired,
            Text("\n".join(agent_txt) or "-"),
            Text(bypass),
            "\n".join(flow_txt) or "-",
            "\n".join(timers) or "-",
            pending,
        )
    console.print(table)
    console.print("[green]in sync[/]" if doc["in_sync"] else "[yellow]drift: run `lbauto apply`[/]")


# ---------------------------------------------------------------------------------- apply


def show_outcome_plan(console: Console, outcome: ApplyOutcome, inv: Inventory, output: str) -> None:
    if output == "table":
        print_plan(console, outcome.plan, inv, outcome.observed)
        for router, diff in sorted(outcome.diffs.items()):
            if diff.strip():
                console.print(f"[bold]device diff {router}[/]:")
                console.print(Text(diff.rstrip()))


def progress_hook(console: Console, output: str) -> EventHook | None:
    if output != "table":
        return None

    def hook(vip: str, action: str, event: str) -> None:
        style = {"start": "dim", "end": "green", "fail": "bold red"}.get(event, "")
        console.print(Text(f"  {vip:<20} {action:<22} {event}", style=style))

    return hook


def apply_json(outcome: ApplyOutcome, inv: Inventory) -> dict[str, Any]:
    doc = plan_to_json(outcome.plan, inv, outcome.observed)
    doc["device_diffs"] = dict(outcome.diffs)
    if outcome.executed:
        doc["result"] = {
            "completed": outcome.executed.completed,
            "router_commits": outcome.executed.router_commits,
            "seconds": round(outcome.executed.seconds, 3),
            "converged": outcome.converged,
            "remaining": list(outcome.remaining),
        }
    return doc


def finish_apply(
    console: Console, outcome: ApplyOutcome, inv: Inventory, output: str, dry_run: bool
) -> None:
    if output == "json":
        sys.stdout.write(json.dumps(apply_json(outcome, inv), indent=2) + "\n")
    elif dry_run:
        console.print("[yellow]dry run: nothing was changed[/]")
    elif not outcome.plan.has_changes:
        console.print("[green]nothing to do: devices match the inventory[/]")
    elif outcome.executed:
        ex = outcome.executed
        table = Table(title="Result")
        for col in ("VIP", "kind", "result"):
            table.add_column(col)
        for t in outcome.plan.transitions:
            if t.steps:
                table.add_row(Text(t.vip), t.kind.value, "[green]done[/]")
        console.print(table)
        commits = ", ".join(f"{r}: {n}" for r, n in sorted(ex.router_commits.items())) or "none"
        console.print(f"{ex.seconds:.1f} s, router commits: {commits}")
        if not outcome.converged:
            console.print(f"[yellow]still pending after the run: {', '.join(outcome.remaining)}[/]")
