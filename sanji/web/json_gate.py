"""Every JSON request body is looked at before it is decoded: its media type, its size, its nesting.

Litestar decodes a JSON body into plain Python values before converting it to the handler's
form, and that first step recurses once per level: a body nested a thousand deep used to end
in a ``RecursionError`` and a 500. The gate (an app-level ``before_request`` hook) runs before
any decoding, for every handler that takes a JSON ``data`` body, and refuses

* a media type other than ``application/json`` (415: a ``text/plain`` or form-encoded body is
  not read as JSON, so a cross-site form cannot post to the API);
* a body over ``protocol.bounds.MAX_JSON_BYTES`` (413), judged from ``Content-Length`` first;
* a body nested deeper than ``protocol.bounds.MAX_JSON_DEPTH`` (400),

each with the usual ``{error, message, hint, retryable}`` body.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.params import BodyKwarg

from protocol.bounds import MAX_JSON_BYTES, json_problem
from protocol.errors import SanjiError

JSON = "application/json"


class UnsupportedMediaType(SanjiError):
    code = "unsupported_media_type"
    default_hint = "Send the body as JSON with the header Content-Type: application/json."


class BodyTooLarge(SanjiError):
    code = "body_too_large"
    default_hint = f"A JSON request body holds at most {MAX_JSON_BYTES} bytes."


class BadInput(SanjiError):
    code = "bad_request"
    default_hint = "Check the request against /schema."


def takes_json(request: Request[Any, Any, Any]) -> bool:
    field = request.route_handler.parsed_data_field
    if field is None:
        return False
    kwarg = field.kwarg_definition
    media = kwarg.media_type if isinstance(kwarg, BodyKwarg) else RequestEncodingType.JSON
    return bool(media == JSON)  # the enum is a str: equal to its value


def media_type(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def json_gate(request: Request[Any, Any, Any]) -> None:
    """Refuse a JSON body that is not declared as JSON, too large, or nested too deep; else let it through."""
    if not takes_json(request):
        return
    if media_type(request) != JSON:
        sent = media_type(request) or "no Content-Type"
        raise UnsupportedMediaType(f"this endpoint reads application/json, not {sent}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise BodyTooLarge(f"the body is {declared} bytes; the limit is {MAX_JSON_BYTES}")
    body = await request.body()
    if len(body) > MAX_JSON_BYTES:
        raise BodyTooLarge(f"the body is {len(body)} bytes; the limit is {MAX_JSON_BYTES}")
    if (problem := json_problem(body)) is not None:
        raise BadInput(problem)
    try:  # strictly, as the schema says: Litestar's own conversion afterwards would take 0 for false
        msgspec.json.decode(body, type=request.route_handler.parsed_data_field.annotation, strict=True)  # type: ignore[union-attr]
    except msgspec.ValidationError as exc:
        raise BadInput(f"the body does not match the schema: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadInput(f"the body is not JSON: {exc}") from None
