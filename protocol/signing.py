"""Signing keys and key records.

Every key record names its algorithm, so another profile (for example SM2/SM3)
can be added beside Ed25519 without changing the batch format: the frame carries
a key id, the key record says how to check it.

A node may also list a record with algorithm ``x25519``: not a signing key but the
key personal data is sealed to (``protocol.sealing``). It is never accepted as a
signer, and a node without one simply receives applicant details in clear.
"""

from __future__ import annotations

import hashlib

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.errors import SignatureError

ED25519 = "ed25519"
X25519 = "x25519"  # not a signing algorithm: a node's sealing key (protocol.sealing), listed beside its signing key


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A public key that a node is known by."""

    node: str
    key_id: str
    algorithm: str = ED25519
    public_key: bytes
    revoked: bool = False


def key_id_for(algorithm: str, public_key: bytes) -> str:
    return hashlib.sha256(algorithm.encode() + b":" + public_key).hexdigest()[:16]


class SigningKey:
    """A node's private signing key. Only Ed25519 today."""

    algorithm = ED25519

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_bytes = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id_for(self.algorithm, self.public_bytes)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def record(self, node: str) -> KeyRecord:
        return KeyRecord(node=node, key_id=self.key_id, algorithm=self.algorithm, public_key=self.public_bytes)


def verify(record: KeyRecord, data: bytes, signature: bytes) -> None:
    """Raise SignatureError unless ``signature`` is ``record``'s signature over ``data``."""
    if record.algorithm == X25519:
        raise SignatureError(f"key {record.key_id} of {record.node} is a sealing key (x25519); it cannot sign")
    if record.algorithm != ED25519:
        raise SignatureError(f"key {record.key_id} uses algorithm {record.algorithm!r}, which this node cannot check")
    try:
        Ed25519PublicKey.from_public_bytes(record.public_key).verify(signature, data)
    except (InvalidSignature, ValueError) as exc:
        raise SignatureError(f"signature does not match key {record.key_id} of node {record.node}") from exc
