"""``write_whole``: a file a node hands on (an export, a signed catalogue, a key) is the old one or the whole new
one under its name, never a half; a key file is born 0600, an export takes the process umask as before."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sanji.private_files import write_whole


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # a shell's usual mask, not the CLI's private one
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_it_replaces_the_file_whole_and_leaves_nothing_beside_it(tmp_path: Path, open_umask: None) -> None:
    out = tmp_path / "T01V01-to-T01.sjx"
    out.write_bytes(b"old" * 1000)
    write_whole(out, b"new")
    assert out.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    assert _mode(out) == 0o644  # an export: the mode the process umask gives, as a plain write did


def test_a_key_file_is_born_private_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    key = tmp_path / "node.key"
    write_whole(key, b"k" * 32, mode=0o600)
    assert _mode(key) == 0o600


def test_a_write_that_cannot_land_leaves_what_was_there_and_no_temporary(tmp_path: Path) -> None:
    taken = tmp_path / "ledger.csv"
    taken.mkdir()  # the name is a non-empty directory: the rename fails after the bytes were written
    (taken / "keep").write_bytes(b"mine")
    with pytest.raises(OSError):
        write_whole(taken, b"a,b\n")
    assert (taken / "keep").read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.csv"]


def test_a_missing_directory_is_the_callers_to_make(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_whole(tmp_path / "usb" / "out.sjx", b"x")
    assert list(tmp_path.iterdir()) == []


def test_a_half_file_left_by_a_crash_is_visible_and_taken_away_by_the_next_write(tmp_path: Path) -> None:
    out = tmp_path / "T01V01-to-T01.sjx"
    (tmp_path / "T01V01-to-T01.sjx.part").write_bytes(b"half of someone's errand")  # a power cut mid-write
    write_whole(out, b"whole")
    assert out.read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
