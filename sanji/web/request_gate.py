"""What every request passes before its handler: an honest ``OPTIONS``, the JSON gate, the notice badge.

Litestar answers ``OPTIONS`` from one route object, so a path whose GET and POST live in
different handlers listed only some of its methods in ``Allow``; the answer here lists every
method the path serves (the same list a 405 carries).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.routes import HTTPRoute

from sanji.web.badge import count_unread
from sanji.web.json_gate import json_gate


def allowed_methods(request: Request[Any, Any, Any]) -> set[str]:
    paths = request.route_handler.paths
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, HTTPRoute) and route.path in paths:
            methods |= set(route.methods)
    if "GET" in methods:
        methods.add("HEAD")  # sanji.web.head: every GET answers HEAD too
    return methods


async def request_gate(request: Request[Any, Any, Any]) -> Response[None] | None:
    if request.method == "OPTIONS":
        allow = ", ".join(sorted(allowed_methods(request) | {"OPTIONS"}))
        return Response(None, status_code=204, headers={"Allow": allow})
    await json_gate(request)
    await count_unread(request)  # the header's notice badge on a staff page
    return None
