"""A TCP proxy on loopback that makes one link behave badly on purpose, for fault tests and benchmarks.

Kernel netem is not available where the tests run, so a link is shaped in user space: every
child→parent link of a test county can be pointed at a ``FaultProxy`` that forwards to the parent
and, switchable at any moment (``proxy.set(latency_ms=300, bandwidth_bps=8000, drop_p=0.3)``):

- ``latency_ms``            one-way delay added to every byte, each direction (``up_latency_ms`` /
                            ``down_latency_ms`` override one direction). Pipelined: it delays, it does
                            not throttle.
- ``bandwidth_bps``         **bytes** per second (8000 = 64 kbit/s), one token bucket per direction
                            shared by every connection of the link, as on a real narrow link
                            (``up_bandwidth_bps`` / ``down_bandwidth_bps`` override one direction).
- ``drop_p``, ``drop_span`` each new connection is, with probability ``drop_p``, cut (closed) once it
                            has forwarded a random number of bytes, uniform in ``1..drop_span``, counted
                            over both directions; a connection that ends sooner escapes.
- ``cut_after``             every new connection is cut after exactly this many bytes (both directions).
- ``reset_p``               like ``drop_p`` (same ``drop_span``) but the client gets an RST (SO_LINGER 0).
- ``reset``                 every new connection is reset at once (a link that refuses).
- ``stall_p``, ``stall_s``  with probability ``stall_p`` a new connection stops forwarding at a random
                            point (within ``drop_span`` bytes) for ``stall_s`` seconds, socket kept open.
                            ``proxy.stall(seconds)`` stalls every connection of the link now.
- ``per_request``           draw a new fate (drop, reset, stall) each time the client speaks again after
                            the target answered, i.e. for every request of a keep-alive HTTP connection,
                            so ``drop_p`` becomes the share of request/response exchanges cut.
- ``blackhole``             new connections are accepted and then nothing is forwarded or answered;
                            open connections freeze too. When the blackhole is lifted, frozen connections
                            carry on where they stopped, as TCP retransmission would carry them on; call
                            ``proxy.abandon_held()`` as well to model a link that comes back with its
                            connection state lost (modem re-dial, NAT rebinding): those connections then
                            never move again and the client waits for its own timeout.

Each connection's fate is drawn when it is accepted from ``random.Random(seed)``, always the same
number of draws, so the same sequence of connections meets the same faults in every run. Changing a
drop, reset or stall setting draws a new fate for every open connection too (cut and stall points
counted from the bytes it has forwarded so far), so long-lived keep-alive connections are not spared.
Counters: ``stats.bytes_up`` (client→target), ``stats.bytes_down``, ``stats.connections``,
``stats.requests`` (turns: for HTTP/1.1, requests), ``stats.dropped``, ``stats.reset``, ``stats.stalled``,
``stats.blackholed``; ``proxy.history`` keeps what became of each recent connection.

Use it from asyncio (``await proxy.start()`` / ``await proxy.stop()`` or ``async with proxy:``), or beside
synchronous code through a ``ProxyThread``, an event loop in its own thread that hosts any number of
proxies (``with ProxyThread() as pt: proxy = pt.add(FaultProxy(target_port=...))``). ``set`` may be called
from any thread. Only loopback addresses are accepted, for listening and for the target.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
CHUNK = 16 * 1024
POLL_S = 0.02  # how often a frozen direction looks whether it may move again
QUEUE_CHUNKS = 64  # pieces in flight per direction (bounds what the proxy itself buffers)
HISTORY = 10_000
T = TypeVar("T")


@dataclass(frozen=True)
class Faults:
    """What the link does now. Every field can be changed at run time with ``FaultProxy.set``."""

    latency_ms: float = 0.0
    up_latency_ms: float | None = None
    down_latency_ms: float | None = None
    bandwidth_bps: float | None = None  # bytes per second; None: unlimited
    up_bandwidth_bps: float | None = None
    down_bandwidth_bps: float | None = None
    drop_p: float = 0.0
    drop_span: int = 64 * 1024
    cut_after: int | None = None
    reset_p: float = 0.0
    reset: bool = False
    stall_p: float = 0.0
    stall_s: float = 0.0
    blackhole: bool = False
    per_request: bool = False  # draw a new fate each time the client speaks again after an answer

    def latency(self, up: bool) -> float:
        value = self.up_latency_ms if up else self.down_latency_ms
        return (self.latency_ms if value is None else value) / 1000.0

    def bandwidth(self, up: bool) -> float | None:
        value = self.up_bandwidth_bps if up else self.down_bandwidth_bps
        return self.bandwidth_bps if value is None else value


FAULT_FIELDS = frozenset(f.name for f in fields(Faults))
FATE_FIELDS = frozenset({"drop_p", "drop_span", "cut_after", "reset_p", "reset", "stall_p", "stall_s", "per_request"})


@dataclass
class ProxyStats:
    connections: int = 0
    active: int = 0
    requests: int = 0  # turns: the client speaking first, or again after the target answered
    bytes_up: int = 0  # forwarded client -> target
    bytes_down: int = 0  # forwarded target -> client
    dropped: int = 0  # connections cut by drop_p or cut_after
    reset: int = 0  # connections answered with an RST
    stalled: int = 0  # connections that met a per-connection stall
    blackholed: int = 0  # connections accepted while the blackhole was on

    def snapshot(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


class TokenBucket:
    """``rate()`` bytes per second, read at every take so a change applies at once."""

    def __init__(self, rate: Any) -> None:
        self._rate = rate
        self._tokens = 0.0
        self._last = time.monotonic()

    @staticmethod
    def burst(rate: float) -> int:
        return max(512, int(rate / 16))

    async def take(self, n: int) -> None:
        while True:
            rate = self._rate()
            if rate is None or rate <= 0:
                return
            now = time.monotonic()
            cap = self.burst(rate)
            self._tokens = min(float(cap), self._tokens + (now - self._last) * rate)
            self._last = now
            if self._tokens >= n:
                self._tokens -= n
                return
            await asyncio.sleep(max(0.001, (n - self._tokens) / rate))


@dataclass(frozen=True)
class ConnRecord:
    """What became of one connection: bytes forwarded (both directions) and how it ended."""

    id: int
    forwarded: int
    outcome: str  # "closed", "dropped", "reset", "refused", "aborted"


@dataclass
class _Fate:
    cut_at: int | None = None
    rst: bool = False
    stall_at: int | None = None
    stall_s: float = 0.0


class _Conn:
    def __init__(
        self, proxy: FaultProxy, cid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, fate: _Fate
    ) -> None:
        self.proxy = proxy
        self.id = cid
        self.client_reader = reader
        self.client_writer = writer
        self.fate = fate
        self.upstream_writer: asyncio.StreamWriter | None = None
        self.forwarded = 0
        self.frozen = False  # abandoned: never forwards again
        self.stalled_until = 0.0
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False
        self.outcome = "closed"
        self.answered = False  # the target has sent something since the client last did

    def close(self) -> None:
        """The normal end: what was written is flushed, then the sockets close."""
        if self.closed:
            return
        self.closed = True
        for writer in (self.client_writer, self.upstream_writer):
            if writer is not None:
                writer.close()

    def abort(self, *, rst: bool) -> None:
        """A cut: the sockets close at once (with an RST to the client if ``rst``)."""
        if self.closed:
            return
        self.closed = True
        if rst:
            sock = self.client_writer.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
        for writer in (self.client_writer, self.upstream_writer):
            if writer is not None:
                writer.transport.abort()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()


class FaultProxy:
    """One shaped link: listens on ``host:port`` (0: any free port) and forwards to ``target_host:target_port``."""

    def __init__(
        self,
        *,
        target_port: int,
        target_host: str = "127.0.0.1",
        port: int = 0,
        host: str = "127.0.0.1",
        seed: int = 0,
        name: str = "",
        **faults: Any,
    ) -> None:
        if host not in LOOPBACK or target_host not in LOOPBACK:
            raise ValueError("a FaultProxy only listens on and forwards to loopback addresses")
        self.host = host
        self.port = port
        self.target_host = target_host
        self.target_port = target_port
        self.name = name or f"proxy->{target_port}"
        self.seed = seed
        self.faults = Faults()
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._buckets = {
            True: TokenBucket(lambda: self.faults.bandwidth(True)),
            False: TokenBucket(lambda: self.faults.bandwidth(False)),
        }
        self._stalled_until = 0.0
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conns: dict[int, _Conn] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self.history: deque[ConnRecord] = deque(maxlen=HISTORY)  # the latest connections, oldest first
        self.set(**faults)

    # -- control (any thread) ----------------------------------------------------------

    def set(self, **changes: Any) -> Faults:
        """Change some faults now, keep the rest: ``proxy.set(latency_ms=300, bandwidth_bps=8000, drop_p=0.3)``."""
        unknown = set(changes) - FAULT_FIELDS
        if unknown:
            raise TypeError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        self.faults = replace(self.faults, **changes)  # one reference swap: safe from another thread
        if FATE_FIELDS & set(changes):
            self._on_loop(self._redraw)
        return self.faults

    def clear(self) -> Faults:
        """A clean link again (latency, bandwidth, drops, stalls, blackhole all off)."""
        self.faults = Faults()
        self._stalled_until = 0.0
        self._on_loop(self._redraw)
        return self.faults

    def _on_loop(self, fn: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    def _redraw(self) -> None:
        """Open connections meet the new drop/reset/stall settings too, from where they stand now."""
        faults = self.faults
        for conn in sorted(self._conns.values(), key=lambda c: c.id):
            if not conn.closed:
                conn.fate = self._draw(faults, base=conn.forwarded)

    def stall(self, seconds: float) -> None:
        """Every connection of the link stops forwarding for ``seconds``, sockets kept open."""
        self._stalled_until = time.monotonic() + seconds

    def abandon_held(self) -> int:
        """Every connection open now never moves again, as if its state was lost; returns how many.

        Call it while the blackhole is on (every open connection is frozen then) and before lifting it.
        """
        n = 0
        for conn in list(self._conns.values()):
            if not conn.frozen:
                conn.frozen = True
                n += 1
        return n

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> FaultProxy:
        if self._server is not None:
            return self
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for conn in list(self._conns.values()):
            conn.abort(rst=False)
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.gather(*handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # -- the work -----------------------------------------------------------------------

    def _draw(self, faults: Faults, base: int = 0) -> _Fate:
        """A connection's fate; ``base``: bytes it has already forwarded (cut and stall points come after)."""
        r = self._rng
        u_drop, u_drop_at, u_reset, u_reset_at, u_stall, u_stall_at = (r.random() for _ in range(6))
        span = max(1, faults.drop_span)
        fate = _Fate()
        if faults.cut_after is not None:
            fate.cut_at = base + max(0, faults.cut_after)
        elif u_drop < faults.drop_p:
            fate.cut_at = base + 1 + int(u_drop_at * span)
        if u_reset < faults.reset_p:
            at = base + 1 + int(u_reset_at * span)
            if fate.cut_at is None or at < fate.cut_at:
                fate.cut_at, fate.rst = at, True
        if faults.reset:
            fate.cut_at, fate.rst = base, True
        if u_stall < faults.stall_p and faults.stall_s > 0:
            fate.stall_at, fate.stall_s = base + int(u_stall_at * span), faults.stall_s
        return fate

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        faults = self.faults
        cid = self.stats.connections
        self.stats.connections += 1
        conn = _Conn(self, cid, reader, writer, self._draw(faults))
        self._conns[cid] = conn
        self.stats.active += 1
        try:
            await self._serve(conn)
        except ConnectionRefusedError:
            conn.outcome = "refused"
            conn.abort(rst=True)  # the far end is down: the client is refused too
        except (asyncio.CancelledError, ConnectionError, OSError):
            if conn.outcome == "closed":
                conn.outcome = "aborted"
            conn.abort(rst=False)
        finally:
            conn.close()
            self._conns.pop(cid, None)
            self.history.append(ConnRecord(cid, conn.forwarded, conn.outcome))
            self.stats.active -= 1
            self._handlers.discard(task)

    async def _serve(self, conn: _Conn) -> None:
        if conn.fate.cut_at == 0:  # reset at once
            self._count_cut(conn)
            conn.abort(rst=conn.fate.rst)
            return
        if self.faults.blackhole:
            self.stats.blackholed += 1
            await self._wait_open(conn)  # accepted; nothing goes anywhere until the blackhole lifts
        handshake = self.faults.latency(True) + self.faults.latency(False)
        if handshake > 0:
            await asyncio.sleep(handshake)  # the first bytes wait one round trip, as a TCP handshake makes them
        up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        conn.upstream_writer = up_writer
        for writer in (up_writer, conn.client_writer):
            writer.transport.set_write_buffer_limits(high=0)  # drain() waits until the kernel took every byte
        up = asyncio.create_task(self._pipe(conn, conn.client_reader, up_writer, up=True))
        down = asyncio.create_task(self._pipe(conn, up_reader, conn.client_writer, up=False))
        conn.tasks = [up, down]
        await asyncio.gather(up, down, return_exceptions=True)

    def _blocked(self, conn: _Conn) -> bool:
        now = time.monotonic()
        return conn.frozen or self.faults.blackhole or now < self._stalled_until or now < conn.stalled_until

    async def _wait_open(self, conn: _Conn) -> None:
        # Polled, not an Event: faults change from other threads, and stalls end with the clock.
        while self._blocked(conn):  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)

    def _count_cut(self, conn: _Conn) -> None:
        if conn.fate.rst:
            self.stats.reset += 1
            conn.outcome = "reset"
        else:
            self.stats.dropped += 1
            conn.outcome = "dropped"

    async def _pipe(self, conn: _Conn, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, up: bool) -> None:
        """Read → bandwidth → (latency) → write, with a bounded queue between reading and writing."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUE_CHUNKS)
        bucket = self._buckets[up]

        async def read() -> None:
            try:
                while True:
                    await self._wait_open(conn)
                    data = await src.read(CHUNK)
                    if not data:
                        break
                    rate = self.faults.bandwidth(up)
                    step = TokenBucket.burst(rate) if rate else len(data)
                    for i in range(0, len(data), step):
                        piece = data[i : i + step]
                        await bucket.take(len(piece))
                        await queue.put((time.monotonic() + self.faults.latency(up), piece))
            except (ConnectionError, OSError):
                pass
            finally:
                await queue.put(None)

        reader = asyncio.create_task(read())
        conn.tasks.append(reader)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    if dst.can_write_eof():
                        dst.write_eof()
                    break
                due, piece = item
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._wait_open(conn)
                if up and (conn.answered or conn.forwarded == 0):
                    self.stats.requests += 1  # the client speaks first, or again after an answer
                    if conn.answered and self.faults.per_request:
                        conn.fate = self._draw(self.faults, base=conn.forwarded)  # a new request: a new fate
                conn.answered = not up
                fate = conn.fate
                if fate.stall_at is not None and conn.forwarded + len(piece) > fate.stall_at:
                    fate.stall_at = None
                    conn.stalled_until = time.monotonic() + fate.stall_s
                    self.stats.stalled += 1
                    await self._wait_open(conn)
                if fate.cut_at is not None and conn.forwarded + len(piece) >= fate.cut_at:
                    piece = piece[: fate.cut_at - conn.forwarded]
                    self._forwarded(conn, len(piece), up)
                    if piece:
                        dst.write(piece)
                        await dst.drain()
                    self._count_cut(conn)
                    conn.abort(rst=fate.rst)
                    return
                self._forwarded(conn, len(piece), up)
                dst.write(piece)
                await dst.drain()
        except (ConnectionError, OSError):
            conn.abort(rst=False)
        finally:
            reader.cancel()

    def _forwarded(self, conn: _Conn, n: int, up: bool) -> None:
        conn.forwarded += n
        if up:
            self.stats.bytes_up += n
        else:
            self.stats.bytes_down += n


class ProxyThread:
    """An asyncio loop in a daemon thread hosting FaultProxies, for synchronous callers.

    ``with ProxyThread() as pt: p = pt.add(FaultProxy(target_port=8100)); p.set(drop_p=0.3)``.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.proxies: list[FaultProxy] = []

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ProxyThread:
        if self.running:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self.loop = loop
        self._thread = threading.Thread(target=run, name="faultproxy", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the proxies' loop and wait for its result."""
        if self.loop is None or not self.running:
            coro.close()
            raise RuntimeError("the proxy thread is not running")
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def add(self, proxy: FaultProxy) -> FaultProxy:
        """Start ``proxy`` on this thread's loop (starting the thread if need be)."""
        self.start()
        self.run(proxy.start())
        if proxy not in self.proxies:
            self.proxies.append(proxy)
        return proxy

    def stop(self) -> None:
        if not self.running:
            return
        for proxy in self.proxies:
            self.run(proxy.stop())
        assert self.loop is not None and self._thread is not None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
        self.loop = None
        self._thread = None

    def __enter__(self) -> ProxyThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
