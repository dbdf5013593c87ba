"""Every sync request is signed by the child that sends it, addressed, and fresh.

Batches carry their own signatures, but a pull or a cursors request does not: without this,
anyone who can reach a township could ask for a village's errands by naming the village. So
the child signs ``recipient | counter | path | body`` with its current signing key and sends the
signature, the recipient and the counter in headers; the parent checks, before it decodes a
byte of the body, that the request is addressed to it, that the key is the sender's current
one, that the signature matches, and that the counter is above every counter it has accepted
from that child (``sanji.sync.freshness``, in the parent's database).

So a captured request is worth nothing: replayed at the same parent its counter is spent; sent
to another node it names the wrong recipient; altered, its signature fails. The counter starts
from the child's clock only for convenience: the parent's record decides, and a child whose
clock (or restored database) is behind is told the last counter accepted and signs above it.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from protocol.errors import SanjiError, SignatureError
from protocol.session import request_signing_bytes
from protocol.signing import SigningKey, verify
from protocol.topology import Directory

HEADER_NODE = "x-sanji-node"
HEADER_KEY = "x-sanji-key"
HEADER_SIGNATURE = "x-sanji-signature"
HEADER_TO = "x-sanji-to"
HEADER_COUNTER = "x-sanji-counter"
MAX_COUNTER = 2**62  # a counter beyond this is refused: it would leave no room to grow


class Unauthenticated(SanjiError):
    code = "unauthenticated"
    default_hint = (
        "Sync requests must be signed with the sending node's current key (a node started from an old "
        "version, or a key that was revoked or rotated away). Enroll or update the node."
    )


class StaleRequest(Unauthenticated):
    """A request whose counter this parent has already passed: a replay, or a child whose counter went back."""

    code = "stale_request"
    default_hint = "Sign the request again with a counter above last_counter (the sync driver does so by itself)."

    def __init__(self, message: str, *, last: int) -> None:
        super().__init__(message)
        self.last = last

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "last_counter": self.last}


class WrongRecipient(Unauthenticated):
    """A request addressed to another node: a capture sent elsewhere, or a fallback link not yet known."""

    code = "wrong_recipient"
    default_hint = "Address the request to the node named in recipient, if that node is one of your ancestors."

    def __init__(self, message: str, *, recipient: str) -> None:
        super().__init__(message)
        self.recipient = recipient

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "recipient": self.recipient}


class _Counter:
    """One strictly growing counter per process: every request any signer here signs gets a new number.

    Starts from the wall clock in microseconds so a restarted node is normally above what it sent
    before; when it is not (clock set back, database restored) the parent says so and ``bump`` moves it.
    """

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last = max(self.last + 1, time.time_ns() // 1000)
        return self.last

    def bump(self, seen: int) -> None:
        if 0 <= seen < MAX_COUNTER:
            self.last = max(self.last, seen)


COUNTER = _Counter()


@dataclass
class SignedRequest:
    node: str
    key_id: str
    signature: bytes
    path: str
    body: bytes
    recipient: str = ""
    counter: int = 0
    admitted: bool = field(default=False, compare=False)  # verified and fresh: set once, by the parent
    # What the parent read about the sender as it admitted the request (``sanji.sync.glance.Glance``).
    seen: object = field(default=None, compare=False)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], path: str, body: bytes) -> SignedRequest | None:
        node, key_id, sig = (headers.get(h, "") for h in (HEADER_NODE, HEADER_KEY, HEADER_SIGNATURE))
        if not (node and key_id and sig):
            return None
        if len(node) > 64 or len(key_id) > 64 or len(sig) > 200:
            raise Unauthenticated("the request signature headers are too long")
        try:
            signature = base64.b64decode(sig, validate=True)
        except ValueError:
            raise Unauthenticated("the request signature header is not base64") from None
        raw_counter = headers.get(HEADER_COUNTER, "")
        if not (raw_counter.isascii() and raw_counter.isdigit() and len(raw_counter) <= 19):
            raise Unauthenticated(
                "the request carries no valid X-Sanji-Counter (a node running software older than fresh requests)"
            )
        return cls(
            node=node,
            key_id=key_id,
            signature=signature,
            path=path,
            body=body,
            recipient=headers.get(HEADER_TO, "")[:64],
            counter=int(raw_counter),
        )


class HoldsKey(Protocol):
    key: SigningKey


class RequestSigner:
    """Signs a node's requests with whatever key its store holds now (a rotation switches it at once).

    ``turn``: every link signing with this signer holds it from signing a request until its answer. The
    parent takes a counter only above the last it accepted, checked once the body has arrived: two
    requests in flight at once (a sync session's large push and a fetch back's small ``blob/get``)
    could land in the other order and the first signed be refused as stale. A running node has one
    signer (``sanji.web.app.NodeRuntime``) shared by its sync driver and its fetch back.
    """

    def __init__(self, node: str, key_source: HoldsKey) -> None:
        self.node = node
        self._source = key_source
        self.turn = asyncio.Lock()

    @property
    def key(self) -> SigningKey:
        return self._source.key

    def sign(self, path: str, body: bytes, *, recipient: str) -> SignedRequest:
        key = self.key
        counter = COUNTER.next()
        return SignedRequest(
            node=self.node,
            key_id=key.key_id,
            signature=key.sign(request_signing_bytes(path, body, recipient=recipient, counter=counter)),
            path=path,
            body=body,
            recipient=recipient,
            counter=counter,
        )

    def headers(self, path: str, body: bytes, *, recipient: str) -> dict[str, str]:
        signed = self.sign(path, body, recipient=recipient)
        return {
            HEADER_NODE: signed.node,
            HEADER_KEY: signed.key_id,
            HEADER_SIGNATURE: base64.b64encode(signed.signature).decode(),
            HEADER_TO: signed.recipient,
            HEADER_COUNTER: str(signed.counter),
        }


def check_signed(directory: Directory, signed: SignedRequest | None, sender: str, *, recipient: str) -> None:
    """Raise ``Unauthenticated`` unless ``signed`` is ``sender``'s signature with a current key, addressed
    to ``recipient``. Freshness (the counter) is the caller's to check: it needs the database."""
    if signed is None:
        raise Unauthenticated(f"the request from {sender!r} is not signed")
    if signed.node != sender:
        raise Unauthenticated(f"the request names sender {sender!r} but is signed as {signed.node!r}")
    if signed.recipient != recipient:
        raise WrongRecipient(
            f"the request is addressed to {signed.recipient or '(nobody)'!r}, and this is {recipient}",
            recipient=recipient,
        )
    if signed.counter >= MAX_COUNTER:
        raise Unauthenticated(f"request counter {signed.counter} is out of range")
    record = directory.key(signed.key_id)
    if record is None or record.node != sender:
        raise Unauthenticated(f"key {signed.key_id} is not a key of {sender} here")
    if record.revoked or directory.is_retired(signed.key_id):
        raise Unauthenticated(f"key {signed.key_id} of {sender} was revoked or replaced")
    try:
        message = request_signing_bytes(signed.path, signed.body, recipient=signed.recipient, counter=signed.counter)
        verify(record, message, signed.signature)
    except SignatureError:
        raise Unauthenticated(f"the request signature does not match key {signed.key_id} of {sender}") from None
