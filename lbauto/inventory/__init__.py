"""Load and validate an inventory directory into a :class:`lbauto.core.model.Inventory`.

An inventory directory holds::

    vips.yaml       required   the desired VIPs
    agents.yaml     required   the LB agents
    hosts.yaml      optional   routers (Nornir SimpleInventory); none = plan the agents only
    groups.yaml     optional   Nornir groups the hosts inherit from
    defaults.yaml   optional   Nornir defaults
    lbauto.yaml     optional   template_dir, state_dir (relative to the inventory directory)

:func:`load_inventory` checks everything and raises one :class:`InventoryError` listing every
problem, one line each: ``<file>:<line>: <entry>: <what is wrong> (<how to fix>)``.
"""

from __future__ import annotations

from pathlib import Path

from lbauto.errors import InventoryError
from lbauto.inventory._values import YMap
from lbauto.inventory._yaml import Problems, YamlFile
from lbauto.inventory.agents import load_agents
from lbauto.inventory.fields import (
    INTERFACE_RE,
    NAME_RE,
    Entry,
    check_keys,
    get_str,
    type_name,
)
from lbauto.inventory.routers import RouterFiles, load_routers
from lbauto.inventory.vips import load_vips
from lbauto.core.model import Inventory

__all__ = ["INTERFACE_RE", "NAME_RE", "InventoryError", "load_inventory"]

SETTINGS_KEYS = ("template_dir", "state_dir")
DEFAULT_STATE_DIR = ".lbauto"


def load_inventory(path: Path) -> Inventory:
    """Read and validate the inventory in directory ``path``.

    Raises :class:`InventoryError` with every problem found, not just the first.
    """
    problems = Problems()
    if not path.is_dir():
        raise InventoryError([f"{path}: not a directory (give the inventory directory)"])
    vips_file = _required(path, "vips.yaml", "vips", problems)
    agents_file = _required(path, "agents.yaml", "agents", problems)
    vips = load_vips(vips_file, vips_file.load()) if vips_file else []
    agents = load_agents(agents_file, agents_file.load(), path, vips) if agents_file else []
    routers = load_routers(_router_files(path, problems), vips)
    template_dir, state_dir = _settings(path, problems)
    if problems:
        order = [
            str(path / n)
            for n in (
                "vips.yaml",
                "agents.yaml",
                "hosts.yaml",
                "groups.yaml",
                "defaults.yaml",
                "lbauto.yaml",
            )
        ]
        raise InventoryError(problems.lines(order))
    return Inventory(
        path=path,
        routers=tuple(routers),
        agents=tuple(agents),
        vips=tuple(src.vip for src in vips),
        template_dir=template_dir,
        state_dir=state_dir,
    )


def _required(path: Path, name: str, key: str, problems: Problems) -> YamlFile | None:
    file = path / name
    if file.is_file():
        return YamlFile(file, problems)
    hint = (
        f"; found {file.with_suffix('.yml').name}, rename it"
        if file.with_suffix(".yml").exists()
        else ""
    )
    problems.add(
        str(file), None, "", f"file not found{hint}", f"create it with a top-level `{key}:` list"
    )
    return None


def _optional(path: Path, name: str, problems: Problems) -> YamlFile | None:
    file = path / name
    return YamlFile(file, problems) if file.is_file() else None


def _router_files(path: Path, problems: Problems) -> RouterFiles:
    files = RouterFiles()
    files.hosts = _optional(path, "hosts.yaml", problems)
    files.groups = _optional(path, "groups.yaml", problems)
    files.defaults = _optional(path, "defaults.yaml", problems)
    files.hosts_doc = files.hosts.load() if files.hosts else None
    files.groups_doc = files.groups.load() if files.groups else None
    files.defaults_doc = files.defaults.load() if files.defaults else None
    return files


def _settings(path: Path, problems: Problems) -> tuple[Path | None, Path]:
    """``lbauto.yaml``: where template overrides and lbauto's state live."""
    state_dir = path / DEFAULT_STATE_DIR
    file = _optional(path, "lbauto.yaml", problems)
    if file is None:
        return None, state_dir
    doc = file.load()
    if doc is None:
        return None, state_dir
    entry = Entry(file, None, "")
    if not isinstance(doc, YMap):
        entry.error(f"must be a mapping, got {type_name(doc)}", "write `state_dir: .lbauto`")
        return None, state_dir
    check_keys(doc, SETTINGS_KEYS, entry)
    template = get_str(doc, "template_dir", entry)
    state = get_str(doc, "state_dir", entry)
    return (path / template if template else None), (path / state if state else state_dir)
