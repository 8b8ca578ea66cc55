"""Router platforms: one folder per platform, found at import.

A platform is ``lbauto/platforms/<name>/`` exporting ``SPEC`` (a :class:`PlatformSpec`: facts as
data, its running-config parser, its verification specifics), plus ``templates/<name>/`` and
golden files under ``tests/golden/<name>/``. Adding a platform edits nothing else: the inventory
accepts every name (and alias) found here, the renderer, the parser and the push pipeline look
the platform up in :data:`PLATFORMS`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from lbauto.core.model import OwnedObject, PoolObject
from lbauto.errors import StateError
from lbauto.platforms._parsing import Found
from lbauto.platforms.spec import PlatformSpec

__all__ = [
    "ALIASES",
    "PLATFORMS",
    "PlatformSpec",
    "canonical_name",
    "discover",
    "parse_owned",
    "parse_router",
    "spec",
]


def discover(paths: Iterable[str], package: str) -> dict[str, PlatformSpec]:
    """Every platform folder (a subpackage exporting ``SPEC``) of ``package`` found on
    ``paths``, by name."""
    found: dict[str, PlatformSpec] = {}
    for info in sorted(pkgutil.iter_modules(list(paths)), key=lambda i: i.name):
        if not info.ispkg or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        platform: PlatformSpec = module.SPEC
        if platform.name != info.name:
            raise ImportError(
                f"{module.__name__}.SPEC.name is {platform.name!r}, not {info.name!r}"
            )
        found[platform.name] = platform
    return found


#: Every platform by its inventory name, in name order.
PLATFORMS: Mapping[str, PlatformSpec] = MappingProxyType(discover(__path__, __name__))
#: Alias (Nornir, NAPALM, netmiko names) -> platform name; names map to themselves.
ALIASES: Mapping[str, str] = MappingProxyType(
    {**{a: p.name for p in PLATFORMS.values() for a in p.aliases}, **{n: n for n in PLATFORMS}}
)


def canonical_name(name: str) -> str | None:
    """The platform ``name`` or one of its aliases stands for (case-insensitive, ``-`` read as
    ``_`` as NetBox writes ``arista-eos``), else None."""
    return ALIASES.get(name.lower().replace("-", "_"))


def spec(platform: str) -> PlatformSpec:
    """The spec of ``platform`` (an inventory's validated name)."""
    return PLATFORMS[platform]


def parse_owned(platform: str, running_config: str, tag: int) -> frozenset[OwnedObject]:
    """The lbauto-owned objects in ``running_config``: static routes carrying ``tag``, the
    LBAUTO-named PBR rules and interface bindings, and the VIPs the BGP import policy accepts.
    Junos expects ``set`` format."""
    return parse_router(platform, running_config, tag)[0]


def parse_router(
    platform: str, running_config: str, tag: int
) -> tuple[frozenset[OwnedObject], frozenset[PoolObject]]:
    """(:func:`parse_owned`, the router-wide BGP objects: peer group and agent neighbors)."""
    platform_spec = PLATFORMS.get(platform)
    if platform_spec is None:
        raise StateError(f"no running-config parser for platform {platform!r}")
    found = Found(tag, platform_spec.default_distance)
    platform_spec.parser(running_config, found)
    return found.objects(), found.pool()
