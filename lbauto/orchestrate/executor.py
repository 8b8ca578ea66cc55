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

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lbauto.agent.protocol import AgentApi
from lbauto.core.model import AgentVip, Drain, IPAddress, ObservedState, OwnedObject
from lbauto.core.plan import Action, Plan, RouterChange, Step, Transition
from lbauto.errors import LbautoError, PushError, TransitionError
from lbauto.orchestrate.journal import Journal
from lbauto.orchestrate.ports import RouterPort

#: Seconds between polls of the agents' flow counts while waiting for a drain.
DRAIN_POLL = 0.25
#: Failpoint for crash tests: ``kill-after-step:N`` SIGKILLs this process right after the
#: N-th step (counted from 0 across the run) has ended and been journalled. Never set it in
#: production; the integration tests use it to crash between every pair of steps.
FAILPOINT_ENV = "LBAUTO_FAILPOINT"


def _kill_after_step() -> int | None:
    spec = os.environ.get(FAILPOINT_ENV, "")
    if spec.startswith("kill-after-step:"):
        return int(spec.split(":", 1)[1])
    return None


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
        self._kill_after = _kill_after_step()
        self._steps_ended = 0
        # What each agent has now, per VIP; kept current from every response.
        self.current: dict[str, dict[IPAddress, AgentVip]] = {
            a.name: dict(observed.agents.get(a.name, {})) for a in self.agents
        }

    # ------------------------------------------------------------------ the run

    def execute(self, plan: Plan) -> ExecResult:
        start = self.clock()
        runs = [_Run(t) for t in plan.transitions if t.steps]
        result = ExecResult()
        self.journal.record("run-start", detail=f"{len(runs)} transition(s)")
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
        result.seconds = self.clock() - start
        self.journal.record(
            "run-end",
            detail=f"{len(result.completed)} completed, {len(result.failed)} failed",
        )
        if result.failed:
            first = result.failed[0]
            more = f" (and {len(result.failed) - 1} more)" if len(result.failed) > 1 else ""
            raise TransitionError(first.vip, first.step, first.device, first.cause + more)
        return result

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
            self._wait_drains(k, by_action[Action.WAIT_DRAIN])

    # ------------------------------------------------------------------ agent steps

    def _agent_step(self, k: int, r: _Run, result: ExecResult) -> None:
        step = r.t.steps[k]
        self._event(r, k, step, "start")
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
        r.done.append(undo)
        self._event(r, k, step, "end")

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
        merged = _merge([r.t.steps[k].routers for r in runs])
        for r in runs:
            self._event(r, k, r.t.steps[k], "start")
        try:
            if merged:
                if push:
                    self.routers.push(merged)
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
                r.done.append(_Undo(Action.ROUTER_PUSH, change=r.t.steps[k].routers))
            else:
                r.done.append(_Undo(Action.ROUTER_VERIFY))
            self._event(r, k, r.t.steps[k], "end")

    # ------------------------------------------------------------------ drain waits

    def _wait_drains(self, k: int, runs: list[_Run]) -> None:
        """Wait until the draining DIPs have no flows on any agent, or their timeout passes.

        A drain that times out is not a failure: the timeout is the operator's bound on how
        long old connections may hold a DIP that is leaving.
        """
        start = self.clock()
        pending = {id(r): r for r in runs}
        for r in runs:
            self._event(r, k, r.t.steps[k], "start")
        while pending:
            for key, r in list(pending.items()):
                drain = r.t.steps[k].drain or Drain((), 0.0)
                left = self._remaining_flows(r.t.address, drain.dips)
                elapsed = self.clock() - start
                if left == 0 or elapsed >= drain.timeout:
                    detail = "drained" if left == 0 else f"timeout with {left} flow(s) left"
                    self._event(r, k, r.t.steps[k], "end", detail)
                    r.done.append(_Undo(Action.WAIT_DRAIN))
                    del pending[key]
            if pending:
                self.sleep(DRAIN_POLL)

    def _remaining_flows(self, address: IPAddress, dips: Sequence[IPAddress]) -> int:
        total = 0
        for agent in self.agents:
            try:
                per_dip = agent.flows_per_dip(address)
            except LbautoError:
                continue  # an agent we cannot ask cannot hold us; the timeout still bounds it
            total += sum(per_dip.get(d, 0) for d in dips)
        return total

    # ------------------------------------------------------------------ failure and undo

    def _fail(
        self, k: int, r: _Run, step: Step, device: str, cause: str, result: ExecResult
    ) -> None:
        r.failed = True
        self.journal.record(
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
                self.journal.record("undo", vip=r.t.vip, step=i, action=u.action.value)
            except LbautoError as exc:
                # Keep undoing the rest: a partial undo is better than none, and the journal
                # plus the next plan (which starts from observed state) show what is left.
                self.journal.record(
                    "undo-fail", vip=r.t.vip, step=i, action=u.action.value, detail=str(exc)
                )
        r.done.clear()

    def _undo_one(self, t: Transition, u: _Undo) -> None:
        if u.action is Action.ROUTER_PUSH:
            inverse = tuple(
                RouterChange(rc.router, remove=rc.add, add=rc.remove) for rc in u.change
            )
            if inverse:
                self.routers.push(inverse)
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

    def _event(self, r: _Run, k: int, step: Step, event: str, detail: str | None = None) -> None:
        self.journal.record(event, vip=r.t.vip, step=k, action=step.action.value, detail=detail)
        if self.on_event:
            self.on_event(r.t.vip, step.action.value, event)
        if event == "end":
            if self._kill_after is not None and self._steps_ended == self._kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            self._steps_ended += 1


def _merge(groups: Sequence[Sequence[RouterChange]]) -> tuple[RouterChange, ...]:
    """One RouterChange per router out of many VIPs' changes (order kept, duplicates dropped)."""
    removes: dict[str, dict[OwnedObject, None]] = {}
    adds: dict[str, dict[OwnedObject, None]] = {}
    for changes in groups:
        for rc in changes:
            removes.setdefault(rc.router, {}).update(dict.fromkeys(rc.remove))
            adds.setdefault(rc.router, {}).update(dict.fromkeys(rc.add))
    return tuple(
        RouterChange(name, remove=tuple(removes[name]), add=tuple(adds[name]))
        for name in sorted(removes)
        if removes[name] or adds[name]
    )
