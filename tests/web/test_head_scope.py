"""``sanji.web.head``: a HEAD goes on as a GET in a scope of its own; the server's stays HEAD.

The server keeps the request's scope and reads its method when it writes the response: uvicorn's httptools
protocol drops the body of a HEAD itself and otherwise checks the body against Content-Length. Rewriting the
server's own scope to GET made the empty body of a HEAD "shorter than Content-Length" there (an error and a
dropped connection on every HEAD), which the test client, reading no method back, never showed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sanji.web.head import head_as_get


def test_a_head_is_served_as_a_get_without_touching_the_servers_scope() -> None:
    seen: list[str] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(str(scope.get("method")))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello", "more_body": False})

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    server_scope: dict[str, Any] = {"type": "http", "method": "HEAD", "path": "/healthz", "headers": []}
    asyncio.run(head_as_get(app)(server_scope, receive, send))  # type: ignore[arg-type]
    assert seen == ["GET"]  # the application serves the GET it stands for
    assert server_scope["method"] == "HEAD"  # the server still knows it answers a HEAD
    assert sent[0]["headers"] == [(b"content-length", b"5")]  # the GET's headers
    assert sent[1] == {"type": "http.response.body", "body": b"", "more_body": False}  # no body
