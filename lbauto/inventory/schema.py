"""The pydantic models of every inventory file, and the field types they share.

Field types are small validators that raise lbauto's own error (type ``lbauto``) with the
problem and the fix; :mod:`lbauto.inventory._errors` turns each error's location into
``file:line: entry: problem (fix)`` through the file's line map. The models check one file at a
time (shapes, types, ranges, names); checks that relate entries to each other (duplicates,
families, the inheritance of routers) run on the validated values in the loader modules.

Names that end up in router configuration (VIP, router, agent and group names, interfaces) are
checked against strict patterns: a newline, ``;``, ``!``, a quote or a space never reaches a
template.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, ClassVar, NoReturn
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
)
from pydantic_core import PydanticCustomError

from lbauto.core.addresses import MAX_DIPS, parse_address, parse_addresses
from lbauto.core.model import MAX_TAG, BypassPolicy, IPAddress, LbRoute, Method
from lbauto.platforms import PLATFORMS, canonical_name

#: VIP, router, agent and group names.
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,63}")
NAME_RULE = "use 1 to 63 of A-Z a-z 0-9 _ . -"
#: Interface names (Ethernet1, ge-0/0/1, Ethernet1/1.100, eth1:0, ...).
INTERFACE_RE = re.compile(r"[A-Za-z0-9_./:-]{1,64}")
INTERFACE_RULE = "use 1 to 64 of A-Z a-z 0-9 _ . / : -"
#: Environment variable names (token_env, lbauto_password_env).
ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
ENV_RULE = "use an environment variable name: letters, digits, _; not starting with a digit"
#: Hostnames or management addresses of routers, and user names.
HOST_RE = re.compile(r"[A-Za-z0-9_.:-]{1,253}")
ADDRESS_FIX = "use a single unicast address such as 192.0.2.10 or 2001:db8::10"
PLATFORM_FIX = (
    "use one of: "
    + ", ".join(PLATFORMS)
    + "; Nornir/NAPALM/netmiko names such as arista_eos or cisco_ios work too"
)

SECRET_KEYS = frozenset({"password", "secret", "token"})
SECRET_FIX = (
    "secrets never go in the inventory: remove it and set data.lbauto_password_env "
    "to the name of an environment variable that holds it"
)
#: Nornir does not inherit past a key that is present and empty, so lbauto refuses those.
EMPTY_FIX = (
    "remove the line to inherit from groups or defaults (Nornir stops at an empty key), "
    "or give a value"
)


def is_secret_key(key: object) -> bool:
    """``password``, ``secret``, ``token`` and names ending in ``_password``, ``_secret`` or
    ``_token`` (``lbauto_password_env`` and ``token_env`` name a variable, not a secret)."""
    if not isinstance(key, str):
        return False
    low = key.lower()
    return low in SECRET_KEYS or low.endswith(("_password", "_secret", "_token"))


def fail(
    problem: str,
    fix: str = "",
    *,
    form: str = "is",
    role: str | None = None,
    index: int | None = None,
    value: object = None,
    shown: str | None = None,
) -> NoReturn:
    """Raise lbauto's validation error. ``form`` says how the message reads:
    ``is``: "<subject> <value> <problem>", ``got``: "<subject> <problem>, got <value>",
    ``plain``: "<subject> <problem>". The subject is ``role`` or the key; ``{key}`` in ``fix``
    becomes the key; ``index`` points at one item of a list; ``value`` / ``shown`` replace the
    validated input in the message (``shown`` is printed as is: only for parsed values)."""
    ctx: dict[str, object] = {"problem": problem, "fix": fix, "form": form, "role": role}
    ctx["index"] = index
    ctx |= {"value": value, "shown": shown}
    raise PydanticCustomError("lbauto", "{problem}", ctx)


# ----------------------------------------------------------------------------- field types

Check = Callable[[Any], Any]


def _optional(check: Check, none: str) -> Check:
    """``none``: what a present-but-empty value means: ``ok`` (not set), ``missing`` (an error
    for a required key) or ``empty`` (an error: Nornir would stop inheriting there)."""

    def validate(value: Any) -> Any:
        if value is None:
            if none == "ok":
                return None
            if none == "missing":
                fail("is missing", "add `{key}:`", form="plain")
            fail("is empty", EMPTY_FIX, form="plain")
        return check(value)

    return validate


def text(pattern: re.Pattern[str], rule: str, none: str = "ok") -> PlainValidator:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value:
            fail("must be text", 'write it as {key}: "..."', form="got")
        if not pattern.fullmatch(value):
            fail("contains characters that are not allowed", rule)
        return value

    return PlainValidator(_optional(check, none))


def integer(low: int, high: int, none: str = "ok") -> PlainValidator:
    def check(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        fail(
            f"must be an integer from {low} to {high}",
            f"set {{key}} within {low}..{high}",
            form="got",
        )

    return PlainValidator(_optional(check, none))


def choice(enum: type[StrEnum], none: str = "ok") -> PlainValidator:
    allowed = ", ".join(e.value for e in enum)

    def check(value: Any) -> StrEnum:
        if isinstance(value, str) and value in enum._value2member_map_:
            return enum(value)
        fail("is not valid", f"use one of: {allowed}")

    return PlainValidator(_optional(check, none))


def _platform(value: Any) -> str:
    # NetBox and Nautobot platform slugs write the same names with hyphens (arista-eos).
    name = canonical_name(value) if isinstance(value, str) else None
    if name is None:
        fail("is not valid", PLATFORM_FIX)
    return name


def address_field(role: str, version: int | None = None, none: str = "ok") -> PlainValidator:
    """One usable unicast address (:func:`lbauto.core.addresses.parse_address` decides)."""

    def check(value: Any) -> IPAddress:
        if not isinstance(value, str):
            # Unquoted 1:2:3:4:5:6:7:8 is a YAML 1.1 base-60 integer, hence the hint.
            fail("is not an address", f"{ADDRESS_FIX}; quote it", role=role)
        result = parse_address(value)
        if isinstance(result, str):
            fail(result, ADDRESS_FIX, role=role)
        if version is not None and result.version != version:
            fail(
                f"is not an IPv{version} address",
                f"{{key}} holds the agent's IPv{version} next hop",
                role=role,
                shown=str(result),
            )
        return result

    return PlainValidator(_optional(check, none))


def _url(value: Any) -> str:
    if not isinstance(value, str) or not value:
        fail("must be text", 'write it as {key}: "https://host:port"', form="got")
    fix = "write it as https://host:port"
    if any(c.isspace() or not c.isprintable() for c in value):
        fail("contains spaces or control characters", fix)
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as err:
        fail(f"is not a valid URL ({err})", fix)
    if parts.scheme not in ("http", "https"):
        fail("is not an http:// or https:// URL", fix)
    if not parts.hostname:
        fail("has no host", fix)
    return value


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value:
        fail("must be text", 'write it as {key}: "path/to/file"', form="got")
    if "\0" in value:
        fail("contains a NUL character", "give a plain file path", form="plain")
    return value


def _as_list(value: Any) -> Any:
    """A single scalar stands for a one-item list (``dips: 198.51.100.2``)."""
    return (
        [value] if isinstance(value, str | int | float) and not isinstance(value, bool) else value
    )


def _max_dips(value: Any) -> Any:
    if isinstance(value, list) and len(value) > MAX_DIPS:
        # the agent API refuses more (one limit, lbauto.core.addresses)
        fail(
            f"lists {len(value)} DIPs, more than an agent accepts ({MAX_DIPS})",
            "split the service over several VIPs",
            form="plain",
            role="dips",
        )
    return _as_list(value)


def _unique_interfaces(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    seen: set[str] = set()
    for i, name in enumerate(value or ()):
        if name in seen:
            fail("is listed twice", "list it once", role="ingress interface", index=i, value=name)
        seen.add(name)
    return value


def _ingress_list(value: Any) -> Any:
    if value is None:
        fail("is empty", EMPTY_FIX, form="plain")
    return _as_list(value)


def _interface(value: Any) -> str:
    if not isinstance(value, str) or not INTERFACE_RE.fullmatch(value):
        fail("contains characters that are not allowed", INTERFACE_RULE, role="ingress interface")
    return value


def _group_name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        fail("is not a valid group name", NAME_RULE, role="group")
    return value


def _strict_list(value: Any) -> Any:
    """Nornir iterates ``groups`` as a list: a single name would be read letter by letter."""
    if isinstance(value, str):
        fail("must be a list", "write {key}: [a, b]", form="got")
    return value


Name = Annotated[str, text(NAME_RE, NAME_RULE, none="missing")]
HostText = Annotated[str | None, text(HOST_RE, "a plain {key}, no spaces")]
Port = Annotated[int | None, integer(1, 65535)]
PlatformName = Annotated[str | None, PlainValidator(_optional(_platform, "ok"))]
Env = Annotated[str | None, text(ENV_RE, ENV_RULE)]
PathText = Annotated[str | None, PlainValidator(_optional(_path, "ok"))]
Dip = Annotated[IPAddress, address_field("DIP", none="missing")]
_DIP_LIST: TypeAdapter[list[IPAddress]] = TypeAdapter(
    list[Dip], config=ConfigDict(arbitrary_types_allowed=True)
)
_STR_ONLY = frozenset((str,))
_ADDRESS_TYPES = frozenset((ipaddress.IPv4Address, ipaddress.IPv6Address))


def _dips(value: Any) -> tuple[IPAddress, ...]:
    """A VIP's DIPs. Hot path (tens of thousands of DIPs): ``map`` and sets keep the per-DIP
    work in C; only a list with a bad DIP is validated item by item, for one error per DIP
    with its own location (pydantic merges the inner errors under ``dips``). ``dips:`` with
    nothing after it means no DIPs, like ``dips: []``."""
    if value is None:
        return ()
    if isinstance(value, list) and len(value) <= MAX_DIPS:
        v4 = parse_addresses(value)  # usually every DIP is a usable IPv4 address
        if v4 is not None:
            return tuple(v4)
    value = _max_dips(value)
    if isinstance(value, list) and _STR_ONLY.issuperset(map(type, value)):
        parsed = list(map(parse_address, value))
        if _ADDRESS_TYPES.issuperset(map(type, parsed)):
            return tuple(parsed)  # type: ignore[arg-type]  # checked just above
    return tuple(_DIP_LIST.validate_python(value))


Interface = Annotated[str, PlainValidator(_interface)]
GroupName = Annotated[str, PlainValidator(_group_name)]


class Strict(BaseModel):
    """Unknown keys are errors (usually typos); a literal password gets its own message."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)
    #: The fix printed when a value of this model is not a mapping.
    SHAPE_FIX: ClassVar[str] = "give it `key: value` lines"


# ----------------------------------------------------------------------------------- vips.yaml


class VipEntry(Strict):
    SHAPE_FIX: ClassVar[str] = "write `- name: web` etc."

    name: Name
    address: Annotated[IPAddress, address_field("VIP", none="missing")] = Field(
        description="add `address:` with a single unicast address such as 192.0.2.10"
    )
    dips: Annotated[tuple[IPAddress, ...], PlainValidator(_dips)] = ()
    bypass: Annotated[BypassPolicy, choice(BypassPolicy)] = BypassPolicy.AUTO
    method: Annotated[Method | None, choice(Method)] = None


class VipsFile(Strict):
    SHAPE_FIX: ClassVar[str] = "start the file with `vips:`; no VIPs is `vips: []`"

    vips: list[VipEntry] | None = None


# --------------------------------------------------------------------------------- agents.yaml


class AgentEntry(Strict):
    SHAPE_FIX: ClassVar[str] = "write `- name: lb1` etc."

    name: Name
    api: Annotated[str, PlainValidator(_optional(_url, "missing"))] = Field(
        description="add `api:` with the agent's control API, e.g. https://lb1:8443"
    )
    address: Annotated[ipaddress.IPv4Address | None, address_field("address", 4)] = None
    address6: Annotated[ipaddress.IPv6Address | None, address_field("address6", 6)] = None
    token_env: Env = None
    token_file: PathText = None
    ca_file: PathText = None


class AgentsFile(Strict):
    SHAPE_FIX: ClassVar[str] = "start the file with `agents:` and list the LBs"

    agents: list[AgentEntry] = Field(min_length=1)


# ------------------------------------------------------------- hosts, groups, defaults (Nornir)

#: 4-byte AS numbers (RFC 6793); 0 and 4294967295 are reserved (RFC 7607, RFC 7300).
MAX_ASN = 4_294_967_294


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    fail("must be true or false", "write {key}: true or {key}: false", form="got")


class BgpEntry(Strict):
    """``lbauto_bgp``: the router side of BGP LB routes (used when ``lbauto_lb_route: bgp``)."""

    SHAPE_FIX: ClassVar[str] = "write `lbauto_bgp: {asn: 64500, agent_asn: 64512}`"

    asn: Annotated[int | None, integer(1, MAX_ASN)] = None
    agent_asn: Annotated[int | None, integer(1, MAX_ASN)] = None
    bfd: Annotated[bool, PlainValidator(_flag)] = True
    #: FRR's default build allows up to 64 ECMP paths (--enable-multipath=64).
    maximum_paths: Annotated[int, integer(1, 64)] = 8
    #: FRR bfdd accepts 10..60000 ms.
    bfd_interval_ms: Annotated[int, integer(10, 60000)] = 100
    bfd_multiplier: Annotated[int, integer(2, 255)] = 3


class RouterData(BaseModel):
    """Nornir ``data``: free-form for other tools, lbauto's settings as flat ``lbauto_*`` keys
    (Nornir resolves each data key on its own: host, then groups, then defaults)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    SHAPE_FIX: ClassVar[str] = "write `data: {lbauto_method: static}`"

    lbauto_method: Annotated[Method | None, choice(Method, none="empty")] = None
    lbauto_ingress: Annotated[
        tuple[Interface, ...] | None,
        BeforeValidator(_ingress_list),
        AfterValidator(_unique_interfaces),
    ] = None
    lbauto_tag: Annotated[int | None, integer(1, MAX_TAG, none="empty")] = None
    lbauto_lb_distance: Annotated[int | None, integer(1, 255, none="empty")] = None
    lbauto_bypass_distance: Annotated[int | None, integer(1, 255, none="empty")] = None
    lbauto_password_env: Annotated[str | None, text(ENV_RE, ENV_RULE, none="empty")] = None
    lbauto_lb_route: Annotated[LbRoute | None, choice(LbRoute, none="empty")] = None
    lbauto_bgp: BgpEntry | None = None


class NapalmExtras(Strict):
    SHAPE_FIX: ClassVar[str] = "write `extras: {optional_args: {...}}`"

    optional_args: dict[str, Any] | None = None
    timeout: Annotated[int | None, integer(1, 86400)] = None


class Connection(Strict):
    """One Nornir ``connection_options`` entry."""

    SHAPE_FIX: ClassVar[str] = "give it `extras:`"

    hostname: HostText = None
    port: Port = None
    username: HostText = None
    platform: Annotated[str | None, text(HOST_RE, "a plain platform name")] = None
    extras: dict[str, Any] | None = None


class NapalmConnection(Connection):
    platform: PlatformName = None
    extras: NapalmExtras | None = None  # type: ignore[assignment]


class ConnectionOptions(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    SHAPE_FIX: ClassVar[str] = "write `connection_options: {napalm: {extras: ...}}`"
    __pydantic_extra__: dict[str, Connection]
    EXTRA_MODEL: ClassVar[type[BaseModel]] = Connection

    napalm: NapalmConnection | None = None


class _RouterBase(Strict):
    SHAPE_FIX: ClassVar[str] = "give it keys such as `hostname:`"

    hostname: HostText = None
    port: Port = None
    username: HostText = None
    platform: PlatformName = None


class HostEntry(_RouterBase):
    """A host or a group of ``hosts.yaml`` / ``groups.yaml``."""

    groups: Annotated[tuple[GroupName, ...], BeforeValidator(_strict_list)] = ()
    data: RouterData | None = None
    connection_options: ConnectionOptions | None = None


class DefaultsEntry(_RouterBase):
    data: RouterData | None = None
    connection_options: ConnectionOptions | None = None


class ResolvedRouter(Strict):
    """A router's settings as Nornir resolves them (any inventory plugin)."""

    hostname: Annotated[str, text(HOST_RE, "a plain hostname, no spaces", none="missing")] = Field(
        description="set hostname on the host, a group or in defaults"
    )
    platform: Annotated[str, PlainValidator(_optional(_platform, "missing"))] = Field(
        description="set platform to one of: " + ", ".join(PLATFORMS)
    )
    port: Port = None
    username: HostText = None
    lbauto_method: Annotated[Method, choice(Method)] = Method.STATIC
    lbauto_ingress: Annotated[
        tuple[Interface, ...], BeforeValidator(_as_list), AfterValidator(_unique_interfaces)
    ] = ()
    lbauto_tag: Annotated[int | None, integer(1, MAX_TAG)] = None
    lbauto_lb_distance: Annotated[int | None, integer(1, 255)] = None
    lbauto_bypass_distance: Annotated[int | None, integer(1, 255)] = None
    lbauto_password_env: Env = None
    lbauto_lb_route: Annotated[LbRoute, choice(LbRoute)] = LbRoute.STATIC
    lbauto_bgp: BgpEntry | None = None
    optional_args: dict[str, Any] = {}


# ----------------------------------------------------------------------------------- lbauto.yaml


class NornirInventory(Strict):
    """``inventory:``: the Nornir inventory plugin routers come from."""

    SHAPE_FIX: ClassVar[str] = "write `inventory: {plugin: SimpleInventory, options: {...}}`"

    plugin: Annotated[str, text(re.compile(r"[A-Za-z0-9_.:-]{1,128}"), "a plugin name")] = (
        "SimpleInventory"
    )
    options: dict[str, Any] = {}
    transform_function: Annotated[
        str | None, text(re.compile(r"[A-Za-z0-9_.:-]{1,128}"), "a registered function name")
    ] = None
    transform_function_options: dict[str, Any] = {}


class LimitsEntry(Strict):
    SHAPE_FIX: ClassVar[str] = "write `limits: {max_file_mb: 16}`"

    max_file_mb: Annotated[int | None, integer(1, 4096)] = None
    max_errors_per_kind: Annotated[int | None, integer(1, 1_000_000)] = None


#: etcd key prefixes: absolute, plain path segments (the lock and journal keys go below it).
ETCD_PREFIX_RE = re.compile(r"(/[A-Za-z0-9_.-]{1,64}){1,8}")


def _etcd_type(value: Any) -> str:
    if value != "etcd":
        fail("is not a known backend", "use `type: etcd`, or remove `backend:` for local files")
    return "etcd"


def _endpoints(value: Any) -> tuple[str, ...]:
    value = _as_list(value)
    if not isinstance(value, list) or not value:
        fail("must be a non-empty list", "write {key}: [http://127.0.0.1:2379]", form="plain")
    return tuple(_url(v) for v in value)


class BackendEntry(Strict):
    """``backend:``: where the apply lock and the journal live besides the state directory."""

    SHAPE_FIX: ClassVar[str] = (
        "write `backend: {type: etcd, endpoints: [http://127.0.0.1:2379], prefix: /lbauto/prod}`"
    )

    type: Annotated[str, PlainValidator(_optional(_etcd_type, "missing"))] = Field(
        description="add `type: etcd`"
    )
    endpoints: Annotated[tuple[str, ...], PlainValidator(_optional(_endpoints, "missing"))] = Field(
        description="add `endpoints: [http://127.0.0.1:2379]` (etcd client URLs)"
    )
    prefix: Annotated[
        str, text(ETCD_PREFIX_RE, "an absolute key path such as /lbauto/prod", none="missing")
    ] = Field(description="add `prefix: /lbauto/<inventory name>` (one per inventory)")
    lease_ttl: Annotated[int, integer(2, 3600)] = 10
    timeout: Annotated[int, integer(1, 300)] = 5
    username: HostText = None
    password_env: Env = None
    ca_file: PathText = None
    cert_file: PathText = None
    key_file: PathText = None


class SettingsFile(Strict):
    SHAPE_FIX: ClassVar[str] = "write `state_dir: .lbauto`"

    template_dir: PathText = None
    state_dir: PathText = None
    inventory: NornirInventory | None = None
    limits: LimitsEntry | None = None
    backend: BackendEntry | None = None
    workers: Annotated[int | None, integer(1, 1024)] = None
