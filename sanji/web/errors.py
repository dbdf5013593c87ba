"""Every error leaves as JSON that says what happened, what to do, and whether to retry."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException

from protocol.enrollment import EnrollmentError
from protocol.errors import ActionRefused, FrameError, RouteError, SanjiError, SignatureError
from protocol.trust import TrustError
from sanji.store.clones import CloneFrozen
from sanji.store.trustbook import CloneSuspected
from sanji.sync.requests_auth import Unauthenticated

log = logging.getLogger("sanji.web")

STATUS: dict[type[SanjiError], int] = {
    Unauthenticated: 401,
    CloneSuspected: 403,
    CloneFrozen: 403,
    EnrollmentError: 403,
    TrustError: 403,
    ActionRefused: 409,
    RouteError: 403,
    SignatureError: 403,
    FrameError: 400,
}


def status_for(exc: SanjiError) -> int:
    for kind, status in STATUS.items():
        if isinstance(exc, kind):
            return status
    return 503 if exc.retryable else 400


def sanji_error_handler(_: Request[Any, Any, Any], exc: SanjiError) -> Response[dict[str, object]]:
    return Response(exc.as_dict(), status_code=status_for(exc))


def value_error_handler(_: Request[Any, Any, Any], exc: ValueError) -> Response[dict[str, object]]:
    return Response(
        {"error": "bad_request", "message": str(exc), "hint": "Check the request against /schema.", "retryable": False},
        status_code=400,
    )


def http_error_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, object]]:
    body: dict[str, object] = {
        "error": "bad_request" if exc.status_code < 500 else "server_error",
        "message": exc.detail,
        "hint": "",
        "retryable": exc.status_code >= 500,
    }
    extra = getattr(exc, "extra", None)
    if extra:
        body["detail"] = extra
    return Response(body, status_code=exc.status_code)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, object]]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(
        {
            "error": "server_error",
            "message": f"{type(exc).__name__} while handling the request; nothing was changed",
            "hint": "This is a bug in Sanji; the node log has the details.",
            "retryable": True,
        },
        status_code=500,
    )
