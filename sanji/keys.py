"""Key files and the directory file: how a node finds its own keys and everyone else's.

A node has two private keys, each in a file of mode 600:

- ``node.key``: Ed25519, signs its batches (``protocol.signing``);
- ``node.enc.key`` beside it: X25519, opens the applicant details sealed to the node
  (``protocol.sealing``). Optional: a node without one works as before, but cannot read
  sealed details, and while it has no sealing key in ``directory.json`` registrations on
  paths through it are written in clear.

A key file is either *plain* (the 32 raw private-key bytes) or *protected* by a passphrase
(``SJK1``, see ``protect_raw``): scrypt turns the passphrase into a key that encrypts the 32
bytes with ChaCha20-Poly1305, the file's kind (signing or sealing) bound into the tag, so a
stolen laptop's disk yields neither key without the passphrase, and a signing-key file put in
place of a sealing-key file (or a changed byte) is refused rather than misread. A node names
the environment variable holding the passphrase in ``[node] key_passphrase_env``; every place
that opens the node's keys passes that name as ``passphrase_env``.

``read_key`` returns a ``NodeKey``: the signing key, carrying the sealing key found beside it,
so everything that opens a store from a key file gets both.
"""

from __future__ import annotations

import logging
import os
import secrets
import unicodedata
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from protocol.errors import SanjiError
from protocol.sealing import SealingKey
from protocol.signing import KeyRecord, SigningKey
from protocol.topology import Directory, NodeEntry
from sanji.private_files import write_whole

log = logging.getLogger("sanji.keys")

SEALING_SUFFIX = ".enc"

# The protected key-file format, all integers one byte:
#   "SJK1" | kind | log2(scrypt n) | scrypt r | scrypt p | salt (16) | nonce (12) | ciphertext+tag (32+16)
# The whole header (kind and KDF parameters included) is the AEAD's associated data.
MAGIC = b"SJK1"
KIND_SIGNING = 1
KIND_SEALING = 2
KIND_NAMES = {KIND_SIGNING: "signing (Ed25519)", KIND_SEALING: "sealing (X25519)"}
SALT_BYTES = 16
NONCE_BYTES = 12
RAW_BYTES = 32
HEADER_BYTES = len(MAGIC) + 4 + SALT_BYTES + NONCE_BYTES
PROTECTED_BYTES = HEADER_BYTES + RAW_BYTES + 16
# scrypt cost for new files: n = 2**15, r = 8 (32 MiB, about 0.1 s on a laptop core). A file
# records its own parameters, so these can rise later and old files still open.
SCRYPT_LOG2N = 15
SCRYPT_R = 8
SCRYPT_P = 1
MAX_SCRYPT_MEMORY = 512 * 1024 * 1024  # refuse files asking for more (a damaged or hostile header)
MIN_PASSPHRASE_CHARS = 8

Passphrase = str | bytes


class KeyFileError(SanjiError, ValueError):
    """A key file that cannot be used: damaged, of the wrong kind, or protected without a usable passphrase."""

    code = "key_file"
    default_hint = "See deploy/README.md, 'Protected key files'."


def _passphrase_bytes(passphrase: Passphrase) -> bytes:
    if isinstance(passphrase, bytes):
        return passphrase
    # One passphrase, however the keyboard or input method composed it.
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def passphrase_from_env(name: str) -> bytes | None:
    """The passphrase in environment variable ``name``, or in the systemd credential of that name.

    A unit with ``LoadCredential=NAME:/path`` (or ``LoadCredentialEncrypted=``) gets the file
    ``$CREDENTIALS_DIRECTORY/NAME``; its trailing newline is dropped. None when neither is set.
    """
    if not name:
        return None
    value = os.environ.get(name)
    if value:
        return _passphrase_bytes(value)
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        path = Path(credentials) / name
        if path.is_file():
            text = path.read_text(encoding="utf-8").rstrip("\r\n")
            if text:
                return _passphrase_bytes(text)
    return None


def _resolve(passphrase: Passphrase | None, passphrase_env: str) -> bytes | None:
    if passphrase is not None:
        return _passphrase_bytes(passphrase)
    return passphrase_from_env(passphrase_env)


def _kek(passphrase: bytes, salt: bytes, log2n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=1 << log2n, r=r, p=p).derive(passphrase)


def is_protected(data: bytes) -> bool:
    """Whether ``data`` (a key file's bytes) is a passphrase-protected key file."""
    return data[: len(MAGIC)] == MAGIC


def protect_raw(raw: bytes, kind: int, passphrase: Passphrase) -> bytes:
    """The protected key-file bytes holding the 32-byte private key ``raw`` of ``kind``."""
    if len(raw) != RAW_BYTES or kind not in KIND_NAMES:
        raise ValueError("a key file holds one 32-byte private key of a known kind")
    secret = _passphrase_bytes(passphrase)
    if len(secret.decode("utf-8", errors="replace")) < MIN_PASSPHRASE_CHARS:
        raise KeyFileError(
            f"a key passphrase needs at least {MIN_PASSPHRASE_CHARS} characters",
            hint="Choose a longer passphrase; a short one falls to guessing once the laptop is stolen.",
        )
    salt = secrets.token_bytes(SALT_BYTES)
    nonce = secrets.token_bytes(NONCE_BYTES)
    header = MAGIC + bytes([kind, SCRYPT_LOG2N, SCRYPT_R, SCRYPT_P]) + salt + nonce
    key = _kek(secret, salt, SCRYPT_LOG2N, SCRYPT_R, SCRYPT_P)
    return header + ChaCha20Poly1305(key).encrypt(nonce, raw, header)


def _open_file(path: Path, kind: int, data: bytes, passphrase: bytes | None, passphrase_env: str) -> bytes:
    """The raw private key in ``data`` (``path``'s bytes): plain, or protected and opened with ``passphrase``."""
    what = KIND_NAMES[kind]
    if not is_protected(data):
        if len(data) != RAW_BYTES:
            algorithm = "Ed25519" if kind == KIND_SIGNING else "X25519 sealing"
            raise KeyFileError(
                f"{path} is not a Sanji {algorithm} key file "
                f"(expected 32 bytes or a protected SJK1 file, found {len(data)} bytes)"
            )
        if passphrase is not None:
            log.warning("%s is a plain key file although a passphrase is set: run `sanji keys protect`", path)
        return data
    if len(data) != PROTECTED_BYTES:
        raise KeyFileError(f"{path} is a damaged protected key file ({len(data)} bytes, expected {PROTECTED_BYTES})")
    found, log2n, r, p = data[4], data[5], data[6], data[7]
    if found != kind:
        holds = KIND_NAMES.get(found, f"unknown kind {found}")
        raise KeyFileError(
            f"{path} holds a {holds} key, not a {what} key: key files were swapped or renamed",
            hint="Put each key file back under its own name (node.key signs, node.enc.key opens sealed details).",
        )
    if passphrase is None:
        if passphrase_env:
            raise KeyFileError(
                f"{path} is protected by a passphrase, but the environment variable {passphrase_env} "
                "(named by [node] key_passphrase_env) is not set",
                hint=f"Start the node with the key passphrase in {passphrase_env}: "
                f"systemd `LoadCredential={passphrase_env}:...` or `Environment=`, "
                f"or by hand `read -rs {passphrase_env}; export {passphrase_env}` (deploy/README.md).",
            )
        raise KeyFileError(
            f"{path} is protected by a passphrase and none was given",
            hint='Set [node] key_passphrase_env = "SANJI_KEY_PASSPHRASE" in the node\'s config and start it '
            "with the passphrase in that environment variable (deploy/README.md).",
        )
    if not (1 <= log2n <= 24 and 1 <= r <= 64 and 1 <= p <= 16) or 128 * r * (1 << log2n) > MAX_SCRYPT_MEMORY:
        raise KeyFileError(f"{path} asks for scrypt parameters this node refuses (n=2**{log2n}, r={r}, p={p})")
    header = data[:HEADER_BYTES]
    salt = header[8 : 8 + SALT_BYTES]
    nonce = header[8 + SALT_BYTES :]
    try:
        return ChaCha20Poly1305(_kek(passphrase, salt, log2n, r, p)).decrypt(nonce, data[HEADER_BYTES:], header)
    except InvalidTag:
        source = f" (from {passphrase_env})" if passphrase_env else ""
        raise KeyFileError(
            f"{path} does not open: wrong passphrase{source}, or the file was altered",
            hint="Check the passphrase; if it is right, restore the key file from its backup.",
        ) from None


def _read_raw(path: Path, kind: int, passphrase: bytes | None, passphrase_env: str, protect_plain: bool) -> bytes:
    data = path.read_bytes()
    raw = _open_file(path, kind, data, passphrase, passphrase_env)
    if protect_plain and passphrase is not None and not is_protected(data):
        _write_private(path, protect_raw(raw, kind, passphrase))
        log.info("%s: protected with the node's key passphrase", path)
    return raw


class NodeKey(SigningKey):
    """A node's signing key together with its sealing key, when it has one.

    A key read from protected files remembers the passphrase (``key_passphrase``), so the key
    files a rotation brings in are protected the same way.
    """

    def __init__(
        self, private: Ed25519PrivateKey, sealing: SealingKey | None = None, *, passphrase: bytes | None = None
    ) -> None:
        super().__init__(private)
        self.sealing = sealing
        self._passphrase = passphrase

    @classmethod
    def generate(cls) -> NodeKey:
        """A fresh signing key, no sealing key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def generate_pair(cls) -> NodeKey:
        """A fresh signing key and a fresh sealing key."""
        return cls(Ed25519PrivateKey.generate(), SealingKey.generate())

    @classmethod
    def from_raw(cls, signing: bytes, sealing: bytes | None = None) -> NodeKey:
        return cls(
            Ed25519PrivateKey.from_private_bytes(signing),
            SealingKey.from_private_bytes(sealing) if sealing is not None else None,
        )

    def with_sealing(self, sealing: SealingKey | None) -> NodeKey:
        """This signing key carrying ``sealing`` (a rotated signing key keeps the node's sealing key)."""
        return NodeKey(self._private, sealing, passphrase=self._passphrase)

    def records(self, node: str) -> tuple[KeyRecord, ...]:
        """The public records for ``node``'s directory entry: signing key first, then the sealing key."""
        if self.sealing is None:
            return (self.record(node),)
        return (self.record(node), self.sealing.record(node))


def key_passphrase(key: SigningKey) -> bytes | None:
    """The node's key passphrase ``key`` was read with (None: none was set, or not read from a file)."""
    return key._passphrase if isinstance(key, NodeKey) else None


def sealing_key_path(path: Path) -> Path:
    """Where the sealing key of the signing key file ``path`` lives: ``node.key`` -> ``node.enc.key``."""
    if path.suffix:
        return path.with_name(f"{path.stem}{SEALING_SUFFIX}{path.suffix}")
    return path.with_name(f"{path.name}{SEALING_SUFFIX}")


def _write_private(path: Path, raw: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, raw, mode=0o600)


def _new_passphrase(passphrase: Passphrase | None, passphrase_env: str, path: Path) -> bytes | None:
    secret = _resolve(passphrase, passphrase_env)
    if secret is None and passphrase_env:
        raise KeyFileError(
            f"not writing {path}: the key passphrase variable {passphrase_env} is not set, "
            "and the key must not be written in plain",
            hint=f"Set {passphrase_env} (or give the passphrase another way) and run the command again.",
        )
    return secret


def write_key(path: Path, key: SigningKey, passphrase: Passphrase | None = None, *, passphrase_env: str = "") -> None:
    """Write the signing key to ``path``; a ``NodeKey``'s sealing key goes beside it (``sealing_key_path``).

    With a passphrase (given, or found in the environment variable ``passphrase_env``) both files
    are protected; naming a variable that is not set is an error, not a plain file.
    """
    secret = _new_passphrase(passphrase, passphrase_env, path)
    raw = key.private_bytes()
    _write_private(path, protect_raw(raw, KIND_SIGNING, secret) if secret is not None else raw)
    if isinstance(key, NodeKey) and key.sealing is not None:
        write_sealing_key(sealing_key_path(path), key.sealing, secret)


def write_sealing_key(path: Path, key: SealingKey, passphrase: Passphrase | None = None) -> None:
    raw = key.private_bytes()
    _write_private(path, protect_raw(raw, KIND_SEALING, passphrase) if passphrase is not None else raw)


def create_sealing_key(
    signing_key_path: Path, *, force: bool = False, passphrase: Passphrase | None = None
) -> tuple[Path, SealingKey]:
    """Give the node whose signing key is ``signing_key_path`` a fresh sealing key file beside it.

    Refuses (FileExistsError) to replace an existing one unless ``force``: a replaced sealing key
    can no longer open what was sealed to it. Returns the file and the key (``key.record(node)``
    is the line for directory.json).
    """
    path = sealing_key_path(signing_key_path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; a node keeps its sealing key")
    key = SealingKey.generate()
    write_sealing_key(path, key, passphrase)
    return path, key


def read_sealing_key(path: Path, passphrase: Passphrase | None = None, *, passphrase_env: str = "") -> SealingKey:
    secret = _resolve(passphrase, passphrase_env)
    return SealingKey.from_private_bytes(_read_raw(path, KIND_SEALING, secret, passphrase_env, False))


def read_key(
    path: Path, passphrase: Passphrase | None = None, *, passphrase_env: str = "", protect_plain: bool = False
) -> NodeKey:
    """The signing key in ``path``, with the sealing key beside it if that file exists.

    Plain and protected files both open; a protected one needs ``passphrase``, or the name of
    the environment variable holding it (``passphrase_env``, the node's ``[node]
    key_passphrase_env``), else ``KeyFileError`` says which file and what to do.
    ``protect_plain`` rewrites a plain file protected when a passphrase is at hand.
    """
    secret = _resolve(passphrase, passphrase_env)
    raw = _read_raw(path, KIND_SIGNING, secret, passphrase_env, protect_plain)
    sealing_path = sealing_key_path(path)
    sealing = None
    if sealing_path.exists():
        sealing = SealingKey.from_private_bytes(_read_raw(sealing_path, KIND_SEALING, secret, passphrase_env, False))
    return NodeKey(Ed25519PrivateKey.from_private_bytes(raw), sealing, passphrase=secret)


def protect_key_file(path: Path, kind: int, passphrase: Passphrase) -> bool:
    """Protect the plain key file ``path`` (a ``kind`` key) in place; False if it was protected already.

    An already protected file must open with ``passphrase`` (``KeyFileError`` otherwise: one node,
    one passphrase). The new file is read back and compared before this returns.
    """
    secret = _passphrase_bytes(passphrase)
    data = path.read_bytes()
    raw = _open_file(path, kind, data, secret if is_protected(data) else None, "")
    if is_protected(data):
        return False
    _write_private(path, protect_raw(raw, kind, secret))
    if _open_file(path, kind, path.read_bytes(), secret, "") != raw:  # pragma: no cover - a disk that lies
        _write_private(path, raw)
        raise KeyFileError(f"{path}: the protected file did not read back; the plain key was put back")
    return True


def write_directory(path: Path, entries: list[NodeEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(entries), indent=2))


class DirectoryFileError(SanjiError, ValueError):
    """A directory file that does not describe a tree: bad JSON, an id out of bounds, a missing parent, a cycle."""

    code = "directory_file"
    default_hint = "Correct the file (`sanji directory add` writes it), or enroll the nodes with tokens instead."


def read_directory(path: Path) -> Directory:
    """The tree ``path`` describes; every node id in it is within ``protocol.bounds`` (``Directory`` asks)."""
    try:
        return Directory(msgspec.json.decode(path.read_bytes(), type=list[NodeEntry]))
    except (msgspec.DecodeError, ValueError) as exc:
        raise DirectoryFileError(f"{path}: {exc}") from None
