"""One signed envelope for every signed document; its faults named for the document at hand."""

from __future__ import annotations

import pytest

from protocol import assessment, batch, business, calendar_doc, carry, catalogue, sealing, trust
from protocol.envelope import KNOWN, check_head, open_envelope, seal
from protocol.errors import FrameError, FrameTooLarge, UnsupportedFormat
from protocol.signing import SigningKey

KEY = SigningKey.from_private_bytes(bytes(range(32)))
MODULES = (assessment, batch, business, calendar_doc, carry, catalogue, sealing, trust)


def test_every_magic_is_known_once_and_names_its_module() -> None:
    magics = [m.MAGIC for m in MODULES]
    assert len(set(magics)) == len(magics) and set(magics) == set(KNOWN)


def test_seal_then_open_gives_the_parts_back() -> None:
    blob = seal(b"SJC", b"payload", KEY)
    assert blob[:5] == b"SJC\x01" + bytes([len(KEY.key_id)])
    opened = open_envelope(blob, magic=b"SJC", max_bytes=1024, what="signed catalogue")
    assert opened.key_id == KEY.key_id and opened.payload == b"payload"
    assert opened.signed + len(opened.signature).to_bytes(2, "big") + opened.signature == blob


@pytest.mark.parametrize(
    ("blob", "error", "message"),
    [
        (b"SJC", FrameError, "not a Sanji thing (bad magic bytes)"),
        (b"SJB\x01\x00", FrameError, "a batch frame, not a Sanji thing"),
        (b"SJC\x02\x00", UnsupportedFormat, "thing format 2 is not supported (this node reads 1)"),
        (b"SJC\x01\x05ab", FrameError, "thing is truncated inside its header"),
        (b"SJC\x01\x01\xff\x00\x00\x00\x09", FrameError, "thing key id is not ASCII"),
        (b"SJC\x01\x01a\x00\x00\x00\x09", FrameError, "thing is truncated inside its payload"),
        (b"SJC\x01\x01a\x00\x00\x00\x00\x00\x01", FrameError, "thing length 12 does not match its header (13)"),
        (bytes(2000), FrameTooLarge, "thing is 2000 bytes; the limit is 1024"),
    ],
)
def test_each_fault_is_named(blob: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as raised:
        open_envelope(blob, magic=b"SJC", max_bytes=1024, what="thing")
    assert message in str(raised.value)


def test_a_head_raises_the_callers_error() -> None:
    # a batch head handed to the sealed-details reader: the wrong magic, refused with the caller's own error
    with pytest.raises(sealing.SealError, match="bad magic bytes"):
        check_head(b"SJB\x01", magic=b"SJS", version=1, what="sealed-details blob", error=sealing.SealError)
