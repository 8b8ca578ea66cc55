"""Load and validate an inventory directory into a :class:`lbauto.core.model.Inventory`.

An inventory directory holds::

    vips.yaml       required   the desired VIPs
    agents.yaml     required   the LB agents
    hosts.yaml      optional   routers (Nornir SimpleInventory); none = plan the agents only
    groups.yaml     optional   Nornir groups the hosts inherit from
    defaults.yaml   optional   Nornir defaults
    lbauto.yaml     optional   template_dir, state_dir, inventory (Nornir plugin), limits,
                               backend (shared lock and journal in etcd)

Every file is checked by a pydantic model (:mod:`lbauto.inventory.schema`); routers are loaded by
Nornir (:mod:`lbauto.inventory.routers`). :func:`load_inventory` raises one
:class:`InventoryError` listing every problem, one line each:
``<file>:<line>: <entry>: <what is wrong> (<how to fix>)``.

Files and the template override folder must lie inside the inventory directory (symlinks
followed) unless the caller passes ``allow_outside=True`` (the CLI's
``--allow-outside-inventory``): an inventory then cannot make lbauto read, quote or render
anything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lbauto.core.model import EtcdBackend, Inventory
from lbauto.errors import InventoryError
from lbauto.inventory._errors import Reporter
from lbauto.inventory._linemap import YMap
from lbauto.inventory._yaml import OUTSIDE_FIX, Limits, YamlFile, is_inside
from lbauto.inventory.agents import load_agents
from lbauto.inventory.problems import Problems
from lbauto.inventory.routers import NornirSource, load_routers, nornir_kwargs, scan_secrets
from lbauto.inventory.schema import INTERFACE_RE, NAME_RE, SettingsFile
from lbauto.inventory.vips import load_vips

__all__ = [
    "INTERFACE_RE",
    "NAME_RE",
    "InventoryError",
    "Limits",
    "load_inventory",
    "nornir_config",
]

DEFAULT_STATE_DIR = ".lbauto"
FILE_ORDER = (
    "vips.yaml",
    "agents.yaml",
    "hosts.yaml",
    "groups.yaml",
    "defaults.yaml",
    "lbauto.yaml",
)


class _Settings:
    def __init__(self, path: Path) -> None:
        self.template_dir: Path | None = None
        self.state_dir = path / DEFAULT_STATE_DIR
        self.source = NornirSource()
        self.limits = Limits()
        self.backend: EtcdBackend | None = None
        self.workers: int | None = None


def load_inventory(
    path: Path, *, allow_outside: bool = False, limits: Limits | None = None
) -> Inventory:
    """Read and validate the inventory in directory ``path``.

    ``allow_outside``: accept inventory files and a ``template_dir`` that resolve outside the
    directory (their content is still never quoted in messages). ``limits`` overrides
    ``lbauto.yaml``'s. Raises :class:`InventoryError` with every problem found, not just the
    first."""
    if not path.is_dir():
        raise InventoryError([f"{path}: not a directory (give the inventory directory)"])
    problems = Problems()
    settings = _settings(path, problems, allow_outside, limits)
    # A broken lbauto.yaml may name the wrong plugin or options: leave the routers until fixed.
    settings_ok = not problems
    problems.per_kind = settings.limits.per_kind

    def open_file(file: Path) -> YamlFile:
        return YamlFile(
            file, problems, root=path, limits=settings.limits, allow_outside=allow_outside
        )

    vips_file = _required(path / "vips.yaml", "vips", problems, open_file)
    agents_file = _required(path / "agents.yaml", "agents", problems, open_file)
    vips = load_vips(vips_file, vips_file.load()) if vips_file else []
    agents = load_agents(agents_file, agents_file.load(), path, vips) if agents_file else []
    routers = load_routers(path, settings.source, vips, problems, open_file) if settings_ok else []
    if problems:
        raise InventoryError(problems.lines(str(path / name) for name in FILE_ORDER))
    return Inventory(
        path=path,
        routers=tuple(routers),
        agents=tuple(agents),
        vips=tuple(src.vip for src in vips),
        template_dir=settings.template_dir,
        state_dir=settings.state_dir,
        allow_outside=allow_outside,
        backend=settings.backend,
        workers=settings.workers,
    )


def nornir_config(path: Path, *, allow_outside: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``nornir.InitNornir`` that load this inventory's routers (the
    plugin and options of ``lbauto.yaml``, SimpleInventory files made absolute), so a Nornir
    runbook sees the routers exactly as lbauto does."""
    problems = Problems()
    settings = _settings(path, problems, allow_outside, None)
    if problems:
        raise InventoryError(problems.lines([str(path / "lbauto.yaml")]))
    return nornir_kwargs(path, settings.source)


def _required(file: Path, key: str, problems: Problems, open_file: object) -> YamlFile | None:
    if file.is_file():
        return open_file(file)  # type: ignore[operator,no-any-return]
    hint = (
        f"; found {file.with_suffix('.yml').name}, rename it"
        if file.with_suffix(".yml").exists()
        else ""
    )
    problems.add(
        str(file), None, "", f"file not found{hint}", f"create it with a top-level `{key}:` list"
    )
    return None


def _settings(
    path: Path, problems: Problems, allow_outside: bool, limits: Limits | None
) -> _Settings:
    """``lbauto.yaml``: template overrides, lbauto's state, the Nornir plugin, the limits."""
    out = _Settings(path)
    file_path = path / "lbauto.yaml"
    if not file_path.is_file():
        out.limits = limits or out.limits
        return out
    file = YamlFile(file_path, problems, root=path, allow_outside=allow_outside)
    doc = file.load()
    out.limits = limits or out.limits
    if doc is None:
        return out
    rep = Reporter(file, doc, SettingsFile, lambda loc: ("", 0))
    if not isinstance(doc, YMap):
        rep.add((), "must be a mapping", SettingsFile.SHAPE_FIX)
        return out
    try:
        parsed = SettingsFile.model_validate(doc)
    except ValidationError as err:
        rep.validation(err)
        return out
    if parsed.limits is not None and limits is None:
        out.limits = Limits(
            max_file_bytes=(parsed.limits.max_file_mb or 16) * 2**20,
            per_kind=parsed.limits.max_errors_per_kind or out.limits.per_kind,
        )
    inventory_doc = doc.get("inventory")
    if isinstance(inventory_doc, YMap):  # plugin options: no literal secrets either
        scan_secrets(rep, inventory_doc.get("options"), ("inventory", "options"))
    if parsed.inventory is not None:
        inv = parsed.inventory
        out.source = NornirSource(
            inv.plugin,
            dict(inv.options),
            inv.transform_function,
            dict(inv.transform_function_options),
        )
    if parsed.state_dir:
        out.state_dir = path / parsed.state_dir
    out.workers = parsed.workers
    if parsed.backend is not None:
        b = parsed.backend
        out.backend = EtcdBackend(
            endpoints=b.endpoints,
            prefix=b.prefix,
            lease_ttl=b.lease_ttl,
            timeout=float(b.timeout),
            username=b.username,
            password_env=b.password_env,
            ca_file=path / b.ca_file if b.ca_file else None,
            cert_file=path / b.cert_file if b.cert_file else None,
            key_file=path / b.key_file if b.key_file else None,
        )
    if parsed.template_dir:
        template_dir = path / parsed.template_dir
        if not allow_outside and not is_inside(template_dir, path):
            rep.add(
                ("template_dir",),
                "template_dir is outside the inventory directory",
                "keep template overrides inside the inventory (templates run at every "
                + "render); "
                + OUTSIDE_FIX.replace("copy the file into", "move them into"),
            )
        else:
            out.template_dir = template_dir
    return out
