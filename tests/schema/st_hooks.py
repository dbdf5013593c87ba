"""Schemathesis hooks for the conformance run (loaded with SCHEMATHESIS_HOOKS=tests.schema.st_hooks).

The sync endpoints take opaque msgpack bodies (documented as binary): the bytes schemathesis
draws are sent as they are, under the media type the schema names.
"""

from __future__ import annotations

from typing import Any

import msgspec
import schemathesis


@schemathesis.serializer("application/msgpack")
def msgpack_body(ctx: Any, value: Any) -> bytes:
    data = getattr(value, "data", value)  # schemathesis wraps drawn bytes in its `Binary`
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, str):
        return data.encode()
    return msgspec.msgpack.encode(data)


def _whole_numbers_as_integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers_as_integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_integers(v) for v in value]
    return value


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    """Send 2.0 as 2: JSON Schema counts 2.0 as an ``integer``, but the forms are decoded strictly by type
    (msgspec), so a count written with a fraction part is refused with a 400. No schema keyword can
    say "written without a fraction part"; the refusal is deliberate, so it is not drawn here."""
    return _whole_numbers_as_integers(body)
