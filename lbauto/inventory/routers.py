"""Routers from a Nornir inventory: Nornir loads them, lbauto reads them as Nornir resolves them.

The routers come from Nornir's own inventory loader (``nornir.init_nornir.load_inventory``, the
step of ``InitNornir`` that builds the inventory) with the plugin named in ``lbauto.yaml``
(``SimpleInventory`` by default, or any registered plugin: NetBox, Nautobot, ...). Every lbauto
setting is read through Nornir's own lookups, so ``nr.inventory.hosts["r1"]["lbauto_tag"]`` and
lbauto always agree:

- ``hostname``, ``port``, ``username``, ``platform`` and NAPALM's ``extras.optional_args`` are
  ``host.get_connection_parameters("napalm")``: what nornir-napalm connects with;
- lbauto's settings are flat keys of ``data`` (``lbauto_method``, ``lbauto_ingress``,
  ``lbauto_tag``, ``lbauto_lb_distance``, ``lbauto_bypass_distance``, ``lbauto_password_env``),
  each resolved on its own like any Nornir data key: the host, then its groups in Nornir's order,
  then the defaults.

For ``SimpleInventory`` files lbauto first checks each file on its own with the models of
:mod:`lbauto.inventory.schema` (each group and the defaults once, with ``file:line``), and hands
the files to Nornir only when Nornir can read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from lbauto.core.model import (
    DEFAULT_BYPASS_DISTANCE,
    DEFAULT_LB_DISTANCE,
    DEFAULT_TAG,
    BgpSettings,
    BypassPolicy,
    LbRoute,
    Method,
    Router,
)
from lbauto.inventory._errors import Loc, Reporter, compose
from lbauto.inventory._linemap import YMap, YSeq
from lbauto.inventory._yaml import YamlFile
from lbauto.inventory.problems import Problems, excerpt
from lbauto.inventory.schema import (
    NAME_RE,
    NAME_RULE,
    SECRET_FIX,
    DefaultsEntry,
    HostEntry,
    ResolvedRouter,
    RouterData,
    is_secret_key,
)
from lbauto.inventory.vips import VipSource

#: lbauto's keys in Nornir ``data``.
LBAUTO_KEYS = tuple(k for k in RouterData.model_fields if k.startswith("lbauto_"))
SIMPLE = "SimpleInventory"
_ENTRIES = TypeAdapter(dict[str, HostEntry])
INGRESS_FIX = "set data.lbauto_ingress to the interfaces where VIP traffic arrives, e.g. [eth1]"


@dataclass
class NornirSource:
    """Where routers come from (``inventory:`` in ``lbauto.yaml``)."""

    plugin: str = SIMPLE
    options: dict[str, Any] = field(default_factory=dict)
    transform_function: str | None = None
    transform_function_options: dict[str, Any] = field(default_factory=dict)


def simple_files(root: Path, source: NornirSource) -> tuple[Path, Path, Path]:
    """hosts, groups and defaults files of a SimpleInventory (relative to the inventory)."""
    opts = source.options
    return (
        root / str(opts.get("host_file", "hosts.yaml")),
        root / str(opts.get("group_file", "groups.yaml")),
        root / str(opts.get("defaults_file", "defaults.yaml")),
    )


def nornir_kwargs(root: Path, source: NornirSource | None = None) -> dict[str, Any]:
    """Keyword arguments for ``nornir.InitNornir`` that load this inventory's routers."""
    source = source or NornirSource()
    options = dict(source.options)
    if source.plugin == SIMPLE:
        hosts, groups, defaults = simple_files(root, source)
        options |= {"host_file": str(hosts), "group_file": str(groups)}
        options["defaults_file"] = str(defaults)
    inventory: dict[str, Any] = {"plugin": source.plugin, "options": options}
    if source.transform_function:
        inventory["transform_function"] = source.transform_function
        inventory["transform_function_options"] = source.transform_function_options
    return {"inventory": inventory, "logging": {"enabled": False}}


# ---------------------------------------------------------------------------------- loading


@dataclass
class _Layers:
    """The checked SimpleInventory files; ``bad`` maps an entry to the keys that were wrong."""

    hosts: YamlFile | None = None
    hosts_doc: object = None
    bad: dict[Loc, set[str]] = field(default_factory=dict)
    loadable: bool = True


def load_routers(
    root: Path,
    source: NornirSource,
    vips: list[VipSource],
    problems: Problems,
    open_file: Any,
) -> list[Router]:
    """Every valid router in inventory order; problems go to ``problems``.

    ``open_file(path)`` gives the :class:`YamlFile` for a path (with the inventory's limits)."""
    layers: _Layers | None = None
    if source.plugin == SIMPLE:
        hosts_path, groups_path, defaults_path = simple_files(root, source)
        hosts = open_file(hosts_path) if hosts_path.is_file() else None
        layers = _check_files(hosts, groups_path, defaults_path, open_file)
        if hosts is None or layers.hosts_doc is None:
            return []  # no hosts (file absent or empty): plan the agents only
        if not layers.loadable:
            if not problems:  # never drop the routers silently
                problems.add(hosts.name, None, "", "Nornir cannot read these files", "")
            return []
    inventory = _nornir_inventory(root, source, layers, problems)
    if inventory is None:
        return []
    # A VIP's method override applies on every router; `bypass: never` VIPs are never bypassed.
    pbr_vips = [v for v in vips if v.vip.method is Method.PBR and v.vip.bypass is BypassPolicy.AUTO]
    out = []
    for name, host in inventory.hosts.items():
        router = _router(str(name), host, layers, problems, source, pbr_vips)
        if router is not None:
            out.append(router)
    return out


def _nornir_inventory(
    root: Path, source: NornirSource, layers: _Layers | None, problems: Problems
) -> Any:
    from nornir.core.configuration import Config
    from nornir.core.exceptions import PluginNotRegistered
    from nornir.init_nornir import load_inventory
    from ruamel.yaml.error import YAMLError

    config = Config.from_dict(**nornir_kwargs(root, source))
    where = layers.hosts.name if layers and layers.hosts else f"inventory plugin {source.plugin}"
    try:
        return load_inventory(config)
    except PluginNotRegistered:
        problems.add(
            where,
            None,
            "",
            f"Nornir has no inventory plugin {excerpt(source.plugin)}",
            "install the plugin's package or fix inventory.plugin in lbauto.yaml",
        )
    except YAMLError:
        # lbauto's reader took the files; Nornir reads YAML 1.2 and may disagree.
        problems.add(where, None, "", "Nornir cannot read the inventory YAML", "simplify the YAML")
    except OSError as err:
        problems.add(where, None, "", f"Nornir cannot read the inventory: {err.strerror}", "")
    except TypeError as err:  # the plugin's constructor refused inventory.options
        problems.add(
            where,
            None,
            "",
            f"inventory plugin {excerpt(source.plugin)} refused its options: "
            + excerpt(str(err), 80),
            "fix inventory.options in lbauto.yaml",
        )
    return None


def _check_files(
    hosts: YamlFile | None, groups_path: Path, defaults_path: Path, open_file: Any
) -> _Layers:
    """Each SimpleInventory file on its own (every group and the defaults once)."""
    layers = _Layers(hosts=hosts, hosts_doc=hosts.load() if hosts else None)
    layers.loadable = not (hosts and hosts.lossy)
    defaults = open_file(defaults_path) if defaults_path.is_file() else None
    groups = open_file(groups_path) if groups_path.is_file() else None
    if defaults is not None:
        _check_defaults(defaults, defaults.load(), layers)
    group_lists: dict[str, tuple[str, ...]] = {}
    if groups is not None:
        groups_doc = groups.load()
        group_lists = _check_entries(groups, groups_doc, "group", layers, None)
        _check_group_cycles(groups, groups_doc, group_lists, layers)
    if hosts is not None:
        _check_entries(hosts, layers.hosts_doc, "host", layers, group_lists if groups else {})
    return layers


def _check_defaults(file: YamlFile, doc: object, layers: _Layers) -> None:
    if file.broken or file.lossy:
        layers.loadable = False
        return
    if doc is None:
        return
    rep = Reporter(file, doc, DefaultsEntry, lambda loc: ("defaults", 0))
    if not isinstance(doc, YMap):
        rep.add((), "must be a mapping", "give it keys such as `platform:`")
        layers.loadable = False
        return
    rep.validate(DefaultsEntry.model_validate)
    _check_data(rep, doc, ())
    layers.loadable &= _nornir_readable(rep, doc, ())
    for keys in rep.failed.values():
        layers.bad.setdefault(("defaults",), set()).update(keys)


def _check_entries(
    file: YamlFile,
    doc: object,
    kind: str,
    layers: _Layers,
    known_groups: dict[str, tuple[str, ...]] | None,
) -> dict[str, tuple[str, ...]]:
    """Hosts or groups; returns each entry's ``groups`` list (names as written)."""
    if file.broken or file.lossy:
        layers.loadable = False
        if file.broken:
            return {}
    if doc is None:
        return {}

    def label(loc: Loc) -> tuple[str, int]:
        return (f"{kind} {file.quote(loc[0])}", 1) if loc else ("", 0)

    rep = Reporter(file, doc, dict[str, HostEntry], label)
    if not isinstance(doc, YMap):
        rep.add(
            (),
            f"must be a mapping of {kind} names, got {file.quote(doc)}",
            f"write `<{kind}>:` entries",
        )
        layers.loadable = False
        return {}
    rep.validate(_ENTRIES.validate_python)
    if rep.flooded:
        layers.loadable = False
        return {}
    lists: dict[str, tuple[str, ...]] = {}
    for name, entry in doc.items():
        if not NAME_RE.fullmatch(name):
            rep.add(
                (name,),
                f"{'router' if kind == 'host' else kind} name {file.quote(name)} contains "
                "characters that are not allowed",
                NAME_RULE,
            )
        if not isinstance(entry, YMap):
            layers.loadable = False
            continue
        _check_data(rep, entry, (name,))
        layers.loadable &= _nornir_readable(rep, entry, (name,))
        names = entry.get("groups")
        lists[name] = (
            tuple(g for g in names if isinstance(g, str)) if isinstance(names, YSeq) else ()
        )
    groups = known_groups if known_groups is not None else lists
    for name, parents in lists.items():
        for parent in parents:
            if parent not in groups:
                rep.add(
                    (name,),
                    f"group {file.quote(parent)} is not in groups.yaml",
                    "define it there or fix the name; groups: "
                    + (", ".join(groups) or "none defined"),
                )
                layers.loadable = False
    section = "hosts" if kind == "host" else "groups"
    for loc, keys in rep.failed.items():
        if loc:
            layers.bad.setdefault((section, str(loc[0])), set()).update(keys)
    return lists


def _nornir_readable(rep: Reporter, entry: YMap, at: Loc) -> bool:
    """Nornir's SimpleInventory reads ``data`` and each connection option as mappings and
    ``groups`` as a list of names; anything else stops it, so lbauto reports the file alone.
    The models report every such value; an empty connection option is the one they allow."""
    data, options, groups = entry.get("data"), entry.get("connection_options"), entry.get("groups")
    if isinstance(options, YMap):
        for name, conn in options.items():
            if conn is None:
                rep.add(
                    (*at, "connection_options", name),
                    f"connection_options.{rep.file.quote(name)[1:-1]} is empty",
                    "remove it or give it `extras:` (Nornir reads it as a mapping)",
                )
                return False
    return (
        (data is None or isinstance(data, YMap))
        and (
            groups is None or (isinstance(groups, YSeq) and all(isinstance(g, str) for g in groups))
        )
        and (
            options is None
            or (isinstance(options, YMap) and all(isinstance(o, YMap) for o in options.values()))
        )
    )


def _check_data(rep: Reporter, entry: YMap, at: Loc) -> None:
    """Nornir ``data`` and connection extras: free-form, but no secrets, and lbauto's own keys
    flat and spelled right."""
    data = entry.get("data")
    if isinstance(data, YMap):
        for key, value in data.items():
            loc = (*at, "data", key)
            if key == "lbauto":
                rep.add(
                    loc,
                    "data.lbauto is not read: lbauto settings are flat data keys",
                    "write lbauto_method, lbauto_ingress, ... directly under data: Nornir "
                    "inherits each data key as a whole",
                )
            elif key.startswith("lbauto_") and key not in LBAUTO_KEYS:
                rep.add(
                    loc, f"unknown key {rep.file.quote(key)}", "allowed: " + ", ".join(LBAUTO_KEYS)
                )
            if is_secret_key(key):
                rep.add(
                    loc,
                    f"a literal {rep.file.quote(key)} is not allowed",
                    SECRET_FIX,
                    kind="secret",
                )
            scan_secrets(rep, value, loc)
    options = entry.get("connection_options")
    if isinstance(options, YMap):
        for name, conn in options.items():
            if isinstance(conn, YMap):
                scan_secrets(rep, conn.get("extras"), (*at, "connection_options", name, "extras"))


def scan_secrets(rep: Reporter, value: object, at: Loc) -> None:
    if isinstance(value, YMap):
        for key, item in value.items():
            if is_secret_key(key):
                rep.add(
                    (*at, key),
                    f"a literal {rep.file.quote(key)} is not allowed",
                    SECRET_FIX,
                    kind="secret",
                )
            scan_secrets(rep, item, (*at, key))
    elif isinstance(value, YSeq):
        for i, item in enumerate(value):
            scan_secrets(rep, item, (*at, i))


def _check_group_cycles(
    file: YamlFile, doc: object, lists: dict[str, tuple[str, ...]], layers: _Layers
) -> None:
    for name, parents in lists.items():
        stack, seen = list(parents), set()
        while stack:
            parent = stack.pop()
            if parent == name:
                line = doc.lines.get(name) if isinstance(doc, YMap) else None
                file.error(
                    line,
                    f"group {file.quote(name)}",
                    f"group {file.quote(name)} inherits from itself",
                    "remove the loop from the groups' `groups:` lists",
                )
                layers.loadable = False
                break
            if parent in seen or parent not in lists:
                continue
            seen.add(parent)
            stack.extend(lists[parent])


# -------------------------------------------------------------------------------- resolving


def resolved_settings(host: Any) -> dict[str, Any]:
    """One Nornir host's lbauto settings, read with Nornir's own lookups."""
    conn = host.get_connection_parameters("napalm")
    out: dict[str, Any] = {
        "hostname": conn.hostname,
        "port": conn.port,
        "username": conn.username,
        "platform": conn.platform,
    }
    out |= {key: host.get(key) for key in LBAUTO_KEYS}
    extras = conn.extras if isinstance(conn.extras, dict) else {}
    out["optional_args"] = extras.get("optional_args") or {}
    return out


def _router(
    name: str,
    host: Any,
    layers: _Layers | None,
    problems: Problems,
    source: NornirSource,
    pbr_vips: list[VipSource],
) -> Router | None:
    file = layers.hosts.name if layers and layers.hosts else f"inventory plugin {source.plugin}"
    line = (
        layers.hosts_doc.lines.get(name) if layers and isinstance(layers.hosts_doc, YMap) else None
    )
    label = f"host {layers.hosts.quote(name) if layers and layers.hosts else excerpt(name)}"
    settings = {k: v for k, v in resolved_settings(host).items() if v is not None}
    bad: set[str] = set()
    if layers is not None:
        chain = [
            ("hosts", name),
            *(("groups", str(g.name)) for g in host.extended_groups()),
            ("defaults",),
        ]
        for entry in chain:
            bad |= layers.bad.get(entry, set())
    elif not NAME_RE.fullmatch(name):
        problems.add(
            file,
            line,
            label,
            f"router name {excerpt(name)} contains characters that are not allowed",
            NAME_RULE,
        )
    try:
        resolved = ResolvedRouter.model_validate(settings)
    except ValidationError as err:
        failing = {str(e["loc"][0]) for e in err.errors() if e["loc"]}
        for e in err.errors(include_url=False):
            key = str(e["loc"][0]) if e["loc"] else ""
            if key in bad or (key == "optional_args" and "extras" in bad):
                continue  # already reported where it is written
            what, fix = _resolved_message(e)
            problems.add(file, line, label, what, fix)
        bad |= failing
        try:  # the other settings, for the checks that do not need the bad ones
            resolved = ResolvedRouter.model_validate(
                {k: v for k, v in settings.items() if k not in failing}
            )
        except ValidationError:
            return None
    lb = resolved.lbauto_lb_distance or DEFAULT_LB_DISTANCE
    bypass = resolved.lbauto_bypass_distance or DEFAULT_BYPASS_DISTANCE
    ok = True
    if bypass >= lb and not bad & {"lbauto_lb_distance", "lbauto_bypass_distance"}:
        problems.add(
            file,
            line,
            label,
            f"bypass_distance {bypass} is not below lb_distance {lb}",
            "the bypass must win over the LB route: make bypass_distance smaller",
        )
        ok = False
    if not bad & {"lbauto_method", "lbauto_ingress"}:
        ok &= _check_pbr_ingress(problems, file, line, label, resolved, pbr_vips)
    bgp = None
    if not bad & {"lbauto_lb_route", "lbauto_bgp"}:
        bgp, bgp_problem = bgp_settings(resolved)
        if bgp_problem is not None:
            problems.add(file, line, label, *bgp_problem)
            ok = False
    if bad or not ok or not NAME_RE.fullmatch(name):
        return None
    return Router(
        name=name,
        hostname=resolved.hostname,
        platform=resolved.platform,
        method=resolved.lbauto_method,
        ingress=resolved.lbauto_ingress,
        tag=resolved.lbauto_tag or DEFAULT_TAG,
        lb_distance=lb,
        bypass_distance=bypass,
        lb_route=resolved.lbauto_lb_route,
        bgp=bgp,
        port=resolved.port,
        username=resolved.username,
        password_env=resolved.lbauto_password_env,
        optional_args=dict(resolved.optional_args),
    )


BGP_FIX = (
    "add `lbauto_bgp: {asn: <this router's AS>, agent_asn: <the agents' AS>}` to the host, "
    "a group or defaults (or set lbauto_lb_route: static)"
)


def bgp_settings(resolved: ResolvedRouter) -> tuple[BgpSettings | None, tuple[str, str] | None]:
    """The router's BGP settings in bgp mode (None in static mode), or (problem, fix)."""
    if resolved.lbauto_lb_route is not LbRoute.BGP:
        return None, None
    entry = resolved.lbauto_bgp
    missing = [k for k in ("asn", "agent_asn") if entry is None or getattr(entry, k) is None]
    if entry is None or missing:
        keys = " and ".join(f"lbauto_bgp.{k}" for k in missing)
        return None, (f"lbauto_lb_route bgp needs {keys}", BGP_FIX)
    assert entry.asn is not None and entry.agent_asn is not None
    if entry.asn == entry.agent_asn:
        return None, (
            f"lbauto_bgp.asn and lbauto_bgp.agent_asn are both {entry.asn}",
            "the agents peer over eBGP: give them an AS of their own (e.g. 64512)",
        )
    settings = BgpSettings(
        asn=entry.asn,
        agent_asn=entry.agent_asn,
        bfd=entry.bfd,
        maximum_paths=entry.maximum_paths,
        bfd_interval_ms=entry.bfd_interval_ms,
        bfd_multiplier=entry.bfd_multiplier,
    )
    return settings, None


def _resolved_message(e: Any) -> tuple[str, str]:
    """Words for an error in a resolved setting (no file to point into)."""
    key = str(e["loc"][0]) if e["loc"] else ""
    if e["type"] == "missing":
        field_info = ResolvedRouter.model_fields.get(key)
        return f"{key} is missing", (field_info.description or "") if field_info else ""
    if e["type"] == "lbauto":
        ctx = e.get("ctx") or {}
        return compose(ctx, key, ctx.get("shown") or excerpt(e["input"]))
    return f"{key}: {e['msg']}", ""


def _check_pbr_ingress(
    problems: Problems,
    file: str,
    line: int | None,
    label: str,
    resolved: ResolvedRouter,
    pbr_vips: list[VipSource],
) -> bool:
    if resolved.lbauto_ingress:
        return True
    if resolved.lbauto_method is Method.PBR:
        problems.add(file, line, label, "method pbr needs ingress interfaces", INGRESS_FIX)
        return False
    if pbr_vips:
        first = pbr_vips[0]
        problems.add(
            file,
            line,
            label,
            f"VIP {first.shown} ({first.vip.address}) uses method pbr, which needs ingress "
            "interfaces on every router",
            INGRESS_FIX,
        )
        return False
    return True
