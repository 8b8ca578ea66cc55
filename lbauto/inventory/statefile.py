"""Observed state (what the agents and routers have now) as a JSON file.

``lbauto plan --state FILE`` and tests read observed state from a file instead of asking the
agents and routers. No file means nothing is deployed yet. The format::

    {
      "agents": {                                  # agent name -> what it has
        "lb1": {
          "vips": [
            {"address": "192.0.2.10",              # required: the VIP
             "mode": "multi",                      # required: multi | single | empty
             "dips": ["198.51.100.21"],            # required: its DIPs (may be [])
             "flow_tracking": true,                # required: is flow state being stored
             "name": "web",                        # optional
             "generation": 3,                      # optional: the agent's change counter
             "transit": {"dip": "198.51.100.21", "seconds": 12.5},   # optional: running pin,
                                                   #   seconds remaining
             "drain": {"dips": ["198.51.100.22"], "timeout": 10}}    # optional: running drain,
          ]                                        #   timeout remaining
        }
      },
      "routers": {                                 # router name -> lbauto-owned objects on it
        "r1": {
          "routes": [{"prefix": "192.0.2.10/32", "next_hop": "198.51.100.10",
                      "distance": 200, "tag": 4242}],           # static routes (LB or bypass)
          "pbr": [{"seq": 1, "prefix": "192.0.2.11/32", "next_hop": "198.51.100.21"}],
          "bindings": [{"interface": "eth1", "version": 4}],      # policy on ingress interfaces
          # bgp mode (lbauto_lb_route: bgp) only:
          "bgp_accept": [{"prefix": "192.0.2.10/32"}],          # VIPs the import policy takes
          "bgp_peers": [{"address": "198.51.100.10"}],          # agents, LBAUTO peer group
          "bgp_group": {"asn": 64500, "agent_asn": 64510, "maximum_paths": 8, "bfd": true,
                        "bfd_interval_ms": 100, "bfd_multiplier": 3}
        }
      }
    }

Every key inside ``agents`` and ``routers`` entries is optional except where marked required;
unknown keys are errors (they are usually typos). The pydantic models below check the document;
errors name the file and the JSON path (``state.json: $.agents.lb1.vips[0].mode: ...``).
:func:`state_to_json` writes the canonical form (VIPs and objects sorted, optional keys left out
when unset) and ``state_from_json(state_to_json(s), ...) == s`` for every state.

The compact form (``"format": "lbauto-state", "version": 2``, :func:`state_to_compact_json`,
what ``lbauto state`` writes) holds the same content with each distinct list once: a deployed
fleet repeats one object list per router profile (10,000 VIPs x 100 routers: 246 MB in the form
above, more to parse than the 2 s a steady-state plan may take)::

    {"format": "lbauto-state", "version": 2,
     "vip_lists": [[...VIPs as above...]],        # agents with equal VIPs share one
     "agents": {"lb1": {"vip_list": 0}},
     "object_lists": [{"routes": [...], "pbr": [...], "bindings": [...]}],
     "routers": {"r1": {"objects": 0},            # r2: list 0 plus/minus its drift
                 "r2": {"objects": 0, "added": {"routes": [...]}, "removed": {"pbr": [...]}}}}

A bgp-mode router's ``bgp_accept`` entries ride in its object list like routes; its own
``bgp_peers`` and ``bgp_group`` sit in its entry under ``routers``, as in the first form.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import operator
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from lbauto.core.model import (
    MAX_TAG,
    AgentVip,
    BgpAccept,
    BgpGroup,
    BgpPeer,
    Drain,
    IPAddress,
    IPNetwork,
    Mode,
    ObservedRouter,
    ObservedState,
    OwnedObject,
    PbrBinding,
    PbrRule,
    PoolObject,
    StaticRoute,
    Transit,
    addr_key,
)
from lbauto.errors import StateError
from lbauto.inventory.schema import INTERFACE_RE, MAX_ASN, NAME_RE

__all__ = ["load_state", "state_from_json", "state_to_compact_json", "state_to_json"]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
#: The compact form's ``format`` and ``version`` (the first form has neither key).
STATE_FORMAT = "lbauto-state"
COMPACT_VERSION = 2
#: Most problems one StateError lists.
MAX_PROBLEMS = 20


def load_state(path: Path | None) -> ObservedState:
    """The observed state in ``path``; no path or no file means nothing is deployed yet."""
    if path is None or not path.exists():
        return ObservedState()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise StateError(f"{path}: cannot read the state file: {err}") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise StateError(f"{path}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}") from err
    return state_from_json(data, str(path))


# ------------------------------------------------------------------------------------ writing


def state_to_json(state: ObservedState) -> dict[str, Any]:
    """The canonical JSON form of ``state`` (see the module docstring)."""
    return {
        "agents": {
            name: {"vips": [_vip_to_json(vips[a]) for a in sorted(vips, key=addr_key)]}
            for name, vips in state.agents.items()
        },
        "routers": _routers_to_json(state.routers),
    }


def _routers_to_json(routers: Mapping[str, ObservedRouter]) -> dict[str, dict[str, Any]]:
    # Routers of one profile share one object set (the reader gives them one): sort it once.
    # Each router still gets lists and dicts of its own (callers may edit the document).
    done: dict[int, tuple[frozenset[OwnedObject], dict[str, list[dict[str, Any]]]]] = {}
    out: dict[str, dict[str, Any]] = {}
    for name, router in routers.items():
        cached = done.get(id(router.objects))
        if cached is None:
            cached = done[id(router.objects)] = (router.objects, _router_to_json(router))
            out[name] = cached[1]
        else:
            out[name] = {kind: [dict(item) for item in items] for kind, items in cached[1].items()}
        out[name] |= _pool_to_json(router.pool)
    return out


def _vip_to_json(vip: AgentVip) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": str(vip.address),
        "mode": vip.mode.value,
        "dips": [str(d) for d in vip.dips],
        "flow_tracking": vip.flow_tracking,
    }
    if vip.name is not None:
        out["name"] = vip.name
    if vip.generation is not None:
        out["generation"] = vip.generation
    if vip.transit is not None:
        out["transit"] = {"dip": str(vip.transit.dip), "seconds": vip.transit.seconds}
    if vip.drain is not None:
        out["drain"] = {"dips": [str(d) for d in vip.drain.dips], "timeout": vip.drain.timeout}
    return out


def _net_key(net: IPNetwork) -> tuple[int, int, int]:
    return (net.version, int(net.network_address), net.prefixlen)


def _router_to_json(router: ObservedRouter) -> dict[str, list[dict[str, Any]]]:
    routes = sorted(
        (o for o in router.objects if isinstance(o, StaticRoute)),
        key=lambda r: (_net_key(r.prefix), addr_key(r.next_hop), r.distance, r.tag),
    )
    rules = sorted(
        (o for o in router.objects if isinstance(o, PbrRule)),
        key=lambda r: (r.seq, _net_key(r.prefix), addr_key(r.next_hop)),
    )
    bindings = sorted(o for o in router.objects if isinstance(o, PbrBinding))
    out = {
        "routes": [
            {
                "prefix": str(r.prefix),
                "next_hop": str(r.next_hop),
                "distance": r.distance,
                "tag": r.tag,
            }
            for r in routes
        ],
        "pbr": [
            {"seq": r.seq, "prefix": str(r.prefix), "next_hop": str(r.next_hop)} for r in rules
        ],
        "bindings": [{"interface": b.interface, "version": b.version} for b in bindings],
    }
    accept = sorted((o.prefix for o in router.objects if isinstance(o, BgpAccept)), key=_net_key)
    if accept:  # bgp mode only: a static router's document is as it always was
        out["bgp_accept"] = [{"prefix": str(p)} for p in accept]
    return out


def _pool_to_json(pool: frozenset[PoolObject]) -> dict[str, Any]:
    """A bgp-mode router's peer group and neighbors (none: no keys)."""
    peers = sorted((o.address for o in pool if isinstance(o, BgpPeer)), key=addr_key)
    groups = [o for o in pool if isinstance(o, BgpGroup)]
    out: dict[str, Any] = {}
    if peers:
        out["bgp_peers"] = [{"address": str(a)} for a in peers]
    if groups:
        (g,) = groups  # one peer group per router
        out["bgp_group"] = {
            "asn": g.asn,
            "agent_asn": g.agent_asn,
            "maximum_paths": g.maximum_paths,
            "bfd": g.bfd,
            "bfd_interval_ms": g.bfd_interval_ms,
            "bfd_multiplier": g.bfd_multiplier,
        }
    return out


# ------------------------------------------------------------------------------------ reading


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "null" if value is None else f"the number {value!r}")


def _fail(what: str) -> NoReturn:
    raise PydanticCustomError("state", "{what}", {"what": what})


def _address(value: Any) -> IPAddress:
    if isinstance(value, str) and "%" not in value:
        try:
            # what ip_address gives, without first failing as IPv4 (no IPv4 form has a colon)
            if ":" in value:
                return ipaddress.IPv6Address(value)
            return ipaddress.ip_address(value)
        except ValueError:
            pass
    _fail(f"{value!r} is not an IP address")


def _prefix(value: Any) -> IPNetwork:
    if isinstance(value, str):
        try:
            if ":" in value:
                return ipaddress.IPv6Network(value)
            return ipaddress.ip_network(value)
        except ValueError:
            pass
    _fail(f"{value!r} is not a prefix such as 192.0.2.10/32")


def _int_check(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        _fail(f"expected an integer from {low} to {high}, got {_kind(value)}")

    return check


def _integer(low: int, high: int) -> PlainValidator:
    return PlainValidator(_int_check(low, high))


def _seconds(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    _fail(f"expected a number of seconds >= 0, got {_kind(value)}")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    _fail(f"expected true or false, got {_kind(value)}")


def _mode(value: Any) -> Mode:
    if isinstance(value, str) and value in Mode._value2member_map_:
        return Mode(value)
    _fail(f"{value!r} is not a mode (use multi, single or empty)")


def _vip_name(value: Any) -> str:
    if isinstance(value, str) and NAME_RE.fullmatch(value):
        return value
    _fail(f"{value!r} is not a valid VIP name")


def _interface(value: Any) -> str:
    # Observed bindings are rendered into removal config: same rule as the inventory's names.
    if isinstance(value, str) and INTERFACE_RE.fullmatch(value):
        return value
    _fail(f"{value!r} is not a valid interface name")


def _version(value: Any) -> int:
    if value in (4, 6) and not isinstance(value, bool):
        return int(value)
    _fail(f"expected 4 or 6, got {_kind(value)}")


Address = Annotated[IPAddress, PlainValidator(_address)]
Prefix = Annotated[IPNetwork, PlainValidator(_prefix)]
Seconds = Annotated[float, PlainValidator(_seconds)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class _TransitDoc(_Doc):
    dip: Address
    seconds: Seconds


class _DrainDoc(_Doc):
    dips: list[Address]
    timeout: Seconds


class _VipDoc(_Doc):
    address: Address
    mode: Annotated[Mode, PlainValidator(_mode)]
    dips: list[Address]
    flow_tracking: Annotated[bool, PlainValidator(_bool)]
    name: Annotated[str | None, PlainValidator(_vip_name)] = None
    generation: Annotated[int | None, _integer(0, 2**63 - 1)] = None
    transit: _TransitDoc | None = None
    drain: _DrainDoc | None = None


class _AgentDoc(_Doc):
    vips: list[_VipDoc] = []


def _same_family(prefix: IPNetwork, next_hop: IPAddress) -> None:
    if prefix.version != next_hop.version:
        raise PydanticCustomError(
            "state_family",
            "{what}",
            {"what": f"next hop {next_hop} is not in the family of {prefix}"},
        )


class _RouteDoc(_Doc):
    prefix: Prefix
    next_hop: Address
    distance: Annotated[int, _integer(1, 255)]
    tag: Annotated[int, _integer(1, MAX_TAG)]

    @model_validator(mode="after")
    def _family(self) -> _RouteDoc:
        _same_family(self.prefix, self.next_hop)
        return self


class _PbrDoc(_Doc):
    seq: Annotated[int, _integer(1, MAX_TAG)]
    prefix: Prefix
    next_hop: Address

    @model_validator(mode="after")
    def _family(self) -> _PbrDoc:
        _same_family(self.prefix, self.next_hop)
        return self


class _BindingDoc(_Doc):
    interface: Annotated[str, PlainValidator(_interface)]
    version: Annotated[int, PlainValidator(_version)] = 4


class _BgpAcceptDoc(_Doc):
    prefix: Prefix


class _BgpPeerDoc(_Doc):
    address: Address


class _BgpGroupDoc(_Doc):
    asn: Annotated[int, _integer(1, MAX_ASN)]
    agent_asn: Annotated[int, _integer(1, MAX_ASN)]
    maximum_paths: Annotated[int, _integer(1, 64)]
    bfd: Annotated[bool, PlainValidator(_bool)]
    bfd_interval_ms: Annotated[int, _integer(10, 60000)]
    bfd_multiplier: Annotated[int, _integer(2, 255)]


class _RouterDoc(_Doc):
    routes: list[_RouteDoc] = []
    pbr: list[_PbrDoc] = []
    bindings: list[_BindingDoc] = []
    # bgp mode (lbauto_lb_route: bgp): read by the models only; the fast reader leaves such
    # documents to them (a pool's routers are few next to a static fleet's routes)
    bgp_accept: list[_BgpAcceptDoc] = []
    bgp_peers: list[_BgpPeerDoc] = []
    bgp_group: _BgpGroupDoc | None = None


class _StateDoc(_Doc):
    agents: dict[str, _AgentDoc] = {}
    routers: dict[str, _RouterDoc] = {}


class _RouterRefDoc(_Doc):
    objects: Annotated[int, _integer(0, 2**31 - 1)]
    added: _RouterDoc | None = None
    removed: _RouterDoc | None = None
    # the router's own BGP peer group and neighbors (bgp mode), as in the first form
    bgp_peers: list[_BgpPeerDoc] = []
    bgp_group: _BgpGroupDoc | None = None


class _AgentRefDoc(_Doc):
    vip_list: Annotated[int, _integer(0, 2**31 - 1)]


class _CompactDoc(_Doc):
    format: Literal["lbauto-state"]
    version: Literal[2]
    vip_lists: list[list[_VipDoc]] = []
    agents: dict[str, _AgentRefDoc] = {}
    object_lists: list[_RouterDoc] = []
    routers: dict[str, _RouterRefDoc] = {}


def _path(loc: tuple[str | int, ...]) -> str:
    out = "$"
    for step in loc:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if _PLAIN_KEY.fullmatch(step) else f"[{step!r}]"
    return out


def _model_at(loc: tuple[str | int, ...], compact: bool = False) -> type[BaseModel]:
    """The document model a location sits in (for the allowed keys of an unknown one)."""
    path = [s for s in loc if isinstance(s, str)]
    if not path:
        return _CompactDoc if compact else _StateDoc
    table: dict[tuple[str, ...], type[BaseModel]] = {
        ("agents",): _AgentDoc, ("agents", "vips"): _VipDoc, ("agents", "vips", "transit"):
        _TransitDoc, ("agents", "vips", "drain"): _DrainDoc, ("routers",): _RouterDoc,
        ("routers", "routes"): _RouteDoc, ("routers", "pbr"): _PbrDoc,
        ("routers", "bindings"): _BindingDoc, ("routers", "bgp_accept"): _BgpAcceptDoc,
        ("routers", "bgp_peers"): _BgpPeerDoc, ("routers", "bgp_group"): _BgpGroupDoc,
    }  # fmt: skip
    if compact:
        table |= {
            ("routers",): _RouterRefDoc, ("routers", "added"): _RouterDoc,
            ("routers", "removed"): _RouterDoc, ("object_lists",): _RouterDoc,
            ("agents",): _AgentRefDoc, ("vip_lists",): _VipDoc, ("vip_lists", "transit"):
            _TransitDoc, ("vip_lists", "drain"): _DrainDoc,
        }  # fmt: skip
        kinds = (("routes", _RouteDoc), ("pbr", _PbrDoc), ("bindings", _BindingDoc),
                 ("bgp_accept", _BgpAcceptDoc))  # fmt: skip
        for kind, model in kinds:
            table |= {(*where, kind): model for where in (("object_lists",),
                      ("routers", "added"), ("routers", "removed"))}  # fmt: skip
    if path[0] in ("object_lists", "vip_lists"):
        return table.get(tuple(path), _CompactDoc)
    # Agent and router names are keys of free-form mappings: drop them from the path.
    shape = (path[0], *path[2:]) if len(path) > 1 else (path[0],)
    return table.get(shape, _CompactDoc if compact else _StateDoc)


def _message(e: Any, compact: bool = False) -> tuple[tuple[str | int, ...], str]:
    loc = tuple(e["loc"])
    kind = e["type"]
    if kind in ("state", "state_family"):
        what = e["ctx"]["what"]
        return ((*loc, "next_hop") if kind == "state_family" else loc), what
    if kind == "missing":
        return loc, "missing"
    if kind == "extra_forbidden":
        allowed = ", ".join(sorted(_model_at(loc[:-1], compact).model_fields))
        return loc, f"unknown key (allowed: {allowed})"
    if kind == "literal_error":
        return loc, f"expected {e['ctx']['expected']}, got {_kind(e['input'])}"
    if kind in ("model_type", "dict_type"):
        return loc, f"expected an object, got {_kind(e['input'])}"
    if kind == "list_type":
        return loc, f"expected a list, got {_kind(e['input'])}"
    return loc, e["msg"]  # pragma: no cover - no other kind expected


def _problems(err: ValidationError, source: str, compact: bool = False) -> StateError:
    """One line per problem (the first MAX_PROBLEMS): ``file: $.json.path: what``."""
    lines = []
    for e in err.errors(include_url=False)[:MAX_PROBLEMS]:
        loc, what = _message(e, compact)
        lines.append(f"{source}: {_path(loc)}: {what}")
    return StateError("\n".join(lines))


def state_from_json(data: object, source: str) -> ObservedState:
    """Parse the JSON form (see the module docstring); ``source`` names it in errors.

    A valid document takes the fast reader (:class:`_FastReader`); anything it does not accept
    is validated by the pydantic models, which name every problem. Both give equal states."""
    if isinstance(data, dict) and ("version" in data or "format" in data):
        return _compact_from_json(data, source)
    fast: tuple[dict[str, list[AgentVip]], dict[str, ObservedRouter]] | None
    try:
        fast = _FastReader().read(data)
    except (PydanticCustomError, KeyError, TypeError):
        # Not for the fast reader (or a key missing, or an unhashable value where a string
        # belongs): the models validate and name the problems, if any.
        fast = None
    if fast is not None:
        agent_vips, routers = fast
        _check_names(source, agent_vips, routers)
        agents = {name: _agent(source, name, vips) for name, vips in agent_vips.items()}
        return ObservedState(agents=agents, routers=routers)
    try:
        doc = _StateDoc.model_validate(data)
    except ValidationError as err:
        raise _problems(err, source) from err
    _check_names(source, doc.agents, doc.routers)
    agents = {
        name: _agent(source, name, [_agent_vip(v) for v in agent.vips])
        for name, agent in doc.agents.items()
    }
    routers = {name: _router(name, router) for name, router in doc.routers.items()}
    return ObservedState(agents=agents, routers=routers)


def _check_names(source: str, agents: Mapping[str, object], routers: Mapping[str, object]) -> None:
    problems = [
        f"{source}: {_path(('agents', name) if kind == 'agent' else ('routers', name))}: "
        "name contains characters that are not allowed (use A-Z a-z 0-9 _ . -)"
        for kind, names in (("agent", agents), ("router", routers))
        for name in names
        if not NAME_RE.fullmatch(name)
    ]
    if problems:
        raise StateError("\n".join(problems[:MAX_PROBLEMS]))


def _agent(source: str, name: str, vips: Sequence[AgentVip]) -> dict[IPAddress, AgentVip]:
    out: dict[IPAddress, AgentVip] = {}
    for i, vip in enumerate(vips):
        if vip.address in out:
            where = _path(("agents", name, "vips", i, "address"))
            raise StateError(f"{source}: {where}: VIP {vip.address} is listed twice")
        out[vip.address] = vip
    return out


def _agent_vip(vip: _VipDoc) -> AgentVip:
    return AgentVip(
        address=vip.address,
        mode=vip.mode,
        dips=tuple(vip.dips),
        flow_tracking=vip.flow_tracking,
        generation=vip.generation,
        name=vip.name,
        transit=Transit(vip.transit.dip, vip.transit.seconds) if vip.transit else None,
        drain=Drain(tuple(vip.drain.dips), vip.drain.timeout) if vip.drain else None,
    )


def _router(name: str, doc: _RouterDoc) -> ObservedRouter:
    objects: list[OwnedObject] = [
        StaticRoute(r.prefix, r.next_hop, r.distance, r.tag) for r in doc.routes
    ]
    objects += [PbrRule(r.seq, r.prefix, r.next_hop) for r in doc.pbr]
    objects += [PbrBinding(b.interface, b.version) for b in doc.bindings]
    objects += [BgpAccept(a.prefix) for a in doc.bgp_accept]
    return ObservedRouter(name=name, objects=frozenset(objects), pool=_pool(doc))


def _pool(doc: _RouterDoc | _RouterRefDoc) -> frozenset[PoolObject]:
    pool: list[PoolObject] = [BgpPeer(p.address) for p in doc.bgp_peers]
    if (g := doc.bgp_group) is not None:
        pool.append(
            BgpGroup(
                g.asn, g.agent_asn, g.maximum_paths, g.bfd, g.bfd_interval_ms, g.bfd_multiplier
            )
        )
    return frozenset(pool)


# ------------------------------------------------------------------------------ compact form


def state_to_compact_json(state: ObservedState) -> dict[str, Any]:
    """The compact form (version 2, see the module docstring): each distinct object set once in
    ``object_lists``, every router a reference to one, plus what it has in addition and lacks
    (drift). A deployed fleet of 10,000 VIPs x 100 routers: 246 MB as version 1, a few MB."""
    lists: list[dict[str, list[dict[str, Any]]]] = []
    bases: list[frozenset[OwnedObject]] = []
    refs: dict[int, dict[str, Any]] = {}
    routers: dict[str, dict[str, Any]] = {}
    for name, router in state.routers.items():
        objects = router.objects
        ref = refs.get(id(objects))
        if ref is None:
            ref = refs[id(objects)] = _reference(objects, bases, lists)
        routers[name] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in ref.items()}
        routers[name] |= _pool_to_json(router.pool)
    vip_lists: list[list[dict[str, Any]]] = []
    seen: list[Mapping[IPAddress, AgentVip]] = []
    agents: dict[str, dict[str, int]] = {}
    for name, vips in state.agents.items():
        # Agents usually hold equal VIPs: one list for all of them.
        index = next((i for i, other in enumerate(seen) if other == vips), None)
        if index is None:
            index = len(seen)
            seen.append(vips)
            vip_lists.append([_vip_to_json(vips[a]) for a in sorted(vips, key=addr_key)])
        agents[name] = {"vip_list": index}
    return {
        "format": STATE_FORMAT,
        "version": COMPACT_VERSION,
        "vip_lists": vip_lists,
        "agents": agents,
        "object_lists": lists,
        "routers": routers,
    }


def _reference(
    objects: frozenset[OwnedObject],
    bases: list[frozenset[OwnedObject]],
    lists: list[dict[str, list[dict[str, Any]]]],
) -> dict[str, Any]:
    limit = len(objects) * _SHARE_LIMIT
    for i, base in enumerate(bases):
        if abs(len(base) - len(objects)) > limit:
            continue
        added, removed = objects - base, base - objects  # C set algebra over stored hashes
        if len(added) + len(removed) <= limit:
            ref: dict[str, Any] = {"objects": i}
            if added:
                ref["added"] = _router_to_json(ObservedRouter("", added))
            if removed:
                ref["removed"] = _router_to_json(ObservedRouter("", removed))
            return ref
    bases.append(objects)
    lists.append(_router_to_json(ObservedRouter("", objects)))
    return {"objects": len(bases) - 1}


def _refers(source: str, loc: tuple[str | int, ...], index: int, shared: str, size: int) -> None:
    """A compact-form reference must name an existing entry of the shared list ``shared``."""
    if index >= size:
        what = "object list" if shared == "object_lists" else "VIP list"
        raise StateError(f"{source}: {_path(loc)}: no {what} {index} ($.{shared} has {size})")


#: Agents' VIP lists and routers, as both readers give them.
_Read = tuple[dict[str, list[AgentVip]], dict[str, ObservedRouter]]


def _compact_from_json(data: dict[str, Any], source: str) -> ObservedState:
    version = data.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > COMPACT_VERSION:
        raise StateError(
            f"{source}: $.version: state file format version {version} is newer than this "
            f"lbauto reads ({COMPACT_VERSION}): upgrade lbauto"
        )
    fast: _Read | None
    try:
        fast = _FastReader().read_compact(data)
    except (PydanticCustomError, KeyError, TypeError):
        fast = None
    if fast is None:
        fast = _compact_by_models(data, source)
    agent_vips, routers = fast
    _check_names(source, agent_vips, routers)
    # Agents of one VIP list get equal mappings: check and hash the list once, copy the
    # mapping for the others (a copy reuses the stored hashes; ipaddress hashes in Python).
    built: dict[int, dict[IPAddress, AgentVip]] = {}
    agents: dict[str, dict[IPAddress, AgentVip]] = {}
    for name, vips in agent_vips.items():
        first = built.get(id(vips))
        if first is None:
            agents[name] = built[id(vips)] = _agent(source, name, vips)
        else:
            agents[name] = dict(first)
    return ObservedState(agents=agents, routers=routers)


def _compact_by_models(data: dict[str, Any], source: str) -> _Read:
    """The compact form read through the pydantic models: what the fast reader gives for a
    valid document, and the documented errors for any other."""
    try:
        doc = _CompactDoc.model_validate(data)
    except ValidationError as err:
        raise _problems(err, source, compact=True) from err
    lists = [_router("", r).objects for r in doc.object_lists]
    routers: dict[str, ObservedRouter] = {}
    for name, ref in doc.routers.items():
        _refers(source, ("routers", name, "objects"), ref.objects, "object_lists", len(lists))
        objects = lists[ref.objects]
        if ref.removed is not None:
            objects = objects - _router("", ref.removed).objects
        if ref.added is not None:
            objects = objects | _router("", ref.added).objects
        routers[name] = ObservedRouter(name=name, objects=objects, pool=_pool(ref))
    vip_lists = [[_agent_vip(v) for v in vips] for vips in doc.vip_lists]
    agent_docs: dict[str, list[AgentVip]] = {}
    for name, aref in doc.agents.items():
        where = ("agents", name, "vip_list")
        _refers(source, where, aref.vip_list, "vip_lists", len(vip_lists))
        agent_docs[name] = vip_lists[aref.vip_list]
    return agent_docs, routers


# ------------------------------------------------------------------------------- fast reader

_STATE_KEYS = frozenset(("agents", "routers"))
_COMPACT_KEYS = frozenset(("format", "version", "vip_lists", "agents", "object_lists", "routers"))
_REF_KEYS = frozenset(("objects", "added", "removed"))
_VIP_KEYS = frozenset(_VipDoc.model_fields)
_VIP_REQUIRED = frozenset(("address", "mode", "dips", "flow_tracking"))
_ROUTER_KEYS = frozenset(("routes", "pbr", "bindings"))
_PBR_KEYS = frozenset(("seq", "prefix", "next_hop"))
#: Most objects a router may differ by from an already built router to share its set.
_SHARE_LIMIT = 0.25
#: Reading, a set is built from an earlier one when fewer objects differ than this share of it:
#: copying a set reuses its stored hashes, and a route's hash runs in Python (ipaddress).
_REUSE_LIMIT = 0.75


def _need(ok: bool) -> None:
    """Leave the fast reader: the pydantic models will say what is wrong (if anything)."""
    if not ok:
        _fail("not for the fast reader")


class _FastReader:
    """Reads a document the pydantic models would accept into the same state, much faster.

    A deployed fleet's state file repeats itself: 100 routers carry the same 10,000 VIP
    prefixes, and routers of one profile carry the same objects. Validating it through the
    models cost ~10 us per route (most of it in ``ipaddress`` parsing the same strings 100
    times), and hashing 2.7 million route objects into frozensets costs seconds more, since
    ``ip_network``'s hash runs in Python. This reader:

    - accepts plain ``dict``/``list``/``str``/``int`` exactly where the models do, with the
      same checks (the same functions); anything else raises ``PydanticCustomError``, and the
      caller then validates with the models, whose errors are the documented ones;
    - parses each distinct string once, and makes each distinct object once (keyed by the raw
      JSON values, which hash in C; ``int`` checked by exact type first, so ``true`` or ``1.0``
      never meet a cached ``1``);
    - gives routers with the same objects one frozenset, and builds a router that differs from
      an earlier one by a few objects from that one's set (set algebra reuses stored hashes).
    """

    def __init__(self) -> None:
        self._addresses: _Memo[IPAddress] = _Memo(_address_text)
        self._prefixes: _Memo[IPNetwork] = _Memo(_prefix_text)
        self._objects: dict[tuple[Any, ...], OwnedObject] = {}
        self._by_content: dict[tuple[tuple[Any, ...], ...], frozenset[OwnedObject]] = {}
        self._bases: list[tuple[set[tuple[Any, ...]], frozenset[OwnedObject]]] = []

    def read(self, data: object) -> tuple[dict[str, list[AgentVip]], dict[str, ObservedRouter]]:
        _need(type(data) is dict)
        assert isinstance(data, dict)
        _need(data.keys() <= _STATE_KEYS)
        agents_doc = data.get("agents", {})
        routers_doc = data.get("routers", {})
        _need(type(agents_doc) is dict and type(routers_doc) is dict)
        agents = {self._name(n): self._agent(doc) for n, doc in agents_doc.items()}
        routers = {
            self._name(n): ObservedRouter(name=n, objects=self._router(doc))
            for n, doc in routers_doc.items()
        }
        return agents, routers

    def read_compact(
        self, data: dict[str, Any]
    ) -> tuple[dict[str, list[AgentVip]], dict[str, ObservedRouter]]:
        _need(data.keys() <= _COMPACT_KEYS)
        _need(data.get("format") == STATE_FORMAT and type(data.get("version")) is int)
        _need(data["version"] == COMPACT_VERSION)
        vip_docs = data.get("vip_lists", [])
        agent_docs = data.get("agents", {})
        _need(type(vip_docs) is list and type(agent_docs) is dict)
        vip_lists = [self._agent({"vips": vips}) for vips in vip_docs]
        agents: dict[str, list[AgentVip]] = {}
        for name, aref in agent_docs.items():
            _need(type(aref) is dict and aref.keys() == {"vip_list"})
            index = aref["vip_list"]
            _need(type(index) is int and 0 <= index < len(vip_lists))
            agents[self._name(name)] = vip_lists[index]
        lists_doc = data.get("object_lists", [])
        routers_doc = data.get("routers", {})
        _need(type(lists_doc) is list and type(routers_doc) is dict)
        lists = [self._router(doc) for doc in lists_doc]
        routers: dict[str, ObservedRouter] = {}
        for name, ref in routers_doc.items():
            _need(type(ref) is dict and "objects" in ref and ref.keys() <= _REF_KEYS)
            index = ref["objects"]
            _need(type(index) is int and 0 <= index < len(lists))
            objects = lists[index]
            if "removed" in ref:
                objects = objects - self._router(ref["removed"])
            if "added" in ref:
                objects = objects | self._router(ref["added"])
            routers[self._name(name)] = ObservedRouter(name=name, objects=objects)
        return agents, routers

    @staticmethod
    def _name(name: object) -> str:
        _need(type(name) is str)
        assert isinstance(name, str)
        return name

    def _address(self, text: object) -> IPAddress:
        return self._addresses[text]  # type: ignore[index]  # _Memo checks the type

    def _addresses_of(self, items: object) -> list[IPAddress]:
        _need(type(items) is list)
        assert isinstance(items, list)
        # Mostly strings seen before (DIPs recur): looked up in C, only new ones parsed (an
        # unhashable item raises TypeError: the models report it).
        return list(map(self._addresses.__getitem__, items))

    def _agent(self, doc: object) -> list[AgentVip]:
        _need(type(doc) is dict)
        assert isinstance(doc, dict)
        _need(doc.keys() <= {"vips"})
        vips = doc.get("vips", [])
        _need(type(vips) is list)
        return [self._vip(v) for v in vips]

    def _vip(self, doc: object) -> AgentVip:
        _need(type(doc) is dict)
        assert isinstance(doc, dict)
        keys = doc.keys()
        _need(keys <= _VIP_KEYS and keys >= _VIP_REQUIRED)
        transit = doc.get("transit")
        drain = doc.get("drain")
        mode = doc["mode"]
        return AgentVip(
            address=self._address(doc["address"]),
            mode=_MODES[mode] if type(mode) is str and mode in _MODES else _mode(mode),
            dips=tuple(self._addresses_of(doc["dips"])),
            flow_tracking=_bool(doc["flow_tracking"]),
            generation=_GENERATION(doc["generation"]) if "generation" in keys else None,
            name=_vip_name(doc["name"]) if "name" in keys else None,
            transit=None if transit is None else self._transit(transit),
            drain=None if drain is None else self._drain(drain),
        )

    def _transit(self, doc: object) -> Transit:
        _need(type(doc) is dict)
        assert isinstance(doc, dict)
        _need(doc.keys() == {"dip", "seconds"})
        return Transit(self._address(doc["dip"]), _seconds(doc["seconds"]))

    def _drain(self, doc: object) -> Drain:
        _need(type(doc) is dict)
        assert isinstance(doc, dict)
        _need(doc.keys() == {"dips", "timeout"})
        return Drain(tuple(self._addresses_of(doc["dips"])), _seconds(doc["timeout"]))

    def _router(self, doc: object) -> frozenset[OwnedObject]:
        _need(type(doc) is dict)
        assert isinstance(doc, dict)
        _need(doc.keys() <= _ROUTER_KEYS)
        routes = doc.get("routes", [])
        _need(type(routes) is list)
        # Routes are most of a fleet's state: read their values in C (map, itemgetter), and
        # validate only values not seen before. A route dict has exactly the four keys when it
        # has four keys and itemgetter finds them all (KeyError otherwise: the models report).
        _need(not routes or (set(map(type, routes)) == {dict} and set(map(len, routes)) == {4}))
        route_keys = list(map(_ROUTE_VALUES, routes))
        # Only str and int values: then equal keys are equal JSON values (no true == 1).
        _need(set(map(type, itertools.chain.from_iterable(route_keys))) <= {str, int})
        other_keys: list[tuple[Any, ...]] = []
        for kind, make in (("pbr", self._rule), ("bindings", self._binding)):
            items = doc.get(kind, [])
            _need(type(items) is list)
            for item in items:
                _need(type(item) is dict)
                other_keys.append(make(item))
        content = (tuple(route_keys), tuple(other_keys))
        found = self._by_content.get(content)
        if found is None:
            new = list(dict.fromkeys(itertools.filterfalse(self._objects.__contains__, route_keys)))
            if new:
                self._objects.update(zip(new, self._routes(new), strict=True))
            found = self._by_content[content] = self._share([*route_keys, *other_keys])
        return found

    def _routes(self, keys: list[tuple[Any, ...]]) -> list[StaticRoute]:
        """The routes of ``keys`` (prefix, next hop, distance, tag: str or int each), checked
        column by column in C: what checking each route on its own accepts, no more."""
        prefix_texts, hop_texts, distances, tags = zip(*keys, strict=True)
        _need(set(map(type, prefix_texts)) == _STR and set(map(type, hop_texts)) == _STR)
        _need(set(map(type, distances)) == _INT and set(map(type, tags)) == _INT)
        _DISTANCE(min(distances))
        _DISTANCE(max(distances))
        _TAG(min(tags))
        _TAG(max(tags))
        prefixes = list(map(self._prefixes.__getitem__, prefix_texts))
        hops = list(map(self._addresses.__getitem__, hop_texts))
        _need(_SAME_FAMILY.issuperset(zip(map(type, prefixes), map(type, hops), strict=True)))
        return list(map(StaticRoute, prefixes, hops, distances, tags))

    def _rule(self, item: dict[str, Any]) -> tuple[Any, ...]:
        seq = item["seq"]
        _need(type(seq) is int)
        _need(type(item["prefix"]) is str and type(item["next_hop"]) is str)
        _need(item.keys() == _PBR_KEYS)
        key = ("p", seq, item["prefix"], item["next_hop"])
        if key not in self._objects:
            prefix, next_hop = self._prefixes[item["prefix"]], self._address(item["next_hop"])
            _TAG(seq)
            _need(prefix.version == next_hop.version)
            self._objects[key] = PbrRule(seq, prefix, next_hop)
        return key

    def _binding(self, item: dict[str, Any]) -> tuple[Any, ...]:
        _need(item.keys() <= {"interface", "version"} and "interface" in item)
        version = item.get("version", 4)
        _need(type(version) is int and type(item["interface"]) is str)
        key = ("b", item["interface"], version)
        if key not in self._objects:
            self._objects[key] = PbrBinding(_interface(item["interface"]), _version(version))
        return key

    def _share(self, keys: list[tuple[Any, ...]]) -> frozenset[OwnedObject]:
        mine = set(keys)
        objects = self._objects
        for base_keys, base in self._bases:
            if abs(len(base_keys) - len(mine)) > len(mine) * _REUSE_LIMIT:
                continue
            gone = base_keys - mine
            new = mine - base_keys
            if len(gone) + len(new) <= len(mine) * _REUSE_LIMIT:
                out = base.difference([objects[k] for k in gone])
                return out.union([objects[k] for k in new]) if new else out
        built = frozenset(objects[k] for k in mine)
        self._bases.append((mine, built))
        return built


_T = TypeVar("_T")


class _Memo(dict[str, _T]):
    """Parsed values by their JSON text: a list of texts is looked up in C (``map``), and only
    a text not seen before is parsed (``parse`` raises for a bad one, or a non-string)."""

    __slots__ = ("_parse",)

    def __init__(self, parse: Callable[[object], _T]) -> None:
        super().__init__()
        self._parse = parse

    def __missing__(self, text: str) -> _T:
        value = self[text] = self._parse(text)
        return value


def _address_text(text: object) -> IPAddress:
    _need(type(text) is str)
    assert isinstance(text, str)
    try:  # the usual dotted quad, parsed in C (see _packed4)
        return ipaddress.IPv4Address(int.from_bytes(socket.inet_pton(socket.AF_INET, text)))
    except (OSError, ValueError):
        return _address(text)


def _prefix_text(text: object) -> IPNetwork:
    _need(type(text) is str)
    assert isinstance(text, str)
    packed = _packed4(text[:-3]) if text.endswith("/32") else None
    if packed:
        return ipaddress.IPv4Network((int.from_bytes(packed, "big"), 32))
    return _prefix(text)


def _packed4(text: str) -> bytes | None:
    """``text`` as 4 bytes if it is a dotted-quad IPv4 address, parsed in C. inet_pton accepts
    exactly the strings ``ipaddress.IPv4Address`` does (four decimal octets, no leading zeros);
    anything else (IPv6, junk) returns None and takes ipaddress's own parser, ten times slower
    (parsing the distinct addresses of a 10,000-VIP state file took most of its read)."""
    try:
        return socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        return None


_ROUTE_VALUES = operator.itemgetter("prefix", "next_hop", "distance", "tag")
_STR = {str}
_INT = {int}
_SAME_FAMILY = frozenset(
    (
        (ipaddress.IPv4Network, ipaddress.IPv4Address),
        (ipaddress.IPv6Network, ipaddress.IPv6Address),
    )
)
_MODES = {mode.value: mode for mode in Mode}
_GENERATION = _int_check(0, 2**63 - 1)
_DISTANCE = _int_check(1, 255)
_TAG = _int_check(1, MAX_TAG)
