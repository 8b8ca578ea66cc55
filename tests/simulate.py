"""The plan simulator: the state a perfect executor would leave. Pure: no I/O.

Every inventory agent receives each ``agent.*`` step, routers receive their pushes (removals
first), and transit pins and drains are taken as expired. Used by the property tests (plan, apply,
re-plan must be empty) and for dry runs. :func:`apply_steps` applies a prefix of one transition's
steps: the state a crash after that step leaves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lbauto.core.model import (
    AgentVip,
    Inventory,
    IPAddress,
    ObservedRouter,
    ObservedState,
    OwnedObject,
    PoolObject,
    RouterObject,
    split_pool,
)
from lbauto.core.plan import Action, Plan, Step, Transition


class _World:
    """Mutable copies of the observed state while steps are applied."""

    def __init__(self, inv: Inventory, observed: ObservedState) -> None:
        self.agent_names = [a.name for a in inv.agents]
        self.agents: dict[str, dict[IPAddress, AgentVip]] = {
            name: dict(vips) for name, vips in observed.agents.items()
        }
        self.routers: dict[str, set[RouterObject]] = {
            name: {*r.objects, *r.pool} for name, r in observed.routers.items()
        }

    def apply(self, transition: Transition, steps: Iterable[Step]) -> None:
        for step in steps:
            self._apply_step(transition, step)

    def _apply_step(self, t: Transition, step: Step) -> None:
        if step.action is Action.SET_VIP:
            assert step.mode is not None, f"{t.vip}: agent.set_vip without a mode"
            for name in self.agent_names:
                vips = self.agents.setdefault(name, {})
                old = vips.get(t.address)
                generation = (old.generation or 0) + 1 if old else 1
                vips[t.address] = AgentVip(
                    t.address,
                    step.mode,
                    step.dips,
                    bool(step.flow_tracking),
                    generation,
                    t.vip,
                )
        elif step.action is Action.FLOW_TRACKING:
            for name in self.agent_names:
                vips = self.agents.get(name, {})
                old = vips.get(t.address)
                if old is not None:
                    vips[t.address] = AgentVip(
                        old.address,
                        old.mode,
                        old.dips,
                        bool(step.flow_tracking),
                        (old.generation or 0) + 1,
                        old.name,
                    )
        elif step.action is Action.REMOVE_VIP:
            for name in self.agent_names:
                self.agents.get(name, {}).pop(t.address, None)
        elif step.action is Action.ROUTER_PUSH:
            for rc in step.routers:
                objs = self.routers.setdefault(rc.router, set())
                objs.difference_update(rc.remove)
                objs.update(rc.add)
        # agent.wait_drain and router.verify change nothing: timers are taken as expired.

    def pool(self, plan: Plan, add: bool) -> None:
        for rc in plan.pool:
            objs = self.routers.setdefault(rc.router, set())
            if add:
                objs.update(rc.add)
            else:
                objs.difference_update(rc.remove)

    def state(self) -> ObservedState:
        agents: Mapping[str, Mapping[IPAddress, AgentVip]] = {
            name: dict(vips) for name, vips in self.agents.items()
        }
        routers = {
            name: ObservedRouter(name, *_owned_and_pool(objs))
            for name, objs in self.routers.items()
        }
        return ObservedState(agents=agents, routers=routers)


def apply_plan(inv: Inventory, observed: ObservedState, plan: Plan) -> ObservedState:
    """The state after every step of every transition ran and succeeded."""
    world = _World(inv, observed)
    world.pool(plan, add=True)  # as the executor: router-wide BGP objects first ...
    for t in plan.transitions:
        world.apply(t, t.steps)
    world.pool(plan, add=False)  # ... and their removals last
    return world.state()


def apply_steps(
    inv: Inventory, observed: ObservedState, transition: Transition, count: int
) -> ObservedState:
    """The state after the first ``count`` steps of ``transition`` (a crash after them)."""
    world = _World(inv, observed)
    world.apply(transition, transition.steps[:count])
    return world.state()


def _owned_and_pool(
    objs: set[RouterObject],
) -> tuple[frozenset[OwnedObject], None, frozenset[PoolObject]]:
    owned, pool = split_pool(objs)
    return owned, None, pool
