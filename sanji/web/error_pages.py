"""A request from a screen that the node cannot take gets a page, not the API's JSON.

A screen's query (a quarter typed as ``2026q4``, a month 13 in a date box), an upload over its limit, or a
form the node cannot read was answered with the JSON body an API client reads; a clerk saw
``{"error":"bad_request", … matching regex …}``. Paths under ``/api/``, ``/sync/`` and ``/schema`` keep the
JSON (``sanji.web.errors``); every other path gets this page with the same status, in Chinese and English,
naming the field and saying what to do. A ``SanjiError`` of status 403 on a screen (the node refuses: an
errand of a node its directory no longer lists, a trust or clone refusal) gets the forbidden page.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.response import Template

from protocol.errors import SanjiError
from sanji.web.errors import http_error_handler, sanji_error_handler, status_for, value_error_handler

_API_PATHS = ("/api/", "/sync/", "/schema")
_TITLES = {
    400: ("填写的内容有误", "The request could not be taken as it is"),
    404: ("找不到该页面或办件", "Not found"),
    405: ("不能这样提交", "Not allowed this way"),
    413: ("上传的内容太大", "The upload is too large"),
    409: ("不能这样办理", "Not possible as it stands"),
    410: ("已不在此处", "No longer here"),
    415: ("不支持这种内容", "Unsupported content"),
    429: ("操作太频繁，请稍后再试", "Too many requests; try again shortly"),
}
_HINT = (
    "请返回上一页，按提示改正后再试；问题依旧请告诉管理员。",
    "Go back, correct what is named and send it again; if it persists, tell the administrator.",
)
# The query and form fields screens send, named as their labels say them (the key beside, for the record).
FIELD_LABELS = {
    "quarter": "季度",
    "year": "年份",
    "from": "起始日期",
    "to": "截止日期",
    "date_from": "起始日期",
    "date_to": "截止日期",
    "limit": "条数",
    "offset": "起始位置",
    "matter": "事项",
    "node": "节点",
    "format": "格式",
    "q": "搜索内容",
}
# How a field is written, for a value whose form the request's validation refused: a clerk reads this, not the
# validator's "Expected `str` matching regex '^(?:(20[0-9]{2}…'" (``_humane``).
FIELD_FORMS = {
    "quarter": ("季度应写成 2026Q4 这样：四位年份、字母 Q、1 至 4", "a quarter is written like 2026Q4 (year, Q, 1-4)"),
    "year": ("年份应写成 2026 这样的四位数字", "a year is four digits, like 2026"),
    "from": ("日期应写成 2026-12-01 这样", "a day is written like 2026-12-01"),
    "to": ("日期应写成 2026-12-31 这样", "a day is written like 2026-12-31"),
    "date_from": ("日期应写成 2026-12-01 这样", "a day is written like 2026-12-01"),
    "date_to": ("日期应写成 2026-12-31 这样", "a day is written like 2026-12-31"),
    "limit": ("条数应为正整数", "a count is a whole number"),
    "offset": ("起始位置应为整数", "a position is a whole number"),
}
_VALIDATOR_WORDS = ("Expected `", "matching regex", "Object missing required field", "Invalid enum value")
# Statuses with pages of their own: a login; a refusal, the post's (``sanji.auth.routes.forbidden_handler``) or
# the node's (``_refused_here``: both the forbidden page).
_OWN_PAGES = frozenset({401, 403})


def wants_page(request: Request[Any, Any, Any]) -> bool:
    """Whether ``request`` came from a screen (a page answers it), not from a program (JSON answers it)."""
    return not request.url.path.startswith(_API_PATHS)


def http_page_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if not _as_page(request, exc.status_code):
        return http_error_handler(request, exc)
    extra = getattr(exc, "extra", None)
    fields = [str(e.get("key", "")) for e in extra if isinstance(e, dict)] if isinstance(extra, list) else []
    said = [str(e.get("message", "")) for e in extra if isinstance(e, dict)] if isinstance(extra, list) else []
    message = "; ".join(m for m in said if m) or str(exc.detail)
    named = "、".join(f"{FIELD_LABELS[f]} {f}" if f in FIELD_LABELS else f for f in fields if f)
    zh = str(getattr(exc, "message_zh", ""))
    if not zh and any(word in message for word in _VALIDATOR_WORDS):
        zh, message = _humane(fields)  # the field is named beside the title; the validator's pattern is not shown
    return _page(request, exc.status_code, message, named, zh=zh, headers=exc.headers)  # a 429 keeps Retry-After


def validation_text(message: str) -> tuple[str, str] | None:
    """(Chinese, English) for a validator's refusal such as "Expected `str` matching regex … - at `$.quarter`"
    (msgspec's words), naming how the field is written; None for any other message, which is a person's already."""
    if not any(word in message for word in _VALIDATOR_WORDS):
        return None
    found = re.search(r"at `\$\.([A-Za-z_]+)", message)
    missing = re.search(r"missing required field `([A-Za-z_]+)`", message)
    named = found or missing
    return _humane([named.group(1)] if named else [])


def _humane(fields: list[str]) -> tuple[str, str]:
    """What a validator's refusal says to a person: how each named field is written, else that its form is
    wrong (the validator's own text names patterns and types, which a clerk cannot act on)."""
    known = [FIELD_FORMS[f] for f in fields if f in FIELD_FORMS]
    if known:
        return "；".join(zh for zh, _ in known), "; ".join(en for _, en in known)
    return "填写的格式不对，请按提示改正", "a value is not in the form this page takes; correct it as labelled"


def sanji_page_handler(request: Request[Any, Any, Any], exc: SanjiError) -> Response[Any]:
    status = status_for(exc)
    if status == 403 and wants_page(request):
        return _refused_here(request, exc)
    if not _as_page(request, status) or exc.code == "action_refused":  # the desks show refusals in their forms
        return sanji_error_handler(request, exc)
    return _page(request, status, exc.message, "", zh=str(getattr(exc, "message_zh", "")))


def _refused_here(request: Request[Any, Any, Any], exc: SanjiError) -> Response[Any]:
    """A 403 the node itself gives (a node not in its directory, a trust or clone refusal), not the post's:
    the forbidden page, saying it is not the post's rights and what to do, with the error's code for the
    administrator."""
    from sanji.web.screens import _frame

    runtime = request.app.state.runtime
    return Template(
        template_name="forbidden.html",
        status_code=403,
        context={
            **_frame(runtime.get_store(), runtime.get_context(), "forbidden"),
            "message": exc.message[:500],
            "node_refused": exc.code,
        },
    )


def value_page_handler(request: Request[Any, Any, Any], exc: ValueError) -> Response[Any]:
    if not _as_page(request, 400):
        return value_error_handler(request, exc)
    return _page(request, 400, str(exc), "", zh=str(getattr(exc, "message_zh", "")))


def _as_page(request: Request[Any, Any, Any], status: int) -> bool:
    return wants_page(request) and 400 <= status < 500 and status not in _OWN_PAGES


def _page(
    request: Request[Any, Any, Any],
    status: int,
    message: str,
    field: str,
    *,
    zh: str = "",
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """The page: the status's title in Chinese (and the field named), the refusal's own Chinese where it has one
    (``message_zh``: a 429's wait, an office's or account's refusal), then the English title and message."""
    from sanji.web.screens import _frame  # the page frame; imported here, as screens import the error handlers

    runtime = request.app.state.runtime
    title_zh, title_en = _TITLES.get(status, _TITLES[400])
    if zh and message.startswith(zh):  # "中文 · English" (a throttled search): each half in its place
        message = message[len(zh) :].lstrip(" ·")
    return Template(
        template_name="bad_request.html",
        status_code=status,
        headers=headers or None,
        context={
            **_frame(runtime.get_store(), runtime.get_context(), "error"),
            "title_zh": title_zh,
            "title_en": title_en,
            "message": message[:500],
            "message_zh": zh[:500],
            "field": field[:200],
            "hint_zh": _HINT[0],
            "hint_en": _HINT[1],
        },
    )
