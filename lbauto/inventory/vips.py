"""``vips.yaml``: the desired VIPs (name, address, DIPs, bypass policy, method override)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from lbauto.inventory._values import YMap, YSeq
from lbauto.inventory._yaml import YamlFile
from lbauto.core.addresses import MAX_DIPS, parse_address
from lbauto.inventory.fields import (
    NAME_RE,
    NAME_RULE,
    Entry,
    address_value,
    check_keys,
    get_address,
    get_choice,
    get_list,
    get_pattern,
    type_name,
)
from lbauto.core.model import BypassPolicy, IPAddress, Method, Vip

VIP_KEYS = ("name", "address", "dips", "bypass", "method")
_ADDRESS_TYPES = frozenset((ipaddress.IPv4Address, ipaddress.IPv6Address))
_STR_ONLY = frozenset((str,))
_V4_ONLY = frozenset((ipaddress.IPv4Address,))


@dataclass(frozen=True)
class VipSource:
    """Where a valid VIP was written, for messages of later cross-file checks."""

    vip: Vip
    line: int
    index: int

    @property
    def label(self) -> str:
        return f"vips[{self.index}] {self.vip.name!r}"


def load_vips(file: YamlFile, doc: object) -> list[VipSource]:
    """Every valid VIP in file order; problems go to ``file``."""
    top = Entry(file, None, "")
    if file.broken:
        return []
    if not isinstance(doc, YMap) or "vips" not in doc.values:
        top.error("no top-level `vips:` list", "start the file with `vips:`; no VIPs is `vips: []`")
        return []
    check_keys(doc, ("vips",), top)
    seq = doc.values["vips"]
    if seq is None:
        return []
    if not isinstance(seq, YSeq):
        top.error(
            f"vips must be a list, got {type_name(seq)}",
            "write `- name: ...` items",
            doc.lines["vips"],
        )
        return []
    out: list[VipSource] = []
    # Names and addresses of every entry, valid or not, so duplicates are reported too.
    keys: list[tuple[int, int, str | None, IPAddress | None]] = []
    for i, item in enumerate(seq.items):
        vip, name, address = _load_vip(file, i, item, seq.lines[i])
        keys.append((i, seq.lines[i], name, address))
        if vip is not None:
            out.append(VipSource(vip, seq.lines[i], i))
    _check_unique(file, keys)
    return out


def _load_vip(
    file: YamlFile, index: int, item: object, line: int
) -> tuple[Vip | None, str | None, IPAddress | None]:
    """The VIP (``None`` if anything is wrong), and its name and address when those are valid."""
    entry = Entry(file, line, f"vips[{index}]")
    if not isinstance(item, YMap):
        entry.error(f"must be a mapping, got {type_name(item)}", "write `- name: web` etc.")
        return None, None, None
    check_keys(item, VIP_KEYS, entry)
    name = get_pattern(item, "name", entry, NAME_RE, NAME_RULE, required=True)
    if name is not None:
        entry.label = f"vips[{index}] {name!r}"
    address = get_address(item, "address", entry, "VIP", required=True)
    dips = _load_dips(item, entry, address)
    bypass = get_choice(item, "bypass", entry, BypassPolicy) or BypassPolicy.AUTO
    method = get_choice(item, "method", entry, Method)
    if not entry.ok or name is None or address is None:
        return None, name, address
    return Vip(name=name, address=address, dips=dips, bypass=bypass, method=method), name, address


def _load_dips(item: YMap, entry: Entry, vip: IPAddress | None) -> tuple[IPAddress, ...]:
    seq = get_list(item, "dips", entry)
    if seq is None:
        return ()
    if len(seq.items) > MAX_DIPS:
        # the agent API refuses more (one limit, lbauto.core.addresses)
        entry.error(
            f"dips lists {len(seq.items)} DIPs, more than an agent accepts ({MAX_DIPS})",
            "split the service over several VIPs",
            seq.line,
        )
        return ()
    # Hot path (tens of thousands of DIPs): map/set keep the per-DIP work in C; the slow walk
    # one DIP at a time only runs when something is wrong.
    items = seq.items
    if not _STR_ONLY.issuperset(map(type, items)):
        return _bad_dips(entry, vip, seq)
    parsed = list(map(parse_address, items))
    if not _ADDRESS_TYPES.issuperset(map(type, parsed)):
        return _bad_dips(entry, vip, seq)
    dips: list[IPAddress] = parsed  # type: ignore[assignment]  # checked just above
    if vip is not None and not _clean_v4(vip, dips, seq.items):
        _check_dips(entry, vip, dips, seq.lines)
    return tuple(dips)


def _bad_dips(entry: Entry, vip: IPAddress | None, seq: YSeq) -> tuple[IPAddress, ...]:
    dips: list[IPAddress] = []
    lines: list[int] = []
    for value, line in zip(seq.items, seq.lines, strict=True):
        dip = address_value(value, entry, line, "DIP")
        if dip is not None:
            dips.append(dip)
            lines.append(line)
    if vip is not None:
        _check_dips(entry, vip, dips, lines)
    return tuple(dips)


def _clean_v4(vip: IPAddress, dips: list[IPAddress], texts: list[object]) -> bool:
    """The usual case, checked on the text (IPv4 text is canonical, and hashing text is much
    cheaper than hashing ``ipaddress`` objects): IPv4 DIPs, unique, none equal to the VIP."""
    return (
        type(vip) is ipaddress.IPv4Address
        and _V4_ONLY.issuperset(map(type, dips))
        and len(set(texts)) == len(texts)
        and str(vip) not in texts
    )


def _check_dips(entry: Entry, vip: IPAddress, dips: list[IPAddress], lines: list[int]) -> None:
    seen: set[IPAddress] = set()
    for dip, line in zip(dips, lines, strict=True):
        if dip in seen:
            entry.error(f"DIP {dip} is listed twice", "list each DIP once", line)
        elif dip == vip:
            entry.error(
                f"DIP {dip} equals the VIP address", "a DIP is a backend, not the VIP", line
            )
        elif dip.version != vip.version:
            entry.error(
                f"DIP {dip} is IPv{dip.version} but the VIP is IPv{vip.version}",
                "a VIP and its DIPs must share one address family",
                line,
            )
        seen.add(dip)


def _check_unique(
    file: YamlFile, keys: list[tuple[int, int, str | None, IPAddress | None]]
) -> None:
    by_name: dict[str, int] = {}
    by_address: dict[IPAddress, tuple[str | None, int]] = {}
    for index, line, name, address in keys:
        label = f"vips[{index}] {name!r}" if name else f"vips[{index}]"
        if name is not None:
            if name in by_name:
                file.error(
                    line,
                    label,
                    f"duplicate VIP name {name!r}, first at line {by_name[name]}",
                    "give every VIP its own name",
                )
            else:
                by_name[name] = line
        if address is not None:
            if address in by_address:
                other, first = by_address[address]
                file.error(
                    line,
                    label,
                    f"VIP address {address} is also VIP {other!r} at line {first}",
                    "give every VIP its own address",
                )
            else:
                by_address[address] = (name, line)
