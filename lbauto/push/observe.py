"""Live observation: read each router's running config and pick out lbauto's objects.

lbauto owns static routes carrying its tag and policy objects named ``LBAUTO...``
(DESIGN section 5); :func:`lbauto.platforms.parse_owned` finds them in the config text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from lbauto.core.model import Inventory, ObservedRouter, PendingCommit, Router
from lbauto.errors import LbautoError, StateError
from lbauto.platforms import PLATFORMS, parse_router
from lbauto.platforms.driver import NapalmDriver
from lbauto.push.drivers import Opener, describe, device_errors, mask, open_driver


def running_config(driver: NapalmDriver, router: Router) -> str:
    """The running config in the format :func:`lbauto.platforms.parse_owned` reads (Junos: set)."""
    fmt = PLATFORMS[router.platform].config_format
    config = driver.get_config(retrieve="running", format=fmt)
    return str(config.get("running", ""))


def pending_commit(driver: NapalmDriver) -> PendingCommit | None:
    """The commit awaiting confirmation on the driver's router (any session's), or None.

    Every NAPALM driver answers ``has_pending_commit``; lbauto's FRR driver also says which
    commit it is and when the router reverts it (``pending_commit``). Platforms without
    commit-confirm (NX-OS) raise NotImplementedError: nothing can be pending there.
    """
    try:
        if not driver.has_pending_commit():
            return None
    except NotImplementedError:
        return None
    return _described(driver)


def _pending_and_running(driver: NapalmDriver, router: Router) -> tuple[PendingCommit | None, str]:
    """The pending commit, then the running config. lbauto's FRR driver reads both in one
    round trip, in the same order (``FRRDriver._pending_and_running``: private, as NAPALM's
    conformance suite allows no public method beyond NetworkDriver's); other drivers make the
    two NAPALM calls."""
    both = getattr(driver, "_pending_and_running", None)
    if not callable(both):
        return pending_commit(driver), running_config(driver, router)
    armed, text = both()
    return (_described(driver) if armed else None), str(text)


def _described(driver: NapalmDriver) -> PendingCommit:
    info = getattr(driver, "pending_commit", None)
    if not isinstance(info, dict):
        return PendingCommit()
    deadline = info.get("deadline")
    return PendingCommit(
        commit_id=str(info["commit_id"]) if info.get("commit_id") else None,
        deadline=float(deadline) if isinstance(deadline, int | float) and deadline > 0 else None,
        session=str(info["session"]) if info.get("session") else None,
    )


def observe_router(router: Router, opener: Opener = open_driver) -> ObservedRouter:
    """One router's lbauto-owned objects and its pending commit, read live (the pending
    commit first: a revert timer firing between the two reads shows as a config without
    that commit, never as a commit that seems confirmed)."""
    try:
        driver = opener(router)
    except LbautoError as exc:
        raise StateError(f"cannot observe router {router.name}: {exc}") from exc
    try:
        pending, text = _pending_and_running(driver, router)
    except device_errors() as exc:
        raise StateError(
            f"cannot read the running config of router {router.name}: {mask(describe(exc))}"
        ) from exc
    finally:
        driver.close()
    try:
        objects, pool = parse_router(router.platform, text, router.tag)
    except LbautoError as exc:
        raise StateError(f"router {router.name}: cannot parse its running config: {exc}") from exc
    return ObservedRouter(router.name, frozenset(objects), pending, pool)


#: Devices observed (and pushed) at once when neither ``--workers`` nor lbauto.yaml's
#: ``workers:`` says otherwise: Nornir's ThreadedRunner default, so a Nornir runbook and lbauto
#: put the same load on a fleet's SSH servers.
DEFAULT_WORKERS = 20

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[fn(x) for x in items]`` with at most ``workers`` calls running at once, in order.

    What Nornir's ThreadedRunner does for a task over hosts (a pool of ``num_workers``
    threads); lbauto's validated routers and agents are not Nornir hosts, and a runner would
    log a traceback for every unreachable device, which lbauto reports in one line each."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if len(items) <= 1 or workers == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(
        max_workers=min(workers, len(items)), thread_name_prefix="lbauto-observe"
    ) as pool:
        return list(pool.map(fn, items))


def observe_routers(
    inv: Inventory,
    routers: Sequence[str] | None = None,
    *,
    opener: Opener = open_driver,
    workers: int | None = None,
) -> dict[str, ObservedRouter]:
    """Every (or the named) router's lbauto-owned objects, read in parallel (at most
    ``workers`` sessions at once; default: the inventory's ``workers:``, else
    :data:`DEFAULT_WORKERS`).

    Raises :class:`StateError` naming every router that could not be read: a plan made from a
    partial observation would remove or re-add objects on the routers that were not seen.
    """
    selected = [r for r in inv.routers if routers is None or r.name in routers]

    def one(router: Router) -> ObservedRouter | StateError:
        try:
            return observe_router(router, opener)
        except StateError as exc:
            return exc

    results = bounded_map(one, selected, workers or inv.workers or DEFAULT_WORKERS)
    failed = [r for r in results if isinstance(r, StateError)]
    if failed:
        # Chain the first failure so its cause (e.g. a missing key file) reaches the user.
        raise StateError("\n".join(str(r) for r in failed)) from failed[0]
    return {r.name: r for r in results if isinstance(r, ObservedRouter)}
