"""Record the conformance suite's mock data from a live FRR router (root, a running lab).

    sudo .venv/bin/python -m tests.unit.mock_frr.record --lab nfa

Opens the real driver to the lab's router r1 over SSH, runs every getter the suite calls,
stores each query's raw output under ``mocked_data/<test>/normal/`` and the getter's result as
``expected_result.json``. Re-recording replaces the folders it writes (review the diff).
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napalm.base.test.double import BaseTestDouble

from lbauto.lab import Lab
from lbauto.lab.frr import PEER_PREFIX
from napalm_frr.frr import FRRDriver, Output, Query

HERE = Path(__file__).resolve().parent
CASE = "normal"


def calls(drv: FRRDriver) -> dict[str, Callable[[], Any]]:
    def filtered() -> Any:
        for part in ("running", "startup", "candidate"):
            result = drv.get_config(retrieve=part)
        return result

    def sanitized_filtered() -> Any:
        running = drv.get_config(retrieve="running", sanitized=True)["running"]
        startup = drv.get_config(retrieve="startup", sanitized=True)["startup"]
        return {"running": running, "startup": startup, "candidate": ""}

    return {
        "test_is_alive": drv.is_alive,
        "test_get_facts": drv.get_facts,
        "test_get_interfaces": drv.get_interfaces,
        "test_get_interfaces_ip": drv.get_interfaces_ip,
        "test_get_interfaces_counters": drv.get_interfaces_counters,
        "test_get_environment": drv.get_environment,
        "test_get_bgp_neighbors": drv.get_bgp_neighbors,
        "test_get_bgp_config": drv.get_bgp_config,
        "test_get_bgp_neighbors_detail": drv.get_bgp_neighbors_detail,
        "test_get_arp_table": drv.get_arp_table,
        "test_get_ipv6_neighbors_table": drv.get_ipv6_neighbors_table,
        "test_get_network_instances": drv.get_network_instances,
        "test_get_route_to": lambda: drv.get_route_to(PEER_PREFIX, "bgp"),
        "test_get_route_to_longer": lambda: drv.get_route_to(PEER_PREFIX, "bgp", True),
        "test_get_route_to_all_protocols": drv.get_route_to,
        "test_get_config": drv.get_config,
        "test_get_config_filtered": filtered,
        "test_get_config_sanitized": lambda: drv.get_config(sanitized=True),
        "test_get_config_sanitized_filtered": sanitized_filtered,
    }


def record(drv: FRRDriver, root: Path) -> None:
    real = drv._queries
    target: list[Path] = []

    def saving(queries: Sequence[Query]) -> list[Output]:
        outputs = real(queries)
        for query, out in zip(queries, outputs, strict=True):
            name = BaseTestDouble.sanitize_text(query.key)
            (target[0] / f"{name}.txt").write_text(out.text)
            if out.rc != 0:
                (target[0] / f"{name}.rc").write_text(f"{out.rc}\n")
        return outputs

    drv._queries = saving  # type: ignore[method-assign]
    for test, call in calls(drv).items():
        folder = root / test / CASE
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        target[:] = [folder]
        result = json.loads(json.dumps(call()))
        (folder / "expected_result.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"{test}: {sorted(p.name for p in folder.iterdir())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lab", required=True)
    args = parser.parse_args()
    lab = Lab.load(args.lab)
    r = lab.routers[0]
    drv = FRRDriver(
        str(r.mgmt_ip),
        r.ssh_user,
        "",
        optional_args={"key_file": str(r.key_file), "pathspace": r.pathspace},
    )
    drv.open()
    try:
        record(drv, HERE / "mocked_data")
    finally:
        drv.close()


if __name__ == "__main__":
    main()
