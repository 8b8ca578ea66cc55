"""Runs a plan's steps against agents and routers, in order, with undo on failure.

Transitions advance in lockstep rounds: round k runs step k of every transition that has one.
Within a round the steps of different VIPs are independent, so router pushes of all VIPs in
that round are merged into one commit per router (and one verification per router), the agent
steps of all VIPs go to each agent in one request (one kernel transaction there, all or
nothing), drain waits poll every draining VIP in one request per agent, and the round's starts
(and its ends) are journalled with one write. Each VIP's own steps stay strictly ordered.

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

from lbauto.agent.protocol import AgentApi, BatchRejectedError, VipChange, VipDelete, VipPut
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
from lbauto.orchestrate.journal import Entry, Journal
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
        agent_runs = [
            r
            for action in (Action.SET_VIP, Action.FLOW_TRACKING, Action.REMOVE_VIP)
            for r in by_action.get(action, [])
        ]
        for batch in _one_per_address(agent_runs):
            self._agent_steps(k, batch, result)
        if Action.ROUTER_PUSH in by_action:
            self._router_batch(k, by_action[Action.ROUTER_PUSH], result, push=True)
        if Action.ROUTER_VERIFY in by_action:
            self._router_batch(k, by_action[Action.ROUTER_VERIFY], result, push=False)
        if Action.WAIT_DRAIN in by_action:
            self._wait_drains(k, by_action[Action.WAIT_DRAIN], result)

    def _start(self, k: int, runs: Sequence[_Run], result: ExecResult) -> list[_Run]:
        """Journal the starts of the steps (one write for all); when that cannot be written no
        step runs, and each VIP's done steps are undone. Returns the runs that may act."""
        if not runs:
            return []
        try:
            self.journal.record_many([self._entry("start", r, k) for r in runs])
        except JournalError as exc:
            for r in runs:
                self._fail(k, r, r.t.steps[k], "journal", str(exc), result)
            return []
        for r in runs:
            self._reached(r, k, "start")
        return list(runs)

    def _end(
        self, k: int, done: Sequence[tuple[_Run, _Undo, str | None]], result: ExecResult
    ) -> None:
        """The steps acted: keep their undos, then journal their ends (one write for all), or
        undo them with the rest when that cannot be written."""
        if not done:
            return
        for r, undo, _ in done:
            r.done.append(undo)
        try:
            self.journal.record_many([self._entry("end", r, k, detail) for r, _, detail in done])
        except JournalError as exc:
            for r, _, _ in done:
                self._fail(k, r, r.t.steps[k], "journal", str(exc), result)
            return
        for r, _, _ in done:
            self._reached(r, k, "end")

    # ------------------------------------------------------------------ agent steps

    def _agent_steps(self, k: int, runs: Sequence[_Run], result: ExecResult) -> None:
        """Step k of every run (distinct VIPs) on each agent, in one request per agent. A VIP
        an agent refuses fails alone (its done steps, on every agent, are undone); the batch
        is sent again without it (the agent changed nothing)."""
        runs = self._start(k, runs, result)
        undos = {id(r): _Undo(r.t.steps[k].action) for r in runs}
        for agent in self.agents:
            todo = [r for r in runs if not r.failed]
            while todo:
                todo = self._agent_batch(agent, k, todo, undos, result)
        self._end(k, [(r, undos[id(r)], None) for r in runs if not r.failed], result)

    def _agent_batch(
        self,
        agent: AgentApi,
        k: int,
        runs: Sequence[_Run],
        undos: Mapping[int, _Undo],
        result: ExecResult,
    ) -> list[_Run]:
        """One request to ``agent`` for ``runs``; returns the runs to send again (those the
        agent did not refuse, when it refused some)."""
        device = f"agent {agent.name}"
        sent: list[tuple[_Run, VipChange]] = []
        for r in runs:
            before = self.current[agent.name].get(r.t.address)
            undos[id(r)].previous[agent.name] = before
            change = _change(r.t, r.t.steps[k], before)
            if change is None:  # removing a VIP this agent does not have
                self.current[agent.name].pop(r.t.address, None)
            else:
                sent.append((r, change))
        if not sent:
            return []
        try:
            afters = agent.change_vips([c for _, c in sent])
        except BatchRejectedError as exc:
            refused = {x.index: x for x in exc.rejected if 0 <= x.index < len(sent)}
            if not refused:
                self._agent_failed(k, [r for r, _ in sent], undos, device, str(exc), result)
                return []
            for i, x in sorted(refused.items()):
                cause = f"agent {agent.name}: VIP {x.address}: HTTP {x.status}: {x.detail}"
                if x.status == 412:
                    cause += " (the VIP changed meanwhile; re-read and plan again)"
                self._agent_failed(k, [sent[i][0]], undos, device, cause, result)
            return [r for i, (r, _) in enumerate(sent) if i not in refused]
        except LbautoError as exc:
            if len(sent) > 1 and getattr(exc, "status", None) is not None:
                # The agent answered but named no VIP (its kernel refused the transaction):
                # one request per VIP finds the VIP at fault, and the others carry on.
                for r, _ in sent:
                    self._agent_batch(agent, k, [r], undos, result)
                return []
            self._agent_failed(k, [r for r, _ in sent], undos, device, str(exc), result)
            return []
        for (r, _), after in zip(sent, afters, strict=True):
            if after is None:
                self.current[agent.name].pop(r.t.address, None)
            else:
                self.current[agent.name][r.t.address] = after
        return []

    def _agent_failed(
        self,
        k: int,
        runs: Sequence[_Run],
        undos: Mapping[int, _Undo],
        device: str,
        cause: str,
        result: ExecResult,
    ) -> None:
        for r in runs:
            # The agents already changed in this step are undone with the rest.
            r.done.append(undos[id(r)])
            self._fail(k, r, r.t.steps[k], device, cause, result)

    # ------------------------------------------------------------------ router steps

    def _router_batch(self, k: int, runs: list[_Run], result: ExecResult, push: bool) -> None:
        runs = self._start(k, runs, result)
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
        self._end(
            k,
            [
                (r, _Undo(Action.ROUTER_PUSH, change=r.t.steps[k].routers), None)
                if push
                else (r, _Undo(Action.ROUTER_VERIFY), None)
                for r in runs
            ],
            result,
        )

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
        pending = self._start(k, runs, result)
        while pending:
            left = self._remaining_flows(pending, k)
            elapsed = self.clock() - start
            ended: list[tuple[_Run, _Undo, str | None]] = []
            waiting: list[_Run] = []
            for r in pending:
                drain = r.t.steps[k].drain or Drain((), 0.0)
                n = left[id(r)]
                if n == 0 or elapsed >= drain.timeout:
                    detail = "drained" if n == 0 else f"timeout with {n} flow(s) left"
                    if n < 0:
                        detail = "timeout: an agent could not say how many flows it has left"
                    ended.append((r, _Undo(Action.WAIT_DRAIN), detail))
                else:
                    waiting.append(r)
            self._end(k, ended, result)
            pending = waiting
            if pending:
                self.sleep(DRAIN_POLL)

    def _remaining_flows(self, runs: Sequence[_Run], k: int) -> dict[int, int]:
        """Per run, the flows on its draining DIPs, summed over every agent of the pool (one
        request per agent for all the VIPs): with ECMP any agent may hold some. An agent that
        cannot be asked counts as not drained (-1 when no agent that answered has flows
        left): it may still forward them, and the drain's timeout bounds the wait."""
        total = {id(r): 0 for r in runs}
        unknown: set[int] = set()
        addresses = list(dict.fromkeys(r.t.address for r in runs))
        for agent in self.agents:
            try:
                counts = agent.flows_per_dip_many(addresses)
            except LbautoError:
                unknown.update(total)
                continue
            for r in runs:
                per_dip = counts.get(r.t.address)
                if per_dip is None:
                    unknown.add(id(r))
                    continue
                dips = (r.t.steps[k].drain or Drain((), 0.0)).dips
                total[id(r)] += sum(per_dip.get(d, 0) for d in dips)
        return {i: -1 if i in unknown and n == 0 else n for i, n in total.items()}

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

    @staticmethod
    def _entry(event: str, r: _Run, k: int, detail: str | None = None) -> Entry:
        fields = {"vip": r.t.vip, "step": k, "action": r.t.steps[k].action.value}
        return event, fields if detail is None else {**fields, "detail": detail}

    def _reached(self, r: _Run, k: int, event: str) -> None:
        """A step's start or end is on disk: tell the hook, and reach the crash seam."""
        if self.on_event:
            self.on_event(r.t.vip, r.t.steps[k].action.value, event)
        if event == "end":
            index, self._steps_ended = self._steps_ended, self._steps_ended + 1
            failpoint("after-step", index)


def _change(t: Transition, step: Step, before: AgentVip | None) -> VipChange | None:
    """What an agent step asks of one agent that has ``before`` (None: nothing to ask)."""
    gen = before.generation if before else None
    if step.action is Action.REMOVE_VIP:
        return None if before is None else VipDelete(t.address, if_match=gen)
    if step.action is Action.SET_VIP:
        assert step.mode is not None and step.flow_tracking is not None
        mode, dips, tracking = step.mode, step.dips, step.flow_tracking
        transit, drain = step.transit, step.drain
    else:  # FLOW_TRACKING keeps the VIP's mode and DIPs as the previous steps set them
        assert step.flow_tracking is not None and before is not None
        mode, dips, tracking = before.mode, before.dips, step.flow_tracking
        transit, drain = None, None
    return VipPut(
        t.address,
        mode=mode,
        dips=tuple(dips),
        flow_tracking=tracking,
        name=t.vip,
        transit=transit,
        drain=drain,
        if_match=gen,
    )


def _one_per_address(runs: Sequence[_Run]) -> list[list[_Run]]:
    """The runs in batches of distinct addresses, order kept (a plan has one transition per
    address; two would go to the agent one after the other, as they are listed)."""
    batches: list[list[_Run]] = []
    seen: list[set[IPAddress]] = []
    for r in runs:
        i = next((i for i, s in enumerate(seen) if r.t.address not in s), len(batches))
        if i == len(batches):
            batches.append([])
            seen.append(set())
        batches[i].append(r)
        seen[i].add(r.t.address)
    return batches


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
