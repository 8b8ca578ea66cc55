"""Adding a platform is one folder: the registry finds it, nothing else is edited."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbauto.core.model import StaticRoute
from lbauto.platforms import ALIASES, PLATFORMS, canonical_name, discover, parse_owned

NEW_PLATFORM = """
from lbauto.platforms._parsing import Found, addr, blocks, net, route_tail
from lbauto.platforms.spec import PlatformSpec


def parse(text: str, f: Found) -> None:
    for head, _ in blocks(text):
        if head[:2] == ["set", "route"] and len(head) >= 4:
            tail = route_tail(head[4:], f, distance_first=True)
            if tail:
                f.route(net(head[2]), addr(head[3]), *tail)


SPEC = PlatformSpec(
    name="vyos",
    parser=parse,
    template_folder="vyos",
    napalm_driver="vyos",
    commit_confirm=True,
    aliases=("vyos_ssh",),
)
"""


@pytest.fixture
def plugins(tmp_path: Path) -> Iterator[Path]:
    pkg = tmp_path / "lbauto_test_platforms"
    (pkg / "vyos").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "vyos" / "__init__.py").write_text(NEW_PLATFORM)
    (pkg / "_shared").mkdir()  # private folders are helpers, not platforms
    (pkg / "_shared" / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp_path))
    try:
        yield pkg
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("lbauto_test_platforms")]:
            del sys.modules[name]


def test_a_new_folder_is_a_new_platform(plugins: Path) -> None:
    found = discover([str(plugins)], "lbauto_test_platforms")
    assert list(found) == ["vyos"]
    spec = found["vyos"]
    f_text = "set route 192.0.2.10/32 198.51.100.1 tag 4242\n"
    from lbauto.platforms._parsing import Found

    got = Found(4242)
    spec.parser(f_text, got)
    assert [str(o.prefix) for o in got.objects() if isinstance(o, StaticRoute)] == ["192.0.2.10/32"]


def test_a_folder_whose_spec_names_another_platform_is_refused(plugins: Path) -> None:
    (plugins / "vyos" / "__init__.py").write_text(NEW_PLATFORM.replace('name="vyos"', 'name="x"'))
    with pytest.raises(ImportError, match=r"SPEC\.name is 'x', not 'vyos'"):
        discover([str(plugins)], "lbauto_test_platforms")


def test_the_shipped_platforms_and_their_aliases() -> None:
    assert list(PLATFORMS) == ["eos", "frr", "ios", "junos", "nxos"]
    for name, spec in PLATFORMS.items():
        assert spec.name == name
        assert ALIASES[name] == name
    for alias, name in {"arista_eos": "eos", "cisco_ios": "ios", "nxos_ssh": "nxos"}.items():
        assert canonical_name(alias) == name
        assert canonical_name(alias.upper()) == name
    assert canonical_name("vyos") is None


def test_parse_owned_refuses_an_unknown_platform() -> None:
    from lbauto.errors import StateError

    with pytest.raises(StateError, match="no running-config parser for platform 'vyos'"):
        parse_owned("vyos", "", 4242)
