"""The agent's core: validated desired state -> one nft transaction per change -> persisted.

All mutations (API calls and timer ticks) hold one lock, so the kernel, the in-memory records
and the state file change in the same order. Requests are fully validated before the kernel is
touched; the state file is written only after the kernel accepted the change.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from lbauto.agent.dataplane import (
    CLOSED,
    Dataplane,
    FlowEntry,
    KernelTable,
    NftDataplane,
    TableSpec,
    address_of,
    render_base,
    render_delete_flows,
    render_remove,
    render_remove_suffix,
    render_update,
    render_vip,
    suffix,
)
from lbauto.agent.models import (
    DeleteChange,
    DrainOut,
    FlowOut,
    FlowsOut,
    PutChange,
    TransitOut,
    VipIn,
    VipOut,
)
from lbauto.agent.recover import (
    meta_comment,
    read_meta,
    read_table,
    recover,
    render_meta,
    render_meta_base,
    render_meta_remove,
)
from lbauto.agent.store import DrainRecord, Loaded, StateStore, TransitRecord, VipRecord
from lbauto.core.addresses import excerpt, parse_address
from lbauto.core.model import IPAddress, Mode, addr_key
from lbauto.errors import LbautoError, RequestError, StateError

log = logging.getLogger("lbauto.agent")
RECONCILE_CHUNK = 200
#: Flow counts that took longer than this (seconds) to read are reused for a while.
COUNT_CACHE_MIN = 0.05


def parse_vip(text: str) -> IPAddress:
    """The VIP of a request path, under the one address policy (lbauto.core.addresses)."""
    result = parse_address(text)
    if isinstance(result, str):
        raise RequestError(400, f"VIP {excerpt(text)} {result}")
    return result


def _check_usable(what: str, a: IPAddress) -> None:
    # Addresses reach here already parsed; the policy also covers ipaddress objects built
    # elsewhere (a scoped or IPv4-mapped address would pass ipaddress's own checks).
    result = parse_address(str(a))
    if isinstance(result, str):
        raise RequestError(400, f"{what} {excerpt(str(a))} {result}")


def validate(vip: IPAddress, body: VipIn) -> None:
    """Every semantic rule the schema cannot express. Raises RequestError(400)."""
    dips = body.dips
    if len(set(dips)) != len(dips):
        raise RequestError(400, "dips contains a duplicate address")
    counts = {Mode.SINGLE: "exactly one DIP", Mode.EMPTY: "no DIPs", Mode.MULTI: "at least 1 DIP"}
    ok = {
        Mode.SINGLE: len(dips) == 1,
        Mode.EMPTY: not dips,
        Mode.MULTI: len(dips) >= 1,
    }[body.mode]
    if not ok:
        raise RequestError(
            400, f"mode {body.mode.value} needs {counts[body.mode]}, got {len(dips)} DIP(s)"
        )
    drain = list(body.drain.dips) if body.drain else []
    for d in [*dips, *drain, *([body.transit.dip] if body.transit else [])]:
        if d.version != vip.version:
            raise RequestError(400, f"DIP {d} is IPv{d.version} but VIP {vip} is IPv{vip.version}")
        if d == vip:
            raise RequestError(400, f"DIP {d} is the VIP itself")
        _check_usable("DIP", d)
    if len(set(drain)) != len(drain):
        raise RequestError(400, "drain.dips contains a duplicate address")
    both = set(drain) & set(dips)
    if both:
        raise RequestError(400, f"DIP {min(both, key=addr_key)} is both in dips and drain.dips")
    if body.transit is not None:
        if not body.flow_tracking:
            raise RequestError(400, "transit needs flow_tracking: true (pinned flows are recorded)")
        if body.transit.dip not in set(dips) | set(drain):
            raise RequestError(
                400, f"transit DIP {body.transit.dip} must be in dips or in drain.dips"
            )


class BatchError(RequestError):
    """A batch refused because of some of its entries (``rejected``: index, address, status,
    detail of each); nothing was changed."""

    def __init__(self, rejected: Sequence[dict[str, Any]], total: int) -> None:
        self.rejected = list(rejected)
        first = self.rejected[0]
        more = f"; and {len(self.rejected) - 1} more" if len(self.rejected) > 1 else ""
        super().__init__(
            int(first["status"]),
            f"{len(self.rejected)} of {total} change(s) refused, nothing was changed: "
            f"change {first['index']} (VIP {first['address']}): {first['detail']}{more}",
        )


def _request_text(body: VipIn) -> str:
    """A PUT body's canonical JSON: an identical body (by PUT or in a batch) is a no-op."""
    return json.dumps(body.model_dump(mode="json", exclude_unset=True), sort_keys=True)


def _etag_matches(header: str, generation: int) -> bool:
    for part in header.split(","):
        tag = part.strip()
        if tag == "*":
            return True
        tag = tag.removeprefix("W/").strip('"')
        if tag == str(generation):
            return True
    return False


def _nft_reader(dp: Dataplane) -> Callable[[str], list[dict[str, Any]]] | None:
    """Reads the kernel table with the data plane's own ``nft`` command (None: it has none)."""
    if not isinstance(dp, NftDataplane):
        return None
    argv, timeout = dp.argv, max(dp.timeout, 120.0)
    return lambda table: read_table(argv, table, timeout)


class AgentService:
    def __init__(
        self,
        spec: TableSpec,
        dataplane: Dataplane,
        store: StateStore,
        clock: Callable[[], float] = time.time,
        on_apply: Callable[[float], None] | None = None,
    ) -> None:
        self.spec = spec
        self.dp = dataplane
        self.store = store
        self.clock = clock
        self.on_apply = on_apply
        self.lock = threading.RLock()
        self.vips: dict[IPAddress, VipRecord] = {}
        #: (suffix, expiry floor) -> (reuse until (monotonic), flows per raw mark, the record
        #: they were read for: any change of the VIP reads afresh)
        self._count_cache: dict[tuple[str, int | None], tuple[float, Counter[int], VipRecord]] = {}

    # ------------------------------------------------------------------ start / reconcile

    #: Why the state file could not be used at start (None: it could); the agent reports
    #: itself degraded until every VIP in ``unconfirmed`` has had a PUT or DELETE.
    state_problem: str | None = None
    unconfirmed: frozenset[IPAddress] = frozenset()
    #: Reads the kernel table as ``nft -j list table`` objects (recovery); None = from the
    #: data plane's ``nft`` command when it has one.
    read_table: Callable[[str], list[dict[str, Any]]] | None = None

    def start(self) -> None:
        """Load persisted state and make the kernel match it without flushing any flow map.

        Without a usable state file (missing, damaged, checksum wrong) the kernel is the
        truth: if its table holds VIPs, they are read back (lbauto.agent.recover) and left
        exactly as they are; else the previous good copy of the state file is used. Either
        way the agent reports itself degraded until ``apply`` has rewritten every VIP."""
        with self.lock:
            loaded = self.store.read()
            kt = self.dp.kernel_table(self.spec.table)
            if loaded.problem is not None and kt.vmap:
                self._recover(loaded)
            else:
                self.vips = loaded.vips
                self._reconcile(kt)
                if loaded.problem is not None and not (loaded.missing and not loaded.from_previous):
                    self._degraded(loaded, "restored from the previous copy of the state file"
                                   if loaded.from_previous else "started with no VIPs")  # fmt: skip
        self.tick()

    def _reconcile(self, kt: KernelTable) -> None:
        """Make the kernel match ``self.vips``: stale VIPs removed, the rest updated in place."""
        self._apply(render_base(self.spec) + render_meta_base(self.spec))
        want = {suffix(a) for a in self.vips}
        in_vmap = set(kt.vmap.values())
        stale: list[str] = []
        for sfx in sorted(kt.chains - want):
            stale += render_remove_suffix(sfx, self.spec, sfx in in_vmap)
            stale += render_meta_remove(address_of(sfx), self.spec)
        self._apply(stale)
        recs = sorted(self.vips.values(), key=lambda r: addr_key(r.address))
        # metadata elements are rewritten only where they differ (a plain restart: none)
        meta = read_meta(self.dp.argv, self.spec.table) if isinstance(self.dp, NftDataplane) else {}
        for i in range(0, len(recs), RECONCILE_CHUNK):
            cmds: list[str] = []
            for r in recs[i : i + RECONCILE_CHUNK]:
                cmds += render_vip(r, self.spec)
                if meta.get(str(r.address)) != meta_comment(r):
                    cmds += render_meta(r, self.spec)
            self._apply(cmds)
        log.info(
            "reconciled %d VIP(s) into table netdev %s (%s, %d stale removed)",
            len(recs),
            self.spec.table,
            "existing table kept" if kt.exists else "table created",
            len(kt.chains - want),
        )

    def _recover(self, loaded: Loaded) -> None:
        """Take the kernel's VIPs as they are (no VIP object is changed) and persist them."""
        reader = self.read_table or _nft_reader(self.dp)
        if reader is None:
            raise StateError(f"{loaded.problem}; and the kernel table cannot be read back")
        found = recover(reader(self.spec.table), self.spec, self.clock())
        self.vips = dict(found.vips)
        self._apply(render_base(self.spec) + render_meta_base(self.spec))
        kept = self.store.quarantine()
        self.store.save(self.vips)
        how = f"recovered {len(found.vips)} VIP(s) from the kernel, untouched"
        if found.guessed:
            how += f" ({len(found.guessed)} without metadata: generation and mode guessed)"
        if kept is not None:
            how += f"; the unusable file was kept as {kept}"
        self._degraded(loaded, how)

    def _degraded(self, loaded: Loaded, how: str) -> None:
        self.state_problem = f"{loaded.problem}: {how}"
        self.unconfirmed = frozenset(self.vips)
        log.error("%s; run `lbauto apply` to rewrite the agent's VIPs", self.state_problem)

    def _confirmed(self, vip: IPAddress) -> None:
        """A PUT or DELETE rewrote ``vip``: after all recovered VIPs, the agent is healthy."""
        if self.state_problem is None:
            return
        self.unconfirmed = self.unconfirmed - {vip}
        if not self.unconfirmed:
            log.info("every recovered VIP has been rewritten: the agent is no longer degraded")
            self.state_problem = None

    def problems(self) -> list[str]:
        """Why the agent is degraded (empty: it is not)."""
        with self.lock:
            if self.state_problem is None:
                return []
            out = [self.state_problem]
            if self.unconfirmed:
                first = ", ".join(str(a) for a in sorted(self.unconfirmed, key=addr_key)[:5])
                more = "" if len(self.unconfirmed) <= 5 else ", ..."
                out.append(
                    f"{len(self.unconfirmed)} VIP(s) not yet rewritten by a PUT or DELETE "
                    f"({first}{more}): run `lbauto apply`"
                )
            return out

    def _apply(self, cmds: Sequence[str]) -> None:
        if not cmds:
            return
        t0 = time.perf_counter()
        self.dp.apply(cmds)
        dt = time.perf_counter() - t0
        if self.on_apply:
            self.on_apply(dt)

    # ------------------------------------------------------------------ reads

    def get(self, vip: IPAddress) -> VipRecord:
        rec = self.vips.get(vip)
        if rec is None:
            raise RequestError(404, f"VIP {vip} is not configured on this agent")
        return rec

    def flows_of(self, rec: VipRecord) -> list[FlowEntry]:
        if not rec.flow_tracking:
            # Tracking off: the map was flushed and the chain never writes it (a drain with
            # tracking off therefore ends at the next tick).
            return []
        return self.dp.flows(self.spec.table, suffix(rec.address))

    def document(self, rec: VipRecord) -> VipOut:
        now = self.clock()
        transit = None
        if rec.transit:
            transit = TransitOut(
                dip=str(rec.transit.dip),
                seconds=max(0.0, round(rec.transit.expires_at - now, 3)),
                expires_at=rec.transit.expires_at,
            )
        drain = None
        if rec.drain:
            per = self.open_per_mark(rec)
            drain = DrainOut(
                dips=[str(d) for d in rec.drain.dips],
                timeout=max(0.0, round(rec.drain.expires_at - now, 3)),
                expires_at=rec.drain.expires_at,
                remaining_flows={str(d): per.get(rec.marks.get(d, -1), 0) for d in rec.drain.dips},
            )
        return VipOut(
            address=str(rec.address),
            name=rec.name,
            mode=rec.mode,
            dips=[str(d) for d in rec.dips],
            flow_tracking=rec.flow_tracking,
            generation=rec.generation,
            transit=transit,
            drain=drain,
            unconfirmed=rec.address in self.unconfirmed,
        )

    def open_per_mark(self, rec: VipRecord, active_within: float | None = None) -> Counter[int]:
        """Open flows per DIP mark (counted in the kernel's listing, nothing decoded): a
        connection that sent FIN or RST no longer holds a DIP."""
        return Counter(
            {m: n for m, n in self._raw_counts(rec, active_within).items() if not m & CLOSED}
        )

    def flow_counts(self, rec: VipRecord) -> Counter[int]:
        """The VIP's flow entries per raw mark (:data:`CLOSED` set for closing ones)."""
        return self._raw_counts(rec, None)

    def _raw_counts(self, rec: VipRecord, active_within: float | None) -> Counter[int]:
        """Flows per raw mark. A count that took ``t`` seconds to read is reused for ``2 t``:
        the kernel dumps a set in 32 KB messages and restarts its walk for each, so a count
        costs O(n^2) (about 1 s for 100,000 flows); polling drain waits then cost the agent at
        most a third of a core, and small maps (milliseconds) are always read afresh."""
        if not rec.flow_tracking:
            return Counter()
        floor = None
        if active_within is not None:
            floor = int((self.spec.flow_timeout - active_within) * 1000)
        sfx = suffix(rec.address)
        key = (sfx, floor)
        now = time.monotonic()
        hit = self._count_cache.get(key)
        if hit is not None and hit[2] is rec and now < hit[0]:  # same record: no PUT since
            return hit[1]
        counts = self.dp.flow_counts(self.spec.table, sfx, floor)
        took = time.monotonic() - now
        until = now + 3 * took if took > COUNT_CACHE_MIN else 0.0
        self._count_cache[key] = (until, counts, rec)
        return counts

    def flows(
        self,
        vip: IPAddress,
        limit: int,
        active_within: float | None = None,
        rec: VipRecord | None = None,
    ) -> FlowsOut:
        rec = rec or self.get(vip)
        if limit == 0:  # counts only (drain waits poll this): no entry is decoded
            raw = self._raw_counts(rec, active_within)
            names = {m: str(d) for d, m in rec.marks.items()}
            return FlowsOut(
                total=sum(raw.values()),
                closing=sum(n for m, n in raw.items() if m & CLOSED),
                per_dip=dict(
                    sorted((names.get(m, f"mark:{m}"), n) for m, n in raw.items() if not m & CLOSED)
                ),
                entries=[],
            )
        entries = self.flows_of(rec)
        if active_within is not None:
            # The kernel restarts an entry's timeout on every packet, so an entry that expires
            # later than (timeout - active_within) saw a packet within active_within seconds.
            floor = self.spec.flow_timeout - active_within
            entries = [e for e in entries if e.expires is None or e.expires >= floor]
        by_mark = {m: str(d) for d, m in rec.marks.items()}
        per = Counter(by_mark.get(e.mark, f"mark:{e.mark}") for e in entries if not e.closing)
        return FlowsOut(
            total=len(entries),
            closing=sum(1 for e in entries if e.closing),
            per_dip=dict(sorted(per.items())),
            entries=[
                FlowOut(
                    client=e.client,
                    client_port=e.client_port,
                    vip_port=e.vip_port,
                    dip=by_mark.get(e.mark),
                    expires=e.expires,
                    closing=e.closing,
                )
                for e in entries[:limit]
            ],
        )

    def flow_counts_many(
        self, vips: Sequence[IPAddress], active_within: float | None = None
    ) -> dict[IPAddress, FlowsOut | None]:
        """:meth:`flows` with ``limit=0`` for many VIPs (None: no such VIP). The records are
        taken under the lock, the flow maps read outside it (as a single VIP's are)."""
        with self.lock:
            recs = {v: self.vips.get(v) for v in vips}
        return {
            v: None if rec is None else self.flows(v, 0, active_within, rec)
            for v, rec in recs.items()
        }

    # ------------------------------------------------------------------ writes

    def put(
        self, vip: IPAddress, body: VipIn, if_match: str | None, if_none_match: str | None
    ) -> tuple[VipRecord, bool]:
        """Create or replace a VIP. Returns (record, created)."""
        validate(vip, body)
        request = _request_text(body)
        with self.lock:
            old = self.vips.get(vip)
            self._check_preconditions(vip, old, if_match, if_none_match)
            if old is not None and old.request == request:
                self._confirmed(vip)
                return old, False
            new = self._next_record(vip, old, body, request)
            self._apply(render_update(old, new, self.spec) + render_meta(new, self.spec))
            self.vips[vip] = new
            self.store.save(self.vips)
            self._confirmed(vip)
            log.info(
                "VIP %s: mode %s, %d DIP(s), tracking %s, generation %d",
                vip,
                new.mode.value,
                len(new.dips),
                "on" if new.flow_tracking else "off",
                new.generation,
            )
            return new, old is None

    def change(
        self, changes: Sequence[PutChange | DeleteChange]
    ) -> list[tuple[VipRecord | None, bool]]:
        """Many PUTs and DELETEs in one nft transaction and one state-file write, all or
        nothing: every entry is checked first (the rules of a PUT, If-Match, one entry per
        VIP) and any refusal raises :class:`BatchError` naming each refused entry, before the
        kernel is touched; a transaction the kernel refuses changes nothing either. Returns
        per entry (record, created); a delete's record is None."""
        rejected: list[dict[str, Any]] = []
        requests: dict[int, str] = {}

        def refuse(i: int, c: PutChange | DeleteChange, status: int, detail: str) -> None:
            rejected.append(
                {"index": i, "address": str(c.address), "status": status, "detail": detail}
            )

        first: dict[IPAddress, int] = {}
        for i, c in enumerate(changes):
            if c.address in first:
                refuse(i, c, 400, f"VIP {c.address} is also change {first[c.address]}")
                continue
            first[c.address] = i
            if isinstance(c, PutChange):
                try:
                    validate(c.address, c.vip)
                except RequestError as e:
                    refuse(i, c, e.status, str(e))
                    continue
                requests[i] = _request_text(c.vip)
        with self.lock:
            for i, c in enumerate(changes):
                old = self.vips.get(c.address)
                if c.if_match is None or (isinstance(c, DeleteChange) and old is None):
                    continue
                if old is None or old.generation != c.if_match:
                    have = f"generation {old.generation}" if old else "no such VIP"
                    refuse(i, c, 412, f"If-Match {c.if_match} does not match ({have})")
            if rejected:
                raise BatchError(sorted(rejected, key=lambda r: int(r["index"])), len(changes))
            out: list[tuple[VipRecord | None, bool]] = []
            cmds: list[str] = []
            updates: dict[IPAddress, VipRecord | None] = {}
            for i, c in enumerate(changes):
                old = self.vips.get(c.address)
                if isinstance(c, DeleteChange):
                    if old is not None:
                        cmds += render_remove(c.address, self.spec)
                        cmds += render_meta_remove(c.address, self.spec)
                        updates[c.address] = None
                    out.append((None, False))
                elif old is not None and old.request == requests[i]:
                    out.append((old, False))
                else:
                    new = self._next_record(c.address, old, c.vip, requests[i])
                    cmds += render_update(old, new, self.spec) + render_meta(new, self.spec)
                    updates[c.address] = new
                    out.append((new, old is None))
            self._apply(cmds)  # one transaction: the kernel takes all of it or none
            for vip, rec in updates.items():
                if rec is None:
                    del self.vips[vip]
                else:
                    self.vips[vip] = rec
            if updates:
                self.store.save(self.vips)
            for c in changes:
                self._confirmed(c.address)
            if updates:
                log.info(
                    "batch of %d change(s): %d VIP(s) set, %d removed, %d unchanged",
                    len(changes),
                    sum(1 for r in updates.values() if r is not None),
                    sum(1 for r in updates.values() if r is None),
                    len(changes) - len(updates),
                )
            return out

    @staticmethod
    def _check_preconditions(
        vip: IPAddress, old: VipRecord | None, if_match: str | None, if_none_match: str | None
    ) -> None:
        if if_match is not None and (old is None or not _etag_matches(if_match, old.generation)):
            have = f"generation {old.generation}" if old else "no such VIP"
            raise RequestError(412, f"If-Match {if_match} does not match VIP {vip} ({have})")
        if if_none_match is not None and old is not None and if_none_match.strip() == "*":
            raise RequestError(412, f"VIP {vip} exists (generation {old.generation})")

    def _next_record(
        self, vip: IPAddress, old: VipRecord | None, body: VipIn, request: str
    ) -> VipRecord:
        now = self.clock()
        dips = tuple(sorted(body.dips, key=addr_key))
        transit: TransitRecord | None
        if body.transit is not None:
            transit = TransitRecord(body.transit.dip, now + body.transit.seconds)
        elif "transit" not in body.model_fields_set and old and old.transit:
            transit = old.transit
        else:
            transit = None
        drain: DrainRecord | None
        if body.drain is not None:
            drain = DrainRecord(
                tuple(sorted(body.drain.dips, key=addr_key)), now + body.drain.timeout
            )
        elif "drain" not in body.model_fields_set and old and old.drain:
            kept = tuple(d for d in old.drain.dips if d not in set(dips))
            drain = DrainRecord(kept, old.drain.expires_at) if kept else None
        else:
            drain = None
        allowed = set(dips) | set(drain.dips if drain else ())
        if transit and (not body.flow_tracking or transit.dip not in allowed):
            transit = None  # a kept pin that the new DIP set no longer allows
        base = old or VipRecord(vip, body.mode, (), body.flow_tracking, 0)
        return replace(
            base,
            mode=body.mode,
            dips=dips,
            flow_tracking=body.flow_tracking,
            generation=base.generation + 1,
            name=body.name,
            transit=transit,
            drain=drain,
            request=request,
        ).with_marks()

    def delete(self, vip: IPAddress, if_match: str | None) -> None:
        with self.lock:
            old = self.get(vip)
            self._check_preconditions(vip, old, if_match, None)
            self._apply(render_remove(vip, self.spec) + render_meta_remove(vip, self.spec))
            del self.vips[vip]
            self.store.save(self.vips)
            self._confirmed(vip)
            log.info("VIP %s removed", vip)

    # ------------------------------------------------------------------ timers

    def tick(self) -> None:
        """End expired transit pins and finished drains (flows gone or timeout passed).

        Flow maps are read without the lock (a big map takes seconds to list), then changes are
        applied under it to records that did not change meanwhile (the others wait a tick)."""
        with self.lock:
            snapshot = dict(self.vips)
        now = self.clock()
        # counts for every drain; the entries only where a drain timed out (they are cut)
        per = {a: self.open_per_mark(r) for a, r in snapshot.items() if r.drain}
        flows = {
            a: self.flows_of(r)
            for a, r in snapshot.items()
            if r.drain and r.drain.expires_at <= now
        }
        with self.lock:
            ended: list[tuple[IPAddress, VipRecord, list[str]]] = []
            for vip in sorted(snapshot, key=addr_key):
                rec = snapshot[vip]
                if self.vips.get(vip) is not rec:
                    continue
                new, cmds = self._tick_vip(rec, now, per.get(vip, Counter()), flows.get(vip, []))
                if new is not rec:
                    ended.append((vip, new, cmds + render_update(rec, new, self.spec)))
            if not ended:
                return
            try:
                # Every VIP whose pin or drain ended, in one transaction: a batch of 100
                # drains ends in one kernel commit instead of 100 under the lock.
                self._apply([c for _, _, cmds in ended for c in cmds])
            except LbautoError:
                if len(ended) == 1:
                    raise
                self._tick_each(ended)
            else:
                for vip, new, _ in ended:
                    self.vips[vip] = new
            self.store.save(self.vips)

    def _tick_each(self, ended: Sequence[tuple[IPAddress, VipRecord, list[str]]]) -> None:
        """The kernel refused the tick's transaction: each VIP's own, so one VIP it refuses
        does not hold the others' ends back (that VIP is tried again at the next tick)."""
        failed: LbautoError | None = None
        for vip, new, cmds in ended:
            try:
                self._apply(cmds)
            except LbautoError as exc:
                failed = failed or exc
                continue
            self.vips[vip] = new
        if failed is not None:
            self.store.save(self.vips)
            raise failed

    def _tick_vip(
        self, rec: VipRecord, now: float, per: Counter[int], flows: Sequence[FlowEntry]
    ) -> tuple[VipRecord, list[str]]:
        new = rec
        cmds: list[str] = []
        if rec.transit and rec.transit.expires_at <= now:
            log.info("VIP %s: transit pin to %s expired", rec.address, rec.transit.dip)
            new = replace(new, transit=None)
        if rec.drain:
            timed_out = rec.drain.expires_at <= now
            keep = tuple(
                d for d in rec.drain.dips if not timed_out and per.get(rec.marks.get(d, -1), 0)
            )
            if keep != rec.drain.dips:
                ended = set(rec.drain.dips) - set(keep)
                gone = {rec.marks[d] for d in ended if d in rec.marks}
                cut = [f for f in flows if f.mark in gone]
                hints = [
                    h
                    for h in (self.dp.hints(self.spec.table, suffix(rec.address)) if cut else [])
                    if h.raw_mark & ~CLOSED in gone
                ]
                cmds += render_delete_flows(rec.address, self.spec, cut, hints)
                log.info(
                    "VIP %s: drain of %s ended (%s, %d flow(s) cut)",
                    rec.address,
                    ", ".join(map(str, sorted(ended, key=addr_key))),
                    "timeout" if timed_out else "no flows left",
                    len(cut),
                )
                new = replace(new, drain=DrainRecord(keep, rec.drain.expires_at) if keep else None)
        if new is not rec:
            new = new.with_marks()
        return new, cmds


class Ticker:
    """Runs ``service.tick`` every ``interval`` seconds in a daemon thread."""

    def __init__(self, service: AgentService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lbauto-agent-timers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.service.tick()
            except LbautoError as e:
                log.error("timer tick failed: %s", e)
