"""Opening NAPALM drivers for inventory routers, with each platform's commit caveats
(:data:`lbauto.platforms.PLATFORMS`: commit-confirm or not, ``revert_in`` units, IOS archive).

Credentials come from the environment (``Router.password_env``) or key files named in
``optional_args.key_file``; every password read here is registered with :func:`mask` so that
no error text or log line lbauto produces can carry it.
"""

from __future__ import annotations

import getpass
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from lbauto.core.model import Router
from lbauto.errors import PushError
from lbauto.platforms import PLATFORMS
from lbauto.platforms.driver import NapalmDriver

log = logging.getLogger("lbauto.push")

#: Opens (and connects) a NAPALM driver for a router; injectable for tests and dry tooling.
Opener = Callable[[Router], NapalmDriver]


@cache
def device_errors() -> tuple[type[BaseException], ...]:
    """What a device, its transport or its NAPALM driver raise when the device or the network
    misbehaves: caught at the push boundary and reported per router. Anything else is a bug
    and keeps its traceback. Imported on first use: importing napalm loads every driver it
    ships (a third of a second), which commands that never reach a router should not pay."""
    from napalm.base.exceptions import NapalmException
    from netmiko.exceptions import NetmikoBaseException
    from paramiko.ssh_exception import SSHException

    return (NapalmException, NetmikoBaseException, SSHException, OSError, EOFError, TimeoutError)


#: optional_args keys lbauto reads itself and never passes to a NAPALM driver.
LBAUTO_OPTIONS = frozenset({"napalm_driver", "archive", "revert_in"})


def revert_seconds(router: Router, wanted: int | None) -> int | None:
    """The ``revert_in`` to pass for ``router``: rounded up to the platform's step (Junos and
    IOS count whole minutes), or None where the platform has no commit-confirm (NX-OS) or this
    IOS device does not declare ``optional_args.archive: true``."""
    caps = PLATFORMS[router.platform]
    if wanted is None or not caps.commit_confirm:
        return None
    if caps.needs_archive and not router.optional_args.get("archive"):
        return None
    seconds = math.ceil(max(wanted, 1) / caps.revert_step) * caps.revert_step
    if caps.revert_max is not None:
        seconds = min(seconds, caps.revert_max)
    return seconds


# ------------------------------------------------------------------------------- secrets

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    if value:
        with _secrets_lock:
            _secrets.add(value)


def mask(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every registered secret (and ``extra``) replaced by ``*****``."""
    with _secrets_lock:
        secrets = sorted({*_secrets, *(s for s in extra if s)}, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "*****")
    return text


class MaskingFilter(logging.Filter):
    """Logging filter that masks registered secrets in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


log.addFilter(MaskingFilter())


def password_for(router: Router) -> str:
    """The router's password from its environment variable ('' when it uses a key)."""
    if not router.password_env:
        return ""
    value = os.environ.get(router.password_env)
    if value is None:
        raise PushError(
            f"environment variable {router.password_env} (password_env) is not set; "
            "export it or use optional_args.key_file",
            router=router.name,
        )
    register_secret(value)
    return value


def driver_args(router: Router) -> dict[str, Any]:
    """optional_args for the NAPALM driver: the inventory's, minus lbauto's own keys."""
    args = {k: v for k, v in router.optional_args.items() if k not in LBAUTO_OPTIONS}
    if router.port is not None:
        args.setdefault("port", router.port)
    if "key_file" in args:
        args["key_file"] = os.path.expanduser(str(args["key_file"]))
    return args


def open_driver(router: Router, timeout: int = 60) -> NapalmDriver:
    """Open a connected NAPALM driver for ``router``; errors become :class:`PushError`."""
    from napalm import get_network_driver
    from napalm.base.exceptions import ModuleImportError

    default = PLATFORMS[router.platform].napalm_driver
    name = str(router.optional_args.get("napalm_driver", default))
    password = password_for(router)
    try:
        driver_cls = get_network_driver(name)
    except ModuleImportError as exc:
        raise PushError(
            f"no NAPALM driver {name!r} is installed (optional_args.napalm_driver or platform)",
            router=router.name,
        ) from exc
    try:
        driver: NapalmDriver = driver_cls(
            router.hostname,
            router.username or getpass.getuser(),
            password,
            timeout=timeout,
            optional_args=driver_args(router),
        )
        driver.open()
    except device_errors() as exc:
        raise PushError(
            f"cannot connect to {router.hostname} with NAPALM driver {name!r}: "
            f"{mask(describe(exc), [password])}",
            router=router.name,
        ) from exc
    log.debug("%s: connected with NAPALM driver %s", router.name, name)
    return driver


def describe(exc: BaseException) -> str:
    """One line naming the exception type and its message."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ------------------------------------------------------------------------- pending commits

#: Driver attributes that name the commit a session made or acts on: lbauto's FRR driver
#: (``commit_id``) and NAPALM's EOS driver (``config_session``).
_COMMIT_ATTRS = ("commit_id", "config_session")


def commit_ref(driver: NapalmDriver) -> str | None:
    """The id of the commit this driver session made, where the driver keeps one."""
    for attr in _COMMIT_ATTRS:
        value = getattr(driver, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def adopt_commit(driver: NapalmDriver, commit_id: str | None) -> None:
    """Make a new session act (confirm, rollback) on a commit another session made.

    Drivers without commit ids (Junos, IOS) confirm or roll back whatever is pending.
    """
    if commit_id is None:
        return
    for attr in _COMMIT_ATTRS:
        if hasattr(driver, attr):
            setattr(driver, attr, commit_id)
            return
