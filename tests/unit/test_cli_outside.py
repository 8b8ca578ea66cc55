"""``--allow-outside-inventory`` is the operator's explicit consent to files outside the
inventory directory (issue 11, item 6): without it they are refused, with it every command
and every reload of the inventory (apply's re-read after a scale) keeps the choice."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from lbauto.cli import app
from lbauto.inventory import load_inventory

EXAMPLE = Path(__file__).parents[2] / "inventories" / "example"


def _inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "inv"
    shutil.copytree(EXAMPLE, inv, ignore=shutil.ignore_patterns(".lbauto", "state.json"))
    (tmp_path / "shared-templates" / "frr").mkdir(parents=True)
    (inv / "lbauto.yaml").write_text("template_dir: ../shared-templates\n")
    return inv


def test_outside_template_dir_needs_the_flag(tmp_path: Path) -> None:
    inv = _inventory(tmp_path)
    runner = CliRunner()
    refused = runner.invoke(app, ["validate", "-i", str(inv)])
    assert refused.exit_code == 1
    assert "template_dir is outside the inventory directory" in refused.output
    allowed = runner.invoke(app, ["--allow-outside-inventory", "validate", "-i", str(inv)])
    assert allowed.exit_code == 0, allowed.output


def test_the_choice_travels_with_the_inventory(tmp_path: Path) -> None:
    inv = _inventory(tmp_path)
    loaded = load_inventory(inv, allow_outside=True)
    assert loaded.allow_outside
    assert load_inventory(loaded.path, allow_outside=loaded.allow_outside).template_dir == (
        inv / "../shared-templates"
    )
