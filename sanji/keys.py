"""Key files and the directory file: how a node finds its own key and everyone else's."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from protocol.signing import SigningKey
from protocol.topology import Directory, NodeEntry


def write_key(path: Path, key: SigningKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_key(path: Path) -> SigningKey:
    raw = path.read_bytes()
    if len(raw) != 32:
        raise ValueError(f"{path} is not a Sanji Ed25519 key file (expected 32 bytes, found {len(raw)})")
    return SigningKey.from_private_bytes(raw)


def write_directory(path: Path, entries: list[NodeEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(entries), indent=2))


def read_directory(path: Path) -> Directory:
    return Directory(msgspec.json.decode(path.read_bytes(), type=list[NodeEntry]))
