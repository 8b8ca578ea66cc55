"""``backend:`` in lbauto.yaml (validation, file:line errors) and what a saved plan records of
it. The real etcd is exercised in tests/integration/test_etcd_backend.py."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from lbauto.core.model import ObservedState
from lbauto.core.plan import PlanOptions
from lbauto.errors import InventoryError
from lbauto.inventory import load_inventory
from lbauto.orchestrate.apply import state_dir
from lbauto.orchestrate.backends import backend_for
from lbauto.orchestrate.backends.etcd import EtcdStateBackend
from lbauto.orchestrate.backends.local import LocalBackend
from lbauto.orchestrate.journal import Journal, read_journal
from lbauto.orchestrate.planfile import PlanFile, build_plan_file, inventory_changes
from tests.unit.conftest import run_cli

AGENTS = """\
agents:
  - name: lb1
    api: https://lb1.example.net:8443
    address: 198.51.100.10
    token_env: LBAUTO_TOKEN_LB1
"""
VIPS = "vips:\n  - name: web\n    address: 192.0.2.10\n    dips: [198.51.100.21]\n"
ETCD = """\
backend:
  type: etcd
  endpoints: [http://127.0.0.1:2379, http://192.0.2.50:2379]
  prefix: /lbauto/prod
"""


def inventory(root: Path, settings: str | None) -> Path:
    (root / "agents.yaml").write_text(AGENTS)
    (root / "vips.yaml").write_text(VIPS)
    if settings is not None:
        (root / "lbauto.yaml").write_text(textwrap.dedent(settings))
    return root


def problems(root: Path) -> list[str]:
    with pytest.raises(InventoryError) as info:
        load_inventory(root)
    return info.value.problems


def test_absent_backend_is_the_local_files(tmp_path: Path) -> None:
    inv = load_inventory(inventory(tmp_path, None))
    backend = backend_for(inv, state_dir(inv))
    assert inv.backend is None and isinstance(backend, LocalBackend)
    assert backend.info().to_json() == {
        "type": "local",
        "endpoints": [],
        "prefix": None,
        "lock": str(tmp_path / ".lbauto" / "apply.lock"),
    }


def test_an_etcd_backend_loads_with_its_defaults(tmp_path: Path) -> None:
    inv = load_inventory(inventory(tmp_path, ETCD + "  ca_file: certs/ca.pem\n"))
    assert inv.backend is not None
    assert inv.backend.endpoints == ("http://127.0.0.1:2379", "http://192.0.2.50:2379")
    assert (inv.backend.prefix, inv.backend.lease_ttl, inv.backend.timeout) == (
        "/lbauto/prod",
        10,
        5.0,
    )
    assert inv.backend.ca_file == tmp_path / "certs" / "ca.pem"
    backend = backend_for(inv, state_dir(inv))
    assert isinstance(backend, EtcdStateBackend)
    assert backend.info().lock == "/lbauto/prod/lock"


@pytest.mark.parametrize(
    ("settings", "line", "fragment"),
    [
        (ETCD.replace("type: etcd", "type: consul"), 2, "type 'consul' is not a known backend"),
        (ETCD.replace("  prefix: /lbauto/prod\n", ""), 1, "prefix is missing (add `prefix: /"),
        (
            ETCD.replace("http://192.0.2.50:2379", "etcd1:2379"),
            3,
            "is not an http:// or https:// URL",
        ),
        (
            ETCD.replace("[http://127.0.0.1:2379, http://192.0.2.50:2379]", "[]"),
            3,
            "endpoints must be a non-empty list (write endpoints: [http://",
        ),
        (ETCD.replace("/lbauto/prod", "lbauto/prod"), 4, "contains characters that are not"),
        (ETCD + "  lease_ttl: 1\n", 5, "lease_ttl must be an integer from 2 to 3600, got 1"),
        (ETCD + "  password: hunter2\n", 5, "a literal 'password' is not allowed"),
        (ETCD + "  password_env: 9BAD\n", 5, "password_env '9BAD' contains characters"),
        (ETCD + "  leasettl: 5\n", 5, "unknown key 'leasettl'"),
        ("backend: etcd\n", 1, "backend must be a mapping"),
    ],
)
def test_backend_errors_name_file_and_line(
    tmp_path: Path, settings: str, line: int, fragment: str
) -> None:
    found = problems(inventory(tmp_path, settings))
    where = f"{tmp_path / 'lbauto.yaml'}:{line}: "
    assert any(p.startswith(where) and fragment in p for p in found), found
    assert all("hunter2" not in p for p in found)


def _plan_file(root: Path) -> PlanFile:
    inv = load_inventory(root)
    return build_plan_file(
        plan_doc={},
        inv=inv,
        inventory_given=None,
        observed=ObservedState(),
        source="empty",
        state_file=None,
        options=PlanOptions(),
        limit=[],
        only=None,
    )


def test_a_saved_plan_records_its_backend_and_is_refused_under_another(tmp_path: Path) -> None:
    root = inventory(tmp_path, ETCD)
    pf = _plan_file(root)
    assert pf.backend is not None
    assert pf.backend.model_dump() == {
        "type": "etcd",
        "endpoints": ["http://127.0.0.1:2379", "http://192.0.2.50:2379"],
        "prefix": "/lbauto/prod",
        "lock": "/lbauto/prod/lock",
    }
    # the same store with its endpoints listed the other way round is the same lock ...
    swapped = ETCD.replace(
        "[http://127.0.0.1:2379, http://192.0.2.50:2379]",
        "[http://192.0.2.50:2379, http://127.0.0.1:2379]",
    )
    (root / "lbauto.yaml").write_text(swapped)
    changes = inventory_changes(pf, load_inventory(root))
    assert not [c for c in changes if "lock and journal" in c]
    # ... another prefix or the local files are not
    (root / "lbauto.yaml").write_text(ETCD.replace("/lbauto/prod", "/lbauto/stage"))
    changes = inventory_changes(pf, load_inventory(root))
    assert (
        "computed under the lock and journal of etcd http://127.0.0.1:2379, "
        "http://192.0.2.50:2379 prefix /lbauto/prod (/lbauto/prod/lock), the inventory now "
        "uses etcd http://127.0.0.1:2379, http://192.0.2.50:2379 prefix /lbauto/stage "
        "(/lbauto/stage/lock)"
    ) in changes
    (root / "lbauto.yaml").unlink()
    changes = inventory_changes(pf, load_inventory(root))
    assert any("the inventory now uses local files" in c for c in changes), changes


def test_lbauto_journal_shows_the_local_journal(tmp_path: Path) -> None:
    root = inventory(tmp_path, None)
    first, second = Journal(root / ".lbauto"), Journal(root / ".lbauto")
    first.record("run-start")
    first.record("end", vip="web", step=0, action="agent.set_vip", device="agent lb1")
    second.record("run-start")
    doc = json.loads(run_cli("journal", "-i", str(root), "-o", "json").stdout)
    assert doc["backend"]["type"] == "local"
    assert [(e["run"], e["event"]) for e in doc["events"]] == [
        (first.run, "run-start"),
        (first.run, "end"),
        (second.run, "run-start"),
    ]
    table = run_cli("journal", "-i", str(root), "--run", first.run, "--last", "1")
    assert table.returncode == 0
    assert table.stdout.splitlines() == [
        next(e for e in read_journal(root / ".lbauto") if e.event == "end").to_text()
    ]
    assert "step=0 agent.set_vip on agent lb1" in table.stdout
