"""The fault proxy itself, against a tiny echo server on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from devtools.faultproxy import FaultProxy, ProxyThread


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


async def roundtrip(port: int, payload: bytes, *, within: float = 10.0) -> tuple[bytes, float]:
    """Send ``payload`` through a fresh connection and read until as many bytes came back or the link ended."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    got = b""
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(within):
            while len(got) < len(payload):
                data = await reader.read(65536)
                if not data:
                    break
                got += data
    finally:
        writer.close()
    return got, time.monotonic() - started


async def test_forwards_both_ways_and_counts(echo_port: int) -> None:
    async with FaultProxy(target_port=echo_port) as proxy:
        got, _ = await roundtrip(proxy.port, b"x" * 50_000)
        assert got == b"x" * 50_000
        await asyncio.sleep(0.05)
    assert proxy.stats.bytes_up == proxy.stats.bytes_down == 50_000
    assert proxy.stats.connections == 1 and proxy.stats.dropped == 0


async def test_latency_is_added_each_way(echo_port: int) -> None:
    async with FaultProxy(target_port=echo_port, latency_ms=150) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        times = []
        for _ in range(3):
            started = time.monotonic()
            writer.write(b"ping")
            await writer.drain()
            assert await reader.readexactly(4) == b"ping"
            times.append(time.monotonic() - started)
        writer.close()
        # The first exchange also pays the handshake round trip; every one pays 150 ms each way.
        assert times[0] >= 0.55
        # the lower bounds are the check; the upper ones leave room for a loaded machine's scheduler
        assert all(0.29 <= t < 1.5 for t in times[1:]), times
        proxy.set(latency_ms=0)
        _, fast = await roundtrip(proxy.port, b"ping")
        assert fast < 0.29  # below one delayed leg: the latency is gone


async def test_bandwidth_limit_is_observed_roughly(echo_port: int) -> None:
    async with FaultProxy(target_port=echo_port) as proxy:
        _, free = await roundtrip(proxy.port, b"y" * 20_000)
        proxy.set(bandwidth_bps=20_000)  # bytes/s, each direction
        got, limited = await roundtrip(proxy.port, b"y" * 20_000)
    assert got == b"y" * 20_000
    assert free < 0.8 <= limited  # unlimited, well under what the limit costs
    assert 0.8 <= limited <= 2.5, limited  # 20 kB at 20 kB/s, both directions pipelined


async def test_cut_after_n_bytes(echo_port: int) -> None:
    async with FaultProxy(target_port=echo_port, cut_after=300) as proxy:
        got, _ = await roundtrip(proxy.port, b"z" * 1000)
        await asyncio.sleep(0.05)
        assert len(got) < 300
        assert proxy.stats.bytes_up + proxy.stats.bytes_down == 300
        assert proxy.stats.dropped == 1
        assert [r.outcome for r in proxy.history] == ["dropped"]
        proxy.set(cut_after=None)
        got, _ = await roundtrip(proxy.port, b"z" * 1000)
        assert got == b"z" * 1000


async def test_blackhole_times_out_then_resumes(echo_port: int) -> None:
    async with FaultProxy(target_port=echo_port, blackhole=True) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)  # accepted
        writer.write(b"hello")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(5), timeout=0.5)
        assert proxy.stats.blackholed == 1 and proxy.stats.bytes_up == 0
        proxy.set(blackhole=False)  # held connections carry on, as TCP retransmission would carry them
        assert await asyncio.wait_for(reader.readexactly(5), timeout=2) == b"hello"
        writer.close()


async def test_blackhole_with_lost_connection_state_never_answers(echo_port: int) -> None:
    async with FaultProxy(target_port=echo_port, blackhole=True) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"hello")
        await writer.drain()
        await asyncio.sleep(0.1)
        assert proxy.abandon_held() == 1
        proxy.set(blackhole=False)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(5), timeout=0.5)
        writer.close()
        got, _ = await roundtrip(proxy.port, b"again")  # new connections work
        assert got == b"again"


async def test_reset_raises_connection_reset(echo_port: int) -> None:
    async with FaultProxy(target_port=echo_port, reset=True) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        with pytest.raises(ConnectionResetError):
            writer.write(b"hello")
            await writer.drain()
            await asyncio.wait_for(reader.read(5), timeout=2)
            await asyncio.sleep(0.1)
            writer.write(b"again")  # if the RST beat the first write, the second one meets it
            await writer.drain()
        writer.close()
        assert proxy.stats.reset == 1


async def test_reset_mid_transfer(echo_port: int) -> None:
    async with FaultProxy(target_port=echo_port, reset_p=1.0, drop_span=2000) as proxy:
        with pytest.raises(ConnectionResetError):
            await roundtrip(proxy.port, b"r" * 100_000)
        assert proxy.stats.reset == 1
        assert 0 < proxy.stats.bytes_up + proxy.stats.bytes_down <= 2000


async def test_stall_holds_then_releases(echo_port: int) -> None:
    async with FaultProxy(target_port=echo_port, stall_p=1.0, stall_s=0.6, drop_span=10) as proxy:
        got, took = await roundtrip(proxy.port, b"s" * 100)
        assert got == b"s" * 100 and took >= 0.55
        assert proxy.stats.stalled == 1
        proxy.set(stall_p=0.0)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        proxy.stall(0.5)
        started = time.monotonic()
        writer.write(b"held")
        await writer.drain()
        assert await reader.readexactly(4) == b"held"
        assert time.monotonic() - started >= 0.45
        writer.close()


async def fates(port: int, seed: int) -> list[tuple[int, str]]:
    async with FaultProxy(target_port=port, seed=seed, drop_p=0.5, drop_span=400) as proxy:
        for _ in range(16):
            await roundtrip(proxy.port, b"q" * 300)
            for _ in range(100):  # the proxy records a connection when both of its ends are done
                if len(proxy.history) == proxy.stats.connections:
                    break
                await asyncio.sleep(0.01)
        return [(r.forwarded, r.outcome) for r in proxy.history]


async def test_same_seed_same_faults(echo_port: int) -> None:
    first, second, other = await fates(echo_port, 7), await fates(echo_port, 7), await fates(echo_port, 8)
    assert len(first) == 16
    assert first == second
    assert first != other
    assert 2 <= sum(1 for _, outcome in first if outcome == "dropped") <= 14


async def test_refuses_anything_but_loopback() -> None:
    with pytest.raises(ValueError):
        FaultProxy(target_host="10.0.0.1", target_port=80)
    with pytest.raises(TypeError):
        FaultProxy(target_port=80).set(latency=3)


def test_runs_beside_sync_code_in_its_own_thread() -> None:
    with ProxyThread() as pt:
        assert pt.loop is not None
        server = pt.run(asyncio.start_server(_echo, "127.0.0.1", 0))
        echo = int(server.sockets[0].getsockname()[1])
        proxy = pt.add(FaultProxy(target_port=echo))
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(b"abc")
            assert sock.recv(3) == b"abc"
            proxy.set(latency_ms=100)  # from this thread, while the proxy runs in the other
            started = time.monotonic()
            sock.sendall(b"def")
            assert sock.recv(3) == b"def"
            assert time.monotonic() - started >= 0.19
        server.close()
        assert proxy.stats.bytes_up == 6


async def test_per_request_fates_reach_keep_alive_connections(echo_port: int) -> None:
    async with FaultProxy(target_port=echo_port, seed=3, drop_p=0.5, drop_span=150, per_request=True) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            for _ in range(50):  # one connection, many request/answer turns: one of them meets the cut
                writer.write(b"p" * 100)
                await writer.drain()
                await asyncio.wait_for(reader.readexactly(100), timeout=2)
        writer.close()
        assert proxy.stats.connections == 1 and proxy.stats.dropped == 1
