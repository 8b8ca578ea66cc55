"""Reading the agent's VIPs back from the kernel, for a start without a usable state file.

The nftables table holds every VIP's data plane: its verdict-map element (the VIP exists and
forwards), its DIP map (mark -> DIP: active, draining and pinned DIPs), its bucket map (which
marks are active), its chain (flow tracking on = the chain reads ``@f<sfx>``; a transit pin =
a rule that updates ``@th4``/``@th6`` and sets the pinned mark) and its flow map (marks in use).
What the data plane cannot express (generation, mode of a one-DIP VIP, name, deadlines, the
next free mark) is kept next to it: one element per VIP in the sets ``lbmeta4``/``lbmeta6``,
whose comment (at most 128 characters) is written in the same transaction as every change.

Everything here is pure except :func:`read_table`, which runs ``nft -j list table``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbauto.agent.dataplane import TableSpec, suffix
from lbauto.agent.store import DrainRecord, TransitRecord, VipRecord
from lbauto.core.addresses import parse_address
from lbauto.core.model import IPAddress, Mode, addr_key
from lbauto.errors import AgentError

log = logging.getLogger("lbauto.agent")

META_SETS = {4: "lbmeta4", 6: "lbmeta6"}
#: A recovered transit pin without a recorded deadline ends this many seconds after start.
DEFAULT_PIN_SECONDS = 60.0
#: DIP marks are below the flag bits the data plane may set in a flow entry's mark.
MARK_MASK = 0x7FFFFFFF
_MODES = {"s": Mode.SINGLE, "m": Mode.MULTI, "e": Mode.EMPTY}
_MODE_CODES = {m: c for c, m in _MODES.items()}


# ---------------------------------------------------------------------------- metadata


def meta_comment(rec: VipRecord) -> str:
    """The VIP's metadata as an element comment (<= 128 characters: the name is <= 64)."""
    parts = [f"g={rec.generation}", f"m={_MODE_CODES[rec.mode]}", f"k={rec.next_mark}"]
    if rec.transit:
        parts.append(f"t={rec.transit.expires_at:.0f}")
    if rec.drain:
        parts.append(f"d={rec.drain.expires_at:.0f}")
    if rec.name:
        parts.append(f"n={rec.name}")
    return " ".join(parts)


def parse_meta(comment: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in comment.split():
        key, sep, value = part.partition("=")
        if sep:
            out[key] = value
    return out


def render_meta_base(spec: TableSpec) -> list[str]:
    t = f"netdev {spec.table}"
    return [f"add set {t} {name} {{ type ipv{v}_addr; }}" for v, name in META_SETS.items()]


def render_meta(rec: VipRecord, spec: TableSpec) -> list[str]:
    """Replace the VIP's metadata element (add first, so that the delete cannot fail)."""
    t = f"netdev {spec.table} {META_SETS[rec.address.version]}"
    return [
        f"add element {t} {{ {rec.address} }}",
        f"delete element {t} {{ {rec.address} }}",
        f'add element {t} {{ {rec.address} comment "{meta_comment(rec)}" }}',
    ]


def render_meta_remove(address: IPAddress, spec: TableSpec) -> list[str]:
    t = f"netdev {spec.table} {META_SETS[address.version]}"
    return [f"add element {t} {{ {address} }}", f"delete element {t} {{ {address} }}"]


# ---------------------------------------------------------------------------- reading


def _nft_json(argv: Sequence[str], args: Sequence[str], timeout: float) -> list[dict[str, Any]]:
    """``nft -j <args>`` as its list of objects ([] if the object does not exist)."""
    try:
        p = subprocess.run(
            [*argv, "-j", *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise AgentError(f"cannot run nft to read {' '.join(args)} ({e})") from e
    if p.returncode != 0:
        if "No such file or directory" in p.stderr:
            return []
        raise AgentError(f"nft {' '.join(args)} failed: {p.stderr.strip()[:500]}")
    items: list[dict[str, Any]] = json.loads(p.stdout).get("nftables", [])
    return items


def read_table(argv: Sequence[str], table: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """``nft -j list table netdev <table>`` as its list of objects ([] if there is none).
    One listing of everything: with 1,000 VIPs of 3 DIPs about 16 s on a loaded 2-core host
    (nft 1.0.6 spends it on the rules and the ~400,000 bucket elements; listing without
    elements, ``nft -t``, takes as long, so reading the big maps over netlink saves nothing)."""
    return _nft_json(argv, ["list", "table", "netdev", table], timeout)


def read_meta(argv: Sequence[str], table: str, timeout: float = 30.0) -> dict[str, str]:
    """VIP address -> its metadata comment, as the kernel holds them."""
    out: dict[str, str] = {}
    for name in META_SETS.values():
        for item in _nft_json(argv, ["list", "set", "netdev", table, name], timeout):
            for el in item.get("set", {}).get("elem", []):
                out[str(_val(el))] = _comment(el)
    return out


@dataclass
class _Objects:
    """The table's objects by name."""

    maps: dict[str, list[Any]] = field(default_factory=dict)
    sets: dict[str, list[Any]] = field(default_factory=dict)
    rules: dict[str, list[str]] = field(default_factory=dict)  # chain -> rules as JSON text


def _index(items: Iterable[Mapping[str, Any]]) -> _Objects:
    objs = _Objects()
    for item in items:
        if "map" in item:
            objs.maps[item["map"]["name"]] = list(item["map"].get("elem", []))
        elif "set" in item:
            objs.sets[item["set"]["name"]] = list(item["set"].get("elem", []))
        elif "rule" in item:
            rule = item["rule"]
            objs.rules.setdefault(rule["chain"], []).append(json.dumps(rule.get("expr", [])))
    return objs


def _val(key: Any) -> Any:
    """An element key without its ``{"elem": {"val": ...}}`` wrapper (counters, comments)."""
    if isinstance(key, dict) and "elem" in key:
        return key["elem"].get("val")
    return key


def _comment(key: Any) -> str:
    if isinstance(key, dict) and "elem" in key:
        return str(key["elem"].get("comment", ""))
    return ""


def _address(value: Any) -> IPAddress | None:
    result = parse_address(str(value))
    return None if isinstance(result, str) else result


@dataclass(frozen=True)
class Recovered:
    """VIPs read back from the kernel; ``guessed`` names the ones without metadata."""

    vips: dict[IPAddress, VipRecord]
    guessed: tuple[IPAddress, ...] = ()


def recover(
    items: Iterable[Mapping[str, Any]], spec: TableSpec, now: float | None = None
) -> Recovered:
    """The VIP records that the kernel table ``items`` (``nft -j list table``) holds."""
    now = time.time() if now is None else now
    objs = _index(items)
    vips: dict[IPAddress, VipRecord] = {}
    guessed: list[IPAddress] = []
    for version in (4, 6):
        meta = {
            str(_val(k)): parse_meta(_comment(k)) for k in objs.sets.get(META_SETS[version], [])
        }
        for el in objs.maps.get(f"vips{version}", []):
            address = _address(_val(el[0]))
            if address is None or not isinstance(el[1], dict) or "jump" not in el[1]:
                continue
            if el[1]["jump"].get("target") != f"v{suffix(address)}":
                continue
            info = meta.get(str(address))
            vips[address] = _record(address, objs, spec, info or {}, now)
            if info is None:
                guessed.append(address)
    return Recovered(vips, tuple(sorted(guessed, key=addr_key)))


def _record(
    address: IPAddress, objs: _Objects, spec: TableSpec, meta: Mapping[str, str], now: float
) -> VipRecord:
    sfx = suffix(address)
    marks: dict[IPAddress, int] = {}
    for mark, dip in objs.maps.get(f"d{sfx}", []):
        a = _address(dip)
        if a is not None and int(mark) == int(mark) & MARK_MASK:  # not the closing-flow twin
            marks[a] = int(mark)
    by_mark = {m: d for d, m in marks.items()}
    active = {int(m) for _, m in objs.maps.get(f"b{sfx}", [])}
    dips = tuple(sorted((by_mark[m] for m in active if m in by_mark), key=addr_key))
    rules = objs.rules.get(f"v{sfx}", [])
    # tracking on = the chain reads or writes the VIP's flow state: ``f<sfx>`` (IPv4), the
    # hint map ``h<sfx>`` and exact set ``x<sfx>`` (IPv6)
    tracking = any(f'"@{p}{sfx}"' in r or f"@{p}{sfx} " in r for r in rules for p in "fhx")
    transit = _transit(rules, address.version, by_mark, meta, now)
    rest = tuple(sorted(set(marks) - set(dips), key=addr_key))
    drain = None
    if rest and tracking:
        # a mapped DIP that gets no buckets is draining (or is the pinned one, which must be
        # in dips or drain.dips)
        drain = DrainRecord(rest, _float(meta.get("d"), now + spec.flow_timeout))
    elif rest:
        drain = DrainRecord(rest, _float(meta.get("d"), now))  # tracking off: ends at once
    # marks still held by flow entries (the top bit flags a closing flow): never reuse them
    flow_marks = [
        int(el[1]) & MARK_MASK
        for p in "fh"
        for el in objs.maps.get(f"{p}{sfx}", [])
        if isinstance(el[1], int)
    ]
    next_mark = max([int(meta.get("k", "1")), *(m + 1 for m in marks.values()),
                     *(m + 1 for m in flow_marks)])  # fmt: skip
    return VipRecord(
        address=address,
        mode=_mode(meta.get("m"), dips, tracking),
        dips=dips,
        flow_tracking=tracking,
        generation=max(1, int(meta.get("g", "1"))),
        name=meta.get("n"),
        transit=transit,
        drain=drain,
        marks=marks,
        next_mark=next_mark,
        request="",  # unknown: the next PUT is applied even if it equals the last one
    )


def _transit(
    rules: Sequence[str],
    version: int,
    by_mark: Mapping[int, IPAddress],
    meta: Mapping[str, str],
    now: float,
) -> TransitRecord | None:
    for text in rules:
        if f'"@th{version}"' not in text:
            continue
        for stmt in json.loads(text):
            mangle = stmt.get("mangle") if isinstance(stmt, dict) else None
            if mangle and mangle.get("key") == {"meta": {"key": "mark"}}:
                value = mangle.get("value")
                if isinstance(value, int) and value in by_mark:
                    expires = _float(meta.get("t"), now + DEFAULT_PIN_SECONDS)
                    return TransitRecord(by_mark[value], expires)
    return None


def _mode(code: str | None, dips: Sequence[IPAddress], tracking: bool) -> Mode:
    mode = _MODES.get(code or "")
    fits = {Mode.EMPTY: not dips, Mode.SINGLE: len(dips) == 1, Mode.MULTI: len(dips) >= 1}
    if mode is not None and fits[mode]:
        return mode
    # no (or inconsistent) metadata: the usual shapes
    if not dips:
        return Mode.EMPTY
    return Mode.SINGLE if len(dips) == 1 and not tracking else Mode.MULTI


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        return default
