"""What a sync request's head carries over a village's link: the signature's headers, the release, nothing idle.

A small real server on loopback records the raw request bytes; issue 16 holds an idle exchange to at most
600 bytes each way, and every header is sent on every exchange.
"""

from __future__ import annotations

import asyncio

import pytest

from protocol.errors import SanjiError
from protocol.session import CursorsRequest
from sanji import __version__
from sanji.sync.transport import HttpTransport


async def _record_one_request() -> tuple[asyncio.Server, asyncio.Future[bytes]]:
    head: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readuntil(b"\r\n\r\n")
        if not head.done():
            head.set_result(data)
        # Not a sync reply: the transport raises, which is all this test needs after the head is read.
        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nno")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, head


async def test_a_sync_request_names_the_release_and_drops_what_no_parent_reads() -> None:
    server, head = await _record_one_request()
    port = server.sockets[0].getsockname()[1]
    transport = HttpTransport(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(SanjiError):  # a refusal: the request's head is what is checked
            await transport.cursors(CursorsRequest(sender="T01V01"))
        lines = (await asyncio.wait_for(head, 10)).decode("latin-1").lower().split("\r\n")
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()
    names = {line.split(":", 1)[0] for line in lines[1:] if ":" in line}
    assert f"user-agent: sanji/{__version__}" in lines
    assert "accept" not in names
    assert "accept-encoding" not in names
    assert "content-type" in names
