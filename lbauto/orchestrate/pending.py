"""Commits an earlier run left waiting for confirmation: find them, decide, resolve.

lbauto commits every router change with commit-confirm and confirms it once every router of
the push verified. If lbauto dies in between, the router puts its old config back when its
timer runs out - possibly long after a re-run planned from the committed config (a bypass
coming back on a VIP that has three DIPs by then). So ``apply`` resolves every pending commit
before it plans. It **confirms** a commit when all of these hold:

- the journal has it: a ``commit`` event for this router, with this commit id where the
  driver has ids (else the last such event for the router whose push never ended);
- the router still carries everything that commit added and nothing it removed;
- each VIP of that push still wants the target its transition was heading for (checked for
  forward steps; an undo's commit was heading back to where the VIP came from);
- planning from the committed state does not undo any of it (the transition's later steps
  are consistent with it).

Otherwise it **rolls it back**, and a push that spanned several routers is rolled back on
all of them. Planning then starts from what the routers have after that.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from lbauto.core.model import Inventory, ObservedState, PendingCommit
from lbauto.core.plan import PlanOptions
from lbauto.core.planner import make_plan
from lbauto.errors import PushError
from lbauto.orchestrate.executor import object_key
from lbauto.orchestrate.journal import Journal, JournalEvent

#: Confirms (True) or rolls back (False) one router's pending commit; returns what it did.
Resolver = Callable[[str, PendingCommit, bool], str]


@dataclass(frozen=True)
class Resolution:
    router: str
    pending: PendingCommit
    confirm: bool
    reason: str

    @property
    def verb(self) -> str:
        return "confirm" if self.confirm else "roll back"

    def describe(self) -> str:
        cid = self.pending.commit_id or "(no id)"
        return f"router {self.router}: {self.verb} pending commit {cid}: {self.reason}"


@dataclass(frozen=True)
class _Match:
    index: int  # the commit event's position in the journal (one push = one event)
    event: JournalEvent
    entry: dict[str, Any]  # this router's part of it


def decide(
    inv: Inventory,
    observed: ObservedState,
    events: Sequence[JournalEvent],
    options: PlanOptions | None = None,
    only: Collection[str] | None = None,
) -> list[Resolution]:
    """What to do with each pending commit in ``observed``; pure (journal events passed in)."""
    pendings = observed.pending_commits()
    if not pendings:
        return []
    plan = make_plan(inv, observed, options or PlanOptions(), only)
    planned = {rp.router: rp for rp in plan.routers}
    out: dict[str, Resolution] = {}
    matches: dict[str, _Match] = {}
    for router, pending in pendings.items():
        match = _find(events, router, pending)
        if match is None:
            out[router] = Resolution(
                router,
                pending,
                False,
                "the journal has no verified lbauto commit like it (another tool or session "
                "made it, or lbauto stopped before verification ended)",
            )
            continue
        matches[router] = match
        reason = _inconsistent(inv, observed, events, router, match, planned)
        out[router] = Resolution(router, pending, reason is None, reason or _why_confirm(match))
    # One push is all-or-nothing across its routers.
    for router, match in matches.items():
        if not out[router].confirm:
            continue
        for other, m in matches.items():
            if m.index == match.index and not out[other].confirm:
                out[router] = Resolution(
                    router,
                    out[router].pending,
                    False,
                    f"the same push is rolled back on router {other} ({out[other].reason})",
                )
                break
    return [out[r] for r in sorted(out)]


def _find(events: Sequence[JournalEvent], router: str, pending: PendingCommit) -> _Match | None:
    for index in range(len(events) - 1, -1, -1):
        ev = events[index]
        if ev.event != "commit" or not ev.data:
            continue
        entry = ev.data.get("routers", {}).get(router)
        if not isinstance(entry, dict):
            continue
        if pending.commit_id is not None:
            if entry.get("commit") == pending.commit_id:
                return _Match(index, ev, entry)
            continue
        # Without commit ids, only the newest push on this router can be the pending one,
        # and only if that push never ended (its end is written after the confirm).
        if _push_ended(events, index, ev):
            return None
        return _Match(index, ev, entry)
    return None


def _push_ended(events: Sequence[JournalEvent], index: int, ev: JournalEvent) -> bool:
    vips = set((ev.data or {}).get("vips", []))
    return any(
        later.run == ev.run
        and later.event in ("end", "undo")
        and later.step == ev.step
        and later.vip in vips
        for later in events[index + 1 :]
    )


def _inconsistent(
    inv: Inventory,
    observed: ObservedState,
    events: Sequence[JournalEvent],
    router: str,
    match: _Match,
    planned: dict[str, Any],
) -> str | None:
    """Why the pending commit must not be confirmed, or None when it may."""
    have = {object_key(o) for o in observed.router_objects(router)}
    added, removed = set(match.entry.get("add", [])), set(match.entry.get("remove", []))
    if not added <= have or removed & have:
        return "the router no longer carries exactly what that commit changed"
    data = match.event.data or {}
    if not data.get("undo"):
        for vip in data.get("vips", []):
            problem = _target_changed(inv, events, match.event.run, vip)
            if problem:
                return problem
    rp = planned.get(router)
    if rp is not None:
        undoes = {object_key(o) for o in rp.remove} & added
        undoes |= {object_key(o) for o in rp.add} & removed
        if undoes:
            return f"planning from it would undo it at once ({sorted(undoes)[0]})"
    return None


def _target_changed(
    inv: Inventory, events: Sequence[JournalEvent], run: str, vip: str
) -> str | None:
    target = next(
        (
            e.data["transitions"][vip].get("to")
            for e in events
            if e.run == run
            and e.event == "run-start"
            and e.data
            and isinstance(e.data.get("transitions"), dict)
            and isinstance(e.data["transitions"].get(vip), dict)
        ),
        None,
    )
    if not isinstance(target, dict):
        return f"the journal does not say where VIP {vip} was heading"
    want = next((v for v in inv.vips if v.name == vip), None)
    want_mode = want.mode.value if want else "absent"
    want_dips = sorted(str(d) for d in want.dips) if want else []
    if target.get("mode") != want_mode or sorted(target.get("dips", [])) != want_dips:
        heading = f"{target.get('mode')} {', '.join(target.get('dips', []))}".strip()
        now = f"{want_mode} {', '.join(want_dips)}".strip()
        return f"VIP {vip} now wants {now}, the push was heading for {heading}"
    return None


def _why_confirm(match: _Match) -> str:
    data = match.event.data or {}
    what = "undo of " if data.get("undo") else ""
    vips = ", ".join(data.get("vips", [])) or "?"
    return f"it is lbauto's verified {what}push for {vips} (run {match.event.run})"


def resolve(
    inv: Inventory,
    observed: ObservedState,
    journal: Journal,
    resolver: Resolver | None,
    events: Sequence[JournalEvent],
    options: PlanOptions | None = None,
) -> list[str]:
    """Decide and act on every pending commit; each line says what was done and why."""
    decisions = decide(inv, observed, events, options)
    if decisions and resolver is None:
        raise PushError(
            "commits await confirmation but these devices cannot resolve them: "
            + "; ".join(d.describe() for d in decisions)
        )
    lines = []
    for d in decisions:
        assert resolver is not None
        # Journal the intent first: a crash in the middle leaves a record of what was tried.
        journal.record("resolve", device=f"router {d.router}", detail=d.describe())
        done = resolver(d.router, d.pending, d.confirm)
        lines.append(f"{d.describe()} - {done}")
    return lines
