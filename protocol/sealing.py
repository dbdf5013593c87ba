"""Sealed personal data: an applicant's details readable only by the nodes on the errand's path.

DOMAIN.md: ID numbers, phones, incomes and health data are visible only to the chain that
handles the errand and to its supervisors. The chain is the errand's *path* — the scope and
all its ancestors (supervisors sit at the county, the root of every path). So the node that
registers an errand seals those details once, to every node on the path, and puts the blob in
``Register.sealed``. Relays, hand-carried files, stolen disks and nodes off the path see only
ciphertext. The applicant's **name stays in clear**: it is printed on receipts, shown in lists,
and is the only applicant field the projection (``protocol.errand``) uses, so digests stay
deterministic and every replica computes them without any private key.

Blob layout (the head, magic and format, is ``protocol.envelope.check_head``'s)::

    b"SJS" | version:u8 | envelope (msgpack array, canonical)

    envelope = [suite, ephemeral_public, [[node, key_id, wrapped_key], ...], nonce, ciphertext]

* A fresh random 32-byte content key encrypts the details once with ChaCha20-Poly1305
  (random 12-byte nonce). The details are ``Personal`` as a msgpack map, so fields added later
  (with defaults) are read by older nodes as they are.
* One fresh ephemeral X25519 key per seal. For each recipient the content key is wrapped with
  ChaCha20-Poly1305 under ``HKDF-SHA256(X25519(ephemeral, recipient), salt = ephemeral_public |
  recipient_public, info = "sanji seal v1 wrap" | context)``. That key-encryption key is used
  exactly once (its inputs include a fresh ephemeral key), so the wrap uses a zero nonce.
* ``context = msgpack ["sanji sealed applicant", version, suite, errand, scope]`` is in the HKDF
  info and in every AAD: a blob copied into another errand, or claimed for another scope, does
  not open. The content AAD also covers the ephemeral key and the whole recipient list, and the
  envelope must be the canonical encoding of what it decodes to, so changing any byte of a blob
  makes it unreadable for everyone (``SealError``).

The blob travels inside a signed action, so nobody can swap it without breaking the batch
signature; sealing adds confidentiality, the batch signature gives authenticity.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.actions import Register
from protocol.envelope import check_head
from protocol.errors import SanjiError
from protocol.signing import X25519, KeyRecord, key_id_for
from protocol.topology import Directory

MAGIC = b"SJS"
FORMAT_VERSION = 1
SUITE = "x25519-hkdf-sha256-chacha20poly1305"
MAX_SEALED_BYTES = 16 * 1024  # a few short strings and a recipient per node on the path
MAX_RECIPIENTS = 32  # nodes on one path; the tree may be deeper than three, not this deep
_LABEL = "sanji sealed applicant"
_WRAP_INFO = b"sanji seal v1 wrap"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_ZERO_NONCE = bytes(_NONCE_BYTES)

_encoder = msgspec.msgpack.Encoder(order="deterministic")


class SealError(SanjiError):
    """Sealed details cannot be sealed or opened here."""

    code = "sealed"
    default_hint = (
        "The applicant's details are sealed to the nodes on the errand's path; this node is not one of "
        "them, its sealing key is not loaded, or the sealed bytes were altered or moved from another errand."
    )


class Personal(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What is sealed: everything about the applicant except the name.

    New fields go at the end with a default meaning "not recorded" (VERSIONING.md rule 1).
    """

    id_number: str = ""
    phone: str = ""
    income: str = ""
    health: str = ""
    # A public complainant's name (``Complain.complainant``); an applicant's name stays in clear.
    name: str = ""

    def is_empty(self) -> bool:
        return self == Personal()


class ApplicantView(msgspec.Struct, frozen=True, kw_only=True):
    """The applicant as this node may show them: details opened where this node may read them."""

    name: str
    id_number: str = ""
    phone: str = ""
    income: str = ""
    health: str = ""
    sealed: bool = False  # the details travelled sealed (Register.sealed)
    readable: bool = True  # False: sealed, and this node could not open them (not on the path, no key)


class _Recipient(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    node: str
    key_id: str
    wrapped: bytes


class _Envelope(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    suite: str
    ephemeral: bytes
    recipients: tuple[_Recipient, ...]
    nonce: bytes
    ciphertext: bytes


_envelope_decoder = msgspec.msgpack.Decoder(_Envelope)
_personal_decoder = msgspec.msgpack.Decoder(Personal)


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class SealingKey:
    """A node's private X25519 key: it opens what was sealed to the node. Kept beside the signing key."""

    algorithm = X25519

    def __init__(self, private: X25519PrivateKey) -> None:
        self._private = private
        self.public_bytes = _raw(private.public_key())
        self.key_id = key_id_for(self.algorithm, self.public_bytes)

    @classmethod
    def generate(cls) -> SealingKey:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> SealingKey:
        if len(raw) != _KEY_BYTES:
            raise ValueError(f"an X25519 private key is {_KEY_BYTES} bytes, not {len(raw)}")
        return cls(X25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def record(self, node: str) -> KeyRecord:
        return KeyRecord(node=node, key_id=self.key_id, algorithm=self.algorithm, public_key=self.public_bytes)

    def _exchange(self, peer_public: bytes) -> bytes:
        return self._private.exchange(X25519PublicKey.from_public_bytes(peer_public))


def recipients_for(directory: Directory, scope: str) -> tuple[KeyRecord, ...] | None:
    """The sealing keys of every node on ``scope``'s path, root first; None if any node lacks one.

    Sealing to only part of the chain would hide the details from a node that handles the errand,
    so the caller writes them in clear instead (as before sealing existed) until every node on the
    path has a sealing key listed in the directory.
    """
    out: list[KeyRecord] = []
    for node in directory.path(scope):
        record = directory.sealing_key(node)
        if record is None:
            return None
        out.append(record)
    return tuple(out)


def _context(errand: str, scope: str) -> bytes:
    return _encoder.encode([_LABEL, FORMAT_VERSION, SUITE, errand, scope])


def _kek(shared: bytes, ephemeral: bytes, recipient: bytes, context: bytes) -> bytes:
    if shared == bytes(len(shared)):
        raise SealError("X25519 gave an all-zero shared secret (a low-order public key)")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=ephemeral + recipient, info=_WRAP_INFO + context)
    return hkdf.derive(shared)


def _wrap_aad(context: bytes, node: str, key_id: str) -> bytes:
    return _encoder.encode([context, node, key_id])


def _content_aad(context: bytes, ephemeral: bytes, recipients: Sequence[_Recipient]) -> bytes:
    return _encoder.encode([context, ephemeral, [[r.node, r.key_id, r.wrapped] for r in recipients]])


def complaint_binding(errand: str) -> str:
    """What a public complainant's sealed identity is bound to instead of the errand itself, so it
    can never be passed off as the applicant's details (``Register.sealed``) or the other way round."""
    return errand + "#complaint"


def seal_personal(personal: Personal, recipients: Sequence[KeyRecord], *, errand: str, scope: str) -> bytes:
    """Seal ``personal`` for every key in ``recipients`` (see ``recipients_for``), bound to (errand, scope)."""
    if not recipients:
        raise SealError("sealing needs at least one recipient")
    if len(recipients) > MAX_RECIPIENTS:
        raise SealError(f"{len(recipients)} recipients; at most {MAX_RECIPIENTS}")
    context = _context(errand, scope)
    content_key = ChaCha20Poly1305.generate_key()
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = _raw(ephemeral.public_key())
    wrapped: list[_Recipient] = []
    seen: set[str] = set()
    for record in recipients:
        if record.algorithm != X25519:
            raise SealError(f"key {record.key_id} of {record.node} is {record.algorithm!r}, not a sealing key")
        if record.revoked:
            raise SealError(f"sealing key {record.key_id} of {record.node} is revoked")
        if record.key_id != key_id_for(X25519, record.public_key):
            raise SealError(f"key id {record.key_id} of {record.node} does not belong to its public key")
        if record.key_id in seen:
            continue
        seen.add(record.key_id)
        try:
            shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(record.public_key))
        except ValueError as exc:
            raise SealError(f"sealing key {record.key_id} of {record.node} is not usable: {exc}") from None
        kek = _kek(shared, ephemeral_public, record.public_key, context)
        box = ChaCha20Poly1305(kek).encrypt(_ZERO_NONCE, content_key, _wrap_aad(context, record.node, record.key_id))
        wrapped.append(_Recipient(node=record.node, key_id=record.key_id, wrapped=box))
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = _encoder.encode(personal)
    ciphertext = ChaCha20Poly1305(content_key).encrypt(
        nonce, plaintext, _content_aad(context, ephemeral_public, wrapped)
    )
    envelope = _Envelope(
        suite=SUITE, ephemeral=ephemeral_public, recipients=tuple(wrapped), nonce=nonce, ciphertext=ciphertext
    )
    blob = MAGIC + bytes([FORMAT_VERSION]) + _encoder.encode(envelope)
    if len(blob) > MAX_SEALED_BYTES:
        raise SealError(f"sealed details are {len(blob)} bytes; at most {MAX_SEALED_BYTES}")
    return blob


def _envelope(sealed: bytes) -> _Envelope:
    if len(sealed) > MAX_SEALED_BYTES:
        raise SealError(f"sealed details of {len(sealed)} bytes exceed {MAX_SEALED_BYTES}")
    check_head(
        sealed,
        magic=MAGIC,
        version=FORMAT_VERSION,
        what="sealed-details blob",
        error=SealError,
        unsupported=SealError,
        upgrade_hint="Upgrade this node: the registering node seals with a newer format.",
        at_least=5,
    )
    body = sealed[4:]
    try:
        envelope = _envelope_decoder.decode(body)
    except (msgspec.DecodeError, ValueError) as exc:  # ValueError: invalid UTF-8 in a string
        raise SealError(f"sealed details do not decode: {exc}") from None
    if _encoder.encode(envelope) != body:
        raise SealError("sealed details are not canonically encoded")
    if envelope.suite != SUITE:
        raise SealError(
            f"sealed details use suite {envelope.suite!r}, which this node cannot open",
            hint="Upgrade this node: the registering node seals with a newer suite.",
        )
    if len(envelope.ephemeral) != _KEY_BYTES or len(envelope.nonce) != _NONCE_BYTES:
        raise SealError("sealed details carry a malformed ephemeral key or nonce")
    if not envelope.recipients or len(envelope.recipients) > MAX_RECIPIENTS:
        raise SealError(f"sealed details name {len(envelope.recipients)} recipients")
    return envelope


def sealed_to(sealed: bytes) -> tuple[tuple[str, str], ...]:
    """(node, key id) of everyone ``sealed`` was sealed to, read without opening it (not authenticated)."""
    return tuple((r.node, r.key_id) for r in _envelope(sealed).recipients)


def open_for(node_key: SealingKey, sealed: bytes, errand: str, scope: str) -> Personal:
    """Open ``sealed`` with this node's key, as sealed for ``errand`` of ``scope``; SealError otherwise."""
    envelope = _envelope(sealed)
    mine = [r for r in envelope.recipients if r.key_id == node_key.key_id]
    if not mine:
        raise SealError(f"the details of errand {errand} are not sealed to key {node_key.key_id}")
    entry = mine[0]
    context = _context(errand, scope)
    try:
        shared = node_key._exchange(envelope.ephemeral)
    except ValueError as exc:
        raise SealError(f"sealed details carry an unusable ephemeral key: {exc}") from None
    kek = _kek(shared, envelope.ephemeral, node_key.public_bytes, context)
    try:
        content_key = ChaCha20Poly1305(kek).decrypt(
            _ZERO_NONCE, entry.wrapped, _wrap_aad(context, entry.node, entry.key_id)
        )
        plaintext = ChaCha20Poly1305(content_key).decrypt(
            envelope.nonce, envelope.ciphertext, _content_aad(context, envelope.ephemeral, envelope.recipients)
        )
    except (InvalidTag, ValueError):
        raise SealError(
            f"the sealed details of errand {errand} do not open: altered, or sealed for another errand or scope"
        ) from None
    try:
        return _personal_decoder.decode(plaintext)
    except (msgspec.DecodeError, ValueError) as exc:
        raise SealError(f"opened details do not decode: {exc}") from None


def applicant_view(register: Register, key: SealingKey | None) -> ApplicantView:
    """The applicant of ``register`` as a node holding ``key`` may see them.

    Old (unsealed) registrations show their clear fields. Sealed ones show the opened details if
    ``key`` opens them, else the name only, with ``readable=False``.
    """
    applicant = register.applicant
    if not register.sealed:
        return ApplicantView(name=applicant.name, id_number=applicant.id_number, phone=applicant.phone)
    if key is not None:
        try:
            p = open_for(key, register.sealed, register.errand, register.scope)
        except SealError:
            pass
        else:
            return ApplicantView(
                name=applicant.name,
                id_number=p.id_number,
                phone=p.phone,
                income=p.income,
                health=p.health,
                sealed=True,
            )
    return ApplicantView(name=applicant.name, sealed=True, readable=False)
