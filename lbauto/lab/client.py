"""The measuring client program (see :mod:`lbauto.lab.traffic` for what it measures).

``ip netns exec <client netns> python -m lbauto.lab.client --vip ADDR ...`` prints a JSON
:class:`~lbauto.lab.traffic.TrafficReport`. Kept apart from the package's imports so ``-m``
runs it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import resource
import signal
import time
from collections import Counter
from pathlib import Path

from lbauto.lab.spec import ECHO_PORT
from lbauto.lab.traffic import ANSWER_TIMEOUT, INTERVAL, Broken, Failure, TrafficReport

CONNECT_RATE = 1000  # initial long-lived connects per second, at most


class _Run:
    """State of one measuring run inside the client process."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.report = TrafficReport(
            vip=args.vip,
            port=args.port,
            connections=args.connections,
            lifetime=args.lifetime,
            new_per_second=args.new_per_second,
        )
        self.dist: dict[str, Counter[str]] = {
            k: Counter() for k in ("long_lived", "replacements", "new", "final")
        }
        self.stopping = asyncio.Event()
        self.t0 = 0.0
        self.next_id = 0
        self.initial_pending = args.connections

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            return await asyncio.open_connection(self.args.vip, self.args.port)

    async def _ask(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str
    ) -> str:
        """Send a line; return the name of the DIP that echoed it ('' = bad answer)."""
        writer.write(line.encode() + b"\n")
        async with asyncio.timeout(ANSWER_TIMEOUT):
            await writer.drain()
            answer = await reader.readline()
        if not answer:
            raise EOFError
        name, _, echoed = answer.decode(errors="replace").rstrip("\n").partition(" ")
        return name if echoed == line else ""

    def ready_one(self) -> None:
        self.initial_pending -= 1
        if self.initial_pending == 0:
            self.report.established_at = round(self.now(), 3)
            self.report.exchanges_at_established = self.report.counts.exchanges
            if self.args.ready_file:
                Path(self.args.ready_file).write_text(f"{self.now():.3f}\n")

    async def long_lived(self, initial: bool) -> None:
        cid = self.next_id
        self.next_id += 1
        loop = asyncio.get_running_loop()
        conn = _LongLived(self, cid, initial)
        local = None
        if initial and self.args.source_port_base:
            # known client ports for the initial connections (kernel flow entries can be
            # matched to them); later ones use ephemeral ports (a closed port may be in
            # TIME_WAIT)
            wildcard = "::" if ":" in self.args.vip else "0.0.0.0"
            local = (wildcard, self.args.source_port_base + cid)
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                await loop.create_connection(
                    lambda: conn, self.args.vip, self.args.port, local_addr=local
                )
        except (OSError, TimeoutError) as err:
            conn.abandon()
            self.report.counts.long_lived_failed += 1
            self.report.failures.append(Failure(round(self.now(), 3), _reason(err), "long-lived"))
            if initial:
                self.ready_one()
            await asyncio.sleep(INTERVAL)  # no hot loop against a dead VIP
            return
        await conn.done

    def record_break(
        self, cid: int, reason: str, dip: str, other: str | None, last_ok: float, first: bool
    ) -> None:
        self.report.counts.broken += 1
        self.report.broken.append(
            Broken(cid, round(self.now(), 3), reason, dip or "?", other, round(last_ok, 3))
        )
        if first:
            self.ready_one()

    async def slot(self, k: int) -> None:
        # Spread the connects over one interval, or at most CONNECT_RATE per second: a storm of
        # thousands of handshakes at once starves the loop and times connects out.
        n = max(1, self.args.connections)
        await asyncio.sleep(max(INTERVAL, n / CONNECT_RATE) * k / n)
        initial = True
        while not self.stopping.is_set():
            await self.long_lived(initial)
            initial = False

    async def short(self, k: int) -> None:
        counts = self.report.counts
        try:
            reader, writer = await self._open()
        except (OSError, TimeoutError) as err:
            counts.new_failed += 1
            self.report.failures.append(Failure(round(self.now(), 3), _reason(err), "short"))
            return
        try:
            name = await self._ask(reader, writer, f"n{k} 0")
        except (OSError, TimeoutError, EOFError) as err:
            name, reason = "", _reason(err)
        else:
            reason = "bad-answer"
        if not name:
            writer.transport.abort()
            counts.new_failed += 1
            self.report.failures.append(Failure(round(self.now(), 3), reason, "short"))
            return
        counts.new_ok += 1
        self.dist["new"][name] += 1
        writer.close()

    async def shorts(self) -> None:
        rate = self.args.new_per_second
        if rate <= 0:
            return
        tasks: set[asyncio.Task[None]] = set()
        k = 0
        while not self.stopping.is_set():
            await asyncio.sleep(max(0.0, k / rate - self.now()))
            if self.stopping.is_set():
                break
            task = asyncio.create_task(self.short(k))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        if tasks:
            await asyncio.gather(*tasks)

    async def main(self) -> TrafficReport:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.report.started_at = time.time()
        self.t0 = time.monotonic()
        if self.args.duration is not None:
            loop.call_later(self.args.duration, self.stopping.set)
        if self.args.connections == 0 and self.args.ready_file:
            Path(self.args.ready_file).write_text("0\n")
        await asyncio.gather(*(self.slot(k) for k in range(self.args.connections)), self.shorts())
        report = self.report
        report.duration = round(self.now(), 3)
        report.distribution = {k: dict(sorted(v.items())) for k, v in self.dist.items()}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        report.cpu_seconds = round(usage.ru_utime + usage.ru_stime, 3)
        return report


class _LongLived(asyncio.Protocol):
    """One long-lived connection: a line every INTERVAL, each answer checked.

    Callbacks and timers instead of a coroutine per connection: a few times cheaper per line,
    so one client process holds more connections.
    """

    def __init__(self, run: _Run, cid: int, initial: bool) -> None:
        self.run = run
        self.cid = cid
        self.initial = initial
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.dip = ""
        self.seq = 0
        self.question = b""  # the line awaiting its answer
        self.tick = 0.0
        self.opened = 0.0
        self.last_ok = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.ended:  # the connect timed out just before: asyncio closes it now
            return
        self.run.report.counts.long_lived_opened += 1
        self.opened = self.last_ok = self.run.now()
        self._send()

    def abandon(self) -> None:
        """The connect timed out: whatever happens to this socket now is not a break.

        (The handshake can complete in the same instant; asyncio then closes the transport.)
        """
        if self.transport is not None and not self.ended:
            self.run.report.counts.long_lived_opened -= 1
        self.ended = True
        if self.timer is not None:
            self.timer.cancel()

    def _send(self) -> None:
        self.timer = None
        if self.ended or self.transport is None:
            return
        run = self.run
        lifetime = run.args.lifetime
        if run.stopping.is_set() or (lifetime and run.now() - self.opened >= lifetime):
            self._close_cleanly()
            return
        self.tick = run.now()
        self.question = f"c{self.cid} {self.seq}".encode()
        self.transport.write(self.question + b"\n")
        self.timer = self.loop.call_later(ANSWER_TIMEOUT, self._break, "timeout", None)

    def data_received(self, data: bytes) -> None:
        if self.ended:
            return
        self.buf += data
        if b"\n" not in self.buf:
            if len(self.buf) > 65536:
                self._break("bad-answer", None)
            return
        answer, _, self.buf = self.buf.partition(b"\n")
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        name_b, _, echoed = answer.partition(b" ")
        name = name_b.decode(errors="replace")
        question, self.question = self.question, b""
        if not question or echoed != question:
            self._break("bad-answer", name or None)
            return
        run = self.run
        if not self.dip:
            self.dip = name
            run.dist["long_lived" if self.initial else "replacements"][name] += 1
            if self.initial:
                run.ready_one()
        elif name != self.dip:
            self._break("wrong-dip", name)
            return
        run.report.counts.exchanges += 1
        now = run.now()
        self.last_ok = now
        self.seq += 1
        self.timer = self.loop.call_later(max(0.0, self.tick + INTERVAL - now), self._send)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended:
            self._break(_reason(exc) if exc else "closed", None)
        if not self.done.done():
            self.done.set_result(None)

    def _break(self, reason: str, other: str | None) -> None:
        if self.ended:
            return
        self.ended = True
        if self.timer is not None:
            self.timer.cancel()
        first = self.initial and not self.dip
        self.run.record_break(self.cid, reason, self.dip, other, self.last_ok, first)
        if self.transport is not None:
            self.transport.abort()  # RST: a broken connection is not closed politely
        if not self.done.done():
            self.done.set_result(None)

    def _close_cleanly(self) -> None:
        self.ended = True
        counts = self.run.report.counts
        counts.closed_cleanly += 1
        if not self.run.stopping.is_set():
            counts.closed_lifetime += 1
        elif self.dip:
            self.run.dist["final"][self.dip] += 1
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)


def _reason(err: BaseException) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "refused"
    if isinstance(err, ConnectionResetError | BrokenPipeError):
        return "reset"
    if isinstance(err, TimeoutError):
        return "timeout"
    if isinstance(err, EOFError):
        return "closed"
    if isinstance(err, OSError) and err.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return f"error: {err}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="lbauto lab measuring client (JSON on stdout)")
    parser.add_argument("--vip", required=True)
    parser.add_argument("--port", type=int, default=ECHO_PORT)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--lifetime", type=float, default=None)
    parser.add_argument("--new-per-second", type=float, default=0.0)
    parser.add_argument("--ready-file", default=None)
    parser.add_argument(
        "--source-port-base",
        type=int,
        default=0,
        help="initial long-lived connection k uses client port BASE + k (0: ephemeral)",
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(ValueError, OSError):
        # Thousands of connections need thousands of file descriptors.
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    report = asyncio.run(_Run(args).main())
    print(report.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
