"""A ``multipart/form-data`` upload read with a bound on every part.

Litestar's own reader keeps a field without a filename in memory whole, up to the route's body ceiling; for
the carried-file import that ceiling is the format's (2 GiB), so one text field of 600 MiB was held in
memory (by the CSRF check, which reads the form first) before the handler could refuse it. Here each file
goes to a spooled temporary file and stops at its limit, every other field stops at a few kilobytes, and
the parts are counted, all while the body streams in: a part over its bound is refused (413) as soon as it
is seen. ``bounded_form`` leaves the result where Litestar keeps a parsed form, so the CSRF check and the
handler read the one bounded parse (``request.form()``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from litestar import Request
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.types import Empty
from litestar.utils.scope.state import ScopeState
from multipart import MultipartSegment, ParserError, ParserLimitReached, PushMultipartParser

from sanji.web.json_gate import BadInput, BodyTooLarge

FIELD_LIMIT = 64 * 1024  # a form's text field: a CSRF token, a name, a choice
PART_LIMIT = 64
URLENCODED = "application/x-www-form-urlencoded"
# A form a browser posts without files: the register and step forms send a few dozen fields (at most 100
# materials or items, ``protocol.bounds.MAX_ITEMS``). Litestar parses such a body whole into a dictionary:
# a million one-byte fields (10 MB) held a node's event loop for seconds.
URLENCODED_FIELD_LIMIT = 1000

Form = dict[str, list[str | UploadFile]]


async def bounded_form(request: Request[Any, Any, Any]) -> FormMultiDict:
    """``request.form()``, a multipart body read by ``read_bounded_form`` (a file up to the route's body limit,
    each other field up to ``FIELD_LIMIT``) the first time it is asked for; a URL-encoded body of more than
    ``URLENCODED_FIELD_LIMIT`` fields refused (413) before it is parsed. Every form a handler reads goes
    through here, logged in or not."""
    state = ScopeState.from_scope(request.scope)
    if state.form is Empty and request.content_type[0] == "multipart/form-data":
        limit = request.route_handler.resolve_request_max_body_size() or FIELD_LIMIT
        parsed = await read_bounded_form(request, file_limit=limit)
        kept: dict[str, Any] = {name: values if len(values) > 1 else values[0] for name, values in parsed.items()}
        state.form = kept
    elif state.form is Empty and request.content_type[0] == URLENCODED:
        body = await request.body()  # kept by the request: the parse below reads the same bytes
        if body.count(b"&") >= URLENCODED_FIELD_LIMIT:
            raise BodyTooLarge(f"the form has over {URLENCODED_FIELD_LIMIT} fields; a form here has at most that many")
    return await request.form()


async def read_bounded_form(
    request: Request[Any, Any, Any], *, file_limit: int, field_limit: int = FIELD_LIMIT, max_parts: int = PART_LIMIT
) -> Form:
    """The form's fields (text, or ``UploadFile`` for a part with a filename; close them with
    ``close_form``). ``BodyTooLarge`` for a file over ``file_limit`` or a field over ``field_limit``,
    ``BadInput`` for a body that is not a whole multipart form."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > file_limit + max_parts * field_limit:
        raise BodyTooLarge(f"the upload is {declared} bytes; this node takes a file of at most {file_limit}")
    media, params = request.content_type
    boundary = params.get("boundary", "")
    if media != "multipart/form-data" or not boundary:
        raise BadInput("expected a multipart/form-data upload with a boundary")
    fields: Form = defaultdict(list)
    segment: MultipartSegment | None = None
    data: UploadFile | bytearray = bytearray()
    try:
        with PushMultipartParser(boundary, max_segment_count=max_parts, max_segment_size=file_limit) as parser:
            async for chunk in request.stream():
                segment, data = await _take(parser.parse(chunk), fields, segment, data, field_limit)
            segment, data = await _take(parser.parse(b""), fields, segment, data, field_limit)
            if not parser.closed:
                raise BadInput("the upload ended before the form did")
    except ParserLimitReached:
        await _close(data, fields)
        raise BodyTooLarge(
            f"a file of the upload is over {file_limit} bytes, or it has over {max_parts} parts"
        ) from None
    except ParserError as exc:
        await _close(data, fields)
        raise BadInput(f"not a readable multipart/form-data upload ({exc})") from None
    except BaseException:
        await _close(data, fields)
        raise
    return dict(fields)


async def _take(
    parts: Any,
    fields: Form,
    segment: MultipartSegment | None,
    data: UploadFile | bytearray,
    field_limit: int,
) -> tuple[MultipartSegment | None, UploadFile | bytearray]:
    opened: list[UploadFile] = []  # file parts opened in this chunk and not yet in ``fields``: closed on a refusal
    try:
        for part in parts:
            if isinstance(part, MultipartSegment):
                segment = part
                if part.filename:
                    data = UploadFile(
                        content_type=part.content_type or "application/octet-stream", filename=part.filename
                    )
                    opened.append(data)
            elif part:
                if isinstance(data, UploadFile):
                    await data.write(part)
                elif len(data) + len(part) > field_limit:
                    raise BodyTooLarge(f"a form field is over {field_limit} bytes")
                else:
                    data.extend(part)
            else:  # the end of a part
                if segment is None:
                    raise BadInput("a part of the upload ended before its headers")
                if isinstance(data, UploadFile):
                    await data.seek(0)
                    fields[segment.name].append(data)
                    if data in opened:
                        opened.remove(data)
                else:
                    # UTF-8, as browsers send a form: a charset the part names is not trusted to pick a codec.
                    try:
                        fields[segment.name].append(data.decode("utf-8"))
                    except UnicodeDecodeError:
                        raise BadInput(f"form field {segment.name[:64]!r} is not UTF-8 text") from None
                segment, data = None, bytearray()
    except BaseException:
        for upload in opened:
            await upload.close()
        raise
    return segment, data


async def _close(data: UploadFile | bytearray, fields: Form) -> None:
    if isinstance(data, UploadFile):
        await data.close()
    await close_form(fields)


async def close_form(fields: Form) -> None:
    """Close every uploaded file of the form (each is a temporary file until closed)."""
    for values in fields.values():
        for value in values:
            if isinstance(value, UploadFile):
                await value.close()
