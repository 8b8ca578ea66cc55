"""The push pipeline: for each router, merge the change lines, diff, commit with commit-confirm,
verify, then confirm; all-or-nothing across the routers of one call.

Per router (in parallel, one thread each)::

    open -> load_merge_candidate -> compare_config -+-> discard_config      (dry run / no diff)
                                                    +-> commit_config(revert_in) -> verify

(``compare=False`` goes from the load straight to the commit: the executor's pushes, whose
device diffs the same run already showed before confirmation.)

then, once every router got that far: ``confirm_commit`` everywhere, or, if any router failed,
``rollback`` on every router this call changed, and :class:`PushAbortedError` naming the router(s).
Platforms without commit-confirm (NX-OS, IOS without ``archive``) commit plainly and rely on
``rollback``; with commit-confirm a router whose controller vanishes reverts by itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from lbauto.core.model import Router, RouterObject
from lbauto.core.plan import RouterChange
from lbauto.errors import LbautoError, PushAbortedError, PushError
from lbauto.orchestrate.ports import BeforeConfirm
from lbauto.platforms.driver import NapalmDriver
from lbauto.platforms.render import render_changes
from lbauto.push.drivers import (
    Opener,
    adopt_commit,
    commit_ref,
    describe,
    device_errors,
    mask,
    open_driver,
    revert_seconds,
)
from lbauto.push.observe import DEFAULT_WORKERS, bounded_map
from lbauto.push.verify import Expectation, verify

log = logging.getLogger("lbauto.push")

DEFAULT_REVERT_IN = 120


#: Failures reported per router in the result; anything else is a bug and propagates.
def _expected() -> tuple[type[BaseException], ...]:
    return (LbautoError, *device_errors())


DEFAULT_VERIFY_TIMEOUT = 10.0


class Status(StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    ROLLED_BACK = "rolled back"


@dataclass(frozen=True)
class RouterPush:
    """One router's part of a push: the merge candidate (rendered change lines) and what must
    hold afterwards."""

    router: Router
    config: str
    expect: Expectation = field(default_factory=Expectation)


@dataclass
class RouterResult:
    router: str
    platform: str
    status: Status = Status.UNCHANGED
    diff: str = ""
    seconds: float = 0.0
    error: str | None = None
    #: The router was committed by this call (so it is rolled back if another router fails).
    committed: bool = False
    #: The commit waits for confirm_commit (the router reverts by itself otherwise).
    pending: bool = False
    #: The driver's id of this call's commit (FRR commit id, EOS session), where it has one.
    commit_id: str | None = None
    #: What undoing this router's commit did (e.g. "rolled back over a new session").
    undo: str | None = None

    @property
    def diff_lines(self) -> int:
        return sum(1 for line in self.diff.splitlines() if line[:1] in "+-")

    def to_json(self) -> dict[str, Any]:
        return {
            "router": self.router,
            "platform": self.platform,
            "status": self.status.value,
            "diff": self.diff,
            "diff_lines": self.diff_lines,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


@dataclass(frozen=True)
class PushResult:
    results: tuple[RouterResult, ...]
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return all(r.status in (Status.CHANGED, Status.UNCHANGED) for r in self.results)

    @property
    def failed(self) -> tuple[RouterResult, ...]:
        return tuple(r for r in self.results if r.status is Status.FAILED)

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "routers": [r.to_json() for r in self.results]}


class _Progress:
    """Per-router progress lines on a rich console; silent without one."""

    def __init__(self, console: Console | None, names: Sequence[str]) -> None:
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        if console is not None:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._tasks = {n: self._progress.add_task(f"{n}: waiting", total=None) for n in names}

    def stage(self, name: str, text: str) -> None:
        log.debug("%s: %s", name, text)
        if self._progress is not None:
            self._progress.update(self._tasks[name], description=f"{name}: {text}")

    @contextmanager
    def shown(self) -> Iterator[None]:
        if self._progress is None:
            yield
            return
        with self._progress:
            yield


@dataclass
class _Session:
    job: RouterPush
    result: RouterResult
    driver: NapalmDriver | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.job.router.name

    @property
    def open_driver(self) -> NapalmDriver:
        """The session's driver; only reached after a commit, so it was opened."""
        assert self.driver is not None, f"{self.name}: no driver after a commit"
        return self.driver

    def close(self) -> None:
        if self.driver is not None:
            try:
                self.driver.close()
            except _expected() as exc:  # a dead session must not hide the push outcome
                log.debug("%s: close failed: %s", self.name, mask(describe(exc)))
            self.driver = None


def _fail(session: _Session, what: str, exc: BaseException) -> None:
    text = str(exc) if isinstance(exc, LbautoError) else describe(exc)
    session.result.status = Status.FAILED
    session.result.error = mask(f"{what}: {text}")


def _rollback(session: _Session, progress: _Progress, opener: Opener) -> str | None:
    """Undo this call's commit on one router; returns an error text if that failed too.

    The session that committed may be unusable (its connection died during verification, or
    its driver raised and was closed): the commit is then rolled back over a new session,
    named by its id where the driver has one, and :attr:`RouterResult.undo` says so.
    """
    progress.stage(session.name, "rolling back")
    res = session.result
    what = f"commit {res.commit_id}" if res.commit_id else "the commit"
    try:
        session.open_driver.rollback()
    except _expected() as first:
        first_text = mask(describe(first))
        log.debug("%s: rollback failed, retrying over a new session: %s", session.name, first_text)
        session.close()
        try:
            session.driver = opener(session.job.router)
            adopt_commit(session.driver, res.commit_id)
            session.driver.rollback()
        except _expected() as second:
            res.undo = f"rollback of {what} failed"
            return mask(
                f"rollback failed: {first_text}; over a new session too: {describe(second)}"
            )
        res.undo = f"rolled back {what} over a new session (the first failed: {first_text})"
        return None
    res.undo = f"rolled back {what}"
    return None


def _prepare(
    session: _Session,
    *,
    opener: Opener,
    dry_run: bool,
    revert_in: int | None,
    verify_timeout: float,
    progress: _Progress,
    compare: bool = True,
) -> None:
    """Phase one for one router: everything up to (and including) verification."""
    job, res, name = session.job, session.result, session.name
    try:
        progress.stage(name, "connecting")
        session.driver = opener(job.router)
        if not job.config.strip():
            return
        progress.stage(name, "loading candidate")
        session.driver.load_merge_candidate(config=job.config)
        if compare or dry_run:
            progress.stage(name, "diffing")
            res.diff = session.driver.compare_config() or ""
        if dry_run or (compare and not res.diff.strip()):
            session.driver.discard_config()
            res.status = Status.CHANGED if res.diff.strip() else Status.UNCHANGED
            return
        seconds = revert_seconds(job.router, revert_in)
        progress.stage(name, f"committing (revert in {seconds} s)" if seconds else "committing")
        session.driver.commit_config(revert_in=seconds)
        res.committed, res.pending, res.status = True, seconds is not None, Status.CHANGED
        res.commit_id = commit_ref(session.driver)
    except _expected() as exc:
        _fail(session, "push failed", exc)
        return
    progress.stage(name, "verifying")
    try:
        problems = verify(session.driver, job.router.platform, job.expect, verify_timeout)
    except _expected() as exc:
        problems = [f"verification could not run: {describe(exc)}"]
    if problems:
        res.status = Status.FAILED
        res.error = mask("verification failed: " + "; ".join(problems))


def _finish(session: _Session, any_failed: bool, progress: _Progress, opener: Opener) -> None:
    """Phase two for one router: confirm, or roll back when any router failed."""
    res = session.result
    try:
        if not res.committed or res.undo:
            return
        if any_failed:
            error = _rollback(session, progress, opener)
            if res.status is not Status.FAILED:
                res.status = Status.ROLLED_BACK
            if error:
                res.error = f"{res.error}; {error}" if res.error else error
            return
        if res.pending:
            progress.stage(session.name, "confirming")
            session.open_driver.confirm_commit()
            res.pending = False
    except _expected() as exc:
        _fail(session, "confirm failed", exc)
    finally:
        res.seconds = time.monotonic() - session.started


def _parallel(fn: Callable[[_Session], None], sessions: Sequence[_Session], workers: int) -> None:
    if len(sessions) <= 1 or workers <= 1:
        for s in sessions:
            fn(s)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lbauto-push") as pool:
        for _ in pool.map(fn, sessions):
            pass


def push(
    jobs: Sequence[RouterPush],
    *,
    dry_run: bool = False,
    revert_in: int | None = DEFAULT_REVERT_IN,
    verify_timeout: float = DEFAULT_VERIFY_TIMEOUT,
    workers: int = DEFAULT_WORKERS,
    console: Console | None = None,
    opener: Opener = open_driver,
    before_confirm: BeforeConfirm | None = None,
    compare: bool = True,
) -> PushResult:
    """Push every job; return the per-router result, or raise :class:`PushAbortedError` after
    rolling back every router this call changed. ``revert_in`` is the commit-confirm window
    (rounded to what each platform supports); it must outlast the slowest router's commit and
    verification. ``before_confirm`` runs once every router committed and verified, before any
    confirm; if it raises, the push is rolled back. ``compare=False`` skips the device diff
    before a commit (a device-side diff costs FRR a ``frr-reload --test``, about a fifth of a
    second): every job commits, and :attr:`RouterResult.diff` stays empty. An unexpected
    exception (a bug) also rolls back what this call committed before it propagates with its
    traceback.
    """
    names = [j.router.name for j in jobs]
    if len(set(names)) != len(names):
        raise PushError("a router appears twice in one push; merge its changes first")
    sessions = [_Session(j, RouterResult(j.router.name, j.router.platform)) for j in jobs]
    progress = _Progress(console, names)
    aborted: str | None = None
    try:
        with progress.shown():
            _parallel(
                lambda s: _prepare(
                    s,
                    opener=opener,
                    dry_run=dry_run,
                    revert_in=revert_in,
                    verify_timeout=verify_timeout,
                    progress=progress,
                    compare=compare,
                ),
                sessions,
                workers,
            )
            any_failed = any(s.result.status is Status.FAILED for s in sessions)
            if not any_failed and not dry_run and before_confirm is not None:
                aborted = _before_confirm(before_confirm, sessions)
                any_failed = aborted is not None
            _parallel(lambda s: _finish(s, any_failed, progress, opener), sessions, workers)
            # A confirm that failed (e.g. the router already reverted) undoes the rest too.
            if not any_failed and any(s.result.status is Status.FAILED for s in sessions):
                _parallel(lambda s: _finish(s, True, progress, opener), sessions, workers)
    except Exception:
        # A bug keeps its traceback, but no commit of this call may stay behind it.
        for s in sessions:
            if s.result.committed and s.result.pending and not s.result.undo:
                _finish(s, True, progress, opener)
        raise
    finally:
        for s in sessions:
            s.close()
            s.result.seconds = s.result.seconds or time.monotonic() - s.started
    result = PushResult(tuple(s.result for s in sessions), dry_run=dry_run)
    failed = result.failed
    undone = "; ".join(f"{r.router}: {r.undo}" for r in result.results if r.undo)
    tail = f"; undone: {undone}" if undone else ""
    if failed:
        first = failed[0]
        others = f" (and {len(failed) - 1} more router(s))" if len(failed) > 1 else ""
        raise PushAbortedError(f"{first.error}{others}{tail}", first.router, result)
    if aborted is not None:
        raise PushAbortedError(f"push not confirmed: {aborted}{tail}", None, result)
    return result


def _before_confirm(hook: BeforeConfirm, sessions: Sequence[_Session]) -> str | None:
    """Run the caller's hook between commit and confirm; its error text if it raised."""
    commits = {s.name: s.result.commit_id for s in sessions if s.result.committed}
    if not commits:
        return None
    try:
        hook(commits)
    except LbautoError as exc:
        return str(exc)
    return None


def config_text(lines: Sequence[str]) -> str:
    """Rendered change lines as a merge candidate."""
    return "".join(line + "\n" for line in lines)


# --------------------------------------------------------------------------- orchestrator port


class RouterFleet:
    """The executor's :class:`~lbauto.orchestrate.ports.RouterPort` over real routers.

    ``observed`` (the routers' lbauto-owned objects, from :mod:`lbauto.push.observe`) is what
    the FRR templates need to render removals of PBR objects.
    """

    def __init__(
        self,
        routers: Sequence[Router],
        *,
        observed: Mapping[str, frozenset[RouterObject]] | None = None,
        revert_in: int | None = DEFAULT_REVERT_IN,
        verify_timeout: float = DEFAULT_VERIFY_TIMEOUT,
        console: Console | None = None,
        opener: Opener = open_driver,
        template_dir: Path | None = None,
        compare: bool = False,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.routers = {r.name: r for r in routers}
        #: Diff on the device before each commit. Off by default: the executor pushes steps of
        #: a plan whose device diffs were shown before it was confirmed, and every change a
        #: plan pushes is a real change (planned from observed state); the commit-confirm and
        #: the verification after it are what make a push safe, and they always run.
        self.compare = compare
        #: Routers pushed or verified at once.
        self.workers = workers
        self.template_dir = template_dir
        self.observed: dict[str, frozenset[RouterObject]] = dict(observed or {})
        self.revert_in = revert_in
        self.verify_timeout = verify_timeout
        self.console = console
        self.opener = opener
        self.last_result: PushResult | None = None

    def _router(self, name: str) -> Router:
        try:
            return self.routers[name]
        except KeyError:
            raise PushError("router is not in the inventory", router=name) from None

    def jobs(self, changes: Sequence[RouterChange]) -> list[RouterPush]:
        out = []
        for change in changes:
            if change.empty:
                continue
            router = self._router(change.router)
            observed = self.observed.get(router.name, frozenset())
            lines = render_changes(
                router, change.remove, change.add, observed, template_dir=self.template_dir
            )
            out.append(
                RouterPush(router, config_text(lines), Expectation.of_change(change, observed))
            )
        return out

    def push(
        self, changes: Sequence[RouterChange], before_confirm: BeforeConfirm | None = None
    ) -> None:
        self.last_result = push(
            self.jobs(changes),
            revert_in=self.revert_in,
            verify_timeout=self.verify_timeout,
            console=self.console,
            opener=self.opener,
            before_confirm=before_confirm,
            compare=self.compare,
            workers=self.workers,
        )
        for change in changes:  # keep the observed objects current for the next render
            cur = set(self.observed.get(change.router, frozenset()))
            cur.difference_update(change.remove)
            cur.update(change.add)
            self.observed[change.router] = frozenset(cur)

    def verify(self, changes: Sequence[RouterChange]) -> None:
        jobs = [
            (self._router(c.router), Expectation.of_change(c, self.observed.get(c.router)))
            for c in changes
            if not c.empty
        ]

        def one(item: tuple[Router, Expectation]) -> str | None:
            router, expect = item
            try:
                driver = self.opener(router)
            except LbautoError as exc:
                return f"{router.name}: verification could not run: {exc}"
            try:
                problems = verify(driver, router.platform, expect, self.verify_timeout)
            except _expected() as exc:  # a device failure is a failed verification: undo
                problems = [f"verification could not run: {mask(describe(exc))}"]
            finally:
                driver.close()
            return f"{router.name}: " + "; ".join(problems) if problems else None

        failures = [f for f in bounded_map(one, jobs, self.workers) if f]
        if failures:
            raise PushError("verification failed: " + " | ".join(failures))


# ---------------------------------------------------------------------------------- display
