"""The files an installation writes: a config that loads, the hardened unit; the hub's PostgreSQL script."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import asyncpg
import pytest

from devtools.throwaway_pg import PG_HOST, PG_PORT, PG_USER, connect, drop_database
from sanji.cli.main import SERVE_ROLES
from sanji.config import load_settings
from sanji.tiers import desk

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize(
    ("tier", "node", "extra"),
    [
        ("county", "C", ["--db", "postgresql://sanji@127.0.0.1/sanji", "--name", "县政务服务中心"]),
        ("town", "T01", ["--parent-url", "https://county.example.gov.cn:8100"]),
        ("village", "T01V01", ["--parent-url", "https://t01.example.gov.cn:8100"]),
        # A city above the counties is the top hub, as a county alone is; a county below it has a parent.
        ("city", "S", ["--db", "postgresql://sanji@127.0.0.1/sanji", "--name", "市政务服务中心"]),
        ("county", "C1", ["--parent-url", "https://city.example.gov.cn:8100", "--name", "一县政务服务中心"]),
        ("province", "P", ["--name", "省政务服务中心"]),
        ("city", "S1", ["--parent-url", "https://province.example.gov.cn:8100"]),
    ],
)
def test_install_writes_a_config_that_loads_and_the_hardened_unit(
    tmp_path: Path, tier: str, node: str, extra: list[str]
) -> None:
    done = subprocess.run(
        ["sh", str(DEPLOY / "install.sh"), tier, node, *extra, "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    settings = load_settings(tmp_path / "etc" / "sanji" / f"{tier}.toml", role=tier)
    assert settings.node.id == node and settings.auth.required and settings.trust.required
    assert settings.node.directory == ""  # placed by its certificate, not by a copied directory.json
    assert settings.node.role == tier
    assert (settings.parent is None) == ("--parent-url" not in extra)
    if settings.parent is not None:
        assert settings.parent.url == extra[extra.index("--parent-url") + 1]
    # The unit starts `sanji %i serve`: a command, and a desk, for every tier the script installs.
    assert tier in SERVE_ROLES and desk(tier).role == tier
    assert (tmp_path / "var" / "lib" / "sanji" / node).is_dir()
    unit = (tmp_path / "etc" / "systemd" / "system" / "sanji-node@.service").read_text(encoding="utf-8")
    for line in ("User=sanji", "NoNewPrivileges=true", "ProtectSystem=strict", "ReadWritePaths=/var/lib/sanji"):
        assert line in unit.splitlines()
    # A second run keeps the operator's config as it is.
    (tmp_path / "etc" / "sanji" / f"{tier}.toml").write_text(
        (tmp_path / "etc" / "sanji" / f"{tier}.toml").read_text(encoding="utf-8") + "# edited\n", encoding="utf-8"
    )
    again = subprocess.run(
        ["sh", str(DEPLOY / "install.sh"), tier, node, *extra, "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0 and "kept" in again.stdout
    assert (tmp_path / "etc" / "sanji" / f"{tier}.toml").read_text(encoding="utf-8").endswith("# edited\n")


@pytest.mark.parametrize(
    "args",
    [
        ["village", "T01V01"],
        ["town", "T01"],
        ["county", "C1", "--token", "SJE1-XXXX"],  # a token is redeemed at a parent: which one?
        ["city", "S", "--token", "SJE1-XXXX"],
        ["district", "D1"],  # no such level
        ["county", "C" * 65],  # node ids: protocol.bounds.node_id_problem's bound
        ["county", "C 1"],
        ["county", "县1"],
    ],
)
def test_a_child_without_a_parent_url_is_refused(tmp_path: Path, args: list[str]) -> None:
    done = subprocess.run(
        ["sh", str(DEPLOY / "install.sh"), *args, "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert ("--parent-url" in done.stderr) or ("usage" in done.stderr) or ("1-64 letters" in done.stderr)
    assert not (tmp_path / "etc" / "sanji").exists()  # refused before writing anything


@pytest.mark.postgres
async def test_postgres_setup_script_is_idempotent() -> None:
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    suffix = secrets.token_hex(4)
    db, role = f"sanji_setup_{suffix}", f"sanji_role_{suffix}"
    env = {
        **os.environ,
        "PGHOST": PG_HOST,
        "PGPORT": str(PG_PORT),
        "PGUSER": PG_USER,
        "SANJI_DB": db,
        "SANJI_ROLE": role,
    }
    try:
        for _ in range(2):
            done = await asyncio.to_thread(
                subprocess.run,
                ["sh", str(DEPLOY / "postgres" / "setup.sh")],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=role, database=db, timeout=5)
        try:
            assert await conn.fetchval("SHOW statement_timeout") == "1min"
            await conn.execute("CREATE TABLE t (x int)")  # the role owns its schema
        finally:
            await conn.close()
    finally:
        await drop_database(db)  # before its owner: a role that owns a database cannot be dropped
        admin = await connect()
        try:
            await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await admin.close()
