"""Every error leaves as JSON that says what happened, what to do, and whether to retry.

``{error, message, hint, retryable}`` for every status (the OpenAPI schema documents it as
``ErrorBody``). An exception that only bad input can cause (a decoder's recursion or overflow,
text that is not text) is the caller's fault: a 400, logged in one line, never a 500.
"""

from __future__ import annotations

import errno
import logging
import math
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SqlTimeout

from protocol.enrollment import EnrollmentError
from protocol.errors import (
    ActionRefused,
    FrameError,
    RouteError,
    SanjiError,
    SignatureError,
    VersionNotNewer,
    VersionTooFar,
)
from protocol.trust import TrustError
from sanji.auth.roles import PlaceRefused
from sanji.context import VersionHeldBelow
from sanji.office.book import OfficeInvalid, OfficeRecordUnknown, OfficeRefused
from sanji.store.archive import AttachmentArchived
from sanji.store.clones import CloneFrozen
from sanji.store.engine import DatabaseClosed, ReadOnlyReplica, sqlstate
from sanji.store.submissions import KeyMalformed, KeyReused
from sanji.store.trustbook import CloneSuspected
from sanji.sync.requests_auth import Unauthenticated
from sanji.web.json_gate import BadInput, BodyTooLarge, UnsupportedMediaType

log = logging.getLogger("sanji.web")

STATUS: dict[type[SanjiError], int] = {
    Unauthenticated: 401,
    PlaceRefused: 403,  # the caller's department or window is not the one the step is for (sanji.auth.roles)
    CloneSuspected: 403,
    CloneFrozen: 403,
    EnrollmentError: 403,
    TrustError: 403,
    ActionRefused: 409,  # a type that is no scan (attachment_type): 415; a name that names nobody: 400, below
    VersionTooFar: 409,  # a county document published too far above the version held (protocol.bounds)
    VersionNotNewer: 409,  # a county document published at a version the database already holds (sanji.context)
    VersionHeldBelow: 409,  # after a restore, a catalogue version a node below holds already (sanji.context)
    KeyReused: 409,  # an Idempotency-Key used before for another request (sanji.store.submissions.from_header)
    KeyMalformed: 400,  # an Idempotency-Key that is no key: empty, too long, not visible ASCII
    AttachmentArchived: 410,  # the bytes were here and are now held by an ancestor (sanji archive)
    OfficeRecordUnknown: 404,  # before OfficeRefused, its base: the first match answers
    OfficeInvalid: 400,  # an unknown item or centre, an invisible subject: the sender's to correct
    OfficeRefused: 409,
    RouteError: 403,
    SignatureError: 403,
    FrameError: 400,
    UnsupportedMediaType: 415,
    BodyTooLarge: 413,
    BadInput: 400,
    DatabaseClosed: 503,  # the node is stopping; the request is answered, nothing written
    ReadOnlyReplica: 503,  # this process cannot write; the primary's hub can (no Retry-After: not here)
}

# What an HTTP status means to a caller, as the error code of its body.
HTTP_CODES = {
    400: "bad_request",
    401: "not_logged_in",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}

# What a refusal says in Chinese when it has no words of its own (a body the framework refused, a path not
# found, a method not allowed, a database out of reach): every JSON refusal carries ``message_zh`` and
# ``error_code``, so a desk's client can show Chinese first without knowing which layer refused.
STATUS_ZH = {
    400: "请求无法受理：内容或格式有误，未作任何更改",
    401: "需要登录",
    403: "无权进行此操作",
    404: "未找到所请求的内容",
    405: "不支持此请求方法",
    409: "与当前状态冲突，未作更改",
    410: "该内容已不再提供",
    413: "请求内容过大，未作任何更改",
    415: "请求格式不受支持，未作任何更改",
    429: "请求过于频繁，请稍后再试",
    499: "请求方已断开",
    500: "服务器内部错误，未作任何更改；请联系运维人员",
    503: "暂时无法处理，请稍后重试",
}
SPECIFIC_ZH = {
    "database_unavailable": "暂时无法连接数据库，请稍后重试",
    "disk_full": "磁盘已满，这次没有保存任何内容",
    "read_replica": "这里是只读副本，只能查看和导出",
    "database_closed": "节点正在停止，请稍后重试",
}


def in_chinese_too(body: dict[str, object], status: int) -> dict[str, object]:
    """``body`` with ``message_zh`` and ``error_code`` filled in where the layer that refused gave none."""
    code = str(body.get("error", ""))
    body.setdefault("error_code", code)
    if not body.get("message_zh"):
        body["message_zh"] = SPECIFIC_ZH.get(code) or STATUS_ZH.get(status) or STATUS_ZH[500 if status >= 500 else 400]
    return body


# Raised only when the input is malformed beyond what a decoder or the database can represent.
INPUT_FAULTS: tuple[type[BaseException], ...] = (
    RecursionError,
    OverflowError,
    UnicodeError,
    msgspec.DecodeError,
    msgspec.ValidationError,
)


# Refusals of what was typed, not of the errand's state: the sender's to correct, a 400 like every other character
# a name may not hold (``protocol.bounds``), as the register screen answers them.
TYPED_REFUSALS = frozenset({"name_blank", "name_invisible"})


def status_for(exc: SanjiError) -> int:
    if isinstance(exc, ActionRefused) and exc.refusal.code == "errand_unknown":
        return 404  # not held here: what GET of the same errand answers, not a refusal by the rules
    if isinstance(exc, ActionRefused) and exc.refusal.code == "attachment_type":
        return 415
    if isinstance(exc, ActionRefused) and exc.refusal.code in TYPED_REFUSALS:
        return 400
    for kind, status in STATUS.items():
        if isinstance(exc, kind):
            return status
    return 503 if exc.retryable else 400


def sanji_error_handler(_: Request[Any, Any, Any], exc: SanjiError) -> Response[dict[str, object]]:
    wait = getattr(exc, "retry_after", 0)  # e.g. an archived attachment no ancestor can give back now
    headers = {"Retry-After": str(math.ceil(wait))} if wait else None
    status = status_for(exc)
    return Response(in_chinese_too(exc.as_dict(), status), status_code=status, headers=headers)


def value_error_handler(_: Request[Any, Any, Any], exc: ValueError) -> Response[dict[str, object]]:
    body: dict[str, object] = {
        "error": "bad_request",
        "message": str(exc),
        "hint": "Check the request against /schema.",
        "retryable": False,
    }
    zh = getattr(exc, "message_zh", "")  # a refusal that says itself in Chinese (an office query's date …)
    if zh:
        body["message_zh"] = zh
    return Response(in_chinese_too(body, 400), status_code=400)


def http_error_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, object]]:
    body: dict[str, object] = {
        "error": HTTP_CODES.get(exc.status_code, "bad_request") if exc.status_code < 500 else "server_error",
        "message": exc.detail,
        "hint": "",
        "retryable": exc.status_code >= 500 or exc.status_code == 429,
    }
    zh = getattr(exc, "message_zh", "")  # a refusal that says itself in Chinese too (a throttled search …)
    if zh:
        body["message_zh"] = zh
    extra = getattr(exc, "extra", None)
    if extra:
        body["detail"] = extra
        said = [str(e.get("message", "")) for e in extra if isinstance(e, dict)] if isinstance(extra, list) else []
        if any(said):
            body["message"] = f"{exc.detail}: {'; '.join(m for m in said if m)}"[:1000]
    # a 405 keeps its Allow header
    return Response(in_chinese_too(body, exc.status_code), status_code=exc.status_code, headers=exc.headers)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, object]]:
    if isinstance(exc, INPUT_FAULTS):
        log.warning("refused %s %s: %s: %.200s", request.method, request.url.path, type(exc).__name__, exc)
        body: dict[str, object] = {
            "error": "bad_request",
            "message": f"the request could not be read ({type(exc).__name__}); nothing was changed",
            "hint": "Check the request against /schema: sizes, nesting, numbers and text within their bounds.",
            "retryable": False,
        }
        return Response(in_chinese_too(body, 400), status_code=400)
    if sqlstate(exc) == _READ_ONLY_TRANSACTION:
        # The server became a standby under a running process (or a pooler points at one): as a replica's write.
        log.warning("write refused by a read-only database on %s %s", request.method, request.url.path)
        return sanji_error_handler(request, ReadOnlyReplica("the database now refuses writes (a standby)"))
    if disk_full(exc):
        return _disk_full_response(request, exc)
    if database_unavailable(exc):
        return _unavailable_response(request, exc)
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    failed: dict[str, object] = {
        "error": "server_error",
        "message": f"{type(exc).__name__} while handling the request; nothing was changed",
        "hint": "This is a bug in Sanji; the node log has the details.",
        "retryable": True,
    }
    return Response(in_chinese_too(failed, 500), status_code=500)


# Reading, or a sync request (signed afresh, counted, its batches taken once), may simply be sent again; a
# desk's change may have committed before the connection broke, so it is looked at before it is sent again.
_SAFE_AGAIN = ("GET", "HEAD", "OPTIONS")
_SYNC_PREFIX = "/sync/"
# asyncpg's, by name: a village never imports the PostgreSQL driver to tell them apart.
_DRIVER_UNREACHABLE = frozenset({"CannotConnectNowError", "ConnectionDoesNotExistError", "TooManyConnectionsError"})
_READ_ONLY_TRANSACTION = "25006"  # PostgreSQL's read_only_sql_transaction
_DISK_FULL = "53100"  # PostgreSQL's disk_full
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_INSUFFICIENT_RESOURCES = "53"  # PostgreSQL's class: disk full, out of memory (its lock table), too many connections


def database_unavailable(exc: BaseException) -> bool:
    """The database was not there (restarted, refusing connections, pool exhausted) or out of a resource (its
    lock table, memory or disk full: SQLSTATE class 53): not a bug, not the input; later it may work."""
    if isinstance(exc, SqlTimeout):  # no pooled connection came free in time
        return True
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        return (
            exc.connection_invalidated
            or isinstance(orig, OSError)
            or type(orig).__name__ in _DRIVER_UNREACHABLE
            or sqlstate(exc).startswith(_INSUFFICIENT_RESOURCES)
        )
    return isinstance(exc, ConnectionError)


def disk_full(exc: BaseException) -> bool:
    """The node's disk, or its database server's, is full: SQLite's SQLITE_FULL, PostgreSQL's disk_full
    (53100), or a file's ENOSPC / EDQUOT. The transaction that met it rolled back."""
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        if getattr(orig, "sqlite_errorname", "") == "SQLITE_FULL" or sqlstate(exc) == _DISK_FULL:
            return True
        return isinstance(orig, OSError) and orig.errno in _NO_SPACE
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


def _disk_full_response(request: Request[Any, Any, Any], exc: BaseException) -> Response[dict[str, object]]:
    log.error("disk full on %s %s: %s: %.200s", request.method, request.url.path, type(exc).__name__, exc)
    body: dict[str, object] = {
        "error": "disk_full",
        "message": "磁盘已满，这次没有保存任何内容 — the node's disk is full; nothing was saved",
        "hint": (
            "请管理员清理这台电脑的磁盘（旧备份、导出文件）后再试。 Free disk space on the node (old backups, "
            "exports; `sanji doctor` shows where), then send it again."
        ),
        "retryable": True,
    }
    return Response(in_chinese_too(body, 503), status_code=503, headers={"Retry-After": "60"})


def _unavailable_response(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, object]]:
    log.warning("database unavailable on %s %s: %s: %.200s", request.method, request.url.path, type(exc).__name__, exc)
    again = request.method in _SAFE_AGAIN or request.url.path.startswith(_SYNC_PREFIX)
    body: dict[str, object] = {
        "error": "database_unavailable",
        "message": (
            "the database could not be reached; nothing was changed"
            if again
            else "the database could not be reached; the change may or may not have been made"
        ),
        "hint": (
            "Retry the request: it will use a new connection."
            if again
            else "Look at the errand (or list) before doing it again, so it is not done twice."
        ),
        "retryable": again,
    }
    return Response(in_chinese_too(body, 503), status_code=503, headers={"Retry-After": "5"})
