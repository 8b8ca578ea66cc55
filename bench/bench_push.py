"""Push latency over SSH against real FRR routers in namespace labs (run as root).

Prints: push + verify + confirm latency of one router (p50, p99 over --iterations pushes, each
a full pipeline run: connect, load, diff, commit with revert_in, verify, confirm), and the
wall-clock total for 1, 5 and 20 routers pushed in parallel (median of --rounds), with the CPU
split (issue 16): lbauto's own CPU per push and per router (this process's user + system time,
``resource.getrusage``) apart from the routers' (every process in the routers' namespaces,
``/proc/<pid>/stat``: sshd with the shells and vtysh/frr-reload it ran, and the FRR daemons).
From the two, the CPU floor of a push on this machine's cores: (lbauto + routers) / cores.
Where the 20-router wall time sits on that floor, the routers' CPU on the shared cores is what
bounds it, not lbauto. Target: 20 routers <= 2 x one router.

Then observation (issue 16 item 3): ``observe_routers`` of 1, 5 and 20 real routers with one
worker and with the default bound, and of 100 routers replaying the real routers' measured
timings (open, pending-commit read, running-config read: a driver that sleeps for them, on real
threads), so 100 routers are observed at the pace real routers with CPUs of their own would
answer, which this 2-core host cannot give 100 FRR instances.

    .venv/bin/python bench/bench_push.py [--iterations 40] [--rounds 5] [--observe-rounds N]
        [--serial-up-to 20] [--prefix lbpb] [--keep]
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cpu_split import own_cpu, router_cpu  # bench/ is the script's directory

from lbauto.core.model import Inventory, Router, StaticRoute
from lbauto.inventory import load_inventory
from lbauto.lab import Lab, LabSpec, down
from lbauto.push.drivers import open_driver
from lbauto.push.observe import DEFAULT_WORKERS, observe_routers
from lbauto.push.pipeline import RouterPush, push
from lbauto.push.verify import Expectation

VIP = ipaddress.ip_network("192.0.2.10/32")
DIP = ipaddress.ip_address("198.51.100.21")
BYPASS = StaticRoute(VIP, DIP, 1, 4242)
ADD = f"ip route {VIP} {DIP} tag 4242\n"
REMOVE = f"no ip route {VIP} {DIP}\n"
#: Labs hold at most 9 routers: 20 routers come from three labs (names: prefix + 1..3).
LABS = (7, 7, 6)


def one_push(routers: Sequence[Router], add: bool) -> float:
    expect = Expectation(present=(BYPASS,)) if add else Expectation(absent=(BYPASS,))
    jobs = [RouterPush(r, ADD if add else REMOVE, expect) for r in routers]
    start = time.perf_counter()
    result = push(jobs, revert_in=60)
    elapsed = time.perf_counter() - start
    assert result.ok and all(r.status.value == "changed" for r in result.results), result
    return elapsed


def reset(routers: Sequence[Router]) -> None:
    """Start from routers without the bypass (a previous run may have been interrupted)."""
    push([RouterPush(r, REMOVE, Expectation(absent=(BYPASS,))) for r in routers])


def fleet(routers: Sequence[Router]) -> Inventory:
    return Inventory(Path("."), tuple(routers), (), ())


class Timed:
    """A real driver whose open and observation calls are timed (seconds per call kind)."""

    def __init__(self, driver: Any, times: dict[str, list[float]]) -> None:
        self._driver, self._times = driver, times

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._driver, name)
        if name not in TIMED:
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return target(*args, **kwargs)
            finally:
                self._times.setdefault(name, []).append(time.perf_counter() - t0)

        return call


#: The observation reads timed on the real routers (and replayed): the FRR driver reads the
#: pending commit and the running config in one round trip (``_pending_and_running``), other
#: drivers make the two NAPALM calls.
TIMED = ("has_pending_commit", "get_config", "_pending_and_running")


class Replay:
    """Answers like the router it was recorded from, after the time that router took."""

    def __init__(self, timing: dict[str, float], running: str) -> None:
        self._t, self._running = timing, running

    def has_pending_commit(self) -> bool:
        time.sleep(self._t.get("has_pending_commit", 0.0))
        return False

    def get_config(self, retrieve: str = "all", format: str = "text") -> dict[str, str]:
        time.sleep(self._t.get("get_config", 0.0))
        return {"running": self._running}

    def close(self) -> None:
        time.sleep(self._t["close"])


class ReplayOneTrip(Replay):
    """A replay of a router whose driver read both in one round trip, as it did."""

    def _pending_and_running(self) -> tuple[bool, str]:
        time.sleep(self._t["_pending_and_running"])
        return False, self._running


def bench_observe(routers: Sequence[Router], rounds: int, serial_up_to: int = 20) -> None:
    print(f"\nobservation (observe_routers), median of {rounds}:")
    times: dict[str, list[float]] = {}
    scratch: dict[str, list[float]] = {}
    # the replay takes one router's own pace: timings of the single-router runs only
    record = {"to": times}

    def timed_open(router: Router) -> Any:
        t0 = time.perf_counter()
        driver = open_driver(router)
        record["to"].setdefault("open", []).append(time.perf_counter() - t0)
        return Timed(driver, record["to"])

    rows = []
    for n in (1, 5, 20):
        record["to"] = times if n == 1 else scratch
        for workers in (1, DEFAULT_WORKERS):
            if workers == 1 and n > serial_up_to:
                skipped = f"not run (--serial-up-to {serial_up_to}): about {n} x one router's time"
                rows.append(f"| {n} real | 1 | {skipped} | - | - |")
                print(rows[-1], flush=True)
                continue
            walls, cpus = [], []
            for _ in range(rounds):
                c0, t0 = own_cpu(), time.perf_counter()
                seen = observe_routers(fleet(routers[:n]), opener=timed_open, workers=workers)
                walls.append(time.perf_counter() - t0)
                cpus.append(own_cpu() - c0)
                assert len(seen) == n
            rows.append(
                f"| {n} real | {workers} | {statistics.median(walls):.3f} "
                f"| {min(walls):.3f}-{max(walls):.3f} | {statistics.median(cpus) / n:.3f} |"
            )
            print(rows[-1], flush=True)
    # open: connect + the driver's checks; close is part of observe_router too
    one = {k: statistics.median(v) for k, v in times.items()}
    one["close"] = 0.01
    probe = open_driver(routers[0])
    try:
        running = probe.get_config(retrieve="running")["running"]
    finally:
        probe.close()

    def replay_open(router: Router) -> Any:
        time.sleep(one["open"])
        kind = ReplayOneTrip if "_pending_and_running" in one else Replay
        return kind(one, running)

    for n in (1, 100):
        for workers in (1, DEFAULT_WORKERS, 100):
            if n == 100 and workers == 1:
                continue  # 100 x one router's time: no need to wait for it
            if n == 1 and workers == 100:
                continue
            walls, cpus = [], []
            for _ in range(rounds):
                c0, t0 = own_cpu(), time.perf_counter()
                observe_routers(fleet(replayed(routers[0], n)), opener=replay_open, workers=workers)
                walls.append(time.perf_counter() - t0)
                cpus.append(own_cpu() - c0)
            rows.append(
                f"| {n} replayed | {workers} | {statistics.median(walls):.3f} "
                f"| {min(walls):.3f}-{max(walls):.3f} | {statistics.median(cpus) / n:.3f} |"
            )
            print(rows[-1], flush=True)
    timing = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(one.items()))
    print(f"replayed per-router timings (medians of the real reads): {timing}")
    print("\n| routers | workers | wall s median | wall s range | lbauto CPU s per router |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


def replayed(router: Router, n: int) -> list[Router]:
    return [dataclasses.replace(router, name=f"replay{i:03d}") for i in range(n)]


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))
    return ordered[k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5, help="parallel pushes: add + remove each")
    ap.add_argument("--observe-rounds", type=int, help="observation runs per row (--rounds)")
    ap.add_argument("--serial-up-to", type=int, default=20, metavar="N",
                    help="observe with one worker only up to N real routers (20)")  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="leave the labs up afterwards")
    ap.add_argument("--prefix", default="lbpb", help="lab name prefix (lbpb: labs lbpb1..3)")
    args = ap.parse_args()
    names = [f"{args.prefix}{i + 1}" for i in range(len(LABS))]

    t0 = time.perf_counter()
    labs = [
        Lab.up(LabSpec(name=n, routers=k, agents=1, dips=1))
        for n, k in zip(names, LABS, strict=True)
    ]
    routers = [
        dataclasses.replace(r, name=f"{lab.name}-{r.name}")  # router names repeat across labs
        for lab in labs
        for r in load_inventory(lab.inventory_dir).routers
    ]
    print(f"labs up: {len(routers)} routers in {time.perf_counter() - t0:.1f} s")
    netns = {r.netns for lab in labs for r in lab.routers}
    try:
        reset(routers)
        single = [one_push(routers[:1], add=i % 2 == 0) for i in range(args.iterations)]
        if args.iterations % 2:
            one_push(routers[:1], add=False)
        print(
            f"one router, push+verify+confirm over SSH ({args.iterations} pushes): "
            f"p50 {statistics.median(single):.3f} s  p99 {percentile(single, 99):.3f} s  "
            f"min {min(single):.3f} s  max {max(single):.3f} s"
        )
        totals: dict[int, float] = {}
        cores = os.cpu_count() or 1
        rows = []
        for n in (1, 5, 20):
            runs, own, theirs = [], [], []
            for _ in range(args.rounds):
                for add in (True, False):
                    cpu0, rcpu0 = own_cpu(), router_cpu(netns)
                    runs.append(one_push(routers[:n], add=add))
                    time.sleep(0.05)  # sshd reaps the closed sessions' processes into its counters
                    own.append(own_cpu() - cpu0)
                    theirs.append(router_cpu(netns) - rcpu0)
            totals[n] = statistics.median(runs)
            cpu, rcpu = statistics.median(own), statistics.median(theirs)
            floor = (cpu + rcpu) / cores
            rows.append(
                f"| {n} | {len(runs)} | {totals[n]:.3f} | {min(runs):.3f}-{max(runs):.3f} "
                f"| {cpu:.3f} | {cpu / n:.3f} | {rcpu:.3f} | {rcpu / n:.3f} | {floor:.3f} "
                f"| {os.getloadavg()[0]:.1f} |"
            )
            print(
                f"{n:>2} router(s) in parallel: median total {totals[n]:.3f} s "
                f"(min {min(runs):.3f}, max {max(runs):.3f}, {len(runs)} pushes); "
                f"CPU per push (median): lbauto {cpu:.3f} s ({cpu / n:.3f} per router), "
                f"routers {rcpu:.3f} s ({rcpu / n:.3f} per router); "
                f"CPU floor on {cores} cores {floor:.3f} s",
                flush=True,
            )
        ratio = totals[20] / totals[1]
        verdict = "OK" if ratio <= 2 else "MISSED"
        print(f"20 routers / 1 router = {ratio:.2f} (target <= 2): {verdict}")
        print(
            "\n| routers | pushes | wall s median | wall s range | lbauto CPU s | lbauto CPU s per "
            "router | routers' CPU s | routers' CPU s per router | CPU floor s (all CPU / "
            f"{cores} cores) | load |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        print("\n".join(rows))
        bench_observe(routers, args.observe_rounds or args.rounds, args.serial_up_to)
    finally:
        if not args.keep:
            for name in names:
                down(name)
            for r in routers:  # the FRR driver's working files on each router
                pathspace = r.optional_args.get("pathspace")
                shutil.rmtree(
                    Path.home() / ".local/state/napalm-frr" / str(pathspace), ignore_errors=True
                )


if __name__ == "__main__":
    main()
