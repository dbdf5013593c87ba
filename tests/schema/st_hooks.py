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
