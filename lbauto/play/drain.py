"""Planned maintenance of a DIP host: take its addresses out of every VIP, put them back.

Built on the public scale flow (:func:`lbauto.orchestrate.apply.run_scale`), one VIP at a time,
so ``vips.yaml`` always matches what was done, even when a later VIP fails. Where each DIP was
taken out is recorded in ``<state dir>/drained.json`` right after each VIP succeeded, so
``restore_dip`` puts it back in the same place in each DIP list (same Maglev table as before)
in this run or in a later one (maintenance can outlast a playbook run).
"""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lbauto.core.model import Inventory, IPAddress, Vip
from lbauto.errors import LbautoError, StateError
from lbauto.orchestrate.apply import Devices, state_dir

RECORD = "drained.json"
#: Seconds between two reads of the agents' flow counts while a drain is awaited.
POLL = 0.5


class DrainRecord:
    """``{dip: {vip: [the VIP's DIPs before the drain]}}`` in the inventory's state dir."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / RECORD

    def read(self) -> dict[str, dict[str, list[str]]]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StateError(f"{self.path}: unreadable drain record ({exc})") from exc
        if not isinstance(doc, dict):
            raise StateError(f"{self.path}: not a drain record (expected a mapping)")
        return doc

    def dips(self) -> set[IPAddress]:
        return {ipaddress.ip_address(d) for d in self.read()}

    def vips_of(self, dip: IPAddress) -> dict[str, list[str]]:
        return dict(self.read().get(str(dip), {}))

    def add(self, dip: IPAddress, vip: str, before: Sequence[IPAddress]) -> None:
        doc = self.read()
        doc.setdefault(str(dip), {})[vip] = [str(d) for d in before]
        self._write(doc)

    def remove(self, dip: IPAddress, vip: str) -> None:
        doc = self.read()
        entry = doc.get(str(dip), {})
        entry.pop(vip, None)
        if not entry:
            doc.pop(str(dip), None)
        self._write(doc)

    def _write(self, doc: dict[str, dict[str, list[str]]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".drained.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2, sort_keys=True)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def record_for(inv: Inventory) -> DrainRecord:
    return DrainRecord(state_dir(inv))


@dataclass
class Removal:
    vip: Vip
    dip: IPAddress

    @property
    def after(self) -> list[IPAddress]:
        return [d for d in self.vip.dips if d != self.dip]

    @property
    def stays_multi(self) -> bool:
        return len(self.after) >= 2


def removals(
    inv: Inventory, dips: Sequence[IPAddress], only: set[str] | None, allow_empty: bool
) -> list[Removal]:
    """Which VIPs lose which DIP; refuses (before anything changes) to empty a VIP unless
    ``allow_empty``. VIPs that stay on the LB come first: their drains run on the agent while
    the ones that turn single wait for theirs."""
    out = [
        Removal(v, d)
        for v in inv.vips
        for d in dips
        if d in v.dips and (only is None or v.name in only)
    ]
    sole = [r for r in out if not r.after]
    if sole and not allow_empty:
        r = sole[0]
        raise LbautoError(
            f"drain_dip: {r.dip} is the only DIP of VIP {r.vip.name}: draining it leaves the VIP "
            "without a backend (scale it to another DIP first, or pass allow_empty: true)"
        )
    return sorted(out, key=lambda r: not r.stays_multi)


@dataclass
class DrainWait:
    drained: bool
    left: int
    seconds: float
    per_vip: dict[str, int] = field(default_factory=dict)


def wait_for_drain(
    devices: Devices,
    done: Sequence[Removal],
    timeout: float,
    started: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DrainWait:
    """Wait until no agent counts a connection of a removed DIP on the VIPs it left, or until
    ``timeout`` seconds after ``started``. Agents that cannot be asked count as drained (the
    timeout still bounds the wait, as the executor's drain wait does)."""
    while True:
        per_vip: dict[str, int] = {}
        for r in done:
            n = 0
            for agent in devices.agents:
                try:
                    n += agent.flows_per_dip(r.vip.address).get(r.dip, 0)
                except LbautoError:
                    continue
            per_vip[r.vip.name] = per_vip.get(r.vip.name, 0) + n
        left = sum(per_vip.values())
        elapsed = clock() - started
        if left == 0 or elapsed >= timeout:
            return DrainWait(left == 0, left, elapsed, per_vip)
        sleep(min(POLL, max(timeout - elapsed, 0.01)))


def restored_dips(
    current: Sequence[IPAddress], dip: IPAddress, before: Sequence[str] | None
) -> list[IPAddress]:
    """``current`` with ``dip`` back in its place of ``before`` (the list before the drain);
    DIPs added since keep their place at the end."""
    if dip in current:
        return list(current)
    if not before:
        return [*current, dip]
    old = [ipaddress.ip_address(d) for d in before]
    have = set(current) | {dip}
    return [d for d in old if d in have] + [d for d in current if d not in old]
