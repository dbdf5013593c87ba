"""Sealing key files: node.enc.key beside node.key, its public record in directory.json."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from protocol.sealing import Personal, SealingKey, open_for, recipients_for, seal_personal
from protocol.signing import X25519, SigningKey
from sanji.demo.cluster import Cluster
from sanji.keys import (
    NodeKey,
    create_sealing_key,
    read_directory,
    read_key,
    read_sealing_key,
    sealing_key_path,
    write_key,
)
from sanji.layout import county_layout


def test_the_sealing_key_file_sits_beside_the_signing_key_file() -> None:
    assert sealing_key_path(Path("/n/node.key")) == Path("/n/node.enc.key")
    assert sealing_key_path(Path("/n/county.key")) == Path("/n/county.enc.key")
    assert sealing_key_path(Path("/n/nodekey")) == Path("/n/nodekey.enc")


def test_a_key_pair_is_written_mode_600_and_read_back(tmp_path: Path) -> None:
    key = NodeKey.generate_pair()
    assert key.sealing is not None
    path = tmp_path / "keys" / "node.key"
    write_key(path, key)
    enc = tmp_path / "keys" / "node.enc.key"
    for p in (path, enc):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        assert len(p.read_bytes()) == 32
    again = read_key(path)
    assert again.key_id == key.key_id
    assert again.sealing is not None and again.sealing.key_id == key.sealing.key_id
    assert [r.algorithm for r in again.records("T01V01")] == ["ed25519", X25519]
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_signing_key_alone_is_read_without_a_sealing_key(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    write_key(path, SigningKey.generate())  # what `sanji keys init` writes today
    assert not sealing_key_path(path).exists()
    key = read_key(path)
    assert key.sealing is None
    assert [r.algorithm for r in key.records("T01V01")] == ["ed25519"]


def test_an_existing_node_is_given_a_sealing_key_beside_its_signing_key(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    write_key(path, SigningKey.generate())
    enc, key = create_sealing_key(path)
    assert enc == tmp_path / "node.enc.key" and stat.S_IMODE(enc.stat().st_mode) == 0o600
    loaded = read_key(path).sealing
    assert loaded is not None and loaded.key_id == key.key_id
    assert key.record("T01V01").algorithm == X25519
    with pytest.raises(FileExistsError):
        create_sealing_key(path)
    _, replaced = create_sealing_key(path, force=True)
    assert replaced.key_id != key.key_id


def test_a_damaged_sealing_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    write_key(path, NodeKey.generate_pair())
    sealing_key_path(path).write_bytes(b"short")
    with pytest.raises(ValueError, match="sealing key file"):
        read_key(path)
    with pytest.raises(ValueError, match="sealing key file"):
        read_sealing_key(sealing_key_path(path))


def test_a_sealing_key_round_trips_through_its_raw_bytes() -> None:
    key = SealingKey.generate()
    again = SealingKey.from_private_bytes(key.private_bytes())
    assert (again.public_bytes, again.key_id) == (key.public_bytes, key.key_id)
    with pytest.raises(ValueError):
        SealingKey.from_private_bytes(b"\x01" * 31)


def test_the_layout_lists_both_keys_and_can_leave_sealing_out() -> None:
    layout = county_layout(1, 1)
    for entry in layout.entries:
        key = layout.keys[entry.id]
        sealing = layout.sealing_key(entry.id)
        assert isinstance(key, NodeKey) and sealing is not None
        assert entry.keys == (key.record(entry.id), sealing.record(entry.id))
        assert layout.directory.sealing_key(entry.id) == sealing.record(entry.id)
    plain = county_layout(1, 1, sealing=False)
    assert all(len(e.keys) == 1 and plain.sealing_key(e.id) is None for e in plain.entries)


def test_the_demo_cluster_writes_every_nodes_sealing_key_and_record(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "county", towns=2, villages_per_town=1, open_demo=True)
    directory = read_directory(tmp_path / "county" / "directory.json")
    for node in cluster.nodes.values():
        key_file = node.config.parent / "node.key"
        enc_file = node.config.parent / "node.enc.key"
        assert stat.S_IMODE(enc_file.stat().st_mode) == 0o600
        key = read_key(key_file)
        assert key.sealing is not None
        assert directory.sealing_key(node.id) == key.sealing.record(node.id)
    # What one node seals, the keys on disk of its path open.
    recipients = recipients_for(directory, "T01V01")
    assert recipients is not None
    blob = seal_personal(Personal(phone="13907301234"), recipients, errand="E", scope="T01V01")
    for node in ("C", "T01", "T01V01"):
        sealing = read_key(tmp_path / "county" / node / "node.key").sealing
        assert sealing is not None
        assert open_for(sealing, blob, "E", "T01V01").phone == "13907301234"
