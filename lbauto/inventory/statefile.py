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
unknown keys are errors (they are usually typos). :func:`state_to_json` writes the canonical
form (VIPs and objects sorted, optional keys left out when unset) and
``state_from_json(state_to_json(s), ...) == s`` for every state.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from lbauto.errors import StateError
from lbauto.inventory.fields import INTERFACE_RE, NAME_RE
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

__all__ = ["load_state", "state_from_json", "state_to_json"]

T = TypeVar("T")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
MAX_TAG = 4294967295


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


class _At:
    """A position in the JSON document; errors name the file and the JSON path."""

    def __init__(self, source: str, path: str = "$") -> None:
        self.source = source
        self.path = path

    def key(self, key: str) -> _At:
        step = f".{key}" if _PLAIN_KEY.fullmatch(key) else f"[{key!r}]"
        return _At(self.source, self.path + step)

    def index(self, i: int) -> _At:
        return _At(self.source, f"{self.path}[{i}]")

    def fail(self, what: str) -> NoReturn:
        raise StateError(f"{self.source}: {self.path}: {what}")


def state_from_json(data: object, source: str) -> ObservedState:
    """Parse the JSON form (see the module docstring); ``source`` names it in errors."""
    at = _At(source)
    top = _object(at, data, {"agents", "routers"}, set())
    agents = {
        name: _agent(at.key("agents").key(name), name, value)
        for name, value in _object(at.key("agents"), top.get("agents", {}), None, set()).items()
    }
    routers = {
        name: _router(at.key("routers").key(name), name, value)
        for name, value in _object(at.key("routers"), top.get("routers", {}), None, set()).items()
    }
    return ObservedState(agents=agents, routers=routers)


def _object(at: _At, value: object, allowed: set[str] | None, required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        at.fail(f"expected an object, got {_kind(value)}")
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            at.key(unknown[0]).fail(f"unknown key (allowed: {', '.join(sorted(allowed))})")
    for key in sorted(required - set(value)):
        at.key(key).fail("missing")
    return value


def _list(at: _At, value: object, item: Callable[[_At, object], T]) -> list[T]:
    if not isinstance(value, list):
        at.fail(f"expected a list, got {_kind(value)}")
    return [item(at.index(i), v) for i, v in enumerate(value)]


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "null" if value is None else f"the number {value!r}")


def _name(at: _At, name: str) -> str:
    if not NAME_RE.fullmatch(name):
        at.fail("name contains characters that are not allowed (use A-Z a-z 0-9 _ . -)")
    return name


def _address(at: _At, value: object) -> IPAddress:
    if isinstance(value, str) and "%" not in value:
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            pass
    at.fail(f"{value!r} is not an IP address")


def _prefix(at: _At, value: object) -> IPNetwork:
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value)
        except ValueError:
            pass
    at.fail(f"{value!r} is not a prefix such as 192.0.2.10/32")


def _int(at: _At, value: object, low: int, high: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    at.fail(f"expected an integer from {low} to {high}, got {_kind(value)}")


def _seconds(at: _At, value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    at.fail(f"expected a number of seconds >= 0, got {_kind(value)}")


def _bool(at: _At, value: object) -> bool:
    if isinstance(value, bool):
        return value
    at.fail(f"expected true or false, got {_kind(value)}")


def _agent(at: _At, name: str, value: object) -> Mapping[IPAddress, AgentVip]:
    _name(at, name)
    vips = _list(at.key("vips"), _object(at, value, {"vips"}, set()).get("vips", []), _agent_vip)
    out: dict[IPAddress, AgentVip] = {}
    for i, vip in enumerate(vips):
        if vip.address in out:
            at.key("vips").index(i).key("address").fail(f"VIP {vip.address} is listed twice")
        out[vip.address] = vip
    return out


_VIP_KEYS = {"address", "mode", "dips", "flow_tracking", "name", "generation", "transit", "drain"}


def _agent_vip(at: _At, value: object) -> AgentVip:
    obj = _object(at, value, _VIP_KEYS, {"address", "mode", "dips", "flow_tracking"})
    mode = obj["mode"]
    if mode not in {m.value for m in Mode}:
        at.key("mode").fail(f"{mode!r} is not a mode (use multi, single or empty)")
    name = obj.get("name")
    if name is not None and not (isinstance(name, str) and NAME_RE.fullmatch(name)):
        at.key("name").fail(f"{name!r} is not a valid VIP name")
    generation = obj.get("generation")
    return AgentVip(
        address=_address(at.key("address"), obj["address"]),
        mode=Mode(mode),
        dips=tuple(_list(at.key("dips"), obj["dips"], _address)),
        flow_tracking=_bool(at.key("flow_tracking"), obj["flow_tracking"]),
        generation=None
        if generation is None
        else _int(at.key("generation"), generation, 0, 2**63 - 1),
        name=name,
        transit=_transit(at.key("transit"), obj.get("transit")),
        drain=_drain(at.key("drain"), obj.get("drain")),
    )


def _transit(at: _At, value: object) -> Transit | None:
    if value is None:
        return None
    obj = _object(at, value, {"dip", "seconds"}, {"dip", "seconds"})
    return Transit(_address(at.key("dip"), obj["dip"]), _seconds(at.key("seconds"), obj["seconds"]))


def _drain(at: _At, value: object) -> Drain | None:
    if value is None:
        return None
    obj = _object(at, value, {"dips", "timeout"}, {"dips", "timeout"})
    dips = tuple(_list(at.key("dips"), obj["dips"], _address))
    return Drain(dips, _seconds(at.key("timeout"), obj["timeout"]))


def _router(at: _At, name: str, value: object) -> ObservedRouter:
    _name(at, name)
    obj = _object(at, value, {"routes", "pbr", "bindings"}, set())
    objects: list[OwnedObject] = []
    objects += _list(at.key("routes"), obj.get("routes", []), _route)
    objects += _list(at.key("pbr"), obj.get("pbr", []), _pbr_rule)
    objects += _list(at.key("bindings"), obj.get("bindings", []), _binding)
    return ObservedRouter(name=name, objects=frozenset(objects))


def _same_family(at: _At, prefix: IPNetwork, next_hop: IPAddress) -> None:
    if prefix.version != next_hop.version:
        at.key("next_hop").fail(f"next hop {next_hop} is not in the family of {prefix}")


def _route(at: _At, value: object) -> StaticRoute:
    obj = _object(
        at,
        value,
        {"prefix", "next_hop", "distance", "tag"},
        {"prefix", "next_hop", "distance", "tag"},
    )
    route = StaticRoute(
        prefix=_prefix(at.key("prefix"), obj["prefix"]),
        next_hop=_address(at.key("next_hop"), obj["next_hop"]),
        distance=_int(at.key("distance"), obj["distance"], 1, 255),
        tag=_int(at.key("tag"), obj["tag"], 1, MAX_TAG),
    )
    _same_family(at, route.prefix, route.next_hop)
    return route


def _pbr_rule(at: _At, value: object) -> PbrRule:
    obj = _object(at, value, {"seq", "prefix", "next_hop"}, {"seq", "prefix", "next_hop"})
    rule = PbrRule(
        seq=_int(at.key("seq"), obj["seq"], 1, MAX_TAG),
        prefix=_prefix(at.key("prefix"), obj["prefix"]),
        next_hop=_address(at.key("next_hop"), obj["next_hop"]),
    )
    _same_family(at, rule.prefix, rule.next_hop)
    return rule


def _binding(at: _At, value: object) -> PbrBinding:
    obj = _object(at, value, {"interface", "version"}, {"interface"})
    interface = obj["interface"]
    # Observed bindings are rendered into removal config: same rule as the inventory's names.
    if not (isinstance(interface, str) and INTERFACE_RE.fullmatch(interface)):
        at.key("interface").fail(f"{interface!r} is not a valid interface name")
    version = obj.get("version", 4)
    if version not in (4, 6) or isinstance(version, bool):
        at.key("version").fail(f"expected 4 or 6, got {_kind(version)}")
    return PbrBinding(interface=interface, version=version)
