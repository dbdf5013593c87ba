"""``sanji verify store | export | check-bundle`` (and the old ``sanji audit``) on a real node's files
(config, key, directory, SQLite)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from protocol.batch import frame_hash, open_frame, seal
from sanji.cli import verify_cmd
from sanji.cli.common import node_store
from sanji.cli.main import build_parser
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.evidence import KINDS, Problem
from sanji.evidence_words import KINDS_ZH, bundle_zh, store_problem_pair
from sanji.forms import ActionForm, RegisterForm
from sanji.keys import read_directory, read_key
from sanji.service import ErrandService


def sanji(*argv: str) -> int:
    """The `sanji` command with only the verify subcommand (and its old name) wired in, as main.py wires them."""
    parser = argparse.ArgumentParser(prog="sanji")
    sub = parser.add_subparsers(dest="command", required=True)
    verify_cmd.add_parser(sub)
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
    assert sanji("verify", "store", "--config", str(config)) == 0
    zh, en = capsys.readouterr().out.splitlines()
    assert zh.startswith("T01V01 核验：未发现问题") and en.startswith("audit of T01V01: clean")
    assert sanji("verify", "store", "--config", str(config), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["batches"] == 4 and report["outbox_actions"] == 1


def test_verify_reports_tampering_with_exit_1(
    village: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _, _ = village
    with sqlite3.connect(db_file(config)) as con:
        con.execute("DELETE FROM batches WHERE seq = 2")
    assert sanji("verify", "store", "--config", str(config)) == 1
    out = capsys.readouterr().out
    zh, en = out.splitlines()[:2]
    assert zh.startswith("T01V01 核验：发现") and "处问题" in zh
    assert en.startswith("audit of T01V01: ") and "problem(s)" in en
    lines = out.splitlines()
    at = lines.index("  数据流 T01V01->T01V01，第 2 批：数据流缺少批次")  # each problem Chinese first, English under it
    assert lines[at + 1].startswith("    [gap] stream T01V01->T01V01, batch 2: batch 2 is missing"), out
    assert sanji("verify", "store", "--config", str(config), "--json", "--workers", "1") == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert {"kind": "gap", "stream": "T01V01->T01V01", "seq": 2}.items() <= problems[0].items()


def test_export_then_check_the_bundle_offline(
    village: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, directory, errand = village
    out = tmp_path / "evidence.json"
    assert sanji("verify", "export", "--config", str(config), "--errand", errand, "--out", str(out)) == 0
    zh, en = capsys.readouterr().out.splitlines()[:2]
    assert zh == f"已将办件 {errand} 的证据写入 {out}：操作 3 条，签名批次 1 批", zh
    assert en.startswith(f"wrote the evidence of errand {errand}: 3 actions"), en
    bundle = json.loads(out.read_text(encoding="utf-8"))
    assert [h["kind"] for h in bundle["history"]] == ["register", "handoff", "note"]
    assert sanji("verify", "check-bundle", str(out)) == 0
    text = capsys.readouterr().out
    zh, en = text.splitlines()[:2]
    assert zh.startswith(f"核验通过：办件 {errand}") and zh.endswith("（密钥取自证据包本身）"), zh
    assert en.startswith(f"VERIFIED: errand {errand}") and "keys from bundle" in en
    lines = text.splitlines()
    at = next(
        i
        for i, line in enumerate(lines)
        if line.startswith("  说明：公钥取自证据包本身；请核对这些密钥编号是否在本县节点目录中（")
    )
    assert lines[at + 1].startswith("    note: the public keys were taken from the bundle itself"), text
    assert sanji("verify", "check-bundle", str(out), "--directory", str(directory), "--json") == 0
    assert json.loads(capsys.readouterr().out)["keys_from"] == "directory"

    bundle["history"][0]["actor"] = "别人"
    out.write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    assert sanji("verify", "check-bundle", str(out), "--directory", str(directory)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("核验未通过：") and lines[1].startswith("NOT VERIFIED: ")
    at = lines.index("  问题：操作 " + bundle["history"][0]["id"] + "：历史记录中的 actor 与签名原件不符")
    assert (
        lines[at + 1]
        == f"    problem: action {bundle['history'][0]['id']}: actor in the history differ from the signed action"
    )


def test_clear_errors_with_exit_2(
    village: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _, _ = village
    assert sanji("verify", "store", "--config", str(tmp_path / "nope.toml")) == 2
    assert "does not exist" in capsys.readouterr().err
    out = tmp_path / "x.json"
    assert sanji("verify", "export", "--config", str(config), "--errand", "T01V01-none", "--out", str(out)) == 2
    assert "not held at T01V01" in capsys.readouterr().err and not out.exists()
    assert sanji("verify", "check-bundle", str(tmp_path / "missing.json")) == 2
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert sanji("verify", "check-bundle", str(tmp_path / "bad.json")) == 2
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    assert sanji("verify", "check-bundle", str(tmp_path / "list.json")) == 2


def test_the_old_name_still_works_after_a_one_line_notice(
    village: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Operators' scripts calling ``sanji audit …`` keep working; stderr says once what the new name is."""
    config, _, errand = village

    def run(*argv: str) -> int:  # the whole command line, as main.py builds it
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)

    assert run("verify", "store", "--config", str(config)) == 0
    new = capsys.readouterr()
    assert new.err == ""
    assert run("audit", "verify", "--config", str(config)) == 0
    old = capsys.readouterr()

    def untimed(text: str) -> str:
        return re.sub(r"用时 \d+(\.\d+)? 秒", "用时 _ 秒", re.sub(r"\d+(\.\d+)? s on", "_ s on", text))

    assert untimed(old.out) == untimed(new.out) and old.out.splitlines()[1].startswith("audit of T01V01: clean")
    assert old.err.splitlines() == [verify_cmd.DEPRECATED] and "sanji verify store" in old.err
    out = tmp_path / "old.json"
    assert run("audit", "export", "--config", str(config), "--errand", errand, "--out", str(out)) == 0
    assert run("audit", "check-bundle", str(out)) == 0
    assert "核验通过：办件" in capsys.readouterr().out
    with sqlite3.connect(db_file(config)) as con:
        con.execute("DELETE FROM batches WHERE seq = 2")
    assert run("audit", "verify", "--config", str(config)) == 1  # the exit codes are the new command's


def test_every_kind_of_stored_evidence_problem_has_its_chinese() -> None:
    assert set(KINDS_ZH) == set(KINDS)
    said = store_problem_pair(Problem("gap", "batch 2 is missing", "T01V01->T01", 2))
    assert said == (
        "数据流 T01V01->T01，第 2 批：数据流缺少批次",
        "[gap] stream T01V01->T01, batch 2: batch 2 is missing",
    )
    assert bundle_zh("the exporting node reported: batch 3 of T01->C does not chain to batch 2") == (
        "导出节点报告：哈希链断裂：数据流 T01->C 第 3 批未衔接第 2 批"
    )
    assert bundle_zh("a wording nobody wrote") == "请核对此项（详见英文）"


# -- `verify export`'s warnings: each from a store damaged as a node's can be ---------------------------------------

STREAM = "T01V01->T01V01"  # the village's own stream: batch 1 carries the errand, batches 2-4 three others


def _lose_a_batch(db: Path, config: Path, directory: Path, errand: str) -> list[tuple[str, str]]:
    """A row lost (a disk repaired, a table edited by hand): the stream has a hole."""
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM batches WHERE seq = 2")
    return [(f"数据流 {STREAM} 缺少第 2 批（下一批为第 3 批）", f"stream {STREAM}: batch 2 is missing (next held: 3)")]


def _rewrite_a_hash(db: Path, config: Path, directory: Path, errand: str) -> list[tuple[str, str]]:
    """The hash column changed and the bytes not: the row no longer says what it holds."""
    with sqlite3.connect(db) as con:
        con.execute("UPDATE batches SET hash = zeroblob(32) WHERE seq = 1")
    return [
        (
            f"数据流 {STREAM} 第 1 批：存储的哈希值与其内容不符",
            f"batch 1 of {STREAM}: the stored hash differs from the hash of its bytes",
        )
    ]


def _flip_a_byte(db: Path, config: Path, directory: Path, errand: str) -> list[tuple[str, str]]:
    """One byte of a signed frame changed (a bad sector, an edit): its signature no longer holds."""
    with sqlite3.connect(db) as con:
        frame = bytearray(con.execute("SELECT frame FROM batches WHERE seq = 2").fetchone()[0])
        frame[-1] ^= 0x01
        con.execute("UPDATE batches SET frame = ? WHERE seq = 2", (bytes(frame),))
    return [
        (
            f"数据流 {STREAM} 第 2 批：存储的哈希值与其内容不符",
            f"batch 2 of {STREAM}: the stored hash differs from the hash of its bytes",
        ),
        (f"数据流 {STREAM} 第 2 批校验失败（签名、格式或线路不符）", f"batch 2 of {STREAM} is refused: "),
    ]


def _copy_a_row(db: Path, config: Path, directory: Path, errand: str) -> list[tuple[str, str]]:
    """Batch 2's row copied over batch 3's (a merge of two copies gone wrong): a valid batch in another's place."""
    with sqlite3.connect(db) as con:
        frame, digest = con.execute("SELECT frame, hash FROM batches WHERE seq = 2").fetchone()
        con.execute("UPDATE batches SET frame = ?, hash = ? WHERE seq = 3", (frame, digest))
    return [
        (
            f"数据流 {STREAM} 第 3 批的位置存放的是数据流 {STREAM} 第 2 批",
            f"batch 3 of {STREAM}: the row holds batch 2 of {STREAM}",
        ),
        (f"哈希链断裂：数据流 {STREAM} 第 4 批未衔接第 3 批", f"batch 4 of {STREAM} does not chain to batch 3"),
    ]


def _sign_a_fork(db: Path, config: Path, directory: Path, errand: str) -> list[tuple[str, str]]:
    """Batch 4 signed again by the node's own key over another predecessor (a node run from an older copy of its
    files signs its next batches anew): every signature holds, the chain does not."""
    settings = load_settings(config)
    key = read_key(settings.path(settings.node.key_file), passphrase_env=settings.node.key_passphrase_env)
    with sqlite3.connect(db) as con:
        held = open_frame(
            con.execute("SELECT frame FROM batches WHERE seq = 4").fetchone()[0], read_directory(directory)
        )
        p = held.payload
        forked = seal(
            key=key,
            origin=p.origin,
            scope=p.scope,
            audience=p.audience,
            seq=p.seq,
            prev=bytes(32),
            created=p.created,
            actions=held.actions,
        )
        con.execute("UPDATE batches SET frame = ?, hash = ? WHERE seq = 4", (forked, frame_hash(forked)))
    return [(f"哈希链断裂：数据流 {STREAM} 第 4 批未衔接第 3 批", f"batch 4 of {STREAM} does not chain to batch 3")]


def _change_the_digest(db: Path, config: Path, directory: Path, errand: str) -> list[tuple[str, str]]:
    """The errand's row says another digest than its signed actions give."""
    with sqlite3.connect(db) as con:
        con.execute("UPDATE errands SET digest = ? WHERE id = ?", ("0" * 64, errand))
    return [("办件存储的摘要与按证据重算的不符", f"the stored digest {'0' * 64} differs from ")]


def _lose_the_outbox(db: Path, config: Path, directory: Path, errand: str) -> list[tuple[str, str]]:
    """The outbox row of the note not yet sealed is gone: the note is in the history, vouched for by nothing."""
    with sqlite3.connect(db) as con:
        (note,) = con.execute("SELECT id FROM actions WHERE errand = ? AND kind = 'note'", (errand,)).fetchone()
        con.execute("DELETE FROM outbox WHERE action_id = ?", (note,))
    return [
        ("办件存储的摘要与按证据重算的不符", "the stored digest "),  # the note no longer counts: the digest moves
        (
            f"操作 {note} 在库内历史记录中，但没有任何已存数据包承载它",
            f"action {note} is in the store's history but no stored batch carries it",
        ),
    ]


@pytest.mark.parametrize(
    "damage",
    [
        _lose_a_batch,
        _rewrite_a_hash,
        _flip_a_byte,
        _copy_a_row,
        _sign_a_fork,
        _change_the_digest,
        _lose_the_outbox,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_export_warns_of_each_damage_chinese_first_and_the_bundle_carries_it(
    village: tuple[Path, Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path, Path, Path, str], list[tuple[str, str]]],
) -> None:
    """Each warning ``verify export`` can give, from a node's store damaged as one can be: the file is written all
    the same (it is the evidence), each warning said in Chinese, then the checker's English whole, and carried in
    the bundle for the inspector's check to repeat."""
    config, directory, errand = village
    expected = damage(db_file(config), config, directory, errand)
    out = tmp_path / "evidence.json"
    assert sanji("verify", "export", "--config", str(config), "--errand", errand, "--out", str(out)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"已将办件 {errand} 的证据写入 {out}"), lines  # written all the same: evidence
    warned = [(zh, en) for zh, en in zip(lines[2::2], lines[3::2], strict=True)]
    assert all(zh.startswith("  警告：") and en.startswith("    warning: ") for zh, en in warned), lines
    said = [(zh.removeprefix("  警告："), en.removeprefix("    warning: ")) for zh, en in warned]
    assert len(said) == len(expected), said
    for (zh, en), (want_zh, want_en) in zip(said, expected, strict=True):
        assert zh == want_zh and en.startswith(want_en), (zh, en)
    bundle = json.loads(out.read_text(encoding="utf-8"))
    assert bundle["problems"] == [en for _, en in said]
    # The inspector's check of that file repeats each, as the exporting node's word, Chinese first.
    sanji("verify", "check-bundle", str(out), "--directory", str(directory))
    checked = capsys.readouterr().out.splitlines()
    for zh, en in said:
        at = checked.index(f"  说明：导出节点报告：{zh}")
        assert checked[at + 1] == f"    note: the exporting node reported: {en}", checked
