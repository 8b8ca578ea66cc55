"""Editing one VIP's DIPs in ``vips.yaml`` while keeping the file's comments, order and style.

ruamel.yaml round-trips the document; only the ``dips`` sequence of the named VIP changes.
"""

from __future__ import annotations

import io
import ipaddress
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq
from ruamel.yaml.error import YAMLError

from lbauto.core.model import IPAddress
from lbauto.errors import InventoryError


def _yaml() -> YAML:
    y = YAML()  # round-trip mode
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _parse_addr(text: str, path: Path, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise InventoryError([f"{path}: {what}: {text!r} is not an IP address"]) from None


def new_dips(
    current: Sequence[IPAddress],
    *,
    dips: Sequence[str] | None = None,
    add: str | None = None,
    remove: str | None = None,
    path: Path,
    vip: str,
) -> list[IPAddress]:
    """The VIP's next DIP list from exactly one of --dips / --add-dip / --remove-dip."""
    given = sum(x is not None for x in (dips, add, remove))
    if given != 1:
        raise InventoryError(["give exactly one of --dips, --add-dip, --remove-dip"])
    if dips is not None:
        out = [_parse_addr(d, path, f"vip {vip!r}") for d in dips if d.strip()]
        if len(set(out)) != len(out):
            raise InventoryError([f"{path}: vip {vip!r}: --dips lists a DIP twice"])
        return out
    if add is not None:
        a = _parse_addr(add, path, f"vip {vip!r}")
        if a in current:
            raise InventoryError([f"{path}: vip {vip!r}: {a} is already a DIP"])
        return [*current, a]
    assert remove is not None
    r = _parse_addr(remove, path, f"vip {vip!r}")
    if r not in current:
        raise InventoryError([f"{path}: vip {vip!r}: {r} is not a DIP of this VIP"])
    return [d for d in current if d != r]


def rewrite_dips(path: Path, vip: str, dips: Sequence[IPAddress]) -> str:
    """The new text of ``vips.yaml`` with ``vip``'s DIPs replaced (nothing is written)."""
    return rewrite_dips_text(path.read_text(encoding="utf-8"), path, vip, dips)


def rewrite_dips_text(text: str, path: Path, vip: str, dips: Sequence[IPAddress]) -> str:
    """``text`` (vips.yaml, read from ``path``) with ``vip``'s DIPs replaced."""
    y = _yaml()
    doc: Any = y.load(text)
    entries = doc.get("vips") if hasattr(doc, "get") else None
    for entry in entries or []:
        if hasattr(entry, "get") and entry.get("name") == vip:
            old = entry.get("dips")
            seq = CommentedSeq([str(d) for d in dips])
            if (isinstance(old, CommentedSeq) and old.fa.flow_style()) or old is None:
                seq.fa.set_flow_style()
            entry["dips"] = seq
            buf = io.StringIO()
            y.dump(doc, buf)
            return buf.getvalue()
    raise InventoryError([f"{path}: no VIP named {vip!r} (check `lbauto plan` for the names)"])


def vip_entry(text: str, path: Path, vip: str) -> object:
    """``vip``'s entry in vips.yaml ``text`` as plain data (None when it has none): two texts
    whose entries compare equal say the same about that VIP, whatever else changed."""
    try:
        doc: Any = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise InventoryError([f"{path}: not valid YAML any more: {exc}"]) from exc
    entries = doc.get("vips") if isinstance(doc, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == vip:
            return entry
    return None


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
