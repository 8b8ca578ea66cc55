"""The apply lock and the journal in etcd, so that runs on several machines queue.

- **Lock**: the key ``<prefix>/lock`` is created only if absent, in one transaction, attached to
  a lease of ``lease_ttl`` seconds; its value is the holder (pid, user, host, command, since).
  A thread renews the lease while the run goes on; the lease is revoked (the key goes with it)
  when the run ends, and expires by itself ``lease_ttl`` seconds after lbauto died (SIGKILL,
  power cut), so a dead run never blocks the next for longer.
- **Journal**: every event is written to the state directory as before *and* to
  ``<prefix>/journal/<ns since epoch>-<run>-<n>``, in a transaction that succeeds only while
  ``<prefix>/lock`` still carries this run's lease. A run whose lease was lost (etcd out of
  reach for ``lease_ttl``) thus cannot journal, and so runs no further step
  (:class:`~lbauto.errors.JournalError`), while another run may already hold the lock.
- **Unreachable etcd**: the endpoints are probed before the state directory is touched or a
  device read; no answer is one :class:`~lbauto.errors.BackendUnavailableError`.

The local ``apply.lock`` is taken as well (inside the etcd probe, around the etcd lock): two
runs on one machine are refused by the kernel's lock before etcd is asked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lbauto.core.model import EtcdBackend
from lbauto.errors import BackendError, JournalError, LockedError
from lbauto.orchestrate.backends import BackendInfo
from lbauto.orchestrate.backends._client import EtcdConn, b64, unb64
from lbauto.orchestrate.backends.local import LocalBackend
from lbauto.orchestrate.journal import Journal, JournalEvent
from lbauto.orchestrate.lock import describe_holder, holder_info

log = logging.getLogger("lbauto.backend.etcd")

#: Journal keys read per request (etcd answers a range in one message).
PAGE = 500


def _range_end(prefix: str) -> str:
    """The end of etcd's key range for ``prefix`` (its last byte plus one)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class _KeepAlive(threading.Thread):
    """Renews the lease every third of its TTL; says when it gave up (``lost``)."""

    def __init__(self, conn: EtcdConn, lease: int, ttl: int) -> None:
        super().__init__(name="lbauto-etcd-keepalive", daemon=True)
        self.conn, self.lease, self.ttl = conn, lease, ttl
        self.stopped = threading.Event()
        self.lost: str | None = None

    def run(self) -> None:
        last_ok = time.monotonic()
        while not self.stopped.wait(max(0.5, self.ttl / 3)):
            try:
                if self.conn.keepalive(self.lease) <= 0:
                    self.lost = "its lease expired"
                    return
                last_ok = time.monotonic()
            except BackendError as exc:
                if time.monotonic() - last_ok >= self.ttl:
                    self.lost = f"the lease could not be renewed for {self.ttl} s ({exc})"
                    return

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.conn.cfg.timeout + 1)


class _Held:
    def __init__(self, conn: EtcdConn, lease: int, keepalive: _KeepAlive) -> None:
        self.conn, self.lease, self.keepalive = conn, lease, keepalive
        self.count = 0


class _EtcdJournal(Journal):
    """The state directory's journal, each event also appended to etcd under the lock."""

    def __init__(self, state_dir: Path, backend: EtcdStateBackend) -> None:
        super().__init__(state_dir)
        self._backend = backend

    def record(self, event: str, **fields: Any) -> JournalEvent:
        ev = super().record(event, **fields)
        self._backend.append(ev)
        return ev


class EtcdStateBackend:
    def __init__(self, cfg: EtcdBackend, state_dir: Path) -> None:
        self.cfg = cfg
        self.local = LocalBackend(state_dir)
        self.lock_key = cfg.prefix + "/lock"
        self.journal_prefix = cfg.prefix + "/journal/"
        self._held: _Held | None = None

    def info(self) -> BackendInfo:
        return BackendInfo(
            type="etcd", lock=self.lock_key, endpoints=self.cfg.endpoints, prefix=self.cfg.prefix
        )

    # -------------------------------------------------------------------------------- lock

    @contextmanager
    def lock(self, command: str = "apply") -> Iterator[None]:
        conn = EtcdConn(self.cfg)
        conn.connect()  # unreachable: an error before anything local or remote is touched
        with self.local.lock(command):
            lease = conn.grant(self.cfg.lease_ttl)
            try:
                self._take(conn, lease, command)
                keepalive = _KeepAlive(conn.clone(), lease, self.cfg.lease_ttl)
            except BaseException:
                with contextlib.suppress(BackendError):
                    conn.revoke(lease)
                raise
            keepalive.start()
            self._held = _Held(conn, lease, keepalive)
            try:
                yield
            finally:
                self._held = None
                keepalive.stop()
                try:
                    conn.revoke(lease)  # the key goes with its lease
                except BackendError as exc:
                    log.warning(
                        "could not release %s (%s): etcd drops it within %d s",
                        self.lock_key,
                        exc,
                        self.cfg.lease_ttl,
                    )

    def _take(self, conn: EtcdConn, lease: int, command: str) -> None:
        key = b64(self.lock_key)
        reply = conn.txn(
            {
                "compare": [
                    {"key": key, "result": "EQUAL", "target": "CREATE", "create_revision": 0}
                ],
                "success": [
                    {
                        "request_put": {
                            "key": key,
                            "value": b64(json.dumps(holder_info(command))),
                            "lease": lease,
                        }
                    }
                ],
                "failure": [{"request_range": {"key": key}}],
            },
            "the lock request",
        )
        if reply.get("succeeded"):
            return
        kvs = (reply.get("responses") or [{}])[0].get("response_range", {}).get("kvs", [])
        raise LockedError(self._refusal(conn, kvs[0] if kvs else {}))

    def _refusal(self, conn: EtcdConn, kv: dict[str, Any]) -> str:
        try:
            who = describe_holder(json.loads(unb64(kv.get("value", ""))))
        except ValueError:
            who = "another process"
        left = ""
        if kv.get("lease"):
            with contextlib.suppress(BackendError, ValueError):
                left = f", {conn.ttl_left(int(kv['lease']))} s left on its lease"
        return (
            f"inventory is locked by {who}; wait for it to finish (the lock is etcd key "
            f"{self.lock_key} at {conn.endpoint}{left}; if its holder died, etcd drops it when "
            "the lease expires)"
        )

    # ----------------------------------------------------------------------------- journal

    def journal(self) -> Journal:
        if self._held is None:
            raise JournalError("the etcd journal is written under the apply lock only")
        return _EtcdJournal(self.local.state_dir, self)

    def append(self, ev: JournalEvent) -> None:
        """Put ``ev`` under the journal prefix while this run holds the lock; else
        :class:`JournalError` (the executor then runs no step)."""
        held = self._held
        if held is None:
            raise JournalError("the etcd journal is written under the apply lock only")
        if held.keepalive.lost:
            raise JournalError(
                f"lost the etcd lock {self.lock_key}: {held.keepalive.lost}; another run may "
                "hold it now, so no further step runs"
            )
        held.count += 1
        name = f"{self.journal_prefix}{time.time_ns():019d}-{ev.run}-{held.count:06d}"
        body = {
            "compare": [
                {
                    "key": b64(self.lock_key),
                    "result": "EQUAL",
                    "target": "LEASE",
                    "lease": held.lease,
                }
            ],
            "success": [
                {"request_put": {"key": b64(name), "value": b64(json.dumps(ev.to_json()))}}
            ],
            "failure": [],
        }
        try:
            reply = held.conn.txn(body, "a journal append")
        except BackendError as exc:
            raise JournalError(
                f"cannot append to the etcd journal {self.journal_prefix}: {exc}; lbauto "
                "changes nothing it cannot journal first"
            ) from exc
        if not reply.get("succeeded"):
            raise JournalError(
                f"lost the etcd lock {self.lock_key} (its lease {held.lease:x} is gone); "
                "another run may hold it now, so no further step runs"
            )

    def read_journal(self) -> Iterator[JournalEvent]:
        """Every event in etcd, oldest first (by etcd's revision: the order they were
        written in, whatever the writers' clocks)."""
        held = self._held
        conn = held.conn if held is not None else EtcdConn(self.cfg)
        if held is None:
            conn.connect()
        key, end = b64(self.journal_prefix), b64(_range_end(self.journal_prefix))
        after = 0
        while True:
            body: dict[str, Any] = {
                "key": key,
                "range_end": end,
                "sort_order": "ASCEND",
                "sort_target": "CREATE",
                "limit": PAGE,
            }
            if after:
                body["min_create_revision"] = after + 1
            kvs = conn.range(body, "a journal read").get("kvs", [])
            for kv in kvs:
                try:
                    yield JournalEvent(**json.loads(unb64(kv.get("value", ""))))
                except (ValueError, TypeError):
                    continue  # not ours, or written by another lbauto version
            if len(kvs) < PAGE:
                return
            after = int(kvs[-1]["create_revision"])
