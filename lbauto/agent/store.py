"""The agent's desired state: one record per VIP, persisted atomically as JSON.

Deadlines (transit pin, drain) are absolute wall-clock times so they survive a restart.
DIP marks (the nftables DIP index) are stable for the life of a VIP and never reused, so a
stale flow entry can never point at a different DIP.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lbauto.errors import StateError
from lbauto.core.model import IPAddress, Mode, addr_key


@dataclass(frozen=True)
class TransitRecord:
    dip: IPAddress
    expires_at: float


@dataclass(frozen=True)
class DrainRecord:
    dips: tuple[IPAddress, ...]
    expires_at: float


@dataclass(frozen=True)
class VipRecord:
    address: IPAddress
    mode: Mode
    dips: tuple[IPAddress, ...]
    flow_tracking: bool
    generation: int
    name: str | None = None
    transit: TransitRecord | None = None
    drain: DrainRecord | None = None
    marks: dict[IPAddress, int] = field(default_factory=dict)
    next_mark: int = 1
    #: Canonical JSON of the last accepted PUT body: an identical PUT is a no-op.
    request: str = ""

    def mapped_dips(self) -> tuple[IPAddress, ...]:
        """DIPs that need a mark: active, draining and the transit DIP."""
        out = set(self.dips)
        if self.drain:
            out.update(self.drain.dips)
        if self.transit:
            out.add(self.transit.dip)
        return tuple(sorted(out, key=addr_key))

    def with_marks(self) -> VipRecord:
        """Give every mapped DIP a mark (new DIPs get fresh ones) and drop marks of the rest."""
        marks = {d: m for d, m in self.marks.items() if d in set(self.mapped_dips())}
        nxt = self.next_mark
        for d in self.mapped_dips():
            if d not in marks:
                marks[d] = nxt
                nxt += 1
        return replace(self, marks=marks, next_mark=nxt)


def _addr(s: Any) -> IPAddress:
    return ipaddress.ip_address(str(s))


def record_to_json(r: VipRecord) -> dict[str, Any]:
    return {
        "address": str(r.address),
        "mode": r.mode.value,
        "dips": [str(d) for d in r.dips],
        "flow_tracking": r.flow_tracking,
        "generation": r.generation,
        "name": r.name,
        "transit": (
            {"dip": str(r.transit.dip), "expires_at": r.transit.expires_at} if r.transit else None
        ),
        "drain": (
            {"dips": [str(d) for d in r.drain.dips], "expires_at": r.drain.expires_at}
            if r.drain
            else None
        ),
        "marks": {str(d): m for d, m in r.marks.items()},
        "next_mark": r.next_mark,
        "request": r.request,
    }


def record_from_json(d: dict[str, Any]) -> VipRecord:
    t = d.get("transit")
    dr = d.get("drain")
    return VipRecord(
        address=_addr(d["address"]),
        mode=Mode(d["mode"]),
        dips=tuple(_addr(x) for x in d["dips"]),
        flow_tracking=bool(d["flow_tracking"]),
        generation=int(d["generation"]),
        name=d.get("name"),
        transit=TransitRecord(_addr(t["dip"]), float(t["expires_at"])) if t else None,
        drain=(
            DrainRecord(tuple(_addr(x) for x in dr["dips"]), float(dr["expires_at"]))
            if dr
            else None
        ),
        marks={_addr(k): int(v) for k, v in d.get("marks", {}).items()},
        next_mark=int(d.get("next_mark", 1)),
        request=str(d.get("request", "")),
    )


class StateStore:
    """Reads and atomically rewrites the state file (write temp, fsync, rename)."""

    VERSION = 1

    def __init__(self, path: Path) -> None:
        self.path = path
        # Serialised records by identity: records are immutable, so a save re-encodes only the
        # records that changed (with 1,000 VIPs, encoding all of them dominated an update).
        self._encoded: dict[IPAddress, tuple[VipRecord, str]] = {}

    def _encode(self, r: VipRecord) -> str:
        hit = self._encoded.get(r.address)
        if hit is not None and hit[0] is r:
            return hit[1]
        text = json.dumps(record_to_json(r), sort_keys=True, separators=(",", ":"))
        self._encoded[r.address] = (r, text)
        return text

    def load(self) -> dict[IPAddress, VipRecord]:
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_text())
            if doc.get("version") != self.VERSION:
                raise ValueError(f"unsupported version {doc.get('version')!r}")
            recs = [record_from_json(v) for v in doc["vips"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StateError(
                f"agent state file {self.path} is unreadable ({e}); fix or move it away "
                "(the agent then starts empty and removes kernel VIPs it does not know)"
            ) from e
        return {r.address: r for r in recs}

    def save(self, vips: dict[IPAddress, VipRecord]) -> None:
        for gone in set(self._encoded) - set(vips):
            del self._encoded[gone]
        body = ",\n".join(self._encode(vips[a]) for a in sorted(vips, key=addr_key))
        data = f'{{"version":{self.VERSION},"vips":[\n{body}\n]}}\n'.encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            raise StateError(f"cannot write agent state file {self.path}: {e.strerror}") from e
