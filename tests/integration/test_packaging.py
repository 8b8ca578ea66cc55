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
    # the FRR driver is a distribution of its own (napalm-frr) that lbauto depends on
    assert not any(n.startswith("napalm_frr/") for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "Requires-Dist: napalm-frr" in (unpacked / metadata).read_text()
    code = (
        "import sys, ipaddress; sys.path.insert(0, sys.argv[1]);"
        "import importlib.abc; sys.meta_path[:] = [f for f in sys.meta_path"
        " if 'editable' not in type(f).__module__.lower()];"
        "import lbauto, lbauto.platforms.render as r;"
        "from lbauto.core.model import Router, Platform, StaticRoute;"
        "assert lbauto.__file__.startswith(sys.argv[1]), lbauto.__file__;"
        "rt = Router('r1', 'h', 'frr');"
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


def test_driver_wheel_installs_alone_and_needs_only_napalm(tmp_path: Path) -> None:
    """napalm-frr's wheel: the driver, its template and README, a single dependency (napalm);
    installed without lbauto, NAPALM finds the driver by name."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT / "napalm-frr"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("napalm_frr-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "napalm_frr/frr.py" in names and "napalm_frr/templates/set_hostname.j2" in names
    assert not any(n.startswith("lbauto") for n in names)
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires == ["Requires-Dist: napalm>=5"]
    assert "# napalm-frr: a NAPALM driver for FRRouting" in metadata  # README as description
    # a fresh venv with the driver wheel only; napalm and its dependencies come from this
    # interpreter's site-packages as a plain path (its .pth files, lbauto's editable finder
    # among them, are not processed there)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    site = next(Path(p) for p in sys.path if p.endswith("site-packages"))
    (next((venv / "lib").glob("python3*/site-packages")) / "deps.pth").write_text(f"{site}\n")
    code = (
        "import importlib.util, napalm, napalm_frr;"
        "assert importlib.util.find_spec('lbauto') is None;"
        "assert napalm.get_network_driver('frr').__module__ == 'napalm_frr.frr';"
        "print(napalm_frr.__file__)"
    )
    res = subprocess.run(
        [str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    assert str(venv) in res.stdout
