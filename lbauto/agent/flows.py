"""Reading flow maps straight from the kernel over netlink (no ``nft`` process, no JSON).

``nft -j list map`` needs ~50 µs per element on nft 1.0.6 (200,000 flows: 9-24 s). The kernel
dumps a set's elements over ``NETLINK_NETFILTER`` (``NFT_MSG_GETSETELEM``) in a few
milliseconds per 10,000; decoding them here is a loop over fixed offsets. The socket lives in
the caller's network namespace (the agent's).

The element layout is the kernel's register layout of the key: every field padded to 4 bytes,
ports and addresses in network order, ``meta mark`` and hash values in host order.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
from collections.abc import Iterator

from lbauto.errors import AgentError

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETSETELEM = 13
NFPROTO_NETDEV = 5
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_EXPIRATION = 1, 2, 5
NLA_TYPE_MASK = 0x3FFF
_HDR = struct.Struct("=IHHII")
_NLA = struct.Struct("=HH")
_U64 = struct.Struct(">Q")
_HOST = sys.byteorder
RCVBUF = 8 << 20


#: One set element as the kernel holds it: (key, data or None for a set, expiration in ms or
#: None). Plain tuples: 200,000 of them are built per listing.
RawElement = tuple[bytes, bytes | None, int | None]


def _attr(kind: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return _NLA.pack(n, kind) + payload + b"\0" * (-n % 4)


def _request(table: str, name: str, seq: int) -> bytes:
    body = struct.pack("=BBH", NFPROTO_NETDEV, 0, 0)
    body += _attr(NFTA_SET_ELEM_LIST_TABLE, table.encode() + b"\0")
    body += _attr(NFTA_SET_ELEM_LIST_SET, name.encode() + b"\0")
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM
    flags = NLM_F_REQUEST | NLM_F_DUMP | NLM_F_ACK
    return _HDR.pack(_HDR.size + len(body), kind, flags, seq, 0) + body


def _elements(buf: bytes, start: int, end: int, out: list[RawElement]) -> None:
    """Parse the NFTA_LIST_ELEM attributes of one message's element list (hot loop: no calls
    but struct unpacking)."""
    unpack = _NLA.unpack_from
    u64 = _U64.unpack_from
    append = out.append
    pos = start
    while pos + 4 <= end:
        n = unpack(buf, pos)[0]
        if n < 4:
            return
        e_end = pos + n
        key = b""
        data: bytes | None = None
        expires: int | None = None
        a = pos + 4
        while a + 4 <= e_end:
            an, at = unpack(buf, a)
            if an < 4:
                break
            at &= NLA_TYPE_MASK
            if at in (NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA):
                vn = unpack(buf, a + 4)[0]  # the nested NFTA_DATA_VALUE
                value = buf[a + 8 : a + 4 + vn]
                if at == NFTA_SET_ELEM_KEY:
                    key = value
                else:
                    data = value
            elif at == NFTA_SET_ELEM_EXPIRATION:
                expires = u64(buf, a + 4)[0]
            a += (an + 3) & ~3
        append((key, data, expires))
        pos += (n + 3) & ~3


def _message(buf: bytes, start: int, end: int, out: list[RawElement]) -> None:
    pos = start + 4  # nfgenmsg
    while pos + 4 <= end:
        n, kind = _NLA.unpack_from(buf, pos)
        if n < 4:
            return
        if kind & NLA_TYPE_MASK == NFTA_SET_ELEM_LIST_ELEMENTS:
            _elements(buf, pos + 4, pos + n, out)
        pos += (n + 3) & ~3


def read_elements(table: str, name: str) -> list[RawElement]:
    """Every element of set/map ``name`` in table ``netdev <table>`` (a missing set: none)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    except OSError as e:
        raise AgentError(f"cannot open a netfilter netlink socket ({e})") from e
    out: list[RawElement] = []
    with sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE (root)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((0, 0))
        seq = os.getpid() & 0xFFFF
        sock.send(_request(table, name, seq))
        for kind, buf, start, end in _replies(sock):
            if kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", buf, start)[0]
                if code == 0:
                    continue  # the ACK
                if code == errno.ENOENT:
                    return []
                raise AgentError(f"netlink: listing {table} {name} failed: {os.strerror(code)}")
            _message(buf, start, end, out)
    return out


def _replies(sock: socket.socket) -> Iterator[tuple[int, bytes, int, int]]:
    """(type, buffer, payload start, payload end) of each reply message until the dump ends."""
    while True:
        try:
            buf = sock.recv(1 << 20)
        except OSError as e:
            raise AgentError(f"netlink: reading set elements failed ({e})") from e
        pos = 0
        while pos + _HDR.size <= len(buf):
            n, kind, _flags, _seq, _pid = _HDR.unpack_from(buf, pos)
            if n < _HDR.size:
                return
            if kind == NLMSG_DONE:
                return
            yield kind, buf, pos + _HDR.size, pos + n
            if kind == NLMSG_ERROR and struct.unpack_from("=i", buf, pos + _HDR.size)[0] != 0:
                return
            pos += (n + 3) & ~3


def host_u32(b: bytes) -> int:
    """A 32-bit register value in host order (``meta mark``, hash results)."""
    return int.from_bytes(b[:4], _HOST)


def port(b: bytes, off: int) -> int:
    return (b[off] << 8) | b[off + 1]
