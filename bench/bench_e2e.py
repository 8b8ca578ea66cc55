"""End-to-end transition latency in a namespace lab (run as root): issue 6's benchmark.

Prints:

- ``scale vip`` latency: ``run_scale`` of VIP ``web`` 3 DIPs -> 1 (bypass-enable) and back
  1 -> 3 (bypass-disable), --runs times each, with real agents and FRR over SSH. For each run:
  the wall time of the whole call, and the time from the call to the end of ``router.verify``
  (= the bypass verified on the router). p50/p90/max, and where the time goes (observe, plan,
  device diffs, each executor step, the convergence check).
- A batch of 100 VIP transitions in one ``apply``: 100 creates (3 DIPs), 100 bypass-enables
  (3 -> 1 DIP), 100 bypass-disables (1 -> 3 DIPs), 100 deletes; total time, rounds, commits
  per router.
- CPU seconds of each part per call (the machine is shared, so wall times swing with the load;
  CPU time does not): lbauto (this process, ``resource.getrusage``), the router and the agent
  (every process in their namespaces, ``/proc/<pid>/stat``: sshd with the shells, vtysh and
  frr-reload it ran, the FRR daemons; the agent with the nft it ran).
- ``fsync`` calls of this process per call: the journal's (``journal.jsonl``) and the rest
  (the inventory lock, vips.yaml), counted by wrapping ``os.fsync`` (the real one runs).
- A markdown table of the figures for docs/benchmarks.md.

    .venv/bin/python bench/bench_e2e.py [--runs 20] [--batch 100] [--keep]

Drain timeouts are 0 (no drain wait is measured: that is an operator's bound, not lbauto's
work); transit pins do not hold the executor. The lab is ``lbbe``; it is removed at the end
unless --keep.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cpu_split import own_cpu, router_cpu  # the bench/ directory is the script's path

from lbauto.core.model import ObservedState
from lbauto.core.plan import Plan, PlanOptions
from lbauto.inventory import load_inventory
from lbauto.lab import Lab, LabSpec, down
from lbauto.orchestrate.apply import ApplyOutcome, Devices, ScaleRequest, run_apply, run_scale
from lbauto.orchestrate.live import live_devices
from lbauto.orchestrate.vipsfile import rewrite_dips, write_atomic

if TYPE_CHECKING:
    from _typeshed import HasFileno

LAB = "lbbe"
#: fsync calls of this process so far, per file name (see :func:`count_fsyncs`).
FSYNCS: dict[str, int] = {}
OPTIONS = PlanOptions(transit_seconds=30, drain_timeout=0)
#: Marks the batch VIPs' block in vips.yaml, so a run interrupted with --keep can be cleaned.
MARKER = "  # bench_e2e batch (removed at the end of the benchmark)\n"
VIP_NET = ipaddress.ip_network("192.0.2.0/24")  # the lab's IPv4 VIP range (docs/lab.md)
BATCH_BASE = ipaddress.ip_address("192.0.2.100")


# ------------------------------------------------------------------ timing one call


def count_fsyncs() -> None:
    """Count every ``os.fsync`` of this process by the name of the file it syncs (the real
    fsync still runs): the journal's share of a call's disk waits."""
    real = os.fsync

    def fsync(fd: int | HasFileno) -> None:
        num = fd if isinstance(fd, int) else fd.fileno()
        try:
            name = os.path.basename(os.readlink(f"/proc/self/fd/{num}"))
        except OSError:
            name = "?"
        FSYNCS[name] = FSYNCS.get(name, 0) + 1
        real(fd)

    os.fsync = fsync


@dataclass
class Fsyncs:
    journal: int = 0
    other: int = 0

    @classmethod
    def since(cls, start: dict[str, int]) -> Fsyncs:
        d = {k: v - start.get(k, 0) for k, v in FSYNCS.items()}
        journal = d.get("journal.jsonl", 0)
        return cls(journal, sum(d.values()) - journal)


@dataclass
class Timeline:
    """Phases of one run_scale/run_apply call, in seconds since the call started."""

    t0: float = field(default_factory=time.perf_counter)
    marks: list[tuple[str, float, float]] = field(default_factory=list)  # (phase, start, end)
    _open: dict[str, float] = field(default_factory=dict)
    _steps: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    _seen: dict[tuple[str, str], int] = field(default_factory=dict)
    confirmed_at: float = 0.0
    verified_at: float | None = None
    total: float = 0.0

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def begin(self, phase: str) -> None:
        self._open[phase] = self.now()

    def end(self, phase: str) -> None:
        self.marks.append((phase, self._open.pop(phase), self.now()))

    def on_event(self, vip: str, action: str, event: str) -> None:
        """Executor hook. A VIP's repeated action is numbered (a transition may repeat one);
        steps of different VIPs in one round share their phase name."""
        key = (vip, action)
        if event == "start":
            n = self._seen.get(key, 0) + 1
            self._seen[key] = n
            self._steps[key] = (f"step {action}" + (f" #{n}" if n > 1 else ""), self.now())
        elif event == "end" and key in self._steps:
            phase, start = self._steps.pop(key)
            self.marks.append((phase, start, self.now()))
            if action == "router.verify" and self.verified_at is None:
                self.verified_at = self.now()

    def breakdown(self) -> dict[str, float]:
        """Duration per phase; gaps between marked phases are attributed to their neighbours."""
        out: dict[str, float] = {}
        for phase, start, end in sorted(self.marks, key=lambda m: m[1]):
            out[phase] = out.get(phase, 0.0) + end - start
        marked = sum(e - s for _, s, e in self.marks)
        out["other (lock, inventory copy, plan, journal, file write)"] = self.total - marked
        return out


def timed_devices(devices: Devices, tl: Timeline) -> Devices:
    """The same devices, with observe and diffs timed; the first observe is the plan's, the
    second the convergence check after executing."""
    observe, diffs = devices.observe, devices.diffs

    def t_observe() -> ObservedState:
        phase = "observe (before)" if not tl.marks else "observe (convergence check)"
        tl.begin(phase)
        try:
            return observe()
        finally:
            tl.end(phase)

    def t_diffs(plan: Plan, observed: ObservedState) -> dict[str, str]:
        tl.begin("device diffs (dry-run push)")
        try:
            return dict(diffs(plan, observed))
        finally:
            tl.end("device diffs (dry-run push)")

    return Devices(
        agents=devices.agents,
        routers=devices.routers,
        observe=t_observe,
        diffs=t_diffs,
        close=devices.close,
    )


def confirm_at(tl: Timeline) -> Callable[[ApplyOutcome], bool]:
    def confirm(_: ApplyOutcome) -> bool:
        tl.confirmed_at = tl.now()
        return True

    return confirm


# ------------------------------------------------------------------ lab and inventory


def vips_file(lab: Lab) -> Path:
    return lab.inventory_dir / "vips.yaml"


def set_dips(lab: Lab, vip: str, dips: Sequence[str]) -> None:
    path = vips_file(lab)
    write_atomic(path, rewrite_dips(path, vip, [ipaddress.ip_address(d) for d in dips]))


def strip_batch(text: str) -> str:
    return text.split(MARKER, 1)[0]


def converge(lab: Lab) -> ApplyOutcome:
    inv = load_inventory(lab.inventory_dir)
    devices = live_devices(inv)
    try:
        return run_apply(inv, devices, options=OPTIONS, dry_run=False, confirm=lambda _: True)
    finally:
        devices.close()


def prepare(lab: Lab) -> None:
    """web on all three DIPs and no batch VIPs, converged (a kept lab may hold leftovers)."""
    path = vips_file(lab)
    write_atomic(path, strip_batch(path.read_text(encoding="utf-8")))
    set_dips(lab, "web", [str(d.address) for d in lab.dips])
    out = converge(lab)
    if out.converged is False:
        raise SystemExit(f"lab {lab.spec.name} does not converge: {out.remaining}")


# ------------------------------------------------------------------ scale latency


@dataclass
class Cpu:
    """CPU seconds of lbauto, the routers and the agents, from :meth:`Cpu.now` to
    :meth:`Cpu.since`."""

    lbauto: float = 0.0
    routers: float = 0.0
    agents: float = 0.0

    @classmethod
    def now(cls, lab: Lab) -> Cpu:
        return cls(
            own_cpu(),
            router_cpu({r.netns for r in lab.routers}),
            router_cpu({a.netns for a in lab.agents}),
        )

    def since(self, lab: Lab) -> Cpu:
        time.sleep(0.05)  # the closed SSH sessions' processes are reaped into sshd's counters
        end = Cpu.now(lab)
        return Cpu(end.lbauto - self.lbauto, end.routers - self.routers, end.agents - self.agents)


@dataclass
class ScaleRun:
    kind: str
    setup: float  # load inventory + build devices, before the call
    timeline: Timeline
    cpu: Cpu = field(default_factory=Cpu)
    fsyncs: Fsyncs = field(default_factory=Fsyncs)


def one_scale(lab: Lab, kind: str, dips: Sequence[str]) -> ScaleRun:
    synced = dict(FSYNCS)
    cpu = Cpu.now(lab)
    s0 = time.perf_counter()
    inv = load_inventory(lab.inventory_dir)
    devices = live_devices(inv)
    setup = time.perf_counter() - s0
    tl = Timeline()
    try:
        out = run_scale(
            inv,
            ScaleRequest("web", dips=list(dips)),
            timed_devices(devices, tl),
            options=OPTIONS,
            dry_run=False,
            confirm=confirm_at(tl),
            on_event=tl.on_event,
        )
    finally:
        tl.total = tl.now()
        devices.close()
    used = cpu.since(lab)
    kinds = [t.kind.value for t in out.plan.transitions if t.vip == "web"]
    if kinds != [kind] or not out.converged or tl.verified_at is None:
        raise SystemExit(f"unexpected {kind} run: kinds={kinds} converged={out.converged}")
    return ScaleRun(kind, setup, tl, used, Fsyncs.since(synced))


def bench_scale(lab: Lab, runs: int) -> list[ScaleRun]:
    all_dips = [str(d.address) for d in lab.dips]
    results: list[ScaleRun] = []
    for i in range(runs):
        results.append(one_scale(lab, "bypass-enable", all_dips[:1]))
        results.append(one_scale(lab, "bypass-disable", all_dips))
        e, d = results[-2].timeline, results[-1].timeline
        print(
            f"  run {i + 1:>2}: enable {e.total:.3f} s (verified {e.verified_at:.3f} s)"
            f"  disable {d.total:.3f} s (verified {d.verified_at:.3f} s)"
            f"  load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    return results


# ------------------------------------------------------------------ batch


@dataclass
class BatchResult:
    what: str
    seconds: float
    transitions: int
    kinds: dict[str, int]
    rounds: int
    commits: dict[str, int]
    converged: bool | None
    breakdown: dict[str, tuple[float, float]]
    cpu: Cpu = field(default_factory=Cpu)
    fsyncs: Fsyncs = field(default_factory=Fsyncs)
    load: float = 0.0  # 1-minute load average at its end


def batch_addresses(n: int) -> list[str]:
    addrs = [str(BATCH_BASE + i) for i in range(n)]
    outside = [a for a in addrs if ipaddress.ip_address(a) not in VIP_NET]
    if outside:
        raise SystemExit(f"batch VIPs {outside[0]}.. leave the lab's VIP range {VIP_NET}")
    return addrs


def batch_block(addrs: Sequence[str], dips: Sequence[Sequence[str]]) -> str:
    lines = [MARKER]
    for i, (addr, ds) in enumerate(zip(addrs, dips, strict=True)):
        lines.append(f"  - name: b{i:03d}\n    address: {addr}\n    dips: [{', '.join(ds)}]\n")
    return "".join(lines)


def one_apply(lab: Lab, what: str) -> BatchResult:
    synced = dict(FSYNCS)
    cpu = Cpu.now(lab)
    inv = load_inventory(lab.inventory_dir)
    devices = live_devices(inv)
    tl = Timeline()
    try:
        out = run_apply(
            inv,
            timed_devices(devices, tl),
            options=OPTIONS,
            dry_run=False,
            confirm=confirm_at(tl),
            on_event=tl.on_event,
        )
    finally:
        tl.total = tl.now()
        devices.close()
    kinds: dict[str, int] = {}
    for t in out.plan.transitions:
        if t.kind.value != "none":
            kinds[t.kind.value] = kinds.get(t.kind.value, 0) + 1
    ex = out.executed
    return BatchResult(
        what=what,
        seconds=tl.total,
        transitions=sum(kinds.values()),
        kinds=kinds,
        rounds=ex.rounds if ex else 0,
        commits=dict(ex.router_commits) if ex else {},
        converged=out.converged,
        breakdown=batch_breakdown(tl),
        cpu=cpu.since(lab),
        fsyncs=Fsyncs.since(synced),
        load=os.getloadavg()[0],
    )


def batch_breakdown(tl: Timeline) -> dict[str, tuple[float, float]]:
    """Per phase: (wall time from its first start to its last end, device time).

    Steps of many VIPs overlap in a round, so summing them per VIP would count a shared commit
    100 times. A step that journals every VIP's start, makes one call per device, then
    journals every end (router steps; agent steps since they are batched) has as device time
    the span from the last start to the first end. Steps that ran one VIP after the other
    (agent steps of earlier lbauto) have as device time the sum over VIPs (each with its end's
    journal write). The drain wait is one shared poll loop: its wall time.
    """
    spans: dict[str, list[tuple[float, float]]] = {}
    for phase, s, e in sorted(tl.marks, key=lambda m: m[1]):
        spans.setdefault(phase, []).append((s, e))
    out: dict[str, tuple[float, float]] = {}
    for phase, se in spans.items():
        wall = max(e for _, e in se) - min(s for s, _ in se)
        first_end, last_start = min(e for _, e in se), max(s for s, _ in se)
        if phase.startswith("step agent.wait_drain"):
            device = wall  # one poll loop over every VIP: shared, like its wall time
        elif last_start <= first_end:  # every VIP's step in one call per device
            device = first_end - last_start
        else:
            device = sum(e - s for s, e in se)
        out[phase] = (wall, device)
    return out


def bench_batch(lab: Lab, n: int) -> list[BatchResult]:
    path = vips_file(lab)
    original = path.read_text(encoding="utf-8")
    addrs = batch_addresses(n)
    all_dips = [str(d.address) for d in lab.dips]
    results: list[BatchResult] = []
    try:
        for a in addrs:
            lab.add_vip(a)
        # Created multi, then bypassed: creating single VIPs in a batch puts two routes per
        # prefix in one `vtysh -f`, which FRR 8.4 (Debian 12) can half-install (FRR PR
        # #16373, "staticd: fix missing static routes"), so verification fails.
        singles = [[all_dips[i % len(all_dips)]] for i in range(n)]
        write_atomic(path, original + batch_block(addrs, [all_dips] * n))
        results.append(one_apply(lab, f"{n} creates (3 DIPs)"))
        write_atomic(path, original + batch_block(addrs, singles))
        results.append(one_apply(lab, f"{n} bypass-enables (3 -> 1 DIP)"))
        write_atomic(path, original + batch_block(addrs, [all_dips] * n))
        results.append(one_apply(lab, f"{n} bypass-disables (1 -> 3 DIPs)"))
        write_atomic(path, original)
        results.append(one_apply(lab, f"{n} deletes"))
    finally:
        write_atomic(path, original)
        for a in addrs:
            lab.remove_vip(a)
    return results


# ------------------------------------------------------------------ report


def pct(values: Sequence[float]) -> tuple[float, float, float]:
    s = sorted(values)
    p90 = statistics.quantiles(s, n=10, method="inclusive")[8] if len(s) > 1 else s[0]
    return statistics.median(s), p90, s[-1]


def ms(x: float) -> str:
    return f"{x * 1000:.0f} ms"


def report_scale(results: list[ScaleRun]) -> list[str]:
    rows: list[str] = []
    for kind in ("bypass-enable", "bypass-disable"):
        rs = [r for r in results if r.kind == kind]
        total = pct([r.timeline.total for r in rs])
        verified = pct([r.timeline.verified_at or 0.0 for r in rs])
        setup = pct([r.setup for r in rs])
        print(f"\n{kind} ({len(rs)} runs): p50 / p90 / max")
        print(f"  call -> router.verify end : {' / '.join(ms(x) for x in verified)}")
        print(f"  whole run_scale           : {' / '.join(ms(x) for x in total)}")
        print(f"  before the call (load inventory, build devices): {ms(setup[0])} p50")
        own = statistics.median(r.cpu.lbauto for r in rs)
        router = statistics.median(r.cpu.routers for r in rs)
        agent = statistics.median(r.cpu.agents for r in rs)
        print(
            f"  CPU per call (p50): lbauto {ms(own)}, router {ms(router)}, agent {ms(agent)}; "
            f"sum {ms(own + router + agent)}"
        )
        print(
            f"  fsync per call (p50): journal {statistics.median(r.fsyncs.journal for r in rs):g}"
            f", other {statistics.median(r.fsyncs.other for r in rs):g}"
        )
        print("  breakdown (p50 per phase; phases in order):")
        phases: dict[str, list[float]] = {}
        for r in rs:
            for p, d in r.timeline.breakdown().items():
                phases.setdefault(p, []).append(d)
        for p, ds in phases.items():
            print(f"    {p:<55} {ms(statistics.median(ds)):>8}")
        rows.append(
            f"| `scale vip` {kind}: call to verified bypass on the router | "
            f"{ms(verified[0])} | {ms(verified[1])} | {ms(verified[2])} |"
        )
        rows.append(
            f"| `scale vip` {kind}: whole call (incl. convergence check) | "
            f"{ms(total[0])} | {ms(total[1])} | {ms(total[2])} |"
        )
        for part in ("lbauto", "routers", "agents"):
            c50, c90, cmax = pct([getattr(r.cpu, part) for r in rs])
            rows.append(
                f"| `scale vip` {kind}: CPU of {part} per call (includes the inventory load) | "
                f"{ms(c50)} | {ms(c90)} | {ms(cmax)} |"
            )
    return rows


def report_batch(results: list[BatchResult]) -> list[str]:
    rows: list[str] = []
    for b in results:
        print(
            f"\n{b.what}: {b.seconds:.2f} s, {b.transitions} transitions {b.kinds}, "
            f"{b.rounds} rounds, commits per router {b.commits}, converged {b.converged}; "
            f"CPU lbauto {b.cpu.lbauto:.2f} s, router {b.cpu.routers:.2f} s, "
            f"agent {b.cpu.agents:.2f} s; fsync journal {b.fsyncs.journal}, "
            f"other {b.fsyncs.other}; load {b.load:.1f}"
        )
        print(f"    {'phase':<40} {'wall':>8} {'device calls':>13}")
        for p, (wall, device) in b.breakdown.items():
            print(f"    {p:<40} {wall:7.2f}s {device:12.2f}s")
        commits = ", ".join(f"{r}: {c}" for r, c in sorted(b.commits.items())) or "none"
        rows.append(
            f"| {b.what} in one `apply` | {b.seconds:.2f} s | {b.rounds} | {commits} |"
            f" {'yes' if b.converged else 'no'} | {b.cpu.lbauto:.2f} / {b.cpu.routers:.2f} / "
            f"{b.cpu.agents:.2f} | {b.fsyncs.journal} | {b.load:.1f} |"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="scale runs per direction (20)")
    ap.add_argument("--batch", type=int, default=100, help="VIPs in the batch apply (100)")
    ap.add_argument("--keep", action="store_true", help="keep the lab up at the end")
    ap.add_argument("--lab", default=LAB, help=f"lab name ({LAB}; 1-8 lowercase characters)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the lab uses network namespaces")
    gc.disable()  # as the CLI runs its commands (lbauto.cli.tune_gc)
    count_fsyncs()
    started = time.perf_counter()
    try:
        lab = Lab.up(LabSpec(name=args.lab, start_agents=True))
        prepare(lab)
        print(f"lab {args.lab}: 1 router (FRR over SSH), 1 agent, 3 DIPs; load {os.getloadavg()}")
        print(f"\nscale vip web 3 -> 1 -> 3, {args.runs} runs each:")
        scale = bench_scale(lab, args.runs)
        print(f"\nbatch of {args.batch} VIPs:")
        batch = bench_batch(lab, args.batch)
        load = os.getloadavg()
        scale_rows = report_scale(scale)
        batch_rows = report_batch(batch)
    finally:
        if not args.keep:
            down(args.lab)
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"benchmark wall time: {time.perf_counter() - started:.0f} s\n")
    print(f"| measure ({args.runs} runs each) | p50 | p90 | p99 (the max of {args.runs}) |")
    print("| --- | --- | --- | --- |")
    print("\n".join(scale_rows))
    print()
    print(
        "| batch | total | rounds | commits per router | converged "
        "| CPU s: lbauto / router / agent | journal fsyncs | load (1 min) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(batch_rows))


if __name__ == "__main__":
    main()
