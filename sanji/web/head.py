"""``HEAD`` wherever ``GET`` is served (RFC 9110, 9.3.2): the GET's status and headers, no body.

Litestar routes ``HEAD`` only to handlers declared for it, so a health checker or a link checker that
asks ``HEAD /healthz`` got 405 from every page. The request goes on as the GET it stands for — the same
guards, logins and limits, since GET is what they judge — and the body the handler sends is dropped.

A ``HEAD`` that asks for personal data in full (``reveal`` in its query: 查看完整号码 on ``GET /api/errands/{id}``)
is refused, 405 with ``Allow: GET``, before any handler runs: the GET it stands for would write an audit row saying
the numbers were seen when no body carries them, and an answer that depended on the caller's rights or on the
errand would let a caller probe them without a trace. The refusal is the same for every caller and every path,
and audits nothing, since nothing was read.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REVEAL = "reveal"  # the query parameter that asks for ID numbers and phones in full (sanji.privacy)


def head_as_get(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return
        if asks_to_reveal(scope):
            await _refuse_reveal(send)
            return
        # A copy: the server holds the caller's scope too, and reads its method to drop the body of a HEAD itself
        # (uvicorn's httptools protocol checks the body against Content-Length unless the method is HEAD)
        as_get: Scope = {**scope, "method": "GET"}
        ended = False

        async def send_without_body(message: Message) -> None:
            nonlocal ended
            if message["type"] == "http.response.body":
                if ended:
                    return  # the rest of a streamed body: the client asked for none of it
                ended = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await app(as_get, receive, send_without_body)

    return middleware


def asks_to_reveal(scope: Scope) -> bool:
    """Whether the query names ``reveal``, whatever its value: a HEAD has no use for it either way."""
    query = scope.get("query_string", b"").decode("latin-1")
    return any(name == REVEAL for name, _ in parse_qsl(query, keep_blank_values=True))


async def _refuse_reveal(send: Send) -> None:
    """405, ``Allow: GET``: the full numbers are read by a GET, which shows them and is audited as their read."""
    await send(
        {"type": "http.response.start", "status": 405, "headers": [(b"allow", b"GET"), (b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b"", "more_body": False})
