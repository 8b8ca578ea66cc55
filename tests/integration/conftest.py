"""Shared fixtures for integration tests (root, network namespaces, real FRR/SSH/TCP).

``make_lab(name, **spec)`` builds a lab (``lbauto.lab.LabSpec`` fields as keywords) and removes
it when the module's tests are done, pass or fail::

    def test_x(make_lab):
        lab = make_lab("lbtx", routers=2)

Integration tests are skipped on a host that is not root or lacks the lab's tools (FRR,
nftables, sshd), except in CI (``CI=true``): there a missing prerequisite, and any other skip of
an integration test, is a failure, so a green run always means they ran.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from lbauto.errors import LabError
from lbauto.lab import Lab, LabSpec, down
from lbauto.lab.host import preflight

MakeLab = Callable[..., Lab]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI, an integration test that skips (a prerequisite is missing) fails instead. Tests
    marked ``documented_skips`` may skip for the reasons they document (NAPALM's conformance
    suite skips the getters FRR has no data for); their prerequisites still fail."""
    report = yield
    allowed = item.get_closest_marker("documented_skips") is not None and call.when == "call"
    if in_ci() and report.skipped and not hasattr(report, "wasxfail") and not allowed:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI=true: integration tests must run, not skip: {reason}"
    return report


def _lab_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root (network namespaces)"
    try:
        preflight()
    except LabError as err:
        return str(err)
    return None


@pytest.fixture(scope="session")
def lab_host() -> None:
    """Skip when this host cannot run labs."""
    reason = _lab_unavailable()
    if reason:
        pytest.skip(reason)


@contextlib.contextmanager
def lab_factory() -> Iterator[MakeLab]:
    made: list[str] = []

    def make(name: str, **spec: Any) -> Lab:
        made.append(name)
        return Lab.up(LabSpec(name=name, **spec))

    try:
        yield make
    finally:
        errors = []
        for name in reversed(made):
            try:
                down(name)
            except LabError as err:
                errors.append(str(err))
        if errors:
            raise LabError("; ".join(errors))


@pytest.fixture(scope="module")
def make_lab(lab_host: None) -> Iterator[MakeLab]:
    """Factory of labs removed at the end of the module (even when tests fail)."""
    with lab_factory() as make:
        yield make


@pytest.fixture
def make_lab_fn(lab_host: None) -> Iterator[MakeLab]:
    """Like ``make_lab``, but labs are removed after each test."""
    with lab_factory() as make:
        yield make


def vtysh(lab: Lab, router: str, *commands: str) -> str:
    """Run configuration commands on a lab router (``conf t`` is added)."""
    r = lab.router(router)
    argv = ["vtysh", "-N", r.pathspace, "-c", "configure terminal"]
    for command in commands:
        argv += ["-c", command]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def wait_route(lab: Lab, router: str, prefix: str, via: str | None, timeout: float = 5) -> None:
    """Wait until the router's kernel routes ``prefix`` via ``via`` (None: has no route)."""
    r = lab.router(router)
    deadline = time.monotonic() + timeout
    while True:
        family = "-6" if ":" in prefix else "-4"
        out = lab.run(r.netns, "ip", family, "route", "show", "exact", prefix).stdout
        if (via is None and not out.strip()) or (via is not None and f"via {via} " in out):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{router}: route {prefix} via {via} not installed: {out!r}")
        time.sleep(0.02)
