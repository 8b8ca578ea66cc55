"""Render lbauto-owned router configuration from typed objects with Jinja2 templates.

One template per platform, ``templates/<platform>/config.j2``, renders both the full
intended config (:func:`render_config`: additions only) and ordered change lines
(:func:`render_changes`: removals, then additions). An inventory may override any template file
with ``<template_dir>/<platform>/<file>.j2``.

Templates get pre-formatted rows, not the objects, because formatting ``ipaddress`` values inside
Jinja costs several microseconds per line and a router may carry tens of thousands of lines. The
row layouts (all strings except where noted) are:

- route: ``(version: int, prefix, address, netmask, next_hop, tag: int, distance: int,
  whole: bool)`` -- ``netmask`` is dotted for IPv4 and empty for IPv6; ``whole`` (removals on
  whole-prefix platforms only) means no lbauto next hop survives, so the route may go entirely.
- rule: ``(version: int, seq: int, prefix, address, netmask, next_hop)``
- binding: ``(interface, version: int, ifname, unit)`` -- ``ifname``/``unit`` split ``ge-0/0/1.5``
  style names (unit ``0`` when there is none).
"""

from __future__ import annotations

import functools
import ipaddress
import operator
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lbauto.core.model import (
    POLICY_PREFIX,
    BgpAccept,
    BgpGroup,
    BgpPeer,
    PbrBinding,
    PbrRule,
    Platform,
    Router,
    RouterObject,
    StaticRoute,
)
from lbauto.errors import RenderError
from lbauto.platforms import PLATFORMS
from lbauto.platforms.bgp_rows import bgp_context

#: ``templates/`` at the top of a source checkout; inside an installed wheel the same files are
#: the package data ``lbauto/_templates`` (pyproject.toml maps one onto the other).
_CHECKOUT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
BUILTIN_TEMPLATES = (
    _CHECKOUT_TEMPLATES
    if (_CHECKOUT_TEMPLATES / "frr").is_dir()
    else Path(__file__).resolve().parents[1] / "_templates"
)
TEMPLATE = "config.j2"

RouteRow: TypeAlias = tuple[int, str, str, str, str, int, int, bool]
RuleRow: TypeAlias = tuple[int, int, str, str, str, str]
BindingRow: TypeAlias = tuple[str, int, str, str]

#: Interface names as the inventory validates them (lbauto.inventory.schema.INTERFACE_RE);
#: anything else never reaches a template.
_INTERFACE = re.compile(r"[A-Za-z0-9_./:-]{1,64}\Z")
#: Rendered config is plain words: a character outside this set can only come from a value that
#: slipped past validation (``;``, ``!``, quotes, ``#``, control characters).
_FORBIDDEN = re.compile(r"[^A-Za-z0-9 ./:_\n-]")
_FIRST = operator.itemgetter(0)
BGP_TYPES = (BgpAccept, BgpPeer, BgpGroup)
_ADDRESS_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address)
_NETWORK_TYPES = (ipaddress.IPv4Network, ipaddress.IPv6Network)


# ------------------------------------------------------------------------------------ templates


@functools.lru_cache(maxsize=64)
@functools.cache
def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs: compiling the five platforms' templates cost
    every rendering command (plan, render, push) 0.15-0.3 s. Jinja's own file cache: a
    directory of this user's only (it refuses one others can write), entries keyed by the
    template's file and checked against its source, so an edited template compiles again.
    None (compile each run) where no such directory can be made."""
    try:
        return jinja2.FileSystemBytecodeCache(pattern="__lbauto_%s.cache")
    except (OSError, RuntimeError):
        return None


def _environment(folder: str, template_dir: Path | None) -> jinja2.Environment:
    """One cached Environment per (platform folder, override dir): templates compile once."""
    paths = [BUILTIN_TEMPLATES / folder]
    if template_dir is not None:
        paths.insert(0, Path(template_dir) / folder)
    # Sandboxed: an inventory's override templates are data from the inventory, not code.
    return ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(p) for p in paths]),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _template(platform: Platform, template_dir: Path | None) -> jinja2.Template:
    folder = PLATFORMS[platform].template_folder
    env = _environment(folder, template_dir)
    try:
        return env.get_template(TEMPLATE)
    except jinja2.TemplateNotFound as exc:
        where = f"{template_dir}/{folder} or " if template_dir else ""
        raise RenderError(
            f"no template {TEMPLATE} for platform {platform} in {where}"
            f"{BUILTIN_TEMPLATES / folder} (reinstall lbauto or fix the inventory's template_dir)"
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(
            f"template {exc.filename or TEMPLATE} line {exc.lineno} for platform"
            f" {platform} is invalid: {exc.message}"
        ) from exc


# ------------------------------------------------------------------------------------------ rows


#: Formatted prefixes and next hops by sort key, shared by all calls: ``str()`` of an ipaddress
#: value costs microseconds (IPv6 ten times more) and the same VIPs, agents and DIPs recur on
#: every router. Bounded: cleared when they grow past _MAX_CACHED entries.
_PREFIX_TEXT: dict[int, tuple[int, int, str, str, str]] = {}
_HOP_TEXT: dict[int, tuple[int, str]] = {}
_MAX_CACHED = 1 << 20
_NETMASKS = [str(ipaddress.IPv4Network((0, n)).netmask) for n in range(33)]


def _prefix_entry(
    p: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> tuple[int, int, str, str, str]:
    """(sort key, version, prefix text, address text, dotted netmask or "")."""
    plen = p.prefixlen
    v4 = isinstance(p, ipaddress.IPv4Network)
    # One int orders IPv4 before IPv6, then numerically: big-int compares are C-fast.
    key = (int(p.network_address) << 8) | plen
    if not v4:
        key |= 1 << 136
    got = _PREFIX_TEXT.get(key)
    if got is None:
        if len(_PREFIX_TEXT) > _MAX_CACHED:
            _PREFIX_TEXT.clear()
        address = str(p.network_address)
        mask = _NETMASKS[plen] if v4 else ""
        got = (key, 4 if v4 else 6, f"{address}/{plen}", address, mask)
        _PREFIX_TEXT[key] = got
    return got


def _hop_entry(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[int, str]:
    """(sort key, text)."""
    key = int(a) if isinstance(a, ipaddress.IPv4Address) else (1 << 128) | int(a)
    got = _HOP_TEXT.get(key)
    if got is None:
        if len(_HOP_TEXT) > _MAX_CACHED:
            _HOP_TEXT.clear()
        got = _HOP_TEXT[key] = (key, str(a))
    return got


class _Formatter:
    """Formats one call's objects into sorted rows, converting each distinct address once.

    Keys are ``id()``s: every object stays referenced by the caller for the whole call, so an id
    cannot be reused while the cache lives. LB routes share their next hop (the agent) and a
    VIP's routes and rules share their prefix, so most conversions are cache hits. Sort keys
    are plain int tuples built from the same cache, compared in C.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self._prefixes: dict[int, tuple[int, int, str, str, str]] = {}
        self._hops: dict[int, tuple[int, str]] = {}

    def prefix(self, p: Any) -> tuple[int, int, str, str, str]:
        got = self._prefixes.get(id(p))
        if got is None:
            if not isinstance(p, _NETWORK_TYPES):
                raise RenderError(f"router {self.router.name}: {p!r} is not an IP prefix")
            got = self._prefixes[id(p)] = _prefix_entry(p)
        return got

    def hop(self, a: Any) -> tuple[int, str]:
        got = self._hops.get(id(a))
        if got is None:
            if not isinstance(a, _ADDRESS_TYPES):
                raise RenderError(f"router {self.router.name}: {a!r} is not an IP address")
            got = self._hops[id(a)] = _hop_entry(a)
        return got

    def routes(self, routes: Iterable[StaticRoute], whole: Collection[Any] = ()) -> list[RouteRow]:
        keyed: list[tuple[int, RouteRow]] = []
        prefixes, hops = self._prefixes, self._hops  # inlined cache hits: this loop is hot
        for r in routes:
            pe = prefixes.get(id(r.prefix)) or self.prefix(r.prefix)
            he = hops.get(id(r.next_hop)) or self.hop(r.next_hop)
            is_whole = bool(whole) and r.prefix in whole
            key = (pe[0] << 169) | (he[0] << 40) | (r.distance << 32) | r.tag
            keyed.append((key, (pe[1], pe[2], pe[3], pe[4], he[1], r.tag, r.distance, is_whole)))
        keyed.sort(key=_FIRST)
        rows = [row for _, row in keyed]
        if whole:
            # one whole-prefix delete removes every next hop of that prefix
            rows = [
                row for i, row in enumerate(rows) if not (row[7] and i and rows[i - 1][1] == row[1])
            ]
        return rows

    def rules(self, rules: Iterable[PbrRule]) -> list[RuleRow]:
        keyed: list[tuple[int, RuleRow]] = []
        for r in rules:
            pk, v, p, a, m = self.prefix(r.prefix)
            keyed.append(((r.seq << 137) | pk, (v, r.seq, p, a, m, self.hop(r.next_hop)[1])))
        keyed.sort(key=_FIRST)
        return [row for _, row in keyed]

    def bindings(self, bindings: Iterable[PbrBinding]) -> list[BindingRow]:
        rows: list[BindingRow] = []
        for b in sorted(bindings, key=_binding_key):
            name = b.interface
            if not isinstance(name, str) or not _INTERFACE.match(name):
                raise RenderError(
                    f"router {self.router.name}: interface name {name!r} is not a plain"
                    " interface name (letters, digits, . _ / : -); fix the router's ingress list"
                )
            ifname, dot, unit = name.rpartition(".")
            if not (dot and unit.isdigit()):
                ifname, unit = name, "0"
            rows.append((name, b.version, ifname, unit))
        return rows


def _binding_key(b: PbrBinding) -> tuple[str, int]:
    return (b.interface, b.version)


_Split: TypeAlias = tuple[list[StaticRoute], list[PbrRule], list[PbrBinding], list[RouterObject]]


def _split(objects: Iterable[RouterObject]) -> _Split:
    """Routes, rules, bindings and BGP objects (rendered from lbauto.platforms.bgp_rows)."""
    routes: list[StaticRoute] = []
    rules: list[PbrRule] = []
    bindings: list[PbrBinding] = []
    bgp: list[RouterObject] = []
    for o in objects:
        if isinstance(o, StaticRoute):
            routes.append(o)
        elif isinstance(o, PbrRule):
            rules.append(o)
        elif isinstance(o, PbrBinding):
            bindings.append(o)
        elif isinstance(o, BGP_TYPES):
            bgp.append(o)
        else:
            raise RenderError(f"cannot render {o!r}: not an lbauto-owned object")
    return routes, rules, bindings, bgp


def _check_numbers(router: Router, routes: Sequence[StaticRoute], rules: Sequence[PbrRule]) -> None:
    """Numbers go into templates as text: make sure they are plain ints in range."""
    limit = PLATFORMS[router.platform].max_pbr_seq
    for what, values, low, high in (
        ("distance", {r.distance for r in routes}, 1, 255),
        ("tag", {r.tag for r in routes}, 1, 4_294_967_295),
        ("PBR sequence", {r.seq for r in rules}, 1, limit),
    ):
        for value in values:
            if type(value) is not int or not low <= value <= high:
                raise RenderError(
                    f"router {router.name}: {what} {value!r} is outside {low}..{high}"
                    f" for platform {router.platform}"
                )


# ------------------------------------------------------------------------------------ rendering


def _dedupe_bindings(bindings: Iterable[PbrBinding]) -> list[PbrBinding]:
    """On platforms with one policy for both families an interface is bound once."""
    first: dict[str, PbrBinding] = {}
    for b in sorted(bindings, key=_binding_key):
        first.setdefault(b.interface, b)
    return list(first.values())


class _Additions:
    """A change's additions split by type, and their rows once formatted: neither depends on
    the router (its name only appears in errors), and routers of several platforms often share
    one addition tuple (a 10,000-VIP change formats 27,000 routes). The numbers are checked
    for each router before its rows are used (limits depend on the platform)."""

    __slots__ = ("rows", "split")

    def __init__(self, split: _Split) -> None:
        self.split = split
        self.rows: tuple[list[RouteRow], list[RuleRow]] | None = None


#: _Additions by the identity of the addition tuple (kept alive by its entry, as in _MEMO).
_ADDITIONS: OrderedDict[int, tuple[tuple[RouterObject, ...], _Additions]] = OrderedDict()
_ADDITIONS_SIZE = 16


def _additions(add: tuple[RouterObject, ...]) -> _Additions:
    with _MEMO_LOCK:
        hit = _ADDITIONS.get(id(add))
        if hit is not None and hit[0] is add:
            _ADDITIONS.move_to_end(id(add))
            return hit[1]
    value = _Additions(_split(add))
    if add:
        with _MEMO_LOCK:
            _ADDITIONS[id(add)] = (add, value)
            if len(_ADDITIONS) > _ADDITIONS_SIZE:
                _ADDITIONS.popitem(last=False)
    return value


def _context(
    router: Router,
    remove: Iterable[RouterObject],
    add: Iterable[RouterObject],
    observed: Collection[RouterObject],
    full: bool,
) -> dict[str, Any]:
    spec = PLATFORMS[router.platform]
    remove, add = tuple(remove), tuple(add)
    rm_routes, rm_rules, rm_bindings, rm_bgp = _split(remove)
    added = _additions(add)
    add_routes, add_rules, add_bindings, add_bgp = added.split
    # bgp_context reads only the BGP objects of each collection: one pass over ``observed``
    # (a whole router's objects) instead of two, and none for a change without BGP objects
    # (everything BGP the templates print is a row of the change; a big plan's summary
    # previews dozens of drifted routers, 27,000 observed objects each).
    bgp_observed = [o for o in observed if isinstance(o, BGP_TYPES)] if rm_bgp or add_bgp else []
    bgp = bgp_context(router, rm_bgp, add_bgp, bgp_observed)
    _check_numbers(router, rm_routes + add_routes, rm_rules + add_rules)

    # What the router keeps after the change. Removals only take a whole policy or prefix with
    # them when ``observed`` shows that nothing of it survives: without ``observed`` we cannot
    # know, and leaving an empty container is harmless while deleting a live one is not.
    whole: set[Any] = set()
    drop_families: list[int] = []
    drop_all = False
    need_whole = spec.route_removal_whole_prefix and bool(rm_routes)
    need_bindings = not spec.binding_per_family and bool(rm_bindings)
    if need_whole or rm_rules or need_bindings:
        removed = {*rm_routes, *rm_rules, *rm_bindings}
        informed = removed.issubset(observed)
        # A set difference reuses the hashes the observed set holds (hashing a router object
        # runs in Python); what is kept is only read as sets below, so its order is irrelevant.
        kept = (
            observed - removed
            if isinstance(observed, (set, frozenset))
            else [o for o in observed if o not in removed]
        )
        kept_routes, kept_rules, kept_bindings, _ = _split(kept)
        kept_routes += add_routes
        kept_rules += add_rules
        kept_bindings += add_bindings
        if need_whole and informed:
            whole = {r.prefix for r in rm_routes} - {r.prefix for r in kept_routes}
        if rm_rules and informed:
            alive = {r.prefix.version for r in kept_rules}
            drop_families = sorted({r.prefix.version for r in rm_rules} - alive)
            drop_all = not kept_rules
        if need_bindings:
            still_bound = {b.interface for b in kept_bindings}
            rm_bindings = [b for b in rm_bindings if b.interface not in still_bound]
    if not spec.binding_per_family:
        rm_bindings = _dedupe_bindings(rm_bindings)
        add_bindings = _dedupe_bindings(add_bindings)

    fmt = _Formatter(router)
    # in the order of the template's sections, so the first bad value is the one reported
    remove_bindings = fmt.bindings(rm_bindings)
    remove_rules = fmt.rules(rm_rules)
    remove_routes = fmt.routes(rm_routes, whole)
    if added.rows is None:
        # two threads may both format: they store equal rows
        added.rows = (fmt.routes(add_routes), fmt.rules(add_rules))
    return {
        "router": router.name,
        "platform": router.platform,
        "policy": POLICY_PREFIX,
        "policy6": f"{POLICY_PREFIX}6",
        "full": full,
        "remove_bindings": remove_bindings,
        "remove_rules": remove_rules,
        "remove_routes": remove_routes,
        "drop_families": drop_families,
        "drop_all": drop_all,
        "add_routes": added.rows[0],
        "add_rules": added.rows[1],
        "add_bindings": fmt.bindings(add_bindings),
        **bgp,
    }


def _render(router: Router, context: dict[str, Any], template_dir: Path | None) -> str:
    template = _template(router.platform, template_dir)
    try:
        text = template.render(context)
    except jinja2.TemplateError as exc:
        raise RenderError(
            f"router {router.name}: template {TEMPLATE} for platform {router.platform}"
            f" failed: {exc}"
        ) from exc
    bad = _FORBIDDEN.search(text)
    if bad:
        start = text.rfind("\n", 0, bad.start()) + 1
        end = text.find("\n", bad.start())
        line = text[start : end if end >= 0 else len(text)]
        raise RenderError(
            f"router {router.name}: rendered line {line!r} contains {bad.group()!r}, which could"
            " start a second command; refusing to push it (check values and template overrides)"
        )
    return text


#: Renders keyed by the identity of their inputs. Routers of one profile share their object
#: sets (the planner and :func:`lbauto.core.intent.desired_objects` hand out one set per group of
#: equal routers), so 100 routers of 5 platforms render 5 or 6 times, not 100. Each entry keeps
#: its inputs alive, so an ``id`` can never be reused while its entry exists.
_MEMO: OrderedDict[tuple[object, ...], tuple[tuple[object, ...], Any]] = OrderedDict()
_MEMO_SIZE = 64
#: Routers render from parallel push threads: the LRU's reordering must not interleave.
_MEMO_LOCK = threading.Lock()


def _profile(router: Router) -> tuple[object, ...]:
    """What of a router its rendered text depends on (its name only appears in errors)."""
    return (
        router.platform,
        router.ingress,
        router.tag,
        router.lb_distance,
        router.bypass_distance,
        router.bgp,
    )


_EMPTY = ()


def _memoized(base: tuple[object, ...], inputs: tuple[object, ...], make: Callable[[], Any]) -> Any:
    if not all(isinstance(i, (tuple, frozenset)) for i in inputs):
        return make()  # a list could change under the same id: never cache it
    # Empty tuples and frozensets are not always one object: make them one, so they match.
    inputs = tuple(i if i else _EMPTY for i in inputs)
    key = (*base, *map(id, inputs))
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], inputs, strict=True)):
            _MEMO.move_to_end(key)
            return hit[1]
    value = make()
    with _MEMO_LOCK:
        _MEMO[key] = (inputs, value)
        if len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return value


def render_config(
    router: Router, objects: Iterable[RouterObject], template_dir: Path | None = None
) -> str:
    """The full intended lbauto-owned config of ``router`` (what ``lbauto render`` prints)."""

    def make() -> str:
        return _render(router, _context(router, (), objects, (), full=True), template_dir)

    text: str = _memoized(("config", _profile(router), template_dir), (objects,), make)
    return text


def render_changes(
    router: Router,
    remove: Sequence[RouterObject],
    add: Sequence[RouterObject],
    observed: Collection[RouterObject] = (),
    template_dir: Path | None = None,
) -> list[str]:
    """Ordered config lines: removals (bindings, rules, routes), then additions (routes, rules,
    bindings). ``observed`` (the router's current lbauto objects) lets removals take a whole
    policy or route prefix along when nothing of it survives, and keeps an interface bound on
    platforms where one binding serves both families."""

    def make() -> list[str]:
        context = _context(router, remove, add, observed, full=False)
        return [ln for ln in _render(router, context, template_dir).splitlines() if ln.strip()]

    key = ("changes", _profile(router), template_dir)
    lines: list[str] = _memoized(key, (remove, add, observed), make)
    return list(lines)
