"""A node this release cannot run says so before it starts: both releases and what to install, no traceback."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sanji.demo.cluster import Cluster
from sanji.version import release

pytestmark = pytest.mark.processes


def test_serve_refuses_a_store_from_a_newer_release_naming_both(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=True)
    village = cluster.nodes["T01V01"]
    try:
        cluster.start("T01V01")  # made and migrated by this release
    finally:
        cluster.stop()
    db = village.config.parent / "node.db"
    with sqlite3.connect(db) as conn:  # what a later release with one more migration leaves behind
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
        conn.execute("UPDATE meta SET value = '9.1.0' WHERE key = 'sanji_release'")
    with sqlite3.connect(db) as conn:  # everything in the main file, so its bytes show any later write
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db.read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "sanji.cli.main", "village", "serve", "--config", str(village.config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"this store was migrated by sanji 9.1.0 (schema 0099); this is sanji {release()}" in done.stderr
    assert "Install sanji 9.1.0 or later" in done.stderr and "sanji restore" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert db.read_bytes() == before  # refused before anything was written
