"""``agents.yaml``: the LB agents (control API, data-plane next hops, where their token is).

:class:`~lbauto.inventory.schema.AgentsFile` checks every entry; the checks here relate values:
one token source per agent, unique names, and the next hops every VIP family needs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from lbauto.core.model import Agent
from lbauto.inventory._errors import Labeler, Loc, Reporter
from lbauto.inventory._linemap import YMap, YSeq
from lbauto.inventory._yaml import YamlFile
from lbauto.inventory.schema import NAME_RE, AgentEntry, AgentsFile
from lbauto.inventory.vips import VipSource


def _labeler(file: YamlFile, doc: YMap) -> Labeler:
    items = doc.get("agents")

    def label(loc: Loc) -> tuple[str, int]:
        if len(loc) < 2 or loc[0] != "agents" or not isinstance(loc[1], int):
            return "", 0
        index = loc[1]
        item = items[index] if isinstance(items, YSeq) and index < len(items) else None
        name = item.get("name") if isinstance(item, YMap) else None
        if isinstance(name, str) and NAME_RE.fullmatch(name):
            return f"agents[{index}] {file.quote(name)}", 2
        return f"agents[{index}]", 2

    return label


def load_agents(file: YamlFile, doc: object, base: Path, vips: list[VipSource]) -> list[Agent]:
    """Every valid agent in file order. ``base`` anchors relative token and CA file paths;
    ``vips`` decide which next-hop families every agent needs."""
    if file.broken:
        return []
    if not isinstance(doc, YMap) or "agents" not in doc:
        file.error(
            None,
            "",
            "no top-level `agents:` list",
            "start the file with `agents:` and list the LBs",
        )
        return []
    rep = Reporter(file, doc, AgentsFile, _labeler(file, doc))
    raw = doc.get("agents")
    parsed = rep.validate(AgentsFile.model_validate)
    if rep.flooded:
        return []
    entries = list(enumerate(parsed.agents)) if parsed else _salvage(raw, rep.failed)
    first_of: dict[int, VipSource] = {}
    for src in vips:
        first_of.setdefault(src.vip.address.version, src)
    for index, item in enumerate(raw if isinstance(raw, YSeq) else ()):
        if isinstance(item, YMap):
            _check_agent(rep, index, item, first_of)
    out: list[Agent] = []
    names: dict[str, int] = {}
    for index, entry in entries:
        if ("agents", index) in rep.failed:
            continue
        line = raw.lines[index] if isinstance(raw, YSeq) else 0
        if entry.name in names:
            rep.add(
                ("agents", index),
                f"duplicate agent name {rep.file.quote(entry.name)}, first at line "
                f"{names[entry.name]}",
                "give every agent its own name",
            )
            continue
        names[entry.name] = line
        out.append(
            Agent(
                entry.name,
                entry.api,
                entry.address,
                entry.address6,
                entry.token_env,
                base / entry.token_file if entry.token_file else None,
                base / entry.ca_file if entry.ca_file else None,
            )
        )
    return out


def _salvage(raw: object, failed: dict[Loc, set[str]]) -> list[tuple[int, AgentEntry]]:
    out: list[tuple[int, AgentEntry]] = []
    if not isinstance(raw, YSeq):
        return out
    for index, item in enumerate(raw):
        if ("agents", index) in failed:
            continue
        try:
            out.append((index, AgentEntry.model_validate(item)))
        except ValidationError:  # reported already, as part of the whole file
            continue
    return out


def _check_agent(rep: Reporter, index: int, item: YMap, first_of: dict[int, VipSource]) -> None:
    at: Loc = ("agents", index)
    for version, key in ((4, "address"), (6, "address6")):
        need = first_of.get(version)
        # An agent with neither address is reported once, below; IPv6 is always required by
        # an IPv6 VIP, IPv4 by an IPv4 VIP once the agent names any next hop.
        given = item.get(key) is not None
        if need is not None and not given and (version == 6 or "address6" in item):
            rep.add(
                at,
                f"{key} is missing but VIP {need.shown} ({need.vip.address}) is IPv{version}",
                f"add `{key}:`, the agent's IPv{version} next hop for the LB routes",
                kind=f"{key} missing",
            )
    if "address" not in item and "address6" not in item:
        rep.add(at, "address is missing", "add `address:` (the agent's data-plane IPv4 address)")
    token_env, token_file = item.get("token_env") is not None, item.get("token_file") is not None
    if token_env and token_file:
        rep.add(at, "both token_env and token_file are set", "keep one of them")
    elif not token_env and not token_file and at not in rep.failed:
        rep.add(at, "no token_env or token_file", "say where the agent's API token comes from")
