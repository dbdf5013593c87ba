"""``sanji catalogue export`` at a township and ``sanji catalogue recover`` at its restored county, on disk.

The county kept v1, was copied, published v2 (the township took it up) and was put back from the copy: v2 is
lost ("2-"). The township writes its v2 as signed; the county takes it back (v2 its newest again, nothing left
lost but what may lie above), says so Chinese first, and refuses the same file again and an altered one, changing
nothing; a version the township never held is not written.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from protocol.catalogue import sign_catalogue
from sanji.backup import backup, restore
from sanji.catalogue import default_catalogue
from sanji.cli.main import main
from sanji.config import NodeSettings, load_settings
from sanji.context import NodeContext
from sanji.demo.cluster import Cluster
from sanji.keys import read_directory, read_key
from sanji.store import Store, open_database


async def offer(settings: NodeSettings, blob: bytes) -> None:
    db = await open_database(settings.db_url)
    try:
        key = read_key(settings.path(settings.node.key_file))
        directory = read_directory(settings.path(settings.node.directory))
        store = Store(db, node_id=settings.node.id, key=key, directory=directory)
        await store.start()
        assert await NodeContext(store, None).offer(blob)
    finally:
        await db.dispose()


async def held(settings: NodeSettings) -> tuple[int, str | None]:
    db = await open_database(settings.db_url)
    try:
        key = read_key(settings.path(settings.node.key_file))
        directory = read_directory(settings.path(settings.node.directory))
        store = Store(db, node_id=settings.node.id, key=key, directory=directory)
        found = await store.document("catalogue")
        return (found[0] if found else 0), await store.meta_value("catalogue_versions_lost")
    finally:
        await db.dispose()


@pytest.mark.timeout(180)
def test_a_township_exports_and_the_restored_county_recovers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=True)
    county, town = (load_settings(cluster.nodes[n].config) for n in ("C", "T01"))
    key = cluster.layout.keys["C"]
    v1 = default_catalogue()
    for node in (county, town):
        asyncio.run(offer(node, sign_catalogue(v1, key)))
    copy = backup(county.db_url, tmp_path / "backups", node="C")
    v2 = sign_catalogue(msgspec.structs.replace(v1, version=v1.version + 1), key)
    for node in (county, town):
        asyncio.run(offer(node, v2))
    restore(county.db_url, copy.path)
    assert asyncio.run(held(county)) == (v1.version, f"{v1.version + 1}-")

    out = tmp_path / "carried" / "v2.sjc"
    assert (
        main(["catalogue", "export", "--config", str(cluster.nodes["T01"].config), "--version", "9", "--out", str(out)])
        == 1
    )
    assert "本节点没有第 9 版目录" in capsys.readouterr().out
    assert not out.exists()
    town_config, county_config = str(cluster.nodes["T01"].config), str(cluster.nodes["C"].config)
    assert (
        main(["catalogue", "export", "--config", town_config, "--version", str(v1.version + 1), "--out", str(out)]) == 0
    )
    assert out.read_bytes() == v2  # as the county signed it

    altered = tmp_path / "altered.sjc"
    damaged = bytearray(v2)
    damaged[-5] ^= 1
    altered.write_bytes(bytes(damaged))
    capsys.readouterr()
    assert main(["catalogue", "recover", "--config", county_config, "--from", str(altered)]) == 1
    err = capsys.readouterr().out
    assert err.index("未找回") < err.index("not taken back") and "不是本县签发的目录" in err, err
    assert asyncio.run(held(county)) == (v1.version, f"{v1.version + 1}-")  # nothing changed

    assert main(["catalogue", "recover", "--config", county_config, "--from", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.index(f"已找回第 {v1.version + 1} 版目录") < said.index("taken back"), said
    assert asyncio.run(held(county)) == (v1.version + 1, f"{v1.version + 2}-")
    assert main(["catalogue", "recover", "--config", county_config, "--from", str(out)]) == 1
    assert "无需找回" in capsys.readouterr().out


@pytest.mark.parametrize("version", ["0", "-3", "99999999999", "4.5", "４"])
def test_export_refuses_a_version_no_document_has_before_opening_the_store(
    version: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A version column holds 32 bits: PostgreSQL answers a larger number with an error of its own (a traceback
    here), so ``--version`` is refused by the parser first, exit 2, the store never opened."""
    out = tmp_path / "v.sjc"
    with pytest.raises(SystemExit) as refused:
        main(["catalogue", "export", "--config", str(tmp_path / "none.toml"), "--version", version, "--out", str(out)])
    assert refused.value.code == 2
    assert "版本号应为 1 到 2147483647 的整数" in capsys.readouterr().err
    assert not out.exists()
