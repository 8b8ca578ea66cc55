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
from dataclasses import dataclass, replace

from lbauto.agent.dataplane import (
    Dataplane,
    FlowEntry,
    TableSpec,
    render_base,
    render_delete_flows,
    render_remove,
    render_remove_suffix,
    render_update,
    render_vip,
    suffix,
)
from lbauto.agent.models import (
    DrainOut,
    FlowOut,
    FlowsOut,
    TransitOut,
    VipIn,
    VipOut,
)
from lbauto.agent.store import DrainRecord, StateStore, TransitRecord, VipRecord
from lbauto.core.addresses import excerpt, parse_address
from lbauto.core.model import IPAddress, Mode, addr_key
from lbauto.errors import LbautoError, RequestError

log = logging.getLogger("lbauto.agent")
RECONCILE_CHUNK = 200


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


def _etag_matches(header: str, generation: int) -> bool:
    for part in header.split(","):
        tag = part.strip()
        if tag == "*":
            return True
        tag = tag.removeprefix("W/").strip('"')
        if tag == str(generation):
            return True
    return False


@dataclass
class Stats:
    applies: int = 0
    last_apply_seconds: float = 0.0


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
        self.stats = Stats()

    # ------------------------------------------------------------------ start / reconcile

    def start(self) -> None:
        """Load persisted state and make the kernel match it without flushing any flow map."""
        with self.lock:
            self.vips = self.store.load()
            kt = self.dp.kernel_table(self.spec.table)
            self._apply(render_base(self.spec))
            want = {suffix(a) for a in self.vips}
            in_vmap = set(kt.vmap.values())
            stale: list[str] = []
            for sfx in sorted(kt.chains - want):
                stale += render_remove_suffix(sfx, self.spec, sfx in in_vmap)
            self._apply(stale)
            recs = sorted(self.vips.values(), key=lambda r: addr_key(r.address))
            for i in range(0, len(recs), RECONCILE_CHUNK):
                cmds: list[str] = []
                for r in recs[i : i + RECONCILE_CHUNK]:
                    cmds += render_vip(r, self.spec)
                self._apply(cmds)
            log.info(
                "reconciled %d VIP(s) into table netdev %s (%s, %d stale removed)",
                len(recs),
                self.spec.table,
                "existing table kept" if kt.exists else "table created",
                len(kt.chains - want),
            )
        self.tick()

    def _apply(self, cmds: Sequence[str]) -> None:
        if not cmds:
            return
        t0 = time.perf_counter()
        self.dp.apply(cmds)
        dt = time.perf_counter() - t0
        self.stats.applies += 1
        self.stats.last_apply_seconds = dt
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
            per = self._per_mark(self.flows_of(rec))
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
        )

    @staticmethod
    def _per_mark(flows: Sequence[FlowEntry]) -> Counter[int]:
        return Counter(f.mark for f in flows)

    def flows(self, vip: IPAddress, limit: int, active_within: float | None = None) -> FlowsOut:
        rec = self.get(vip)
        entries = self.flows_of(rec)
        if active_within is not None:
            # The kernel restarts an entry's timeout on every packet, so an entry that expires
            # later than (timeout - active_within) saw a packet within active_within seconds.
            floor = self.spec.flow_timeout - active_within
            entries = [e for e in entries if e.expires is None or e.expires >= floor]
        by_mark = {m: str(d) for d, m in rec.marks.items()}
        per = Counter(by_mark.get(e.mark, f"mark:{e.mark}") for e in entries)
        return FlowsOut(
            total=len(entries),
            per_dip=dict(sorted(per.items())),
            entries=[
                FlowOut(
                    client=e.client,
                    client_port=e.client_port,
                    vip_port=e.vip_port,
                    dip=by_mark.get(e.mark),
                    expires=e.expires,
                )
                for e in entries[:limit]
            ],
        )

    # ------------------------------------------------------------------ writes

    def put(
        self, vip: IPAddress, body: VipIn, if_match: str | None, if_none_match: str | None
    ) -> tuple[VipRecord, bool]:
        """Create or replace a VIP. Returns (record, created)."""
        validate(vip, body)
        request = json.dumps(body.model_dump(mode="json", exclude_unset=True), sort_keys=True)
        with self.lock:
            old = self.vips.get(vip)
            self._check_preconditions(vip, old, if_match, if_none_match)
            if old is not None and old.request == request:
                return old, False
            new = self._next_record(vip, old, body, request)
            self._apply(render_update(old, new, self.spec))
            self.vips[vip] = new
            self.store.save(self.vips)
            log.info(
                "VIP %s: mode %s, %d DIP(s), tracking %s, generation %d",
                vip,
                new.mode.value,
                len(new.dips),
                "on" if new.flow_tracking else "off",
                new.generation,
            )
            return new, old is None

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
            self._apply(render_remove(vip, self.spec))
            del self.vips[vip]
            self.store.save(self.vips)
            log.info("VIP %s removed", vip)

    # ------------------------------------------------------------------ timers

    def tick(self) -> None:
        """End expired transit pins and finished drains (flows gone or timeout passed).

        Flow maps are read without the lock (a big map takes seconds to list), then changes are
        applied under it to records that did not change meanwhile (the others wait a tick)."""
        with self.lock:
            snapshot = dict(self.vips)
        flows = {a: self.flows_of(r) for a, r in snapshot.items() if r.drain}
        now = self.clock()
        with self.lock:
            changed = False
            for vip in sorted(snapshot, key=addr_key):
                rec = snapshot[vip]
                if self.vips.get(vip) is not rec:
                    continue
                new, cmds = self._tick_vip(rec, now, flows.get(vip, []))
                if new is not rec:
                    self._apply(cmds + render_update(rec, new, self.spec))
                    self.vips[vip] = new
                    changed = True
            if changed:
                self.store.save(self.vips)

    def _tick_vip(
        self, rec: VipRecord, now: float, flows: Sequence[FlowEntry]
    ) -> tuple[VipRecord, list[str]]:
        new = rec
        cmds: list[str] = []
        if rec.transit and rec.transit.expires_at <= now:
            log.info("VIP %s: transit pin to %s expired", rec.address, rec.transit.dip)
            new = replace(new, transit=None)
        if rec.drain:
            per = self._per_mark(flows)
            timed_out = rec.drain.expires_at <= now
            keep = tuple(
                d for d in rec.drain.dips if not timed_out and per.get(rec.marks.get(d, -1), 0)
            )
            if keep != rec.drain.dips:
                ended = set(rec.drain.dips) - set(keep)
                gone = {rec.marks[d] for d in ended if d in rec.marks}
                cut = [f for f in flows if f.mark in gone]
                if cut:
                    cmds.append(render_delete_flows(rec.address, self.spec, cut))
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
