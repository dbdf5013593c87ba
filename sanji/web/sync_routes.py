"""The sync endpoints a parent serves to its children (msgpack in, msgpack out).

Each signed endpoint admits the request (address, key, signature, counter) before a byte of its
body is decoded, and decodes with bounded size and nesting: no body, however crafted, reaches
msgspec unauthenticated, and none produces a server error.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency

from protocol.enrollment import EnrollRequest
from protocol.limits import MAX_REQUEST_BYTES
from protocol.session import BlobGet, BlobPut, CursorsRequest, PullRequest, PushRequest
from sanji.sync.requests_auth import SignedRequest
from sanji.sync.server import SyncServer, decode_request

MSGPACK = "application/msgpack"


class SyncController(Controller):
    path = "/sync/v1"
    tags = ["sync"]
    request_max_body_size = MAX_REQUEST_BYTES

    @post("/cursors", summary="What this node holds of the streams a child can push", status_code=200)
    async def cursors(self, request: Request[Any, Any, Any], sync: NamedDependency[SyncServer]) -> Response[bytes]:
        started = time.perf_counter()
        body = await request.body()
        signed = _signed(request, body)
        await sync.admit(signed)
        return _served(request, "cursors", started, await sync.cursors(decode_request(body, CursorsRequest), signed))

    @post("/push", summary="Signed batches from a child, applied or held in order", status_code=200)
    async def push(self, request: Request[Any, Any, Any], sync: NamedDependency[SyncServer]) -> Response[bytes]:
        started = time.perf_counter()
        body = await request.body()
        signed = _signed(request, body)
        await sync.admit(signed)
        return _served(request, "push", started, await sync.push(decode_request(body, PushRequest), signed))

    @post("/pull", summary="Batches for the child's subtree after the child's cursors", status_code=200)
    async def pull(self, request: Request[Any, Any, Any], sync: NamedDependency[SyncServer]) -> Response[bytes]:
        started = time.perf_counter()
        body = await request.body()
        signed = _signed(request, body)
        await sync.admit(signed)
        return _served(request, "pull", started, await sync.pull(decode_request(body, PullRequest), signed))

    @post("/enroll", summary="Redeem a one-time enrollment token for a certificate", status_code=200)
    async def enroll(self, request: Request[Any, Any, Any], sync: NamedDependency[SyncServer]) -> Response[bytes]:
        req = decode_request(await request.body(), EnrollRequest)
        return _msgpack(await sync.enroll(req))

    @post("/blob/put", summary="A chunk of an attachment from a child (resumable at any offset)", status_code=200)
    async def blob_put(self, request: Request[Any, Any, Any], sync: NamedDependency[SyncServer]) -> Response[bytes]:
        started = time.perf_counter()
        body = await request.body()
        signed = _signed(request, body)
        await sync.admit(signed)
        return _served(request, "blob_put", started, await sync.blob_put(decode_request(body, BlobPut), signed))

    @post("/blob/get", summary="A chunk of an attachment for a child", status_code=200)
    async def blob_get(self, request: Request[Any, Any, Any], sync: NamedDependency[SyncServer]) -> Response[bytes]:
        started = time.perf_counter()
        body = await request.body()
        signed = _signed(request, body)
        await sync.admit(signed)
        return _served(request, "blob_get", started, await sync.blob_get(decode_request(body, BlobGet), signed))


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
