"""Observation of a fleet in parallel with a bound (issue 16 item 3).

Fakes with real threads: each device call holds a "session" for a few milliseconds while a
shared gauge counts the sessions open at once, so the bound is measured, not assumed. A failing
router must be named in the error while every other device is still read.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lbauto.cli.options import with_workers
from lbauto.core.model import Router
from lbauto.errors import AgentError, InventoryError, PushError, StateError
from lbauto.inventory import load_inventory
from lbauto.orchestrate.live import observe_fleet, workers_for
from lbauto.platforms.driver import NapalmDriver
from lbauto.push.drivers import Opener
from lbauto.push.observe import DEFAULT_WORKERS, bounded_map, observe_routers
from tests.builders import EXAMPLE, inventory, vip

HOLD = 0.01  # seconds each device call keeps its session busy
RUNNING = "ip route 192.0.2.10/32 198.51.100.21 tag 4242\n"


class Gauge:
    """Sessions open right now, and the most ever open at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.seen: list[str] = []

    def hold(self, who: str) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.seen.append(who)
        time.sleep(HOLD)
        with self._lock:
            self.now -= 1


class FakeDriver:
    """The NAPALM calls observation makes."""

    def __init__(self, name: str, gauge: Gauge) -> None:
        self.name, self.gauge = name, gauge

    def has_pending_commit(self) -> bool:
        return False

    def get_config(self, retrieve: str = "all", format: str = "text") -> dict[str, str]:
        self.gauge.hold(self.name)
        return {"running": RUNNING}

    def close(self) -> None:
        return None


class FakeAgent:
    def __init__(self, name: str, gauge: Gauge, fail: bool = False) -> None:
        self.name, self.gauge, self.fail = name, gauge, fail

    def list_vips(self) -> dict[Any, Any]:
        self.gauge.hold(self.name)
        if self.fail:
            raise AgentError("connection refused", agent=self.name)
        return {}


def opener_for(gauge: Gauge, failing: frozenset[str] = frozenset()) -> Opener:
    """Opens fake sessions; a ``failing`` router's connection attempt holds a session, then
    fails the way open_driver reports a dead SSH server."""

    def opener(router: Router) -> NapalmDriver:
        if router.name in failing:
            gauge.hold(router.name)
            raise PushError(f"cannot connect to {router.hostname}: timed out", router=router.name)
        return FakeDriver(router.name, gauge)  # type: ignore[return-value]

    return opener


def routers(n: int) -> list[Router]:
    return [Router(f"r{i}", f"198.18.0.{i + 1}", "frr") for i in range(n)]


@pytest.mark.parametrize("workers", [1, 4])
def test_never_more_sessions_than_workers_and_really_parallel(workers: int) -> None:
    gauge = Gauge()
    agents = [FakeAgent(f"a{i}", gauge) for i in range(2)]
    fleet = routers(14)
    start = time.monotonic()
    state = observe_fleet(agents, fleet, opener_for(gauge), workers)  # type: ignore[arg-type]
    elapsed = time.monotonic() - start
    assert gauge.peak == workers  # the bound holds and is used up, not just "at most"
    assert sorted(gauge.seen) == sorted([f"a{i}" for i in range(2)] + [r.name for r in fleet])
    assert set(state.routers) == {r.name for r in fleet}
    assert set(state.agents) == {"a0", "a1"}
    assert all(len(o.objects) == 1 for o in state.routers.values())
    # the gauge's peak is the proof of parallelism; wall time only bounds it from below
    assert elapsed >= HOLD * (-(-16 // workers))


def test_one_failing_router_is_named_and_the_others_are_still_observed() -> None:
    gauge = Gauge()
    fleet = routers(7)
    with pytest.raises(StateError) as info:
        observe_fleet([], fleet, opener_for(gauge, frozenset({"r2"})), 4)
    text = str(info.value)
    assert text == "cannot observe router r2: r2: cannot connect to 198.18.0.3: timed out"
    assert sorted(gauge.seen) == [f"r{i}" for i in range(7)]  # every other router was read
    assert isinstance(info.value.__cause__, StateError)
    assert isinstance(info.value.__cause__.__cause__, PushError)  # the root cause is kept


def test_failing_agent_and_router_both_reported_agents_first() -> None:
    gauge = Gauge()
    agents = [FakeAgent("a0", gauge), FakeAgent("a1", gauge, fail=True)]
    with pytest.raises(StateError) as info:
        observe_fleet(agents, routers(3), opener_for(gauge, frozenset({"r1"})), 2)  # type: ignore[arg-type]
    first, second = str(info.value).splitlines()
    assert first.startswith("cannot observe: ") and "a1" in first
    assert "router r1" in second
    assert isinstance(info.value.__cause__, AgentError)
    assert sorted(gauge.seen) == ["a0", "a1", "r0", "r1", "r2"]


def test_observe_routers_keeps_its_bound() -> None:
    gauge = Gauge()
    inv = inventory([vip("web", "192.0.2.10", "198.51.100.21")], routers=routers(9))
    seen = observe_routers(inv, opener=opener_for(gauge), workers=2)
    assert gauge.peak == 2 and len(seen) == 9


def test_bounded_map_keeps_order_and_refuses_zero() -> None:
    assert bounded_map(lambda x: x * 2, list(range(50)), 7) == [x * 2 for x in range(50)]
    with pytest.raises(ValueError, match="at least 1"):
        bounded_map(str, [1, 2], 0)


def test_workers_setting_from_lbauto_yaml_and_its_precedence(tmp_path: Path) -> None:
    inv_dir = tmp_path / "inv"
    shutil.copytree(EXAMPLE, inv_dir, ignore=shutil.ignore_patterns(".lbauto"))
    assert workers_for(inventory([])) == DEFAULT_WORKERS
    (inv_dir / "lbauto.yaml").write_text("workers: 4\n", encoding="utf-8")
    inv = load_inventory(inv_dir)
    assert inv.workers == 4 and workers_for(inv) == 4
    assert workers_for(inv, 9) == 9  # --workers wins over the file
    (inv_dir / "lbauto.yaml").write_text("state_dir: .lbauto\nworkers: 0\n", encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(inv_dir)
    assert any("lbauto.yaml:2" in p and "workers" in p for p in info.value.problems), (
        info.value.problems
    )


def test_agents_only() -> None:
    gauge = Gauge()
    agents = [FakeAgent("a0", gauge)]
    state = observe_fleet(agents, [], opener_for(gauge), 5)  # type: ignore[arg-type]
    assert state.agents == {"a0": {}} and state.routers == {}


def test_workers_option_overrides_the_inventory() -> None:
    inv = inventory([])
    assert with_workers(inv, None) is inv
    assert with_workers(inv, 3).workers == 3
    assert workers_for(with_workers(inv, 3)) == 3
