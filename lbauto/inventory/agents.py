"""``agents.yaml``: the LB agents (control API, data-plane next hops, where their token is)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from lbauto.inventory._values import YMap, YSeq
from lbauto.inventory._yaml import YamlFile
from lbauto.inventory.fields import (
    ENV_RE,
    ENV_RULE,
    NAME_RE,
    NAME_RULE,
    Entry,
    check_keys,
    get_address,
    get_pattern,
    get_str,
    get_url,
    type_name,
)
from lbauto.inventory.vips import VipSource
from lbauto.core.model import Agent

AGENT_KEYS = ("name", "api", "address", "address6", "token_env", "token_file", "ca_file")


def load_agents(file: YamlFile, doc: object, base: Path, vips: list[VipSource]) -> list[Agent]:
    """Every valid agent in file order. ``base`` anchors relative token and CA file paths;
    ``vips`` decide which next-hop families every agent needs."""
    top = Entry(file, None, "")
    if file.broken:
        return []
    if not isinstance(doc, YMap) or "agents" not in doc.values:
        top.error("no top-level `agents:` list", "start the file with `agents:` and list the LBs")
        return []
    check_keys(doc, ("agents",), top)
    seq = doc.values["agents"]
    if not isinstance(seq, YSeq) or not seq.items:
        top.error(
            f"agents must be a non-empty list, got {type_name(seq)}",
            "list at least one agent: `- name: lb1`",
            doc.lines["agents"],
        )
        return []
    first_of = _first_vip_per_family(vips)
    out: list[Agent] = []
    names: dict[str, int] = {}
    for i, item in enumerate(seq.items):
        entry = Entry(file, seq.lines[i], f"agents[{i}]")
        agent = _load_agent(entry, i, item, base, first_of)
        if agent is None:
            continue
        if agent.name in names:
            entry.error(
                f"duplicate agent name {agent.name!r}, first at line {names[agent.name]}",
                "give every agent its own name",
            )
            continue
        names[agent.name] = seq.lines[i]
        out.append(agent)
    return out


def _first_vip_per_family(vips: list[VipSource]) -> dict[int, VipSource]:
    first: dict[int, VipSource] = {}
    for src in vips:
        first.setdefault(src.vip.address.version, src)
        if len(first) == 2:
            break
    return first


def _load_agent(
    entry: Entry, index: int, item: object, base: Path, first_of: dict[int, VipSource]
) -> Agent | None:
    if not isinstance(item, YMap):
        entry.error(f"must be a mapping, got {type_name(item)}", "write `- name: lb1` etc.")
        return None
    check_keys(item, AGENT_KEYS, entry)
    name = get_pattern(item, "name", entry, NAME_RE, NAME_RULE, required=True)
    if name is not None:
        entry.label = f"agents[{index}] {name!r}"
    api = get_url(item, "api", entry)
    address = _next_hop(item, "address", entry, 4, first_of)
    address6 = _next_hop(item, "address6", entry, 6, first_of)
    if "address" not in item.values and "address6" not in item.values:
        entry.error("address is missing", "add `address:` (the agent's data-plane IPv4 address)")
    token_env = get_pattern(item, "token_env", entry, ENV_RE, ENV_RULE)
    token_file = _path(item, "token_file", entry, base)
    if token_env is not None and token_file is not None:
        entry.error("both token_env and token_file are set", "keep one of them")
    elif token_env is None and token_file is None and entry.ok:
        entry.error("no token_env or token_file", "say where the agent's API token comes from")
    ca_file = _path(item, "ca_file", entry, base)
    if not entry.ok or name is None or api is None:
        return None
    assert address is None or isinstance(address, ipaddress.IPv4Address)
    assert address6 is None or isinstance(address6, ipaddress.IPv6Address)
    return Agent(name, api, address, address6, token_env, token_file, ca_file)


def _next_hop(
    item: YMap, key: str, entry: Entry, version: int, first_of: dict[int, VipSource]
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The agent's IPv4 (``address``) or IPv6 (``address6``) next hop, required when a VIP of
    that family exists: routers need it for the VIP's LB route."""
    need = first_of.get(version)
    role = "address" if version == 4 else "address6"
    if key not in item.values or item.values[key] is None:
        if need is not None and (version == 6 or "address6" in item.values):
            entry.error(
                f"{key} is missing but VIP {need.vip.name!r} ({need.vip.address}) is IPv{version}",
                f"add `{key}:`, the agent's IPv{version} next hop for the LB routes",
            )
        return None
    value = get_address(item, key, entry, role, required=False)
    if value is not None and value.version != version:
        entry.error(
            f"{key} {value} is not an IPv{version} address",
            f"{key} holds the agent's IPv{version} next hop",
            item.lines[key],
        )
        return None
    return value


def _path(item: YMap, key: str, entry: Entry, base: Path) -> Path | None:
    value = get_str(item, key, entry)
    if value is None:
        return None
    if "\0" in value:
        entry.error(f"{key} contains a NUL character", "give a plain file path", item.lines[key])
        return None
    return base / value
