"""Runs a plan's steps against agents and routers, in order, with undo on failure.

Transitions advance in lockstep rounds: round k runs step k of every transition that has one.
Within a round the steps of different VIPs are independent, so router pushes of all VIPs in
that round are merged into one commit per router (and one verification per router), and drain
waits run side by side. Each VIP's own steps stay strictly ordered.

When a step fails, the steps already done for the VIPs it concerned are undone in reverse
(agent changes restored from what the agent had before, router pushes inverted), those VIPs stop,
and the others carry on. The run ends with :class:`~lbauto.errors.TransitionError` naming the
first failure (VIP, step, device, cause). Every start, end, failure and undo goes to the journal.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from lbauto.agent.protocol import AgentApi
from lbauto.core.model import (
    AgentVip,
    BgpAccept,
    BgpGroup,
    BgpPeer,
    Drain,
    IPAddress,
    ObservedState,
    PbrRule,
    RouterObject,
    StaticRoute,
)
from lbauto.core.plan import Action, Plan, RouterChange, Step, Transition
from lbauto.errors import JournalError, LbautoError, PushError, TransitionError
from lbauto.orchestrate.journal import Journal
from lbauto.orchestrate.ports import RouterPort

#: Seconds between polls of the agents' flow counts while waiting for a drain.
DRAIN_POLL = 0.25
#: Crash tests' seam into a run, called with ``(point, N)`` the N-th time (from 0, across the
#: run) a point is reached. Points: ``after-step`` (a step ended and was journalled) and
#: ``before-confirm`` (every router of a push committed and verified, the commit journalled,
#: nothing confirmed yet). Production never sets it; ``tests/failpoints.py`` does, in a
#: process of its own that then runs the CLI.
FailpointHook = Callable[[str, int], None]
failpoint_hook: FailpointHook | None = None


def failpoint(point: str, index: int) -> None:
    """The one place crash tests reach into a run (see :data:`failpoint_hook`)."""
    if failpoint_hook is not None:
        failpoint_hook(point, index)


def object_key(obj: RouterObject) -> str:
    """A router object as one stable line of text (journal records, comparisons)."""
    if isinstance(obj, StaticRoute):
        return f"static {obj.prefix} via {obj.next_hop} distance {obj.distance} tag {obj.tag}"
    if isinstance(obj, PbrRule):
        return f"pbr seq {obj.seq} {obj.prefix} via {obj.next_hop}"
    if isinstance(obj, BgpAccept):
        return f"bgp accept {obj.prefix}"
    if isinstance(obj, BgpPeer):
        return f"bgp neighbor {obj.address}"
    if isinstance(obj, BgpGroup):
        return (
            f"bgp group as {obj.asn} agents as {obj.agent_asn} maximum-paths"
            f" {obj.maximum_paths} bfd {obj.bfd} {obj.bfd_interval_ms} ms x{obj.bfd_multiplier}"
        )
    return f"binding {obj.interface} ipv{obj.version}"


@dataclass
class _Undo:
    """How to undo one done step."""

    action: Action
    previous: dict[str, AgentVip | None] = field(default_factory=dict)  # per agent
    change: tuple[RouterChange, ...] = ()


@dataclass
class _Run:
    t: Transition
    done: list[_Undo] = field(default_factory=list)
    failed: bool = False
    finished: bool = False


@dataclass(frozen=True)
class Failure:
    vip: str
    step: str
    device: str
    cause: str


@dataclass
class ExecResult:
    completed: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    rounds: int = 0
    router_commits: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


EventHook = Callable[[str, str, str], None]  # (vip, action, event)


class Executor:
    def __init__(
        self,
        agents: Sequence[AgentApi],
        routers: RouterPort,
        journal: Journal,
        observed: ObservedState,
        on_event: EventHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.agents = list(agents)
        self.routers = routers
        self.journal = journal
        self.on_event = on_event
        self.clock = clock
        self.sleep = sleep
        self._steps_ended = 0
        self._commits = 0
        # What each agent has now, per VIP; kept current from every response.
        self.current: dict[str, dict[IPAddress, AgentVip]] = {
            a.name: dict(observed.agents.get(a.name, {})) for a in self.agents
        }

    # ------------------------------------------------------------------ the run

    def execute(self, plan: Plan) -> ExecResult:
        start = self.clock()
        runs = [_Run(t) for t in plan.transitions if t.steps]
        result = ExecResult()
        # Nothing acts before the run and every transition's target are on disk (one record,
        # one fsync): a journal that cannot be written stops the run with no change.
        self.journal.record(
            "run-start",
            detail=f"{len(runs)} transition(s)",
            data={
                "transitions": {
                    r.t.vip: {
                        "address": str(r.t.address),
                        "kind": r.t.kind.value,
                        "to": r.t.to.to_json(),
                        "steps": [s.action.value for s in r.t.steps],
                    }
                    for r in runs
                }
            },
        )
        if not self._pool(plan, add=True, result=result):
            runs = []  # no VIP moves onto BGP sessions that could not be configured
        rounds = max((len(r.t.steps) for r in runs), default=0)
        for k in range(rounds):
            live = [r for r in runs if not r.failed and k < len(r.t.steps)]
            if not live:
                continue
            result.rounds += 1
            self._round(k, live, result)
        for r in runs:
            if not r.failed:
                r.finished = True
                result.completed.append(r.t.vip)
        if not result.failed:
            # Only once every VIP moved: a VIP whose move failed may still rely on the sessions.
            self._pool(plan, add=False, result=result)
        result.seconds = self.clock() - start
        self._try_record(
            "run-end",
            detail=f"{len(result.completed)} completed, {len(result.failed)} failed",
        )
        if result.failed:
            first = result.failed[0]
            more = f" (and {len(result.failed) - 1} more)" if len(result.failed) > 1 else ""
            raise TransitionError(first.vip, first.step, first.device, first.cause + more)
        return result

    def _pool(self, plan: Plan, add: bool, result: ExecResult) -> bool:
        """Push and verify the router-wide BGP objects' additions (``add``) or removals
        (:mod:`lbauto.core.pool`); False, with the failure recorded, when that failed."""
        changes = tuple(
            RouterChange(rc.router, add=rc.add)
            if add
            else RouterChange(rc.router, remove=rc.remove)
            for rc in plan.pool
            if (rc.add if add else rc.remove)
        )
        if not changes:
            return True
        what = "pool-add" if add else "pool-remove"
        detail = ", ".join(rc.router for rc in changes)
        try:
            self.journal.record("start", vip=what, action=Action.ROUTER_PUSH.value, detail=detail)
            self.routers.push(changes, before_confirm=functools.partial(self._pool_commit, changes))
            self.routers.verify(changes)
            self.journal.record("end", vip=what, action=Action.ROUTER_VERIFY.value, detail=detail)
        except LbautoError as exc:
            device = (
                f"router {exc.router}" if isinstance(exc, PushError) and exc.router else "routers"
            )
            self._try_record("fail", vip=what, action="router.push", device=device, detail=str(exc))
            result.failed.append(Failure(what, Action.ROUTER_PUSH.value, device, str(exc)))
            return False
        for rc in changes:
            result.router_commits[rc.router] = result.router_commits.get(rc.router, 0) + 1
        return True

    def _pool_commit(
        self, changes: Sequence[RouterChange], commits: Mapping[str, str | None]
    ) -> None:
        self.journal.record(
            "commit", action=Action.ROUTER_PUSH.value, data=_commit_data(changes, commits, [])
        )

    def _round(self, k: int, live: list[_Run], result: ExecResult) -> None:
        by_action: dict[Action, list[_Run]] = {}
        for r in live:
            by_action.setdefault(r.t.steps[k].action, []).append(r)
        for action in (Action.SET_VIP, Action.FLOW_TRACKING, Action.REMOVE_VIP):
            for r in by_action.get(action, []):
                self._agent_step(k, r, result)
        if Action.ROUTER_PUSH in by_action:
            self._router_batch(k, by_action[Action.ROUTER_PUSH], result, push=True)
        if Action.ROUTER_VERIFY in by_action:
            self._router_batch(k, by_action[Action.ROUTER_VERIFY], result, push=False)
        if Action.WAIT_DRAIN in by_action:
            self._wait_drains(k, by_action[Action.WAIT_DRAIN], result)

    def _started(self, k: int, r: _Run, result: ExecResult) -> bool:
        """Journal the step's start; when that cannot be written the step must not run, and
        the VIP's done steps are undone."""
        step = r.t.steps[k]
        try:
            self._event(r, k, step, "start")
        except JournalError as exc:
            self._fail(k, r, step, "journal", str(exc), result)
            return False
        return True

    def _ended(
        self, k: int, r: _Run, undo: _Undo, result: ExecResult, detail: str | None = None
    ) -> None:
        """The step acted: keep its undo, then journal its end (or undo it with the rest)."""
        r.done.append(undo)
        step = r.t.steps[k]
        try:
            self._event(r, k, step, "end", detail)
        except JournalError as exc:
            self._fail(k, r, step, "journal", str(exc), result)

    # ------------------------------------------------------------------ agent steps

    def _agent_step(self, k: int, r: _Run, result: ExecResult) -> None:
        step = r.t.steps[k]
        if not self._started(k, r, result):
            return
        undo = _Undo(step.action)
        for agent in self.agents:
            device = f"agent {agent.name}"
            before = self.current[agent.name].get(r.t.address)
            undo.previous[agent.name] = before
            try:
                self._agent_call(agent, r.t, step, before)
            except LbautoError as exc:
                # The agents already changed in this step are undone with the rest.
                r.done.append(undo)
                self._fail(k, r, step, device, str(exc), result)
                return
        self._ended(k, r, undo, result)

    def _agent_call(
        self, agent: AgentApi, t: Transition, step: Step, before: AgentVip | None
    ) -> None:
        gen = before.generation if before else None
        if step.action is Action.REMOVE_VIP:
            if before is not None:
                agent.delete_vip(t.address, if_match=gen)
            self.current[agent.name].pop(t.address, None)
            return
        if step.action is Action.SET_VIP:
            assert step.mode is not None and step.flow_tracking is not None
            mode, dips, tracking = step.mode, step.dips, step.flow_tracking
            transit, drain = step.transit, step.drain
        else:  # FLOW_TRACKING keeps the VIP's mode and DIPs as the previous steps set them
            assert step.flow_tracking is not None and before is not None
            mode, dips, tracking = before.mode, before.dips, step.flow_tracking
            transit, drain = None, None
        after = agent.put_vip(
            t.address,
            name=t.vip,
            mode=mode,
            dips=dips,
            flow_tracking=tracking,
            transit=transit,
            drain=drain,
            if_match=gen,
        )
        self.current[agent.name][t.address] = after

    # ------------------------------------------------------------------ router steps

    def _router_batch(self, k: int, runs: list[_Run], result: ExecResult, push: bool) -> None:
        runs = [r for r in runs if self._started(k, r, result)]
        merged = _merge([r.t.steps[k].routers for r in runs])
        try:
            if merged:
                if push:
                    before_confirm = functools.partial(self._committed, k, runs, merged)
                    self.routers.push(merged, before_confirm=before_confirm)
                    for rc in merged:
                        result.router_commits[rc.router] = (
                            result.router_commits.get(rc.router, 0) + 1
                        )
                else:
                    self.routers.verify(merged)
        except LbautoError as exc:
            device = (
                f"router {exc.router}" if isinstance(exc, PushError) and exc.router else ("routers")
            )
            for r in runs:
                # A failed push was already rolled back by the router port (all-or-nothing).
                self._fail(k, r, r.t.steps[k], device, str(exc), result)
            return
        for r in runs:
            if push:
                undo = _Undo(Action.ROUTER_PUSH, change=r.t.steps[k].routers)
            else:
                undo = _Undo(Action.ROUTER_VERIFY)
            self._ended(k, r, undo, result)

    def _committed(
        self,
        k: int,
        runs: Sequence[_Run],
        merged: Sequence[RouterChange],
        commits: Mapping[str, str | None],
    ) -> None:
        """Every router committed and verified, nothing confirmed yet: journal what the
        commits are (so an apply after a crash here can tell lbauto's pending commits from
        others and confirm them); raising here rolls the push back."""
        self.journal.record(
            "commit",
            step=k,
            action=Action.ROUTER_PUSH.value,
            detail=", ".join(r.t.vip for r in runs),
            data=_commit_data(merged, commits, [r.t.vip for r in runs]),
        )
        index, self._commits = self._commits, self._commits + 1
        failpoint("before-confirm", index)

    def _undo_committed(
        self, vip: str, inverse: Sequence[RouterChange], commits: Mapping[str, str | None]
    ) -> None:
        """An undo's commit is journalled when possible, never at the cost of the undo."""
        self._try_record(
            "commit",
            vip=vip,
            action="undo",
            data=_commit_data(inverse, commits, [vip], undo=True),
        )

    # ------------------------------------------------------------------ drain waits

    def _wait_drains(self, k: int, runs: list[_Run], result: ExecResult) -> None:
        """Wait until the draining DIPs have no flows on any agent, or their timeout passes.

        A drain that times out is not a failure: the timeout is the operator's bound on how
        long old connections may hold a DIP that is leaving.
        """
        start = self.clock()
        pending = {id(r): r for r in runs if self._started(k, r, result)}
        while pending:
            for key, r in list(pending.items()):
                drain = r.t.steps[k].drain or Drain((), 0.0)
                left = self._remaining_flows(r.t.address, drain.dips)
                elapsed = self.clock() - start
                if left == 0 or elapsed >= drain.timeout:
                    detail = "drained" if left == 0 else f"timeout with {left} flow(s) left"
                    if left < 0:
                        detail = "timeout: an agent could not say how many flows it has left"
                    del pending[key]
                    self._ended(k, r, _Undo(Action.WAIT_DRAIN), result, detail)
            if pending:
                self.sleep(DRAIN_POLL)

    def _remaining_flows(self, address: IPAddress, dips: Sequence[IPAddress]) -> int:
        """Flows on the draining DIPs, summed over every agent of the pool: with ECMP any
        agent may hold some. An agent that cannot be asked counts as not drained (-1 when no
        agent that answered has flows left): it may still forward them, and the drain's
        timeout bounds the wait."""
        total = 0
        unknown = False
        for agent in self.agents:
            try:
                per_dip = agent.flows_per_dip(address)
            except LbautoError:
                unknown = True
                continue
            total += sum(per_dip.get(d, 0) for d in dips)
        return -1 if unknown and total == 0 else total

    # ------------------------------------------------------------------ failure and undo

    def _fail(
        self, k: int, r: _Run, step: Step, device: str, cause: str, result: ExecResult
    ) -> None:
        r.failed = True
        self._try_record(
            "fail", vip=r.t.vip, step=k, action=step.action.value, device=device, detail=cause
        )
        if self.on_event:
            self.on_event(r.t.vip, step.action.value, "fail")
        result.failed.append(Failure(r.t.vip, step.action.value, device, cause))
        self._undo(r)

    def _undo(self, r: _Run) -> None:
        for i, u in reversed(list(enumerate(r.done))):
            try:
                self._undo_one(r.t, u)
                self._try_record("undo", vip=r.t.vip, step=i, action=u.action.value)
            except LbautoError as exc:
                # Keep undoing the rest: a partial undo is better than none, and the journal
                # plus the next plan (which starts from observed state) show what is left.
                self._try_record(
                    "undo-fail", vip=r.t.vip, step=i, action=u.action.value, detail=str(exc)
                )
        r.done.clear()

    def _undo_one(self, t: Transition, u: _Undo) -> None:
        if u.action is Action.ROUTER_PUSH:
            inverse = tuple(
                RouterChange(rc.router, remove=rc.add, add=rc.remove) for rc in u.change
            )
            if inverse:
                self.routers.push(
                    inverse, before_confirm=functools.partial(self._undo_committed, t.vip, inverse)
                )
            return
        if u.action not in (Action.SET_VIP, Action.FLOW_TRACKING, Action.REMOVE_VIP):
            return
        for agent in self.agents:
            if agent.name not in u.previous:
                continue
            before = u.previous[agent.name]
            now = self.current[agent.name].get(t.address)
            if before is None:
                if now is not None:
                    agent.delete_vip(t.address, if_match=now.generation)
                    self.current[agent.name].pop(t.address, None)
                continue
            self.current[agent.name][t.address] = agent.put_vip(
                t.address,
                name=before.name or t.vip,
                mode=before.mode,
                dips=before.dips,
                flow_tracking=before.flow_tracking,
                transit=before.transit,
                drain=before.drain,
                if_match=now.generation if now else None,
            )

    def _try_record(self, event: str, **fields: object) -> None:
        """Journal what is not a step's own entry (failures, undos, the run's end): a journal
        that cannot be written must not stop an undo."""
        with contextlib.suppress(JournalError):
            self.journal.record(event, **fields)

    def _event(self, r: _Run, k: int, step: Step, event: str, detail: str | None = None) -> None:
        self.journal.record(event, vip=r.t.vip, step=k, action=step.action.value, detail=detail)
        if self.on_event:
            self.on_event(r.t.vip, step.action.value, event)
        if event == "end":
            index, self._steps_ended = self._steps_ended, self._steps_ended + 1
            failpoint("after-step", index)


def _commit_data(
    changes: Sequence[RouterChange],
    commits: Mapping[str, str | None],
    vips: Sequence[str],
    undo: bool = False,
) -> dict[str, object]:
    return {
        "vips": list(vips),
        "undo": undo,
        "routers": {
            rc.router: {
                "commit": commits.get(rc.router),
                "add": sorted(object_key(o) for o in rc.add),
                "remove": sorted(object_key(o) for o in rc.remove),
            }
            for rc in changes
            if rc.router in commits
        },
    }


def _merge(groups: Sequence[Sequence[RouterChange]]) -> tuple[RouterChange, ...]:
    """One RouterChange per router out of many VIPs' changes (order kept, duplicates dropped)."""
    removes: dict[str, dict[RouterObject, None]] = {}
    adds: dict[str, dict[RouterObject, None]] = {}
    for changes in groups:
        for rc in changes:
            removes.setdefault(rc.router, {}).update(dict.fromkeys(rc.remove))
            adds.setdefault(rc.router, {}).update(dict.fromkeys(rc.add))
    return tuple(
        RouterChange(name, remove=tuple(removes[name]), add=tuple(adds[name]))
        for name in sorted(removes)
        if removes[name] or adds[name]
    )
