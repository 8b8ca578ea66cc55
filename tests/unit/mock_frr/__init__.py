"""Test double for NAPALM's conformance suite: the FRR driver reading recorded router output.

Wired the way NAPALM's own drivers are (napalm ``test/eos/conftest.py``): a patched driver
whose ``device`` attribute is a :class:`napalm.base.test.double.BaseTestDouble`, and the
suite's ``wrap_test_cases`` points it at ``mocked_data/<test>/<case>/``. Every query the driver
makes (:class:`napalm_frr.frr.Query`) is one file there, named after the query's key
(``sanitize_text(key).txt``; a failed command also has ``.rc`` with its exit code), recorded
from a live FRR 8.4 lab router by ``record.py`` in this folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napalm.base.test.double import BaseTestDouble

from napalm_frr.frr import FRRDriver, Output, Query

HERE = Path(__file__).resolve().parent


class FakeFRRRouter(BaseTestDouble):  # type: ignore[misc]
    """Answers the driver's queries from the current test case's recorded files."""

    def outputs(self, queries: Sequence[Query]) -> list[Output]:
        out = []
        for query in queries:
            name = self.sanitize_text(query.key)
            text = self.read_txt_file(self.find_file(f"{name}.txt"))
            rc_file = os.path.join(os.path.dirname(self.find_file(f"{name}.txt")), f"{name}.rc")
            rc = int(Path(rc_file).read_text()) if os.path.exists(rc_file) else 0
            out.append(Output(rc, text))
        return out


class _AliveTransport:
    def run(self, command: str, stdin: str | None = None, timeout: float = 60.0) -> Any:
        raise AssertionError(f"the mocked driver ran a command outside _queries: {command!r}")

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        return None


class PatchedFRRDriver(FRRDriver):
    """FRRDriver whose router is :class:`FakeFRRRouter` (no SSH, no vtysh)."""

    def __init__(
        self,
        hostname: str,
        username: str,
        password: str,
        timeout: int = 60,
        optional_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(hostname, username, password, timeout, optional_args)
        self.patched_attrs = ["device"]
        self.device = FakeFRRRouter()

    def open(self) -> None:
        self._transport = _AliveTransport()

    def close(self) -> None:
        self._transport = None

    def _queries(self, queries: Sequence[Query]) -> list[Output]:
        return self.device.outputs(queries)
