"""Running a checked play: tasks in order, ``when``/``loop``/``register``, stop at the first
failed task unless ``ignore_errors``, and the recap.

Check mode runs the same tasks against :mod:`lbauto.play.predict`'s in-memory devices and a
scratch copy of the inventory: the real devices are read once, nothing real is written (no
vips.yaml, no journal, no lock, no drain record).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from lbauto.core.model import Inventory, ObservedState
from lbauto.errors import LbautoError
from lbauto.inventory import load_inventory
from lbauto.orchestrate.apply import Devices, state_dir
from lbauto.play import templating
from lbauto.play.drain import RECORD, record_for
from lbauto.play.models import MODULES, Facts
from lbauto.play.modules import RUNNERS, Context, Result
from lbauto.play.parser import Play, Task, lbauto_vars, validate_args
from lbauto.play.predict import predicted_devices
from lbauto.play.recap import Stats


class Report(Protocol):
    def play(self, name: str, host: str, check: bool) -> None: ...

    def task(self, index: int, name: str) -> None: ...

    def step(self, vip: str, action: str, event: str) -> None: ...

    def result(
        self, host: str, result: Result, item: Any = None, ignored: bool = False
    ) -> None: ...

    def recap(self, host: str, stats: Stats, check: bool) -> None: ...


@dataclass
class TaskOutcome:
    task: Task
    status: str
    results: list[Result] = field(default_factory=list)


@dataclass
class PlayResult:
    stats: Stats
    tasks: list[TaskOutcome]
    check: bool

    @property
    def failed(self) -> bool:
        return self.stats.failed > 0


#: Called before and after each task (the integration tests act between tasks with it).
TaskHook = Callable[[Task, str], None]


def host_name(inv: Inventory) -> str:
    """The recap's "host": the inventory directory's name (its parent's for ``.../inventory``)."""
    path = inv.path.resolve()
    return path.parent.name if path.name == "inventory" and path.parent.name else path.name


@contextmanager
def _devices(
    play: Play,
    check: bool,
    observed_file: Path | None,
    drain_idle: float | None,
    given: Devices | None,
) -> Iterator[tuple[Inventory, Devices, Callable[[], Inventory]]]:
    real = play.inventory
    if not check:
        devices = given or _live(real, drain_idle)
        try:
            yield real, devices, lambda: load_inventory(real.path, allow_outside=real.allow_outside)
        finally:
            if given is None:
                devices.close()
        return
    observed = _observe_once(real, observed_file, drain_idle, given)
    with tempfile.TemporaryDirectory(prefix="lbauto-check-") as tmp:
        scratch = Path(tmp) / real.path.name
        shutil.copytree(real.path, scratch, ignore=shutil.ignore_patterns(".lbauto"))
        scratch_state = Path(tmp) / "state"
        scratch_state.mkdir()
        record = state_dir(real) / RECORD
        if record.is_file():
            shutil.copy2(record, scratch_state / RECORD)

        def reload() -> Inventory:
            # Forced, whatever lbauto.yaml says: journal, lock and record stay in the scratch.
            fresh = load_inventory(scratch, allow_outside=real.allow_outside)
            return replace(fresh, state_dir=scratch_state, backend=None)

        devices = predicted_devices([a.name for a in real.agents], observed)
        yield reload(), devices, reload


def _live(inv: Inventory, drain_idle: float | None) -> Devices:
    from lbauto.orchestrate.live import live_devices

    return live_devices(inv, drain_idle=drain_idle)


def _observe_once(
    inv: Inventory, observed_file: Path | None, drain_idle: float | None, given: Devices | None
) -> ObservedState:
    if observed_file is not None:
        from lbauto.inventory.statefile import load_state

        return load_state(observed_file)
    devices = given or _live(inv, drain_idle)
    try:
        return devices.observe()
    finally:
        if given is None:
            devices.close()


def run_play(
    play: Play,
    report: Report,
    *,
    check: bool = False,
    limit: frozenset[str] | None = None,
    observed_file: Path | None = None,
    drain_idle: float | None = 5.0,
    hook: TaskHook | None = None,
    sleep: Callable[[float], None] = time.sleep,
    devices: Devices | None = None,
) -> PlayResult:
    """Run ``play`` (already checked by :func:`lbauto.play.parser.read_play`).

    ``devices`` replaces the live agents and routers (a library user's own, or the tests');
    with ``check`` they are only read, once. ``hook(task, "start"|"end")`` runs around each
    task. ``observed_file`` (check mode only) seeds the prediction instead of the devices.
    """
    if observed_file is not None and not check:
        raise LbautoError("--state needs --check: a real run reads the live devices")
    if limit is not None:
        known = {v.name for v in play.inventory.vips}
        unknown = sorted(limit - known)
        if unknown:
            raise LbautoError(
                f"--limit: no VIP named {', '.join(unknown)} in {play.inventory.path} "
                f"(known: {', '.join(sorted(known))})"
            )
    host = host_name(play.inventory)
    stats = Stats()
    outcomes: list[TaskOutcome] = []
    report.play(play.name, host, check)
    with _devices(play, check, observed_file, drain_idle, devices) as (inv, used, reload):
        ctx = Context(
            inventory=inv,
            devices=used,
            check=check,
            limit=limit,
            reload=reload,
            on_event=report.step,
            sleep=sleep,
        )
        registered: dict[str, Any] = {}
        real_path, shown_path = str(inv.path), str(play.inventory.path)
        for task in play.tasks:
            report.task(task.index, _title(task, _scope(play, ctx, registered)))
            if hook:
                hook(task, "start")
            outcome = _run_task(task, play, ctx, registered, report, host, (real_path, shown_path))
            outcomes.append(outcome)
            _count(stats, outcome, task.ignore_errors)
            if hook:
                hook(task, "end")
            if outcome.status == "failed" and not task.ignore_errors:
                break
    report.recap(host, stats, check)
    return PlayResult(stats, outcomes, check)


def _title(task: Task, scope: Mapping[str, Any]) -> str:
    """The task's name with its templates rendered (the raw name if they cannot be yet)."""
    try:
        return str(templating.render(task.name, scope))
    except LbautoError:
        return task.name


def _count(stats: Stats, outcome: TaskOutcome, ignore: bool) -> None:
    if outcome.status == "failed":
        if ignore:
            stats.ignored += 1
        else:
            stats.failed += 1
    elif outcome.status == "skipped":
        stats.skipped += 1
    else:
        stats.ok += 1
        stats.changed += outcome.status == "changed"


def _scope(play: Play, ctx: Context, registered: Mapping[str, Any]) -> dict[str, Any]:
    return {**play.vars, **registered, "lbauto": lbauto_vars(ctx.inventory, ctx.check)}


def _run_task(
    task: Task,
    play: Play,
    ctx: Context,
    registered: dict[str, Any],
    report: Report,
    host: str,
    paths: tuple[str, str],
) -> TaskOutcome:
    scope = _scope(play, ctx, registered)
    outcome = TaskOutcome(task, "ok")
    try:
        items: list[Any] = _items(task, scope)
    except LbautoError as exc:
        result = Result("failed", f"loop: {exc}")
        report.result(host, result, ignored=task.ignore_errors)
        outcome.status, outcome.results = "failed", [result]
        _register(task, outcome, registered)
        return outcome
    for item in items:
        here = {
            **_scope(play, ctx, registered),
            **({"item": item} if task.loop is not None else {}),
        }
        result = _run_item(task, ctx, here)
        result.msg = result.msg.replace(*paths)
        outcome.results.append(result)
        report.result(
            host,
            result,
            item=_short(item) if task.loop is not None else None,
            ignored=task.ignore_errors,
        )
        if result.status == "failed" and not task.ignore_errors:
            break
    statuses = {r.status for r in outcome.results}
    if "failed" in statuses:
        outcome.status = "failed"
    elif "changed" in statuses:
        outcome.status = "changed"
    elif statuses == {"skipped"} or not outcome.results:
        outcome.status = "skipped"
    if not outcome.results:
        report.result(host, Result("skipped", "loop is empty"))
    _register(task, outcome, registered)
    return outcome


def _short(item: Any) -> Any:
    if isinstance(item, dict) and "name" in item:
        return item["name"]
    return item


def _items(task: Task, scope: Mapping[str, Any]) -> list[Any]:
    if task.loop is None:
        return [None]
    items = (
        templating.loop_value(task.loop, scope)
        if isinstance(task.loop, str)
        else templating.render(task.loop, scope)
    )
    if not isinstance(items, list):
        raise LbautoError(f"loop must give a list, got {type(items).__name__}")
    return items


def _run_item(task: Task, ctx: Context, scope: Mapping[str, Any]) -> Result:
    try:
        for condition in task.when:
            held = (
                condition if isinstance(condition, bool) else templating.evaluate(condition, scope)
            )
            if not held:
                shown = condition if isinstance(condition, str) else str(condition).lower()
                return Result("skipped", f"when: {shown} is false")
        facts = Facts.of(ctx.inventory.vips)
        facts.dips |= record_for(ctx.inventory).dips()
        problems = validate_args(task, scope, facts)
        if problems:
            return Result("failed", "; ".join(problems))
        args = MODULES[task.module].model_validate(
            templating.render(dict(task.args), scope), context=facts
        )
        return RUNNERS[task.module](args, ctx, scope)
    except LbautoError as exc:
        return Result("failed", " | ".join(str(exc).splitlines()))


def _register(task: Task, outcome: TaskOutcome, registered: dict[str, Any]) -> None:
    if not task.register:
        return
    if task.loop is None and outcome.results:
        registered[task.register] = outcome.results[0].register()
        return
    results = [r.register() for r in outcome.results]
    registered[task.register] = {
        "results": results,
        "changed": any(r["changed"] for r in results),
        "failed": any(r["failed"] for r in results),
        "skipped": all(r["skipped"] for r in results),
        "msg": "; ".join(r["msg"] for r in results if r["msg"]),
    }
