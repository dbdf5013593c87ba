"""The sync endpoints a parent serves to its children (msgpack in, msgpack out).

Each signed endpoint admits the request (address, key, signature, counter) before a byte of its
body is decoded, and decodes with bounded size and nesting: no body, however crafted, reaches
msgspec unauthenticated, and none produces a server error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency

from protocol.enrollment import EnrollRequest
from protocol.limits import MAX_REQUEST_BYTES
from protocol.session import BlobGet, BlobPut, CursorsRequest, PullRequest, PushRequest
from sanji.sync.requests_auth import SignedRequest
from sanji.sync.server import SyncServer, decode_request

MSGPACK = "application/msgpack"
T = TypeVar("T", bound=msgspec.Struct)


class SyncController(Controller):
    path = "/sync/v1"
    tags = ["sync"]
    request_max_body_size = MAX_REQUEST_BYTES

    @post("/cursors", summary="What this node holds of the streams a child can push", status_code=200)
    async def cursors(self, request: Request[Any, Any, Any], sync: NamedDependency[SyncServer]) -> Response[bytes]:
        return await _in_turn(request, sync, "cursors", CursorsRequest, sync.cursors)

    @post("/push", summary="Signed batches from a child, applied or held in order", status_code=200)
    async def push(self, request: Request[Any, Any, Any], sync: NamedDependency[SyncServer]) -> Response[bytes]:
        return await _in_turn(request, sync, "push", PushRequest, sync.push)

    @post("/pull", summary="Batches for the child's subtree after the child's cursors", status_code=200)
    async def pull(self, request: Request[Any, Any, Any], sync: NamedDependency[SyncServer]) -> Response[bytes]:
        return await _in_turn(request, sync, "pull", PullRequest, sync.pull)

    @post("/enroll", summary="Redeem a one-time enrollment token for a certificate", status_code=200)
    async def enroll(self, request: Request[Any, Any, Any], sync: NamedDependency[SyncServer]) -> Response[bytes]:
        req = decode_request(await request.body(), EnrollRequest)
        return _msgpack(await sync.enroll(req))

    @post("/blob/put", summary="A chunk of an attachment from a child (resumable at any offset)", status_code=200)
    async def blob_put(self, request: Request[Any, Any, Any], sync: NamedDependency[SyncServer]) -> Response[bytes]:
        return await _in_turn(request, sync, "blob_put", BlobPut, sync.blob_put)

    @post("/blob/get", summary="A chunk of an attachment for a child", status_code=200)
    async def blob_get(self, request: Request[Any, Any, Any], sync: NamedDependency[SyncServer]) -> Response[bytes]:
        return await _in_turn(request, sync, "blob_get", BlobGet, sync.blob_get)


async def _in_turn(
    request: Request[Any, Any, Any],
    sync: SyncServer,
    endpoint: str,
    kind: type[T],
    serve: Callable[[T, SignedRequest | None], Awaitable[object]],
) -> Response[bytes]:
    """A signed request served in its turn: admitted (``SyncServer.admit``) before its body is decoded as
    ``kind``, and not served at all if its child hung up while it waited (``_gone``)."""
    started = time.perf_counter()
    body = await request.body()
    signed = _signed(request, body)
    async with sync.turns:
        if await _gone(request, started):
            return _nobody_reads()
        await sync.admit(signed)
        return _served(request, endpoint, started, await serve(decode_request(body, kind), signed))


# A request that waited its turn (``SyncServer.turns``) this long is asked whether its child is still there.
GONE_AFTER_S = 1.0


async def _gone(request: Request[Any, Any, Any], started: float) -> bool:
    """True if the child hung up while its request waited for a turn: its idle limit ran out in the queue.

    Serving it anyway would spend a turn on an answer nobody reads while the child's new attempt waits
    behind it — after an outage, a queue of abandoned requests that doubles the hub's work. The body has
    been read, so the next ASGI message can only be the disconnect; a child still there sends nothing and
    the wait for it is cut short at once.
    """
    if time.perf_counter() - started < GONE_AFTER_S:
        return False
    try:
        async with asyncio.timeout(0.001):  # not ``wait_for``: under 3.11 it can lose the handler's cancellation
            message = await request.receive()
    except TimeoutError:
        return False
    return bool(message["type"] == "http.disconnect")


def _nobody_reads() -> Response[bytes]:
    """The answer to a request whose child hung up: 499, nginx's "client closed request", for the log."""
    return Response(b"", status_code=499)


def _signed(request: Request[Any, Any, Any], body: bytes) -> SignedRequest | None:
    return SignedRequest.from_headers(request.headers, request.url.path, body)


def _served(request: Request[Any, Any, Any], endpoint: str, started: float, value: object) -> Response[bytes]:
    """The answer, and how long serving it took in ``sanji_sync_served_seconds`` (refused requests are not timed)."""
    response = _msgpack(value)
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None:
        runtime.metrics.served.labels(endpoint).observe(time.perf_counter() - started)
    return response


def _msgpack(value: object) -> Response[bytes]:
    import msgspec

    return Response(msgspec.msgpack.encode(value), media_type=MSGPACK)
