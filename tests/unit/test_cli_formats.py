"""Output formats, uniform across commands: table (whole values, COLUMNS, NO_COLOR), json
(versioned documents), markdown (PR comments within GitHub's size limit); --limit; logs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.unit.conftest import run_cli as run_lbauto
from tests.unit.test_cli_exitcodes import EXAMPLE, STATE

ADDRESS = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b2001:db8[0-9a-f:]*")
COLOR = re.compile(r"\x1b\[[0-9;]*(?:3[0-9]|9[0-7]|38;[0-9;]+)m")


def _plan_doc() -> dict[str, object]:
    res = run_lbauto("plan", "-i", str(EXAMPLE), "--state", str(STATE), "-o", "json")
    assert res.returncode == 0, res.stderr
    doc: dict[str, object] = json.loads(res.stdout)
    return doc


# ------------------------------------------------------------------------------ json


def test_every_offline_command_prints_a_versioned_json_document(tmp_path: Path) -> None:
    plan_file = tmp_path / "p.lbauto"
    runs = {
        "validate": ("validate", "-i", str(EXAMPLE), "-o", "json"),
        "plan": (
            "plan",
            "-i",
            str(EXAMPLE),
            "--state",
            str(STATE),
            "-o",
            "json",
            "--out",
            str(plan_file),
        ),
        "render": ("render", "-i", str(EXAMPLE), "--state", str(STATE), "-o", "json"),
    }
    for kind, args in runs.items():
        res = run_lbauto(*args)
        assert res.returncode == 0, res.stderr
        doc = json.loads(res.stdout)
        # plan documents are at version 2 (shared router sets and change lists)
        assert doc["version"] == (2 if kind == "plan" else 1) and doc["kind"] == kind, doc
    shown = json.loads(run_lbauto("show", str(plan_file), "-o", "json").stdout)
    assert shown["version"] == 2 and shown["kind"] == "plan" and shown["saved"]["file"]
    render = json.loads(run_lbauto(*runs["render"]).stdout)
    frr = next(r for r in render["routers"] if r["platform"] == "frr")
    assert "ip route 192.0.2.10/32 198.51.100.10 tag 4242 200" in frr["config"]


def test_show_json_is_the_plan_json_plus_what_it_was_made_from(tmp_path: Path) -> None:
    plan_file = tmp_path / "p.lbauto"
    res = run_lbauto(
        "plan", "-i", str(EXAMPLE), "--state", str(STATE), "-o", "json", "--out", str(plan_file)
    )
    planned = json.loads(res.stdout)
    shown = json.loads(run_lbauto("show", str(plan_file), "-o", "json").stdout)
    saved = shown.pop("saved")
    assert shown == planned
    assert saved["state"]["source"] == "file" and saved["state"]["file"] == str(STATE)
    assert saved["inventory"]["digest"].startswith("sha256:")


def test_invalid_inventory_as_json_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    shutil.copytree(EXAMPLE, inv)
    text = (inv / "vips.yaml").read_text().replace("address: 192.0.2.10", "address: 192.0.2.999", 1)
    (inv / "vips.yaml").write_text(text)
    res = run_lbauto("validate", "-i", str(inv), "-o", "json")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["valid"] is False and any("192.0.2.999" in p for p in doc["problems"])
    assert res.stderr.startswith("error: ")


# -------------------------------------------------------------------------- markdown


def test_plan_markdown_has_summary_table_and_collapsible_router_diffs() -> None:
    res = run_lbauto("plan", "-i", str(EXAMPLE), "--state", str(STATE), "-o", "markdown")
    assert res.returncode == 0, res.stderr
    md = res.stdout
    doc = _plan_doc()
    pending = [t for t in doc["transitions"] if t["kind"] != "none"]  # type: ignore[attr-defined]
    assert f"**{len(pending)} to change (" in md and "1 create" in md and "1 delete" in md
    assert "| VIP | address | from | to | kind | steps |" in md
    for t in pending:
        assert f"| {t['vip']} | {t['address']} |" in md
    routers = [r for r in doc["routers"] if r["lines"]]  # type: ignore[attr-defined]
    assert md.count("<details>") == len(routers) == md.count("</details>")
    assert "```diff" in md and "+ ip route 192.0.2.11/32 198.51.100.24 tag 4242" in md


def _big_inventory(tmp_path: Path, n: int) -> Path:
    inv = tmp_path / "big"
    inv.mkdir()
    (inv / "agents.yaml").write_text(
        "agents:\n  - name: lb1\n    api: http://127.0.0.1:9/\n    address: 198.51.100.10\n"
        "    token_env: LBAUTO_TEST_TOKEN\n"
    )
    (inv / "hosts.yaml").write_text("r1:\n  hostname: 203.0.113.1\n  platform: frr\n")
    lines = ["vips:"]
    for i in range(n):
        lines.append(
            f"  - name: tenant-{i:05d}\n    address: 198.18.{i // 250}.{i % 250 + 1}\n"
            f"    dips: [198.19.{i // 250}.{i % 250 + 1}]"
        )
    (inv / "vips.yaml").write_text("\n".join(lines) + "\n")
    return inv


def test_markdown_stays_within_githubs_comment_limit_and_says_it_truncated(
    tmp_path: Path,
) -> None:
    inv = _big_inventory(tmp_path, 1500)
    res = run_lbauto("plan", "-i", str(inv), "--state", "empty", "-o", "markdown")
    assert res.returncode == 0, res.stderr
    md = res.stdout.rstrip("\n")
    assert len(md) <= 65536
    assert "**1500 to change (1500 create)" in md
    assert "**Truncated**" in md and "lbauto show" in md
    assert "| tenant-00000 | 198.18.0.1 |" in md  # the first rows are there
    # a small plan is not truncated
    small = run_lbauto("plan", "-i", str(EXAMPLE), "--state", str(STATE), "-o", "markdown")
    assert "Truncated" not in small.stdout


def test_fit_markdown_control_without_a_limit_the_big_plan_is_too_long(tmp_path: Path) -> None:
    """Control: the same plan without the limit is over GitHub's limit, so the test above
    would fail if truncation did nothing."""
    from lbauto.cli.present import plan_markdown

    inv = _big_inventory(tmp_path, 1500)
    doc = json.loads(run_lbauto("plan", "-i", str(inv), "--state", "empty", "-o", "json").stdout)
    assert len(plan_markdown(doc, limit=10**9)) > 65536


# ----------------------------------------------------------------------------- tables


def _table_output(columns: int | None, **env: str) -> str:
    e: dict[str, str | None] = {"COLUMNS": str(columns) if columns else None, **env}
    res = run_lbauto("plan", "-i", str(EXAMPLE), "--state", str(STATE), env=e)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("columns", [100, 80, 50])
def test_tables_never_split_an_address_a_name_or_a_step(columns: int) -> None:
    text = _table_output(columns)
    assert max(len(line) for line in text.splitlines()) <= columns
    doc = _plan_doc()
    words = set()
    for t in doc["transitions"]:  # type: ignore[attr-defined]
        words |= {t["vip"], t["address"], *t["from"]["dips"], *t["to"]["dips"]}
        words |= {s["action"] for s in t["steps"]}
    tokens = set(re.split(r"[\s│┃|,]+", text))
    missing = sorted(w for w in words if w not in tokens)
    assert not missing, f"split across lines at {columns} columns: {missing}"


def test_columns_is_respected_when_piped() -> None:
    wide = _table_output(200)
    assert max(len(line) for line in wide.splitlines()) > 120  # uses the room it is given
    default = _table_output(None)
    assert max(len(line) for line in default.splitlines()) <= 120


def test_no_color_turns_colour_off() -> None:
    forced = _table_output(120, FORCE_COLOR="1")
    assert COLOR.search(forced), "control: a forced terminal is coloured"
    plain = _table_output(120, FORCE_COLOR="1", NO_COLOR="1")
    assert not COLOR.search(plain)


# ------------------------------------------------------------------------------ limit


def test_limit_selects_vips_by_name_glob_and_router_and_shows_the_rest_skipped() -> None:
    base = ("plan", "-i", str(EXAMPLE), "--state", str(STATE), "-o", "json")
    doc = json.loads(run_lbauto(*base, "--limit", "web").stdout)
    assert [t["vip"] for t in doc["transitions"]] == ["web"]
    skipped = {s["vip"] for s in doc["skipped"]}
    assert "web" not in skipped and {"api", "new", "old"} <= skipped
    globbed = json.loads(run_lbauto(*base, "--limit", "b*,n?w").stdout)
    assert {t["vip"] for t in globbed["transitions"]} == {"blog", "new"}
    by_address = json.loads(run_lbauto(*base, "-l", "192.0.2.1[01]").stdout)
    assert {t["vip"] for t in by_address["transitions"]} == {"web", "api"}
    by_router = json.loads(run_lbauto(*base, "--limit", "r1").stdout)
    touched = {t["vip"] for t in by_router["transitions"]}
    assert touched and all(
        any(
            s["action"] == "router.push"
            and any("r1" in by_router["router_sets"][g["set"]] for g in s["routers"])
            for s in t["steps"]
        )
        for t in by_router["transitions"]
    )
    table = run_lbauto("plan", "-i", str(EXAMPLE), "--state", str(STATE), "--limit", "web")
    assert "skipped (create)" in table.stdout


def test_limit_matching_nothing_is_an_error() -> None:
    res = run_lbauto("plan", "-i", str(EXAMPLE), "--state", str(STATE), "--limit", "wbe")
    assert res.returncode == 1 and "--limit 'wbe': matches no VIP and no router" in res.stderr


def test_limit_keeps_detailed_exitcode_honest(tmp_path: Path) -> None:
    """Only the limited VIPs count: 'legacy' has nothing to do, so exit 0."""
    base = ("plan", "-i", str(EXAMPLE), "--state", str(STATE), "--detailed-exitcode")
    assert run_lbauto(*base, "--limit", "legacy").returncode == 0
    assert run_lbauto(*base, "--limit", "web").returncode == 2


# ------------------------------------------------------------------------------- logs


def test_verbose_logs_go_to_stderr_and_json_logs_parse() -> None:
    base = ("plan", "-i", str(EXAMPLE), "--state", str(STATE), "-o", "json")
    quiet = run_lbauto(*base)
    assert quiet.stderr == ""
    loud = run_lbauto("-vv", *base)
    json.loads(loud.stdout)  # stdout is still one document
    assert "INFO lbauto.cli: observed state from" in loud.stderr
    js = run_lbauto("-v", "--log-format", "json", *base)
    records = [json.loads(line) for line in js.stderr.splitlines()]
    assert records and all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    assert run_lbauto("--log-level", "error", "-vv", *base).stderr == ""


def test_push_limit_picks_routers_and_vips_and_refuses_a_pattern_matching_nothing() -> None:
    from lbauto.errors import InventoryError
    from lbauto.inventory import load_inventory
    from lbauto.orchestrate.limit import push_limit

    inv = load_inventory(EXAMPLE)
    assert push_limit([], inv).routers is None
    lim = push_limit(["r[12]", "web"], inv)
    assert lim.routers == ("r1", "r2") and lim.vips == ("192.0.2.10",)
    with pytest.raises(InventoryError, match="'nope': matches no router and no VIP"):
        push_limit(["nope"], inv)


def test_push_limit_reconciles_only_the_named_vips_objects() -> None:
    """The reconcile behind `push --limit VIP` touches only that VIP's prefixes."""
    from lbauto.inventory import load_inventory
    from lbauto.inventory.statefile import load_state
    from lbauto.push.reconcile import reconcile_jobs

    inv = load_inventory(EXAMPLE)
    observed = load_state(STATE).routers
    every = reconcile_jobs(inv, observed)
    only = reconcile_jobs(inv, observed, only=["192.0.2.17"])
    text = "\n".join(j.config for j in only if j.config)
    assert "192.0.2.17" in text and "192.0.2.11" not in text
    assert "192.0.2.11" in "\n".join(j.config for j in every if j.config)
