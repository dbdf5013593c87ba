"""A node's business report (业务报表) of one business day, signed by the node, sent up with its health.

Each township and village counts, from the errands it holds (its subtree), what happened on one
business day (CST): errands received (registered), accepted, decided (answered), delivered; of
those decided, on time and late; the extensions, deemed approvals (超时默许) and ratings of the
errands decided that day. Every count is a day's, so a period's figures are the sums of its days.
The county keeps the reports and sets them beside what it computes itself from the errands it
holds: a difference is an audit signal (errands not yet synced up, or a store that disagrees).

Pure: msgspec and ``protocol.signing``. Envelope (the rules' layout under its own magic, so no
other signed document passes for a business report)::

    b"SJR" | version:u8 | key_id_len:u8 | key_id | payload_len:u32 | payload | sig_len:u16 | sig
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated

import msgspec

from protocol import envelope
from protocol.bounds import whole
from protocol.encoding import encode
from protocol.errors import FrameError, SignatureError
from protocol.signing import KeyRecord, SigningKey, verify

MAGIC = b"SJR"
FORMAT_VERSION = 1
MAX_BUSINESS_BYTES = 4 * 1024
KEEP_DAYS = 7  # how many of its last days a node sends up each exchange: a week offline loses nothing
COUNTS = (
    "received",
    "accepted",
    "decided",
    "delivered",
    "on_time",
    "late",
    "extensions",
    "deemed",
    "satisfied",
    "basically_satisfied",
    "dissatisfied",
)


Count = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]


class BusinessReport(msgspec.Struct, frozen=True, kw_only=True):
    node: str
    day: Annotated[
        str, msgspec.Meta(pattern=whole("[0-9]{4}-[0-9]{2}-[0-9]{2}"))
    ]  # the business day (ISO, CST) counted
    at: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # the node's hybrid clock when it built the report
    # A signed report is still input: its values fit the columns they are kept in, so a node's own key
    # (or a stolen one) cannot make an ancestor's exchange fail by what it counts.
    received: Count = 0
    accepted: Count = 0
    decided: Count = 0
    delivered: Count = 0
    on_time: Count = 0
    late: Count = 0
    extensions: Count = 0
    deemed: Count = 0
    satisfied: Count = 0
    basically_satisfied: Count = 0
    dissatisfied: Count = 0

    def counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in COUNTS}


_decoder = msgspec.msgpack.Decoder(BusinessReport)


def sign_business(report: BusinessReport, key: SigningKey) -> bytes:
    payload = encode(report)
    return envelope.seal(MAGIC, payload, key, version=FORMAT_VERSION)


def _opened(blob: bytes) -> envelope.Opened:
    """The envelope's parts; framing faults raise FrameError (an oversized report too: its code never changed)."""
    return envelope.open_envelope(
        blob,
        magic=MAGIC,
        version=FORMAT_VERSION,
        max_bytes=MAX_BUSINESS_BYTES,
        what="signed business report",
        too_large=FrameError,
    )


def _decode(payload: bytes) -> BusinessReport:
    try:
        report = _decoder.decode(payload)
        date.fromisoformat(report.day)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise FrameError(f"business report does not decode: {exc}") from None
    return report


def read_business(blob: bytes) -> BusinessReport:
    """The report inside a blob verified when it was kept (its key may have been rotated since)."""
    return _decode(_opened(blob).payload)


def open_business(blob: bytes, key: Callable[[str], KeyRecord | None]) -> BusinessReport:
    """Check the signature against a key of the node the report names; the report, or an error.

    ``key``: key id -> its record (``Directory.key``). A report signed by any key but its own node's is refused.
    """
    key_id, signed, signature, payload = _opened(blob)
    report = _decode(payload)
    # Decoded before the check only to learn whose keys to check with; nothing is used unless it holds.
    record = key(key_id)
    if record is None or record.revoked or record.node != report.node:
        raise SignatureError(f"business report of {report.node} is signed by key {key_id}, not one of that node's")
    verify(record, signed, signature)
    return report
