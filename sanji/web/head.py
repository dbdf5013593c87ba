"""``HEAD`` wherever ``GET`` is served (RFC 9110, 9.3.2): the GET's status and headers, no body.

Litestar routes ``HEAD`` only to handlers declared for it, so a health checker or a link checker that
asks ``HEAD /healthz`` got 405 from every page. The request goes on as the GET it stands for — the same
guards, logins and limits, since GET is what they judge — and the body the handler sends is dropped.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send


def head_as_get(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "HEAD":
            await app(scope, receive, send)
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
