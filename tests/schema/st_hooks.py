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
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return msgspec.msgpack.encode(value)
