"""A wheel of lbauto runs a playbook: ``lbauto play --check`` against the example inventory
from the installed package alone (templates from inside the wheel, no source tree on the path
but the playbook and inventory files themselves)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration]

# Run lbauto's console entry point from the unpacked wheel (an editable install of the source
# tree is taken off the import path, so a file missing from the wheel fails here).
RUN = (
    "import sys; sys.path.insert(0, sys.argv[1]);"
    "sys.meta_path[:] = [f for f in sys.meta_path"
    " if 'editable' not in type(f).__module__.lower() or 'lbauto' not in repr(vars(f))];"
    "import lbauto; assert lbauto.__file__.startswith(sys.argv[1]), lbauto.__file__;"
    "from lbauto.cli import main; sys.argv = ['lbauto', *sys.argv[2:]]; main()"
)


def test_wheel_runs_a_playbook_in_check_mode(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("lbauto-*.whl")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(unpacked)
    # The operator's files: a copy, so the check also proves nothing is written next to them.
    work = tmp_path / "work"
    shutil.copytree(ROOT / "inventories" / "example", work / "inventory")
    shutil.copytree(ROOT / "playbooks", work / "playbooks")
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    args = ["play", "playbooks/reconcile.yml", "-i", "inventory", "--check", "--diff"]
    res = subprocess.run(
        [sys.executable, "-c", RUN, str(unpacked), *args, "--state", "inventory/state.json"],
        capture_output=True,
        text=True,
        cwd=work,
        check=False,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PLAY RECAP" in res.stdout and "failed=0" in res.stdout, res.stdout
    assert "check mode: nothing was changed" in res.stdout
    # rendered from the wheel's templates (an FRR and a Junos line of the --diff output)
    assert "+ ip route 192.0.2.17/32 198.51.100.30 tag 4242" in res.stdout, res.stdout
    assert "set routing-options static route 192.0.2.17/32 tag 4242" in res.stdout
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before
