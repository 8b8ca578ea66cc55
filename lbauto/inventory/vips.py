"""``vips.yaml``: the desired VIPs (name, address, DIPs, bypass policy, method override).

:class:`~lbauto.inventory.schema.VipsFile` checks every entry; the checks here relate values
to each other: DIPs of one VIP (unique, not the VIP, one family) and VIPs of the file (unique
names and addresses).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import ValidationError

from lbauto.core.addresses import parse_address
from lbauto.core.model import IPAddress, Vip
from lbauto.inventory._errors import Labeler, Loc, Reporter
from lbauto.inventory._linemap import YMap, YSeq
from lbauto.inventory._yaml import YamlFile
from lbauto.inventory.schema import NAME_RE, VipEntry, VipsFile

_V4_ONLY = frozenset((ipaddress.IPv4Address,))


@dataclass(frozen=True)
class VipSource:
    """Where a valid VIP was written, for messages of later cross-file checks."""

    vip: Vip
    line: int
    index: int
    #: The name as messages may quote it (hidden when vips.yaml lies outside the inventory).
    shown: str = ""


def _labeler(file: YamlFile, doc: YMap) -> Labeler:
    items = doc.get("vips")

    def label(loc: Loc) -> tuple[str, int]:
        if len(loc) < 2 or loc[0] != "vips" or not isinstance(loc[1], int):
            return "", 0
        index = loc[1]
        name = _raw_name(items, index)
        return (f"vips[{index}] {file.quote(name)}" if name else f"vips[{index}]"), 2

    return label


def _raw_name(items: object, index: int) -> str | None:
    """The entry's name as written, when it is a valid name (safe to print)."""
    item = items[index] if isinstance(items, YSeq) and index < len(items) else None
    name = item.get("name") if isinstance(item, YMap) else None
    if isinstance(name, str) and NAME_RE.fullmatch(name):
        return name
    return None


def load_vips(file: YamlFile, doc: object) -> list[VipSource]:
    """Every valid VIP in file order; problems go to ``file``."""
    if file.broken:
        return []
    if not isinstance(doc, YMap) or "vips" not in doc:
        file.error(
            None,
            "",
            "no top-level `vips:` list",
            "start the file with `vips:`; no VIPs is `vips: []`",
        )
        return []
    rep = Reporter(file, doc, VipsFile, _labeler(file, doc))
    parsed = rep.validate(VipsFile.model_validate)
    if rep.flooded:
        return []
    if parsed is not None:
        entries = list(enumerate(parsed.vips or ()))
    else:
        entries = list(_salvage(doc.get("vips"), rep.failed))
    raw = doc.get("vips")
    out: list[VipSource] = []
    for index, entry in entries:
        item = raw[index] if isinstance(raw, YSeq) else None
        _check_dips(rep, index, entry, item)
        line = raw.lines[index] if isinstance(raw, YSeq) else 0
        if ("vips", index) not in rep.failed:
            vip = Vip(entry.name, entry.address, entry.dips, entry.bypass, entry.method)
            out.append(VipSource(vip, line, index, file.quote(vip.name)))
    _check_unique(rep, raw, dict(entries))
    return out


def _salvage(raw: object, failed: dict[Loc, set[str]]) -> Iterable[tuple[int, VipEntry]]:
    """The entries that are valid on their own, when some other entry is not."""
    if not isinstance(raw, YSeq):
        return
    for index, item in enumerate(raw):
        if ("vips", index) in failed:
            continue
        try:
            yield index, VipEntry.model_validate(item)
        except ValidationError:  # reported already, as part of the whole file
            continue


def _check_dips(rep: Reporter, index: int, entry: VipEntry, item: object) -> None:
    vip, dips = entry.address, entry.dips
    texts = item.get("dips") if isinstance(item, YMap) else None
    written = item.get("address") if isinstance(item, YMap) else None
    # The usual case, checked on the text (IPv4 text is canonical, and hashing text is much
    # cheaper than hashing ``ipaddress`` objects): IPv4 DIPs, unique, none equal to the VIP.
    if (
        isinstance(texts, YSeq)
        and type(vip) is ipaddress.IPv4Address
        and _V4_ONLY.issuperset(map(type, dips))
        and len(set(texts)) == len(texts)
        and (written if type(written) is str else str(vip)) not in texts
    ):
        return
    seen: set[IPAddress] = set()
    for i, dip in enumerate(dips):
        loc = ("vips", index, "dips", i)
        if dip in seen:
            rep.add(loc, f"DIP {dip} is listed twice", "list each DIP once")
        elif dip == vip:
            rep.add(loc, f"DIP {dip} equals the VIP address", "a DIP is a backend, not the VIP")
        elif dip.version != vip.version:
            rep.add(
                loc,
                f"DIP {dip} is IPv{dip.version} but the VIP is IPv{vip.version}",
                "a VIP and its DIPs must share one address family",
                kind="DIP family",
            )
        seen.add(dip)


def _check_unique(rep: Reporter, raw: object, valid: dict[int, VipEntry]) -> None:
    """Names and addresses of every entry, valid or not, so duplicates are reported too."""
    if not isinstance(raw, YSeq):
        return
    if len(valid) == len(raw):  # the usual case: every entry valid, names and addresses unique
        names = {entry.name for entry in valid.values()}
        if len(names) == len(raw) and len({entry.address for entry in valid.values()}) == len(raw):
            return
    by_name: dict[str, int] = {}
    by_address: dict[IPAddress, tuple[str | None, int]] = {}
    for index, line in enumerate(raw.lines):
        if index not in valid and not isinstance(raw[index], YMap):
            continue
        name, address = _name_and_address(valid.get(index), raw, index)
        if name is not None:
            if name in by_name:
                rep.add(
                    ("vips", index),
                    f"duplicate VIP name {rep.file.quote(name)}, first at line {by_name[name]}",
                    "give every VIP its own name",
                    kind="duplicate VIP name",
                )
            else:
                by_name[name] = line
        if address is not None:
            if address in by_address:
                other, first = by_address[address]
                rep.add(
                    ("vips", index),
                    f"VIP address {address} is also VIP {rep.file.quote(other)} at line {first}",
                    "give every VIP its own address",
                    kind="duplicate VIP address",
                )
            else:
                by_address[address] = (name, line)


def _name_and_address(
    entry: VipEntry | None, raw: YSeq, index: int
) -> tuple[str | None, IPAddress | None]:
    if entry is not None:
        return entry.name, entry.address
    name = _raw_name(raw, index)
    item = raw[index]
    value = item.get("address") if isinstance(item, YMap) else None
    parsed = parse_address(value) if isinstance(value, str) else None
    return name, (parsed if parsed is not None and not isinstance(parsed, str) else None)
