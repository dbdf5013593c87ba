"""One interface for moving sync messages; the driver never knows which one it has.

``HttpTransport`` talks to a parent over HTTP; ``LocalTransport`` calls a
``SyncServer`` in the same process (tests and simulations).
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import httpx
import msgspec

from protocol.errors import SanjiError
from protocol.session import (
    BlobGet,
    BlobGetReply,
    BlobPut,
    BlobPutReply,
    CursorsRequest,
    CursorsResponse,
    PullRequest,
    PullResponse,
    PushRequest,
    PushResponse,
)
from sanji.sync.server import SyncServer

MSGPACK = "application/msgpack"
R = TypeVar("R", bound=msgspec.Struct)


class TransportError(SanjiError):
    code = "link_down"
    retryable = True
    default_hint = "The parent could not be reached; the exchange will be retried with backoff."


class Transport(Protocol):
    bytes_sent: int
    bytes_received: int

    async def cursors(self, request: CursorsRequest) -> CursorsResponse: ...
    async def push(self, request: PushRequest) -> PushResponse: ...
    async def pull(self, request: PullRequest) -> PullResponse: ...
    async def blob_put(self, request: BlobPut) -> BlobPutReply: ...
    async def blob_get(self, request: BlobGet) -> BlobGetReply: ...
    async def close(self) -> None: ...


class HttpTransport:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        # A link that died under an open request (modem re-dial, NAT rebinding) is noticed when no byte
        # has moved for ``timeout`` seconds: each read and write has its own limit, not the whole
        # request, and each request also gets time for its own body to cross a 16 kbit/s link.
        self._timeout = timeout
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0))
        )
        self.bytes_sent = 0
        self.bytes_received = 0
        self.requests = 0

    async def _call(self, path: str, request: msgspec.Struct, kind: type[R]) -> R:
        body = msgspec.msgpack.encode(request)
        self.requests += 1
        try:
            # The read timer starts once the body is in the socket buffer, while it may still be crossing a
            # slow link: allow for the body at 2 KB/s (16 kbit/s) on top of the idle limit.
            idle = self._timeout
            wait = httpx.Timeout(idle + len(body) / 2000, connect=min(idle, 5.0))
            response = await self._client.post(path, content=body, headers={"content-type": MSGPACK}, timeout=wait)
        except httpx.HTTPError as exc:
            raise TransportError(f"{path}: {type(exc).__name__}: {exc}") from None
        self.bytes_sent += len(body)
        self.bytes_received += len(response.content)
        if response.status_code >= 500:
            raise TransportError(f"{path}: parent answered {response.status_code}")
        if response.status_code >= 400:
            try:
                detail = response.json()
                message, hint = detail.get("message") or detail.get("detail", ""), detail.get("hint", "")
                retryable = bool(detail.get("retryable", False))
            except ValueError:
                message, hint, retryable = response.text[:200], "", False
            raise SanjiError(
                f"{path}: parent refused ({response.status_code}): {message}", hint=hint, retryable=retryable
            )
        try:
            return msgspec.msgpack.decode(response.content, type=kind)
        except msgspec.DecodeError as exc:
            raise TransportError(f"{path}: reply does not decode: {exc}") from None

    async def cursors(self, request: CursorsRequest) -> CursorsResponse:
        return await self._call("/sync/v1/cursors", request, CursorsResponse)

    async def push(self, request: PushRequest) -> PushResponse:
        return await self._call("/sync/v1/push", request, PushResponse)

    async def pull(self, request: PullRequest) -> PullResponse:
        return await self._call("/sync/v1/pull", request, PullResponse)

    async def blob_put(self, request: BlobPut) -> BlobPutReply:
        return await self._call("/sync/v1/blob/put", request, BlobPutReply)

    async def blob_get(self, request: BlobGet) -> BlobGetReply:
        return await self._call("/sync/v1/blob/get", request, BlobGetReply)

    async def close(self) -> None:
        await self._client.aclose()


class LocalTransport:
    """Calls a parent's SyncServer directly, through the same encoding as the wire."""

    def __init__(self, server: SyncServer) -> None:
        self.server = server
        self.bytes_sent = 0
        self.bytes_received = 0
        self.down = False

    async def _roundtrip(self, request: msgspec.Struct, kind: type[R], handler: object) -> R:
        if self.down:
            raise TransportError("link is down (simulated)")
        body = msgspec.msgpack.encode(request)
        self.bytes_sent += len(body)
        decoded = msgspec.msgpack.decode(body, type=type(request))
        reply = await handler(decoded)  # type: ignore[operator]
        out = msgspec.msgpack.encode(reply)
        self.bytes_received += len(out)
        return msgspec.msgpack.decode(out, type=kind)

    async def cursors(self, request: CursorsRequest) -> CursorsResponse:
        return await self._roundtrip(request, CursorsResponse, self.server.cursors)

    async def push(self, request: PushRequest) -> PushResponse:
        return await self._roundtrip(request, PushResponse, self.server.push)

    async def pull(self, request: PullRequest) -> PullResponse:
        return await self._roundtrip(request, PullResponse, self.server.pull)

    async def blob_put(self, request: BlobPut) -> BlobPutReply:
        return await self._roundtrip(request, BlobPutReply, self.server.blob_put)

    async def blob_get(self, request: BlobGet) -> BlobGetReply:
        return await self._roundtrip(request, BlobGetReply, self.server.blob_get)

    async def close(self) -> None:
        return None
