"""The DIP host server program: TCP echo and HTTP, both answering with the DIP name.

``python -m lbauto.lab.dipserver --name d1 --pid-file FILE`` (see :mod:`lbauto.lab.servers`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from lbauto.lab.spec import ECHO_PORT, HTTP_PORT

_MAX_HEADER = 16384
_MAX_LINE = 65536


class _Echo(asyncio.Protocol):
    """Answers each line ``L`` with ``<name> L`` (a protocol: cheaper than streams per line)."""

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        if b"\n" not in self.buf:
            if len(self.buf) > _MAX_LINE:
                self.transport.close()
            return
        *lines, self.buf = self.buf.split(b"\n")
        self.transport.write(b"".join(self.prefix + line + b"\n" for line in lines))


async def _http(name: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(
        ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError
    ):
        await reader.readuntil(b"\r\n\r\n")
        body = name + b"\n"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
    with contextlib.suppress(ConnectionError):
        writer.close()


async def serve(name: str, echo_port: int, http_port: int, pid_file: Path | None) -> None:
    tag = name.encode()
    # host=None: one socket per family on every address (asyncio makes v6 sockets v6-only).
    loop = asyncio.get_running_loop()
    echo = await loop.create_server(
        lambda: _Echo(tag + b" "), host=None, port=echo_port, backlog=1024
    )
    http = await asyncio.start_server(
        lambda r, w: _http(tag, r, w), host=None, port=http_port, backlog=1024, limit=_MAX_HEADER
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if pid_file is not None:
        # Written only once both servers listen: the launcher waits for it.
        pid_file.write_text(f"{os.getpid()}\n")
    async with echo, http:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--name", required=True)
    parser.add_argument("--echo-port", type=int, default=ECHO_PORT)
    parser.add_argument("--http-port", type=int, default=HTTP_PORT)
    parser.add_argument("--pid-file", type=Path)
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.name, args.echo_port, args.http_port, args.pid_file))
    except OSError as err:
        print(f"lab servers of {args.name}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
