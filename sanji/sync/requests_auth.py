"""Every sync request is signed by the child that sends it.

Batches carry their own signatures, but a pull or a cursors request does not: without this,
anyone who can reach a township could ask for a village's errands by naming the village. So
the child signs ``path | body`` with its current signing key and sends the signature in three
headers; the parent checks it against the key its directory (certificates) holds for the
sender, refuses retired or unknown keys, and only then reads the body.

A replayed request gains an eavesdropper nothing it did not already see: pushes are
idempotent, cursors and pulls answer with what the original answer showed. The signature
binds the endpoint, so a signed pull cannot be replayed as a push.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from protocol.errors import SanjiError, SignatureError
from protocol.session import request_signing_bytes
from protocol.signing import SigningKey, verify
from protocol.topology import Directory

HEADER_NODE = "x-sanji-node"
HEADER_KEY = "x-sanji-key"
HEADER_SIGNATURE = "x-sanji-signature"


class Unauthenticated(SanjiError):
    code = "unauthenticated"
    default_hint = (
        "Sync requests must be signed with the sending node's current key (a node started from an old "
        "version, or a key that was revoked or rotated away). Enroll or update the node."
    )


@dataclass(frozen=True)
class SignedRequest:
    node: str
    key_id: str
    signature: bytes
    path: str
    body: bytes

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], path: str, body: bytes) -> SignedRequest | None:
        node, key_id, sig = (headers.get(h, "") for h in (HEADER_NODE, HEADER_KEY, HEADER_SIGNATURE))
        if not (node and key_id and sig):
            return None
        try:
            signature = base64.b64decode(sig, validate=True)
        except ValueError:
            raise Unauthenticated("the request signature header is not base64") from None
        return cls(node=node, key_id=key_id, signature=signature, path=path, body=body)


class HoldsKey(Protocol):
    key: SigningKey


class RequestSigner:
    """Signs a node's requests with whatever key its store holds now (a rotation switches it at once)."""

    def __init__(self, node: str, key_source: HoldsKey) -> None:
        self.node = node
        self._source = key_source

    @property
    def key(self) -> SigningKey:
        return self._source.key

    def sign(self, path: str, body: bytes) -> SignedRequest:
        key = self.key
        return SignedRequest(
            node=self.node,
            key_id=key.key_id,
            signature=key.sign(request_signing_bytes(path, body)),
            path=path,
            body=body,
        )

    def headers(self, path: str, body: bytes) -> dict[str, str]:
        signed = self.sign(path, body)
        return {
            HEADER_NODE: signed.node,
            HEADER_KEY: signed.key_id,
            HEADER_SIGNATURE: base64.b64encode(signed.signature).decode(),
        }


def check_signed(directory: Directory, signed: SignedRequest | None, sender: str) -> None:
    """Raise ``Unauthenticated`` unless ``signed`` is ``sender``'s signature with a current key."""
    if signed is None:
        raise Unauthenticated(f"the request from {sender!r} is not signed")
    if signed.node != sender:
        raise Unauthenticated(f"the request names sender {sender!r} but is signed as {signed.node!r}")
    record = directory.key(signed.key_id)
    if record is None or record.node != sender:
        raise Unauthenticated(f"key {signed.key_id} is not a key of {sender} here")
    if record.revoked or directory.is_retired(signed.key_id):
        raise Unauthenticated(f"key {signed.key_id} of {sender} was revoked or replaced")
    try:
        verify(record, request_signing_bytes(signed.path, signed.body), signed.signature)
    except SignatureError:
        raise Unauthenticated(f"the request signature does not match key {signed.key_id} of {sender}") from None
