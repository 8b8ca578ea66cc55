"""Presenting plans: a JSON document for machines, rich tables for people.

Nothing here decides anything; it only turns a :class:`~lbauto.core.plan.Plan` into text.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from lbauto.core.model import Inventory, ObservedState
from lbauto.core.plan import Kind, Plan, RouterPlan
from lbauto.platforms.render import render_changes

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
