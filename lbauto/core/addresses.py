"""The one address policy: which VIP, DIP and next-hop addresses lbauto accepts, and why not.

Both the inventory loader and the agent API call :func:`parse_address`, so an address
``validate`` accepts is one the agent accepts, and the reverse. The same goes for
:data:`MAX_DIPS`, the most DIPs one VIP may have.

``ipaddress.ip_address`` costs several microseconds per IPv4 address; a 10,000-VIP inventory
has tens of thousands of DIPs, so dotted quads take a shortcut here and the rest (IPv6, typos)
goes through :mod:`ipaddress`. Results are cached because DIPs repeat across VIPs.
:func:`parse_addresses` reads a whole list of IPv4 DIPs in C (``map``) and answers only when
every one is usable, which is the common case; otherwise callers ask :func:`parse_address`
item by item, for one reason per bad address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from functools import lru_cache, partial
from operator import itemgetter

from lbauto.core.model import IPAddress

#: The most DIPs one VIP may have: the inventory refuses more, and so does the agent API.
MAX_DIPS = 1024
#: Longest address text worth parsing (the longest IPv6 form with an embedded IPv4 is 45).
MAX_ADDRESS_TEXT = 64

_V4 = ipaddress.IPv4Address
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
_MAPPED_PREFIX = 0xFFFF << 32  # ::ffff:0:0/96
# inet_pton accepts exactly the canonical dotted quads (four decimal octets, no leading zeros),
# like _DOTTED_QUAD and ipaddress (the unit tests compare them).
_PTON4 = partial(socket.inet_pton, socket.AF_INET)
_FIRST_OCTET = itemgetter(0)
#: First octets of every IPv4 address _unusable_v4 may refuse (0.0.0.0, 127/8, 169.254/16,
#: 224/4, 255.255.255.255): lists without them need no check per address.
_SUSPECT_OCTETS = frozenset((0, 127, 169, 255, *range(224, 240)))
#: Most addresses parse_addresses remembers (as many as parse_address's cache).
_SEEN_MAX = 1 << 17


@lru_cache(maxsize=1 << 17)
def parse_address(raw: str) -> IPAddress | str:
    """A unicast address usable as a VIP, DIP or next hop, or the reason it is not.

    Refused: networks, scoped IPv6 (``%eth0``), the unspecified, loopback, multicast,
    link-local and limited-broadcast addresses, and IPv4-mapped IPv6 (``::ffff:a.b.c.d``:
    never valid on the wire, and ``ipaddress`` does not see the IPv4 class inside it)."""
    seen = _SEEN_V4.get(raw)
    if seen is not None:
        return seen
    number = _dotted_quad(raw)
    if number is not None:
        return _unusable_v4(number) or _V4(number)
    if len(raw) > MAX_ADDRESS_TEXT:
        return "is not a valid IPv4 or IPv6 address (too long)"
    if "/" in raw:
        return "is a network, not a single address"
    try:
        # ip_address would first fail as IPv4 on any text with a colon
        address = ipaddress.IPv6Address(raw) if ":" in raw else ipaddress.ip_address(raw)
    except ValueError:
        return "is not a valid IPv4 or IPv6 address"
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return "has a %scope; scoped addresses cannot be routed"
    if isinstance(address, _V4):
        return _unusable_v4(int(address)) or address
    return _unusable_v6(address) or address


def parse_addresses(texts: Sequence[object]) -> list[IPAddress] | None:
    """What :func:`parse_address` gives for each of ``texts`` when every one is a usable IPv4
    address (equal values), else ``None``: then parse them one by one for the reasons."""
    seen = _SEEN_V4
    try:
        found = list(map(seen.get, texts))  # type: ignore[arg-type]
        if all(found):  # ipaddress values are always true
            return found  # type: ignore[return-value]
        # the texts not seen before, all at once in C: inet_pton raises for anything else
        new = [text for text, address in zip(texts, found, strict=True) if address is None]
        packed = list(map(_PTON4, new))
    except (OSError, ValueError, TypeError):  # not IPv4, a NUL character, not text
        return None
    if not _SUSPECT_OCTETS.isdisjoint(map(_FIRST_OCTET, packed)):
        # a few valid addresses start with these octets too (169.1.2.3): ask one by one
        return None
    if len(seen) > _SEEN_MAX:
        seen.clear()
    seen.update(zip(new, map(_V4, map(int.from_bytes, packed)), strict=True))  # type: ignore[arg-type]
    return list(map(seen.__getitem__, texts))  # type: ignore[arg-type]


#: Usable IPv4 addresses parse_addresses gave, by their exact text (a ``str`` key never equals
#: another type's): DIPs repeat across VIPs.
_SEEN_V4: dict[str, IPAddress] = {}


def _dotted_quad(raw: str) -> int | None:
    """The address as an integer for a canonical dotted quad (the only IPv4 form ``ipaddress``
    accepts; ``inet_aton`` alone would also take ``10.1`` or octal ``010.0.0.1``)."""
    if not _DOTTED_QUAD.fullmatch(raw):
        return None
    return int.from_bytes(socket.inet_aton(raw))


def _unusable_v4(number: int) -> str | None:
    # Same ranges as ipaddress's is_unspecified, is_loopback, is_multicast, is_link_local.
    if number == 0:
        return "is the unspecified address"
    if number >> 24 == 127:
        return "is a loopback address"
    if number >> 28 == 0xE:
        return "is a multicast address"
    if number >> 16 == 0xA9FE:
        return "is a link-local address"
    if number == 0xFFFFFFFF:
        return "is the broadcast address"
    return None


def _unusable_v6(address: ipaddress.IPv6Address) -> str | None:
    if int(address) >> 32 == _MAPPED_PREFIX >> 32:
        inner = _unusable_v4(int(address) & 0xFFFFFFFF)
        what = f" of {inner.removeprefix('is ')}" if inner else ""
        return f"is an IPv4-mapped IPv6 address{what}; write the IPv4 address itself"
    # ipaddress's is_unspecified (::), is_loopback (::1), is_multicast (ff00::/8) and
    # is_link_local (fe80::/10), on the integer (the properties cost microseconds each)
    number = int(address)
    if number == 0:
        return "is the unspecified address"
    if number == 1:
        return "is a loopback address"
    if number >> 120 == 0xFF:
        return "is a multicast address"
    if number >> 118 == 0xFE80 >> 6:
        return "is a link-local address"
    return None


def excerpt(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters: errors never echo input
    beyond a short excerpt (a request body or a file may be large, or secret)."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return repr(shown)
