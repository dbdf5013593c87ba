"""Key files and the directory file: how a node finds its own keys and everyone else's.

A node has two private keys, each 32 raw bytes in a file of mode 600:

- ``node.key``: Ed25519, signs its batches (``protocol.signing``);
- ``node.enc.key`` beside it: X25519, opens the applicant details sealed to the node
  (``protocol.sealing``). Optional: a node without one works as before, but cannot read
  sealed details, and while it has no sealing key in ``directory.json`` registrations on
  paths through it are written in clear.

``read_key`` returns a ``NodeKey``: the signing key, carrying the sealing key found beside it,
so everything that opens a store from a key file gets both.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.sealing import SealingKey
from protocol.signing import KeyRecord, SigningKey
from protocol.topology import Directory, NodeEntry

SEALING_SUFFIX = ".enc"


class NodeKey(SigningKey):
    """A node's signing key together with its sealing key, when it has one."""

    def __init__(self, private: Ed25519PrivateKey, sealing: SealingKey | None = None) -> None:
        super().__init__(private)
        self.sealing = sealing

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
        return NodeKey(self._private, sealing)

    def records(self, node: str) -> tuple[KeyRecord, ...]:
        """The public records for ``node``'s directory entry: signing key first, then the sealing key."""
        if self.sealing is None:
            return (self.record(node),)
        return (self.record(node), self.sealing.record(node))


def sealing_key_path(path: Path) -> Path:
    """Where the sealing key of the signing key file ``path`` lives: ``node.key`` -> ``node.enc.key``."""
    if path.suffix:
        return path.with_name(f"{path.stem}{SEALING_SUFFIX}{path.suffix}")
    return path.with_name(f"{path.name}{SEALING_SUFFIX}")


def _write_private(path: Path, raw: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_key(path: Path, key: SigningKey) -> None:
    """Write the signing key to ``path``; a ``NodeKey``'s sealing key goes beside it (``sealing_key_path``)."""
    _write_private(path, key.private_bytes())
    if isinstance(key, NodeKey) and key.sealing is not None:
        write_sealing_key(sealing_key_path(path), key.sealing)


def write_sealing_key(path: Path, key: SealingKey) -> None:
    _write_private(path, key.private_bytes())


def create_sealing_key(signing_key_path: Path, *, force: bool = False) -> tuple[Path, SealingKey]:
    """Give the node whose signing key is ``signing_key_path`` a fresh sealing key file beside it.

    Refuses (FileExistsError) to replace an existing one unless ``force``: a replaced sealing key
    can no longer open what was sealed to it. Returns the file and the key (``key.record(node)``
    is the line for directory.json).
    """
    path = sealing_key_path(signing_key_path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; a node keeps its sealing key")
    key = SealingKey.generate()
    write_sealing_key(path, key)
    return path, key


def read_sealing_key(path: Path) -> SealingKey:
    raw = path.read_bytes()
    if len(raw) != 32:
        raise ValueError(f"{path} is not a Sanji X25519 sealing key file (expected 32 bytes, found {len(raw)})")
    return SealingKey.from_private_bytes(raw)


def read_key(path: Path) -> NodeKey:
    """The signing key in ``path``, with the sealing key beside it if that file exists."""
    raw = path.read_bytes()
    if len(raw) != 32:
        raise ValueError(f"{path} is not a Sanji Ed25519 key file (expected 32 bytes, found {len(raw)})")
    sealing_path = sealing_key_path(path)
    sealing = read_sealing_key(sealing_path) if sealing_path.exists() else None
    return NodeKey(Ed25519PrivateKey.from_private_bytes(raw), sealing)


def write_directory(path: Path, entries: list[NodeEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(entries), indent=2))


def read_directory(path: Path) -> Directory:
    return Directory(msgspec.json.decode(path.read_bytes(), type=list[NodeEntry]))
