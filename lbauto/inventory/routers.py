"""Routers from Nornir SimpleInventory files: ``hosts.yaml``, ``groups.yaml``, ``defaults.yaml``.

Each file is checked on its own first (every group and the defaults once, not once per host
that inherits them), then each host resolves its settings like Nornir does: the host, then its
groups in order (each group before that group's own parents), then the defaults. lbauto's
settings live under ``data.lbauto`` and resolve key by key, so a group can set ``method`` and a
host its ``ingress``. NAPALM's ``connection_options.napalm.extras.optional_args`` resolves as a
whole, like Nornir's connection options.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lbauto.core.model import (
    DEFAULT_BYPASS_DISTANCE,
    DEFAULT_LB_DISTANCE,
    DEFAULT_TAG,
    BypassPolicy,
    Method,
    Router,
)
from lbauto.inventory._values import YMap, YSeq
from lbauto.inventory._yaml import YamlFile
from lbauto.inventory.fields import (
    ENV_RE,
    ENV_RULE,
    HOST_RE,
    INTERFACE_RE,
    INTERFACE_RULE,
    NAME_RE,
    NAME_RULE,
    SECRET_FIX,
    SECRET_KEYS,
    Entry,
    check_keys,
    get_choice,
    get_int,
    get_list,
    get_pattern,
    scan_secrets,
    type_name,
)
from lbauto.inventory.vips import VipSource
from lbauto.platforms import PLATFORMS, canonical_name

HOST_KEYS = ("hostname", "port", "username", "platform", "groups", "data", "connection_options")
DEFAULTS_KEYS = tuple(k for k in HOST_KEYS if k != "groups")
LBAUTO_KEYS = ("method", "ingress", "tag", "lb_distance", "bypass_distance", "password_env")
CONNECTION_KEYS = ("hostname", "port", "username", "platform", "extras")
EXTRAS_KEYS = ("optional_args", "timeout")
MAX_TAG = 4294967295

RESOLVED_KEYS = (
    "hostname", "port", "username", "platform", "method", "ingress", "tag",
    "lb_distance", "bypass_distance", "password_env", "optional_args",
)  # fmt: skip

_INVALID = object()  # a setting that was given but is wrong (already reported)
T = TypeVar("T")


@dataclass
class Layer:
    """The valid settings one host, group or the defaults gives, and the names of bad ones."""

    entry: Entry
    values: dict[str, object] = field(default_factory=dict)
    invalid: set[str] = field(default_factory=set)
    groups: tuple[str, ...] = ()

    def set(self, key: str, value: object, source: YMap) -> None:
        """Record a checked value; ``None`` for a non-null ``source[key]`` means it was bad."""
        if value is not None:
            self.values[key] = value
        elif source.values.get(key) is not None:
            self.invalid.add(key)


@dataclass
class RouterFiles:
    """The parsed routers files; any of them may be absent."""

    hosts: YamlFile | None = None
    hosts_doc: object = None
    groups: YamlFile | None = None
    groups_doc: object = None
    defaults: YamlFile | None = None
    defaults_doc: object = None


def load_routers(files: RouterFiles, vips: list[VipSource]) -> list[Router]:
    """Every valid router in ``hosts.yaml`` order; problems go to the files."""
    defaults = _defaults_layer(files)
    groups = _group_layers(files)
    _check_group_cycles(groups)
    if files.hosts is None:
        return []
    hosts = _top_mapping(files.hosts, files.hosts_doc, "host")
    # A VIP's method override applies on every router; `bypass: never` VIPs are never bypassed.
    pbr_vips = [v for v in vips if v.vip.method is Method.PBR and v.vip.bypass is BypassPolicy.AUTO]
    out: list[Router] = []
    for name, m, line in hosts:
        layer = _layer(files.hosts, f"host {name!r}", m, HOST_KEYS, line)
        if not NAME_RE.fullmatch(name):
            layer.entry.error(
                f"router name {name!r} contains characters that are not allowed", NAME_RULE
            )
        _check_group_refs(layer, groups)
        chain = [layer, *_group_chain(layer, groups), *([defaults] if defaults else [])]
        router = _resolve(name, chain, pbr_vips)
        if router is not None and layer.entry.ok:
            out.append(router)
    return out


def _top_mapping(file: YamlFile, doc: object, kind: str) -> Iterator[tuple[str, YMap, int]]:
    """(name, mapping, line of the name) for every top-level entry; an empty file has none."""
    if doc is None:
        return
    if not isinstance(doc, YMap):
        Entry(file, None, "").error(
            f"must be a mapping of {kind} names, got {type_name(doc)}", f"write `<{kind}>:` entries"
        )
        return
    for name, m in doc.values.items():
        if m is None:
            m = YMap(doc.lines[name])
        if not isinstance(m, YMap):
            Entry(file, doc.lines[name], f"{kind} {name!r}").error(
                f"must be a mapping, got {type_name(m)}", "give it keys such as `hostname:`"
            )
            continue
        yield name, m, doc.lines[name]


def _defaults_layer(files: RouterFiles) -> Layer | None:
    if files.defaults is None or files.defaults_doc is None:
        return None
    doc = files.defaults_doc
    if not isinstance(doc, YMap):
        Entry(files.defaults, None, "defaults").error(
            f"must be a mapping, got {type_name(doc)}", "give it keys such as `platform:`"
        )
        return None
    return _layer(files.defaults, "defaults", doc, DEFAULTS_KEYS, doc.line)


def _group_layers(files: RouterFiles) -> dict[str, Layer]:
    if files.groups is None:
        return {}
    layers: dict[str, Layer] = {}
    for name, m, line in _top_mapping(files.groups, files.groups_doc, "group"):
        layer = _layer(files.groups, f"group {name!r}", m, HOST_KEYS, line)
        if not NAME_RE.fullmatch(name):
            layer.entry.error(
                f"group name {name!r} contains characters that are not allowed", NAME_RULE
            )
        layers[name] = layer
    for layer in layers.values():
        _check_group_refs(layer, layers)
    return layers


def _platform(m: YMap, entry: Entry) -> str | None:
    """A platform name or a Nornir/NAPALM/netmiko alias of one, as lbauto's name."""
    value = m.values.get("platform")
    if value is None:
        return None
    name = canonical_name(value) if isinstance(value, str) else None
    if name is None:
        entry.error(
            f"platform {type_name(value)} is not valid",
            "use one of: " + ", ".join(PLATFORMS),
            m.lines["platform"],
        )
    return name


def _layer(file: YamlFile, label: str, m: YMap, keys: tuple[str, ...], line: int) -> Layer:
    """Check one host, group or the defaults on its own."""
    layer = Layer(Entry(file, line, label))
    entry = layer.entry
    check_keys(m, keys, entry)
    for key in ("hostname", "username"):
        layer.set(key, get_pattern(m, key, entry, HOST_RE, f"a plain {key}, no spaces"), m)
    layer.set("port", get_int(m, "port", entry, 1, 65535), m)
    layer.set("platform", _platform(m, entry), m)
    if "groups" in keys:
        layer.groups = _group_names(m, entry)
    data = m.values.get("data")
    if isinstance(data, YMap):
        for key, value in data.values.items():  # other tools' data: free-form, but no secrets
            if key != "lbauto":
                scan_secrets(value, entry)
                if key.lower() in SECRET_KEYS:
                    entry.error(f"a literal {key!r} is not allowed", SECRET_FIX, data.lines[key])
        _lbauto(layer, data.values.get("lbauto"), data.line_of("lbauto"))
    elif data is not None:
        entry.error(
            f"data must be a mapping, got {type_name(data)}",
            "write `data: {lbauto: ...}`",
            m.lines["data"],
        )
    _connection_options(layer, m)
    return layer


def _group_names(m: YMap, entry: Entry) -> tuple[str, ...]:
    seq = get_list(m, "groups", entry)
    if seq is None:
        return ()
    names = []
    for value, line in zip(seq.items, seq.lines, strict=True):
        if isinstance(value, str) and NAME_RE.fullmatch(value):
            names.append(value)
        else:
            entry.error(f"group {type_name(value)} is not a valid group name", NAME_RULE, line)
    return tuple(names)


def _lbauto(layer: Layer, value: object, line: int) -> None:
    """``data.lbauto``: lbauto's own per-router settings."""
    entry = layer.entry
    if value is None:
        return
    if not isinstance(value, YMap):
        entry.error(
            f"data.lbauto must be a mapping, got {type_name(value)}",
            "write `lbauto: {method: static}`",
            line,
        )
        return
    check_keys(value, LBAUTO_KEYS, entry)
    layer.set("method", get_choice(value, "method", entry, Method), value)
    layer.set("ingress", _ingress(value, entry), value)
    layer.set("tag", get_int(value, "tag", entry, 1, MAX_TAG), value)
    for key in ("lb_distance", "bypass_distance"):
        layer.set(key, get_int(value, key, entry, 1, 255), value)
    layer.set("password_env", get_pattern(value, "password_env", entry, ENV_RE, ENV_RULE), value)


def _ingress(m: YMap, entry: Entry) -> tuple[str, ...] | None:
    seq = get_list(m, "ingress", entry)
    if seq is None:
        return None
    names: list[str] = []
    ok = True
    for value, line in zip(seq.items, seq.lines, strict=True):
        if not isinstance(value, str) or not INTERFACE_RE.fullmatch(value):
            entry.error(
                f"ingress interface {type_name(value)} contains characters that are not allowed",
                INTERFACE_RULE,
                line,
            )
            ok = False
        elif value in names:
            entry.error(f"ingress interface {value!r} is listed twice", "list it once", line)
            ok = False
        else:
            names.append(value)
    return tuple(names) if ok else None


def _connection_options(layer: Layer, m: YMap) -> None:
    """Nornir ``connection_options``; only napalm's ``extras.optional_args`` is used."""
    entry = layer.entry
    options = m.values.get("connection_options")
    if options is None:
        return
    if not isinstance(options, YMap):
        entry.error(
            f"connection_options must be a mapping, got {type_name(options)}",
            "write `connection_options: {napalm: {extras: ...}}`",
            m.lines["connection_options"],
        )
        return
    for name, conn in options.values.items():
        if not isinstance(conn, YMap):
            entry.error(
                f"connection_options.{name} must be a mapping",
                "give it `extras:`",
                options.lines[name],
            )
            continue
        check_keys(conn, CONNECTION_KEYS, entry)
        extras = conn.values.get("extras")
        scan_secrets(extras, entry)
        if name == "napalm" and extras is not None:
            args = _optional_args(extras, entry, conn.line_of("extras"))
            if args is None:
                layer.invalid.add("optional_args")
            else:
                layer.values["optional_args"] = args


def _optional_args(extras: object, entry: Entry, line: int) -> dict[str, Any] | None:
    if not isinstance(extras, YMap):
        entry.error(
            "connection_options.napalm.extras must be a mapping",
            "write `extras: {optional_args: {...}}`",
            line,
        )
        return None
    check_keys(extras, EXTRAS_KEYS, entry)
    args = extras.values.get("optional_args")
    if args is None:
        return {}
    if not isinstance(args, YMap):
        entry.error(
            "optional_args must be a mapping",
            "write `optional_args: {key: value}`",
            extras.line_of("optional_args"),
        )
        return None
    plain = _plain(args)
    assert isinstance(plain, dict)
    return plain


def _plain(value: object) -> object:
    if isinstance(value, YMap):
        return {k: _plain(v) for k, v in value.values.items()}
    if isinstance(value, YSeq):
        return [_plain(v) for v in value.items]
    return value


def _check_group_refs(layer: Layer, groups: dict[str, Layer]) -> None:
    for name in layer.groups:
        if name not in groups:
            known = ", ".join(groups) or "none defined"
            layer.entry.error(
                f"group {name!r} is not in groups.yaml",
                f"define it there or fix the name; groups: {known}",
            )


def _check_group_cycles(groups: dict[str, Layer]) -> None:
    for name, layer in groups.items():
        stack, seen = list(layer.groups), set()
        while stack:
            parent = stack.pop()
            if parent == name:
                layer.entry.error(
                    f"group {name!r} inherits from itself",
                    "remove the loop from the groups' `groups:` lists",
                )
                break
            if parent in seen or parent not in groups:
                continue
            seen.add(parent)
            stack.extend(groups[parent].groups)


def _group_chain(layer: Layer, groups: dict[str, Layer]) -> list[Layer]:
    """Nornir order: each group, then its parents (depth first), each group once."""
    chain: list[Layer] = []
    seen: set[str] = set()

    def visit(names: tuple[str, ...]) -> None:
        for name in names:
            if name in seen or name not in groups:
                continue
            seen.add(name)
            chain.append(groups[name])
            visit(groups[name].groups)

    visit(layer.groups)
    return chain


def _lookup(chain: list[Layer], key: str) -> object:
    for layer in chain:
        if key in layer.invalid:
            return _INVALID
        if key in layer.values:
            return layer.values[key]
    return None


def _typed(got: dict[str, object], key: str, kind: type[T]) -> T | None:
    value = got[key]
    return value if isinstance(value, kind) else None


def _resolve(name: str, chain: list[Layer], pbr_vips: list[VipSource]) -> Router | None:
    """Build the router from its inheritance chain; cross-setting problems go to the host.

    A setting given with a bad value was reported where it is written; checks that need it are
    skipped, the others still run, and no router is returned.
    """
    entry = chain[0].entry
    got = {key: _lookup(chain, key) for key in RESOLVED_KEYS}
    bad = {key for key, value in got.items() if value is _INVALID}
    hostname = _typed(got, "hostname", str)
    platform = _typed(got, "platform", str)
    if hostname is None and "hostname" not in bad:
        entry.error("hostname is missing", "set hostname on the host, a group or in defaults")
    if platform is None and "platform" not in bad:
        entry.error(
            "platform is missing", "set platform to one of: " + ", ".join(PLATFORMS)
        )
    method = _typed(got, "method", Method) or Method.STATIC
    ingress = _typed(got, "ingress", tuple) or ()
    lb_distance = _typed(got, "lb_distance", int) or DEFAULT_LB_DISTANCE
    bypass_distance = _typed(got, "bypass_distance", int) or DEFAULT_BYPASS_DISTANCE
    if bypass_distance >= lb_distance and not bad & {"lb_distance", "bypass_distance"}:
        entry.error(
            f"bypass_distance {bypass_distance} is not below lb_distance {lb_distance}",
            "the bypass must win over the LB route: make bypass_distance smaller",
        )
    if not bad & {"method", "ingress"}:
        _check_pbr_ingress(entry, method, ingress, pbr_vips)
    if bad or not entry.ok or hostname is None or platform is None:
        return None
    return Router(
        name=name,
        hostname=hostname,
        platform=platform,
        method=method,
        ingress=tuple(str(i) for i in ingress),
        tag=_typed(got, "tag", int) or DEFAULT_TAG,
        lb_distance=lb_distance,
        bypass_distance=bypass_distance,
        port=_typed(got, "port", int),
        username=_typed(got, "username", str),
        password_env=_typed(got, "password_env", str),
        optional_args=_typed(got, "optional_args", dict) or {},
    )


def _check_pbr_ingress(
    entry: Entry, method: Method, ingress: tuple[object, ...], pbr_vips: list[VipSource]
) -> None:
    if ingress:
        return
    fix = "set data.lbauto.ingress to the interfaces where VIP traffic arrives, e.g. [eth1]"
    if method is Method.PBR:
        entry.error("method pbr needs ingress interfaces", fix)
    elif pbr_vips:
        first = pbr_vips[0]
        entry.error(
            f"VIP {first.vip.name!r} ({first.vip.address}) uses method pbr, which needs ingress "
            "interfaces on every router",
            fix,
        )
