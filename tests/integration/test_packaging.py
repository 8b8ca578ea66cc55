"""A wheel of lbauto carries its templates and renders from them (no source tree needed)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration]


def test_wheel_ships_templates_and_renders(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("lbauto-*.whl")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(unpacked)
    for platform in ("frr", "eos", "ios", "nxos", "junos"):
        assert f"lbauto/_templates/{platform}/config.j2" in names
    assert "napalm_frr/__init__.py" in names
    code = (
        "import sys, ipaddress; sys.path.insert(0, sys.argv[1]);"
        "import importlib.abc; sys.meta_path[:] = [f for f in sys.meta_path"
        " if 'editable' not in type(f).__module__.lower()];"
        "import lbauto, lbauto.platforms.render as r;"
        "from lbauto.core.model import Router, Platform, StaticRoute;"
        "assert lbauto.__file__.startswith(sys.argv[1]), lbauto.__file__;"
        "rt = Router('r1', 'h', "frr");"
        "o = StaticRoute(ipaddress.ip_network('192.0.2.10/32'),"
        " ipaddress.ip_address('198.51.100.10'), 200, 4242);"
        "print(r.render_config(rt, frozenset({o})))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(unpacked)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "ip route 192.0.2.10/32 198.51.100.10 tag 4242 200" in res.stdout
