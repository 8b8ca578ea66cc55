"""The production :class:`~lbauto.orchestrate.apply.Devices`: real agents and real routers."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from rich.console import Console

from lbauto.agent.client import HttpAgentClient
from lbauto.agent.protocol import AgentApi
from lbauto.core.model import (
    Inventory,
    ObservedState,
    PendingCommit,
    Router,
)
from lbauto.core.plan import Plan
from lbauto.errors import AgentError, LbautoError, PushError, StateError
from lbauto.orchestrate.apply import Devices
from lbauto.platforms.driver import NapalmDriver
from lbauto.push.drivers import (
    Opener,
    adopt_commit,
    describe,
    device_errors,
    mask,
    open_driver,
)
from lbauto.push.observe import DEFAULT_WORKERS, bounded_map, observe_router
from lbauto.push.pipeline import RouterFleet, push

#: Default seconds of silence after which a connection on a draining DIP counts as ended.
DRAIN_IDLE = 5.0


class _Borrowed:
    """A pooled driver handed to one user: ``close`` keeps the session for the next user.

    A driver that raised leaves the pool (its session state is unknown, the next user gets a
    new session), but the user holding it keeps it until it closes it: the session that made
    a commit is the one that can still roll it back after its verification raised.
    """

    def __init__(self, pool: SessionPool, name: str, driver: NapalmDriver) -> None:
        object.__setattr__(self, "_pool", pool)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_driver", driver)
        object.__setattr__(self, "_dropped", False)

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._driver, attr)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return value(*args, **kwargs)
            except BaseException:
                self._pool.forget(self._name, self._driver)
                object.__setattr__(self, "_dropped", True)
                raise

        return call

    def __setattr__(self, attr: str, value: Any) -> None:
        # e.g. adopt_commit: this session is to confirm or roll back another one's commit
        setattr(self._driver, attr, value)

    def close(self) -> None:
        """Return the session to the pool (closed when the run ends), or close it if it left
        the pool after raising."""
        if self._dropped:
            with contextlib.suppress(Exception):
                self._driver.close()


class SessionPool:
    """One open NAPALM session per router for the length of one run (observe, device diffs,
    pushes, verifications): each new SSH session costs the router a login (about 0.15 to
    0.3 s), which dominated a single-VIP transition."""

    def __init__(self, opener: Opener = open_driver) -> None:
        self._opener = opener
        self._drivers: dict[str, NapalmDriver] = {}
        self._lock = threading.Lock()

    def __call__(self, router: Router) -> NapalmDriver:
        with self._lock:
            driver = self._drivers.get(router.name)
        if driver is None:
            driver = self._opener(router)
            with self._lock:
                self._drivers[router.name] = driver
        # _Borrowed forwards every NapalmDriver method to the pooled driver.
        return cast(NapalmDriver, _Borrowed(self, router.name, driver))

    def forget(self, name: str, driver: NapalmDriver) -> None:
        """Take ``driver`` out of the pool without closing it (its borrower closes it)."""
        with self._lock:
            if self._drivers.get(name) is driver:
                del self._drivers[name]

    def close_all(self) -> None:
        with self._lock:
            drivers, self._drivers = list(self._drivers.values()), {}
        for driver in drivers:
            with contextlib.suppress(Exception):
                driver.close()


def observe_fleet(
    clients: Sequence[AgentApi], routers: Sequence[Router], opener: Opener, workers: int
) -> ObservedState:
    """Every agent's VIPs and every router's lbauto objects, read concurrently with at most
    ``workers`` devices at once (one slow router no longer waits for the agents, nor 100
    routers for each other).

    Every device is read even when one fails, and :class:`StateError` names each one that
    could not be read (agents first: their line starts ``cannot observe:``): a plan made from
    a partial observation would undo or redo work on the devices that were not seen.
    """

    def one(device: AgentApi | Router) -> Any:
        if isinstance(device, Router):
            try:
                return observe_router(device, opener)
            except StateError as exc:
                return exc
        try:
            return device.list_vips()
        except AgentError as exc:
            return exc

    devices: list[AgentApi | Router] = [*clients, *routers]
    results = bounded_map(one, devices, workers)
    agent_results, router_results = results[: len(clients)], results[len(clients) :]
    failed_agents = [r for r in agent_results if isinstance(r, AgentError)]
    failed_routers = [r for r in router_results if isinstance(r, StateError)]
    if failed_agents or failed_routers:
        lines = ["cannot observe: " + " | ".join(map(str, failed_agents))] if failed_agents else []
        lines += [str(r) for r in failed_routers]
        first: LbautoError = failed_agents[0] if failed_agents else failed_routers[0]
        # Chain the first failure so its cause (e.g. a missing key file) reaches the user.
        raise StateError("\n".join(lines)) from first
    return ObservedState(
        agents={c.name: r for c, r in zip(clients, agent_results, strict=True)},
        routers={r.name: r for r in router_results},
    )


def workers_for(inv: Inventory, workers: int | None = None) -> int:
    """How many devices lbauto talks to at once: ``workers`` (``--workers``), else
    lbauto.yaml's ``workers:``, else :data:`~lbauto.push.observe.DEFAULT_WORKERS`."""
    chosen = workers or inv.workers or DEFAULT_WORKERS
    if chosen < 1:
        raise ValueError(f"workers must be at least 1, not {chosen}")
    return int(chosen)


def live_devices(
    inv: Inventory,
    console: Console | None = None,
    drain_idle: float | None = DRAIN_IDLE,
    workers: int | None = None,
    opener: Opener = open_driver,
) -> Devices:
    """Real agents and routers. ``drain_idle``: a drain wait counts a connection as ended once
    it has carried no packet for that many seconds (None: only when its flow entry expires).
    ``workers``: devices observed, pushed and verified at once (see :func:`workers_for`)."""
    bound = workers_for(inv, workers)
    clients: list[AgentApi] = [
        HttpAgentClient.for_agent(a, drain_idle=drain_idle) for a in inv.agents
    ]
    pool = SessionPool(opener)
    fleet = RouterFleet(
        inv.routers,
        console=console,
        template_dir=inv.template_dir,
        opener=pool,
        workers=bound,
    )

    def observe() -> ObservedState:
        state = observe_fleet(clients, inv.routers, pool, bound)
        fleet.observed = {name: r.objects for name, r in state.routers.items()}
        return state

    def diffs(plan: Plan, observed: ObservedState) -> Mapping[str, str]:
        from lbauto.core.plan import RouterChange

        fleet.observed = {n: observed.router_objects(n) for n in observed.routers}
        changes = [
            RouterChange(rp.router, remove=rp.remove, add=rp.add)
            for rp in plan.routers
            if rp.add or rp.remove
        ]
        result = push(fleet.jobs(changes), dry_run=True, opener=pool, workers=bound)
        return {r.router: r.diff for r in result.results}

    def resolve(name: str, pending: PendingCommit, confirm: bool) -> str:
        return resolve_pending(pool(inv.router(name)), name, pending, confirm)

    def close() -> None:
        for c in clients:
            c.close()
        pool.close_all()

    return Devices(
        agents=clients,
        routers=fleet,
        observe=observe,
        diffs=diffs,
        close=close,
        resolve=resolve,
    )


def resolve_pending(
    driver: NapalmDriver, router: str, pending: PendingCommit, confirm: bool
) -> str:
    """Confirm or roll back a commit another (dead) session left pending; says what it did."""
    cid = pending.commit_id or "(no id)"
    verb = "confirm" if confirm else "roll back"
    try:
        adopt_commit(driver, pending.commit_id)
        if confirm:
            driver.confirm_commit()
        else:
            driver.rollback()
    except device_errors() as exc:
        when = (
            f" at {time.strftime('%H:%M:%SZ', time.gmtime(pending.deadline))}"
            if pending.deadline
            else ""
        )
        raise PushError(
            f"cannot {verb} pending commit {cid}: {mask(describe(exc))}; the router reverts it "
            f"by itself{when}: run apply again after that",
            router=router,
        ) from exc
    finally:
        driver.close()
    return "confirmed" if confirm else "rolled back"
