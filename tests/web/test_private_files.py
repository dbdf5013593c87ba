"""A node's databases, keys and logs are private: 0600 files in 0700 directories (issue 12, item 5)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sanji.demo.cluster import Cluster
from sanji.private_files import private_umask, tighten

pytestmark = pytest.mark.processes


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_running_node_keeps_its_files_private(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1)
    node = cluster.nodes["T01V01"]
    node_dir = node.config.parent
    for path in node_dir.rglob("*"):  # as an older version (or a careless copy) left them: world-readable
        path.chmod(0o755 if path.is_dir() else 0o644)
    cluster.start("T01V01", wait=False)
    try:
        cluster.wait_ready("T01V01", timeout=120)
        data = sorted(p for p in node_dir.rglob("*") if p.is_file() and p.name.startswith("node."))
        names = {p.name for p in data}
        assert {"node.db", "node.key", "node.enc.key", "node.log"} <= names, names
        loose = {str(p.relative_to(node_dir)): oct(mode(p)) for p in data if mode(p) & 0o077}
        assert not loose, f"readable by others: {loose}"
        db_dir = next(p for p in data if p.name == "node.db").parent
        assert mode(db_dir) == 0o700
        created = [p for p in db_dir.iterdir() if p.name.startswith("node.db-")]  # WAL files made while running
        assert all(mode(p) == 0o600 for p in created), {p.name: oct(mode(p)) for p in created}
    finally:
        cluster.stop()


def test_tighten_narrows_only_what_is_too_open(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir()
    data.chmod(0o755)  # mkdir's mode passes through the process umask, which an in-process CLI test may have narrowed
    (data / "node.db").write_bytes(b"x")
    (data / "node.db").chmod(0o644)
    (data / "already").write_bytes(b"x")
    (data / "already").chmod(0o400)
    key = tmp_path / "node.key"
    key.write_bytes(b"k")
    key.chmod(0o666)
    changed = tighten(data, key, tmp_path / "missing.key")
    assert set(changed) == {data, data / "node.db", key}
    assert (mode(data), mode(data / "node.db"), mode(data / "already"), mode(key)) == (0o700, 0o600, 0o400, 0o600)
    assert tighten(data, key) == []


def test_the_private_umask_makes_new_files_private(tmp_path: Path) -> None:
    previous = private_umask()
    try:
        (tmp_path / "export.json").write_text("{}")
        (tmp_path / "sub").mkdir()
    finally:
        import os

        os.umask(previous)
    assert mode(tmp_path / "export.json") == 0o600 and mode(tmp_path / "sub") == 0o700
