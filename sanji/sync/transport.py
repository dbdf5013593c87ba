"""One interface for moving sync messages; the driver never knows which one it has.

``HttpTransport`` talks to a parent over HTTP; ``LocalTransport`` calls a
``SyncServer`` in the same process (tests and simulations).
"""

from __future__ import annotations

import logging
import ssl
from functools import cache
from typing import Any, Protocol, TypeVar

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
from protocol.wire import decode
from sanji import __version__
from sanji.sync.requests_auth import COUNTER, RequestSigner, StaleRequest
from sanji.sync.server import SyncServer

MSGPACK = "application/msgpack"
R = TypeVar("R", bound=msgspec.Struct)
# An idle pooled connection is dropped by the client before the parent may close it (uvicorn's
# ``timeout_keep_alive``, 75 s in sanji.cli.serve): a request never races the server's close. Long
# enough that a 64 kbit/s link does not pay a new handshake for every page of a sync.
POOL_KEEPALIVE_S = 60.0
OPENING_IDLE_S = 6.0  # idle limit of the opening request (cursors) of a session
SUSPECT_IDLE_S = 4.0  # ... and while the link is suspect (the last session failed)
log = logging.getLogger("sanji.sync")


MAX_REPLY_BYTES = 16 * 1024 * 1024  # a pull answers at most 4 MiB of frames; anything far larger is not a reply


def _refusal(response: httpx.Response) -> tuple[str, str, bool]:
    try:
        detail = response.json()
        return (
            str(detail.get("message") or detail.get("detail", ""))[:500],
            str(detail.get("hint", ""))[:500],
            bool(detail.get("retryable", False)),
        )
    except (ValueError, AttributeError):
        return response.text[:200], "", False


@cache
def _verifying() -> ssl.SSLContext:
    # One for every https link of the process: each context loads the whole CA store (≈ 1 MB resident
    # apiece, issue 16's footprint). httpx's own default, so SSL_CERT_FILE / SSL_CERT_DIR still choose it.
    return httpx.create_ssl_context()


@cache
def _trusting_nobody() -> ssl.SSLContext:
    # A plain-http link never opens TLS (requests go to its own base URL; redirects are not followed),
    # so it needs no CA store; should it ever meet TLS, nothing verifies and the connection fails.
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def tls_for(url: str) -> ssl.SSLContext:
    """The TLS context a link to ``url`` verifies its peer with."""
    return _verifying() if url.lower().startswith("https://") else _trusting_nobody()


class TransportError(SanjiError):
    code = "link_down"
    retryable = True
    default_hint = "The parent could not be reached; the exchange will be retried with backoff."

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        # Nothing moved for the whole idle limit: the link may be dead or back, but it did not refuse.
        self.timed_out = timed_out


class Transport(Protocol):
    bytes_sent: int
    bytes_received: int
    signer: RequestSigner | None  # set by the driver: every request is signed with the node's current key
    suspect: bool  # set by the driver when the last session over this link failed
    recipient: str  # the node every request is addressed to (the parent; a fallback's learnt on first contact)
    ancestors: frozenset[str]  # nodes a fallback link may turn out to be (set by the driver)

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
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._client = self._new_client()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.requests = 0
        self.retries = 0  # requests sent again at once on a fresh connection
        self.signer: RequestSigner | None = None
        self.suspect = False  # the last session over this link failed (set by the driver)
        self.recipient = ""
        self.ancestors: frozenset[str] = frozenset()

    def _new_client(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            base_url=self._base_url,
            verify=tls_for(self._base_url),
            timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 5.0)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=POOL_KEEPALIVE_S),
        )
        # Every header crosses a village's link on every idle exchange (issue 16: at most 600 bytes). A parent
        # reads none of httpx's Accept and Accept-Encoding (its answers are msgpack, never HTTP-compressed);
        # the User-Agent names the release instead, which a parent's access log can show in a mixed tree.
        del client.headers["accept"]
        del client.headers["accept-encoding"]
        client.headers["user-agent"] = f"sanji/{__version__}"
        return client

    async def _post(self, path: str, body: bytes, wait: httpx.Timeout) -> httpx.Response:
        """POST; once more at once on a fresh connection if it timed out or a reused connection broke.

        A link that returns after its connection state was lost (modem re-dial, NAT rebinding) leaves
        pooled connections that hang or are reset: only a new connection tells whether it is back, and
        waiting out a backoff first would add to the outage. Refusals and failures of a fresh connection
        are not retried here: they say the link is down now.
        """
        fresh = False

        async def trace(event: str, _: dict[str, Any]) -> None:
            nonlocal fresh
            if event == "connection.connect_tcp.started":
                fresh = True

        def headers() -> dict[str, str]:
            # Signed afresh for every send: a request sent again carries a new counter, or the parent
            # (which may have taken the first one) would refuse it as a replay.
            out = {"content-type": MSGPACK}
            if self.signer is not None:
                out.update(self.signer.headers(path, body, recipient=self.recipient))
            return out

        self.requests += 1
        try:
            return await self._client.post(
                path, content=body, headers=headers(), timeout=wait, extensions={"trace": trace}
            )
        except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
            log.info("%s: %s; sending it again on a fresh connection", path, type(exc).__name__)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
            if fresh:
                raise
            log.info("%s: reused connection broke (%s); sending it again on a fresh one", path, type(exc).__name__)
        # Every pooled connection went through the same link as the one that failed: drop them all.
        stale, self._client = self._client, self._new_client()
        await stale.aclose()
        self.requests += 1
        self.retries += 1
        return await self._client.post(path, content=body, headers=headers(), timeout=wait)

    def wait_for(self, path: str, size: int) -> httpx.Timeout:
        """How long a request may stay silent: the idle limit, plus time for its body on a 16 kbit/s link.

        The small opening request (cursors) gets a shorter idle limit, shorter still after a failed
        session: a hung request would otherwise keep a returned link waiting the full limit (twice,
        with the retry on a fresh connection) before the next attempt notices it.
        """
        idle = self._timeout
        if path.endswith("/cursors"):
            # The parent answers it before sending anything else and has little to compute: a long
            # silence means a dead link, not a busy parent.
            idle = min(idle, SUSPECT_IDLE_S if self.suspect else OPENING_IDLE_S)
        return httpx.Timeout(idle + size / 2000, connect=min(idle, 5.0))

    async def _call(self, path: str, request: msgspec.Struct, kind: type[R]) -> R:
        body = msgspec.msgpack.encode(request)
        # The read timer starts once the body is in the socket buffer, while it may still be crossing a
        # slow link: allow for the body at 2 KB/s (16 kbit/s) on top of the idle limit.
        wait = self.wait_for(path, len(body))
        response = await self._send(path, body, wait)
        if response.status_code == 401 and self._learn(response):
            response = await self._send(path, body, wait)  # once: counter or address corrected
        if response.status_code >= 500:
            raise TransportError(f"{path}: parent answered {response.status_code}")
        if response.status_code >= 400:
            message, hint, retryable = _refusal(response)
            raise SanjiError(
                f"{path}: parent refused ({response.status_code}): {message}", hint=hint, retryable=retryable
            )
        try:
            return decode(response.content, kind, what=f"{path} reply", max_bytes=MAX_REPLY_BYTES)
        except SanjiError as exc:
            raise TransportError(exc.message) from None

    async def _send(self, path: str, body: bytes, wait: httpx.Timeout) -> httpx.Response:
        try:
            if self.signer is None:
                response = await self._post(path, body, wait)
            else:
                async with self.signer.turn:  # signed and answered before this node signs another
                    response = await self._post(path, body, wait)
        except httpx.HTTPError as exc:
            timed_out = isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout)
            raise TransportError(f"{path}: {type(exc).__name__}: {exc}", timed_out=timed_out) from None
        self.bytes_sent += len(body)
        self.bytes_received += len(response.content)
        return response

    def _learn(self, response: httpx.Response) -> bool:
        """From a refusal: the parent's last accepted counter (this node's went back: a restored
        database or a clock set back), or the name of a fallback ancestor. True if worth one retry."""
        try:
            detail = response.json()
        except ValueError:
            return False
        if not isinstance(detail, dict):
            return False
        if detail.get("error") == "stale_request" and isinstance(detail.get("last_counter"), int):
            COUNTER.bump(detail["last_counter"])
            return True
        named = detail.get("recipient")
        if detail.get("error") == "wrong_recipient" and isinstance(named, str) and named in self.ancestors:
            if named != self.recipient:
                self.recipient = named
                return True
        return False

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
        self.signer: RequestSigner | None = None
        self.suspect = False  # the last session over this link failed (set by the driver)
        self.recipient = server.store.node_id
        self.ancestors: frozenset[str] = frozenset()

    async def _roundtrip(self, request: msgspec.Struct, kind: type[R], handler: object, path: str) -> R:
        if self.down:
            raise TransportError("link is down (simulated)")
        body = msgspec.msgpack.encode(request)
        self.bytes_sent += len(body)
        decoded = msgspec.msgpack.decode(body, type=type(request))
        if self.signer is None:
            reply = await handler(decoded, None)  # type: ignore[operator]
        else:
            async with self.signer.turn:  # as HttpTransport: signed and answered before the next is signed
                try:
                    signed = self.signer.sign(path, body, recipient=self.recipient)
                    reply = await handler(decoded, signed)  # type: ignore[operator]
                except StaleRequest as stale:  # as HttpTransport: sign above the parent's last counter, once
                    COUNTER.bump(stale.last)
                    signed = self.signer.sign(path, body, recipient=self.recipient)
                    reply = await handler(decoded, signed)  # type: ignore[operator]
        out = msgspec.msgpack.encode(reply)
        self.bytes_received += len(out)
        return msgspec.msgpack.decode(out, type=kind)

    async def cursors(self, request: CursorsRequest) -> CursorsResponse:
        return await self._roundtrip(request, CursorsResponse, self.server.cursors, "/sync/v1/cursors")

    async def push(self, request: PushRequest) -> PushResponse:
        return await self._roundtrip(request, PushResponse, self.server.push, "/sync/v1/push")

    async def pull(self, request: PullRequest) -> PullResponse:
        return await self._roundtrip(request, PullResponse, self.server.pull, "/sync/v1/pull")

    async def blob_put(self, request: BlobPut) -> BlobPutReply:
        return await self._roundtrip(request, BlobPutReply, self.server.blob_put, "/sync/v1/blob/put")

    async def blob_get(self, request: BlobGet) -> BlobGetReply:
        return await self._roundtrip(request, BlobGetReply, self.server.blob_get, "/sync/v1/blob/get")

    async def close(self) -> None:
        return None
