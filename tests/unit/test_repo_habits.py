"""The repository's habits hold: one version, the declared license's text, a changelog with an
Unreleased section, pre-commit hooks that need no network, warnings as errors, mypy on tests."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import yaml

import lbauto
from tests.builders import REPO


def pyproject() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def test_the_version_is_written_once_in_the_package() -> None:
    project = pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    dynamic = pyproject()["tool"]["setuptools"]["dynamic"]
    assert dynamic["version"] == {"attr": "lbauto.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([abc]\d+|\.dev\d+)?", lbauto.__version__)


def test_license_file_is_the_declared_apache_2_0() -> None:
    assert pyproject()["project"]["license"] == "Apache-2.0"
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    # all nine sections of the terms
    for n, title in enumerate(
        [
            "Definitions",
            "Grant of Copyright License",
            "Grant of Patent License",
            "Redistribution",
            "Submission of Contributions",
            "Trademarks",
            "Disclaimer of Warranty",
            "Limitation of Liability",
            "Accepting Warranty or Additional Liability",
        ],
        start=1,
    ):
        assert f"{n}. {title}." in text, title


def test_changelog_has_an_unreleased_section_first() -> None:
    headings = re.findall(r"^## (.+)$", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert headings[0] == "[Unreleased]"
    assert f"[{lbauto.__version__}]" in headings


def test_pre_commit_hooks_are_local_and_run_the_venv_tools() -> None:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    (repo,) = config["repos"]
    assert repo["repo"] == "local"  # nothing is fetched
    entries = {hook["id"]: hook["entry"] for hook in repo["hooks"]}
    assert set(entries) == {"ruff-check", "ruff-format", "mypy"}
    assert all(entry.startswith(".venv/bin/") for entry in entries.values())


def test_warnings_are_errors_and_mypy_checks_the_tests() -> None:
    tool = pyproject()["tool"]
    assert tool["pytest"]["ini_options"]["filterwarnings"][0] == "error"
    mypy = tool["mypy"]
    assert mypy["strict"] is True and "tests" in mypy["files"]
    assert tool["coverage"]["report"]["fail_under"] > 0
