"""Live observation: read each router's running config and pick out lbauto's objects.

lbauto owns static routes carrying its tag and policy objects named ``LBAUTO...``
(DESIGN section 5); :func:`lbauto.platforms.parse_owned` finds them in the config text.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lbauto.core.model import Inventory, ObservedRouter, Router
from lbauto.errors import LbautoError, StateError
from lbauto.platforms import PLATFORMS, parse_owned
from lbauto.push.drivers import DEVICE_ERRORS, Opener, describe, mask, open_driver


def running_config(driver: Any, router: Router) -> str:
    """The running config in the format :func:`lbauto.platforms.parse_owned` reads (Junos: set)."""
    fmt = PLATFORMS[router.platform].config_format
    kwargs = {"format": fmt} if fmt != "text" else {}
    config = driver.get_config(retrieve="running", **kwargs)
    return str(config.get("running", ""))


def observe_router(router: Router, opener: Opener = open_driver) -> ObservedRouter:
    """One router's lbauto-owned objects, read live."""
    try:
        driver = opener(router)
    except LbautoError as exc:
        raise StateError(f"cannot observe router {router.name}: {exc}") from exc
    try:
        text = running_config(driver, router)
    except DEVICE_ERRORS as exc:
        raise StateError(
            f"cannot read the running config of router {router.name}: {mask(describe(exc))}"
        ) from exc
    finally:
        driver.close()
    try:
        objects = parse_owned(router.platform, text, router.tag)
    except LbautoError as exc:
        raise StateError(f"router {router.name}: cannot parse its running config: {exc}") from exc
    return ObservedRouter(router.name, frozenset(objects))


def observe_routers(
    inv: Inventory,
    routers: Sequence[str] | None = None,
    *,
    opener: Opener = open_driver,
    workers: int = 32,
) -> dict[str, ObservedRouter]:
    """Every (or the named) router's lbauto-owned objects, read in parallel.

    Raises :class:`StateError` naming every router that could not be read: a plan made from a
    partial observation would remove or re-add objects on the routers that were not seen.
    """
    selected = [r for r in inv.routers if routers is None or r.name in routers]
    if not selected:
        return {}

    def one(router: Router) -> ObservedRouter | StateError:
        try:
            return observe_router(router, opener)
        except StateError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(selected)))) as pool:
        results = list(pool.map(one, selected))
    errors = [str(r) for r in results if isinstance(r, StateError)]
    if errors:
        raise StateError("\n".join(errors))
    return {r.name: r for r in results if isinstance(r, ObservedRouter)}
