"""Field checks shared by the inventory files: names, addresses, numbers, URLs, keys.

Every check reports through an :class:`Entry` and returns ``None`` for a bad value, so one pass
finds every problem. Names are checked against strict patterns because they end up in router
configuration: a newline, ``;``, ``!``, a quote or a space must never reach a template.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlsplit

from lbauto.inventory._values import YMap, YSeq
from lbauto.inventory._yaml import YamlFile
from lbauto.core.addresses import parse_address
from lbauto.core.model import IPAddress

#: VIP, router, agent and group names.
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,63}")
NAME_RULE = "use 1 to 63 of A-Z a-z 0-9 _ . -"
#: Interface names (Ethernet1, ge-0/0/1, Ethernet1/1.100, eth1:0, ...).
INTERFACE_RE = re.compile(r"[A-Za-z0-9_./:-]{1,64}")
INTERFACE_RULE = "use 1 to 64 of A-Z a-z 0-9 _ . / : -"
#: Environment variable names (token_env, password_env).
ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
ENV_RULE = "use an environment variable name: letters, digits, _; not starting with a digit"
#: Hostnames or management addresses of routers.
HOST_RE = re.compile(r"[A-Za-z0-9_.:-]{1,253}")

SECRET_KEYS = frozenset({"password", "secret"})
SECRET_FIX = (
    "secrets never go in the inventory: remove it and set data.lbauto.password_env "
    "to the name of an environment variable that holds it"
)

E = TypeVar("E", bound=StrEnum)


class Entry:
    """One entry of one file (a VIP, an agent, a host, ...): problems about it name both."""

    __slots__ = ("file", "label", "line", "ok")

    def __init__(self, file: YamlFile, line: int | None, label: str) -> None:
        self.file = file
        self.line = line
        self.label = label
        self.ok = True

    def error(self, what: str, fix: str = "", line: int | None = None) -> None:
        self.ok = False
        self.file.error(line if line is not None else self.line, self.label, what, fix)


def check_keys(m: YMap, allowed: Collection[str], entry: Entry) -> None:
    """Reject keys outside ``allowed``; a literal password gets its own message."""
    for key in m.values:
        if key in allowed:
            continue
        if key in SECRET_KEYS:
            entry.error(f"a literal {key!r} is not allowed", SECRET_FIX, m.lines[key])
        else:
            entry.error(f"unknown key {key!r}", "allowed: " + ", ".join(allowed), m.lines[key])


def scan_secrets(value: object, entry: Entry) -> None:
    """Reject literal passwords anywhere inside free-form data (Nornir data, optional_args)."""
    if isinstance(value, YMap):
        for key, item in value.values.items():
            if key.lower() in SECRET_KEYS:
                entry.error(f"a literal {key!r} is not allowed", SECRET_FIX, value.lines[key])
            scan_secrets(item, entry)
    elif isinstance(value, YSeq):
        for item in value.items:
            scan_secrets(item, entry)


def type_name(value: object) -> str:
    if isinstance(value, YMap):
        return "a mapping"
    if isinstance(value, YSeq):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value)


def get_str(m: YMap, key: str, entry: Entry, *, required: bool = False) -> str | None:
    """A text value; missing or null is ``None`` (an error when ``required``)."""
    value = m.values.get(key)
    if value is None:
        if required:
            entry.error(f"{key} is missing", f"add `{key}:`")
        return None
    if isinstance(value, str) and value:
        return value
    entry.error(
        f"{key} must be text, got {type_name(value)}", f'write it as {key}: "..."', m.lines[key]
    )
    return None


def get_pattern(
    m: YMap, key: str, entry: Entry, pattern: re.Pattern[str], rule: str, *, required: bool = False
) -> str | None:
    """A text value that must fully match ``pattern`` (names, env vars, interfaces)."""
    value = get_str(m, key, entry, required=required)
    if value is None:
        return None
    if pattern.fullmatch(value):
        return value
    entry.error(f"{key} {value!r} contains characters that are not allowed", rule, m.lines[key])
    return None


def get_int(m: YMap, key: str, entry: Entry, low: int, high: int) -> int | None:
    """An integer in ``low..high``; missing or null is ``None``."""
    value = m.values.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    entry.error(
        f"{key} must be an integer from {low} to {high}, got {type_name(value)}",
        f"set {key} within {low}..{high}",
        m.lines[key],
    )
    return None


def get_choice(m: YMap, key: str, entry: Entry, enum: type[E]) -> E | None:
    """One of an enum's values; missing or null is ``None``."""
    value = m.values.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    allowed = ", ".join(e.value for e in enum)
    entry.error(f"{key} {type_name(value)} is not valid", f"use one of: {allowed}", m.lines[key])
    return None


def get_list(m: YMap, key: str, entry: Entry) -> YSeq | None:
    """A list; missing or null is ``None``; a single scalar is taken as a one-item list."""
    value = m.values.get(key)
    if value is None:
        return None
    if isinstance(value, YSeq):
        return value
    if isinstance(value, str | int | float):
        seq = YSeq(m.lines[key])
        seq.items.append(value)
        seq.lines.append(m.lines[key])
        return seq
    entry.error(
        f"{key} must be a list, got {type_name(value)}", f"write {key}: [a, b]", m.lines[key]
    )
    return None


def get_url(m: YMap, key: str, entry: Entry) -> str | None:
    """A required http(s) URL with a host (the agent API)."""
    value = get_str(m, key, entry, required=True)
    if value is None:
        return None
    problem = _url_problem(value)
    if problem:
        entry.error(f"{key} {value!r} {problem}", "write it as https://host:port", m.lines[key])
        return None
    return value


def _url_problem(value: str) -> str | None:
    if any(c.isspace() or not c.isprintable() for c in value):
        return "contains spaces or control characters"
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as err:
        return f"is not a valid URL ({err})"
    if parts.scheme not in ("http", "https"):
        return "is not an http:// or https:// URL"
    if not parts.hostname:
        return "has no host"
    return None


ADDRESS_FIX = "use a single unicast address such as 192.0.2.10 or 2001:db8::10"


def address_value(value: object, entry: Entry, line: int, role: str) -> IPAddress | None:
    """Parse one address from a YAML value; ``role`` names it in the message (VIP, DIP, ...)."""
    if not isinstance(value, str):
        # Unquoted 1:2:3:4:5:6:7:8 is a YAML 1.1 base-60 integer, hence the hint.
        entry.error(
            f"{role} {type_name(value)} is not an address", f"{ADDRESS_FIX}; quote it", line
        )
        return None
    result = parse_address(value)
    if isinstance(result, str):
        entry.error(f"{role} {value!r} {result}", ADDRESS_FIX, line)
        return None
    return result


def get_address(m: YMap, key: str, entry: Entry, role: str, *, required: bool) -> IPAddress | None:
    value = m.values.get(key)
    if value is None:
        if required:
            entry.error(f"{key} is missing", f"add `{key}:` with {ADDRESS_FIX[4:]}")
        return None
    return address_value(value, entry, m.lines[key], role)
