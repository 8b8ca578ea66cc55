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
          "bindings": [{"interface": "eth1", "version": 4}]       # policy on ingress interfaces
        }
      }
    }

Every key inside ``agents`` and ``routers`` entries is optional except where marked required;
unknown keys are errors (they are usually typos). The pydantic models below check the document;
errors name the file and the JSON path (``state.json: $.agents.lb1.vips[0].mode: ...``).
:func:`state_to_json` writes the canonical form (VIPs and objects sorted, optional keys left out
when unset) and ``state_from_json(state_to_json(s), ...) == s`` for every state.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Any, NoReturn

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from lbauto.core.model import (
    AgentVip,
    Drain,
    IPAddress,
    IPNetwork,
    Mode,
    ObservedRouter,
    ObservedState,
    OwnedObject,
    PbrBinding,
    PbrRule,
    StaticRoute,
    Transit,
    addr_key,
)
from lbauto.errors import StateError
from lbauto.inventory.schema import INTERFACE_RE, MAX_TAG, NAME_RE

__all__ = ["load_state", "state_from_json", "state_to_json"]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
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
        "routers": {name: _router_to_json(r) for name, r in state.routers.items()},
    }


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


def _router_to_json(router: ObservedRouter) -> dict[str, Any]:
    routes = sorted(
        (o for o in router.objects if isinstance(o, StaticRoute)),
        key=lambda r: (_net_key(r.prefix), addr_key(r.next_hop), r.distance, r.tag),
    )
    rules = sorted(
        (o for o in router.objects if isinstance(o, PbrRule)),
        key=lambda r: (r.seq, _net_key(r.prefix), addr_key(r.next_hop)),
    )
    bindings = sorted(o for o in router.objects if isinstance(o, PbrBinding))
    return {
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


# ------------------------------------------------------------------------------------ reading


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "null" if value is None else f"the number {value!r}")


def _fail(what: str) -> NoReturn:
    raise PydanticCustomError("state", "{what}", {"what": what})


def _address(value: Any) -> IPAddress:
    if isinstance(value, str) and "%" not in value:
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            pass
    _fail(f"{value!r} is not an IP address")


def _prefix(value: Any) -> IPNetwork:
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value)
        except ValueError:
            pass
    _fail(f"{value!r} is not a prefix such as 192.0.2.10/32")


def _integer(low: int, high: int) -> PlainValidator:
    def check(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        _fail(f"expected an integer from {low} to {high}, got {_kind(value)}")

    return PlainValidator(check)


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


class _RouterDoc(_Doc):
    routes: list[_RouteDoc] = []
    pbr: list[_PbrDoc] = []
    bindings: list[_BindingDoc] = []


class _StateDoc(_Doc):
    agents: dict[str, _AgentDoc] = {}
    routers: dict[str, _RouterDoc] = {}


def _path(loc: tuple[str | int, ...]) -> str:
    out = "$"
    for step in loc:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if _PLAIN_KEY.fullmatch(step) else f"[{step!r}]"
    return out


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel]:
    """The document model a location sits in (for the allowed keys of an unknown one)."""
    path = [s for s in loc if isinstance(s, str)]
    if not path:
        return _StateDoc
    table: dict[tuple[str, ...], type[BaseModel]] = {
        ("agents",): _AgentDoc, ("agents", "vips"): _VipDoc, ("agents", "vips", "transit"):
        _TransitDoc, ("agents", "vips", "drain"): _DrainDoc, ("routers",): _RouterDoc,
        ("routers", "routes"): _RouteDoc, ("routers", "pbr"): _PbrDoc,
        ("routers", "bindings"): _BindingDoc,
    }  # fmt: skip
    # Agent and router names are keys of free-form mappings: drop them from the path.
    shape = (path[0], *path[2:]) if len(path) > 1 else (path[0],)
    return table.get(shape, _StateDoc)


def _message(e: Any) -> tuple[tuple[str | int, ...], str]:
    loc = tuple(e["loc"])
    kind = e["type"]
    if kind in ("state", "state_family"):
        what = e["ctx"]["what"]
        return ((*loc, "next_hop") if kind == "state_family" else loc), what
    if kind == "missing":
        return loc, "missing"
    if kind == "extra_forbidden":
        allowed = ", ".join(sorted(_model_at(loc[:-1]).model_fields))
        return loc, f"unknown key (allowed: {allowed})"
    if kind in ("model_type", "dict_type"):
        return loc, f"expected an object, got {_kind(e['input'])}"
    if kind == "list_type":
        return loc, f"expected a list, got {_kind(e['input'])}"
    return loc, e["msg"]  # pragma: no cover - no other kind expected


def state_from_json(data: object, source: str) -> ObservedState:
    """Parse the JSON form (see the module docstring); ``source`` names it in errors."""
    try:
        doc = _StateDoc.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors(include_url=False)[:MAX_PROBLEMS]:
            loc, what = _message(e)
            lines.append(f"{source}: {_path(loc)}: {what}")
        raise StateError("\n".join(lines)) from err
    problems = [
        f"{source}: {_path(('agents', name) if kind == 'agent' else ('routers', name))}: "
        "name contains characters that are not allowed (use A-Z a-z 0-9 _ . -)"
        for kind, names in (("agent", doc.agents), ("router", doc.routers))
        for name in names
        if not NAME_RE.fullmatch(name)
    ]
    if problems:
        raise StateError("\n".join(problems[:MAX_PROBLEMS]))
    agents = {name: _agent(source, name, agent) for name, agent in doc.agents.items()}
    routers = {name: _router(name, router) for name, router in doc.routers.items()}
    return ObservedState(agents=agents, routers=routers)


def _agent(source: str, name: str, doc: _AgentDoc) -> dict[IPAddress, AgentVip]:
    out: dict[IPAddress, AgentVip] = {}
    for i, vip in enumerate(doc.vips):
        if vip.address in out:
            where = _path(("agents", name, "vips", i, "address"))
            raise StateError(f"{source}: {where}: VIP {vip.address} is listed twice")
        out[vip.address] = AgentVip(
            address=vip.address,
            mode=vip.mode,
            dips=tuple(vip.dips),
            flow_tracking=vip.flow_tracking,
            generation=vip.generation,
            name=vip.name,
            transit=Transit(vip.transit.dip, vip.transit.seconds) if vip.transit else None,
            drain=Drain(tuple(vip.drain.dips), vip.drain.timeout) if vip.drain else None,
        )
    return out


def _router(name: str, doc: _RouterDoc) -> ObservedRouter:
    objects: list[OwnedObject] = [
        StaticRoute(r.prefix, r.next_hop, r.distance, r.tag) for r in doc.routes
    ]
    objects += [PbrRule(r.seq, r.prefix, r.next_hop) for r in doc.pbr]
    objects += [PbrBinding(b.interface, b.version) for b in doc.bindings]
    return ObservedRouter(name=name, objects=frozenset(objects))
