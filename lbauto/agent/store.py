"""The agent's desired state: one record per VIP, persisted atomically as JSON.

Deadlines (transit pin, drain) are absolute wall-clock times so they survive a restart.
DIP marks (the nftables DIP index) are stable for the life of a VIP and never reused, so a
stale flow entry can never point at a different DIP.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lbauto.core.model import IPAddress, Mode, addr_key
from lbauto.errors import StateError


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


@dataclass(frozen=True)
class Loaded:
    """What :meth:`StateStore.read` found: the records of the first usable file (the state
    file, else its previous copy), and why the state file itself could not be used."""

    vips: dict[IPAddress, VipRecord]
    #: None: the state file was read. Else why not (missing, checksum, JSON, ...).
    problem: str | None = None
    #: The records came from the previous good copy (the state file was unusable).
    from_previous: bool = False
    #: The state file did not exist (a first start, or it was removed).
    missing: bool = False


class StateStore:
    """Reads and atomically rewrites the state file.

    Format (version 2): a header line ``{"version": 2, "sha256": ..., "bytes": N}`` then the
    body ``{"vips": [...]}``; the checksum covers the body, so a truncated or altered file is
    detected. Each save writes a temporary file, fsyncs it, keeps the current file as
    ``<name>.prev`` (a hard link, so a good file exists at every instant), renames the
    temporary file over the state file and fsyncs the directory. Version 1 files (no header)
    are still read."""

    VERSION = 2

    def __init__(self, path: Path) -> None:
        self.path = path
        self.previous = path.with_name(path.name + ".prev")
        self.quarantined = path.with_name(path.name + ".corrupt")
        # Serialised records by identity: records are immutable, so a save re-encodes only the
        # records that changed (with 1,000 VIPs, encoding all of them dominated an update).
        self._encoded: dict[IPAddress, tuple[VipRecord, str]] = {}
        #: Only a file known to be good becomes the previous copy.
        self._current_good = False

    def _encode(self, r: VipRecord) -> str:
        hit = self._encoded.get(r.address)
        if hit is not None and hit[0] is r:
            return hit[1]
        text = json.dumps(record_to_json(r), sort_keys=True, separators=(",", ":"))
        self._encoded[r.address] = (r, text)
        return text

    def load(self) -> dict[IPAddress, VipRecord]:
        """The state file's records ({} if there is none); StateError if it is unusable."""
        if not self.path.exists():
            return {}
        vips = self._parse(self.path)
        self._current_good = True
        return vips

    def read(self) -> Loaded:
        """Like :meth:`load`, but never fails on content: an unusable or missing state file
        is reported in ``problem`` and the previous copy, if good, supplies the records."""
        missing = not self.path.exists()
        if missing:
            problem = f"agent state file {self.path} is missing"
        else:
            try:
                return Loaded(self.load())
            except StateError as e:
                problem = str(e)
        try:
            if self.previous.exists():
                return Loaded(self._parse(self.previous), problem, True, missing)
        except StateError as e:
            problem += f"; its previous copy is unusable too ({e})"
        return Loaded({}, problem, False, missing)

    def _parse(self, path: Path) -> dict[IPAddress, VipRecord]:
        try:
            data = path.read_bytes()
            head, sep, body = data.partition(b"\n")
            header = json.loads(head) if sep else {}
            if isinstance(header, dict) and header.get("version") == self.VERSION:
                if header.get("bytes") != len(body):
                    raise ValueError(f"{len(body)} bytes, the header says {header.get('bytes')}")
                if hashlib.sha256(body).hexdigest() != header.get("sha256"):
                    raise ValueError("checksum mismatch (the file was altered or damaged)")
                doc = json.loads(body)
            else:
                doc = json.loads(data)
                if not isinstance(doc, dict) or doc.get("version") != 1:
                    raise ValueError("unsupported format or version")
            recs = [record_from_json(v) for v in doc["vips"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            reason = e.strerror if isinstance(e, OSError) else str(e)[:200]
            raise StateError(f"agent state file {path} is unusable: {reason}") from e
        return {r.address: r for r in recs}

    def quarantine(self) -> Path | None:
        """Move an unusable state file aside (kept for the operator); its path, if any."""
        if not self.path.exists():
            return None
        try:
            os.replace(self.path, self.quarantined)
        except OSError as e:
            raise StateError(f"cannot move {self.path} aside: {e.strerror}") from e
        self._current_good = False
        return self.quarantined

    def save(self, vips: dict[IPAddress, VipRecord]) -> None:
        for gone in set(self._encoded) - set(vips):
            del self._encoded[gone]
        body = ",\n".join(self._encode(vips[a]) for a in sorted(vips, key=addr_key))
        payload = f'{{"vips":[\n{body}\n]}}\n'.encode()
        header = json.dumps(
            {"version": self.VERSION, "sha256": hashlib.sha256(payload).hexdigest(),
             "bytes": len(payload)}
        )  # fmt: skip
        data = header.encode() + b"\n" + payload
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                self._keep_previous()
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _fsync_dir(self.path.parent)
        except OSError as e:
            raise StateError(f"cannot write agent state file {self.path}: {e.strerror}") from e
        self._current_good = True

    def _keep_previous(self) -> None:
        """The current (good) file becomes the previous copy; the state file stays in place."""
        if not self._current_good or not self.path.exists():
            return
        link = self.previous.with_name(self.previous.name + ".tmp")
        link.unlink(missing_ok=True)
        os.link(self.path, link)
        os.replace(link, self.previous)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
