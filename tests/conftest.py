"""What every test tier shares. Model values are built with :mod:`tests.builders` (plain
functions, so hypothesis strategies, parametrize tables and bench scripts can use them too);
this file keeps one test's process-wide side effects out of the next test."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _gc_thresholds_restored() -> Iterator[None]:
    """``lbauto.cli.main`` turns the garbage collector off for its own short process; tests
    run it in process, and the rest of the session must keep the collector it had (a late
    collection in a later test would make its timing and memory figures depend on test
    order, and a session without one would keep every cycle)."""
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.set_threshold(*thresholds)
    if enabled:
        gc.enable()
