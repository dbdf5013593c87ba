"""``sanji audit verify | export | check-bundle`` on a real node's files (config, key, directory, SQLite)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from sanji.cli import audit_cmd
from sanji.cli.common import node_store
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService


def sanji(*argv: str) -> int:
    """The `sanji` command with only the audit subcommand wired in (as main.py will wire it)."""
    parser = argparse.ArgumentParser(prog="sanji")
    sub = parser.add_subparsers(dest="command", required=True)
    audit_cmd.add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


async def populate(config: Path) -> str:
    async with node_store(load_settings(config)) as (store, _):
        service = ErrandService(store)
        errand = (await service.register(RegisterForm(matter="MZ-001", applicant_name="王芳", actor="代办员"))).errand
        await service.act(errand, ActionForm(kind="submit", actor="代办员"))
        await store.seal_outbox(force=True)
        for i in range(3):
            other = await service.register(RegisterForm(matter="MZ-002", applicant_name=f"村民{i}", actor="代办员"))
            await store.seal_outbox(force=True)
            assert other.errand
        await service.act(errand, ActionForm(kind="note", actor="代办员", text="未同步的备注"))  # stays unsealed
        return errand


@pytest.fixture
def village(tmp_path: Path) -> tuple[Path, Path, str]:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1, open_demo=True)
    config = cluster.nodes["T01V01"].config
    errand = asyncio.run(populate(config))
    return config, tmp_path / "c" / "directory.json", errand


def db_file(config: Path) -> Path:
    return Path(load_settings(config).db_url.split(":///", 1)[1])


def test_verify_a_clean_node(village: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    config, _, _ = village
    assert sanji("audit", "verify", "--config", str(config)) == 0
    out = capsys.readouterr().out
    assert out.startswith("audit of T01V01: clean")
    assert sanji("audit", "verify", "--config", str(config), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["batches"] == 4 and report["outbox_actions"] == 1


def test_verify_reports_tampering_with_exit_1(
    village: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _, _ = village
    with sqlite3.connect(db_file(config)) as con:
        con.execute("DELETE FROM batches WHERE seq = 2")
    assert sanji("audit", "verify", "--config", str(config)) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("audit of T01V01: ") and "problem(s)" in out.splitlines()[0]
    assert "[gap] stream T01V01->T01V01, batch 2: batch 2 is missing" in out
    assert sanji("audit", "verify", "--config", str(config), "--json", "--workers", "1") == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert {"kind": "gap", "stream": "T01V01->T01V01", "seq": 2}.items() <= problems[0].items()


def test_export_then_check_the_bundle_offline(
    village: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, directory, errand = village
    out = tmp_path / "evidence.json"
    assert sanji("audit", "export", "--config", str(config), "--errand", errand, "--out", str(out)) == 0
    assert f"wrote the evidence of errand {errand}: 3 actions" in capsys.readouterr().out
    bundle = json.loads(out.read_text(encoding="utf-8"))
    assert [h["kind"] for h in bundle["history"]] == ["register", "handoff", "note"]
    assert sanji("audit", "check-bundle", str(out)) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"VERIFIED: errand {errand}") and "keys from bundle" in text
    assert sanji("audit", "check-bundle", str(out), "--directory", str(directory), "--json") == 0
    assert json.loads(capsys.readouterr().out)["keys_from"] == "directory"

    bundle["history"][0]["actor"] = "别人"
    out.write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    assert sanji("audit", "check-bundle", str(out), "--directory", str(directory)) == 1
    assert "NOT VERIFIED" in capsys.readouterr().out


def test_clear_errors_with_exit_2(
    village: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _, _ = village
    assert sanji("audit", "verify", "--config", str(tmp_path / "nope.toml")) == 2
    assert "does not exist" in capsys.readouterr().err
    out = tmp_path / "x.json"
    assert sanji("audit", "export", "--config", str(config), "--errand", "T01V01-none", "--out", str(out)) == 2
    assert "not held at T01V01" in capsys.readouterr().err and not out.exists()
    assert sanji("audit", "check-bundle", str(tmp_path / "missing.json")) == 2
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert sanji("audit", "check-bundle", str(tmp_path / "bad.json")) == 2
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    assert sanji("audit", "check-bundle", str(tmp_path / "list.json")) == 2
