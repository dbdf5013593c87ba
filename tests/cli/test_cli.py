"""The ``sanji`` command as a person types it."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sanji.cli import directory_cmd, keys_init, serve
from sanji.cli.main import build_parser
from sanji.keys import read_directory, read_key


def test_help_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "sanji.cli.main", "--help"], capture_output=True, text=True, check=True)
    for command in ("county", "town", "village", "keys", "directory", "catalogue", "demo", "errand"):
        assert command in out.stdout


def test_keys_init_writes_a_private_key_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_path = tmp_path / "k" / "node.key"
    assert keys_init.run("T01V01", key_path) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["node"] == "T01V01" and record["algorithm"] == "ed25519"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert read_key(key_path).key_id == record["key_id"]
    assert keys_init.run("T01V01", key_path) == 2
    assert "exists" in capsys.readouterr().out


def test_directory_add_builds_a_consistent_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "directory.json"
    records = {}
    for node in ("C", "T01", "T01V01"):
        keys_init.run(node, tmp_path / f"{node}.key")
        records[node] = capsys.readouterr().out.strip()
    assert directory_cmd.run_add(directory, "C", "county", None, "县政务服务中心", records["C"]) == 0
    assert directory_cmd.run_add(directory, "T01V01", "village", "T01", "", records["T01V01"]) == 2  # parent unknown
    assert directory_cmd.run_add(directory, "T01", "town", "C", "", records["C"]) == 2  # someone else's key
    assert directory_cmd.run_add(directory, "T01", "town", "C", "", records["T01"]) == 0
    assert directory_cmd.run_add(directory, "T01V01", "village", "T01", "", records["T01V01"]) == 0
    assert read_directory(directory).path("T01V01") == ("C", "T01", "T01V01")
    capsys.readouterr()
    keys_init.run("TO1", tmp_path / "TO1.key")  # a letter O: reads as T01 (the rule the enrollment desks ask)
    assert directory_cmd.run_add(directory, "TO1", "town", "C", "", capsys.readouterr().out.strip()) == 2
    assert "与已有的 T01 只差大小写或形近字符" in capsys.readouterr().out
    keys_init.run("T02", tmp_path / "T02.key")
    assert directory_cmd.run_add(directory, "T02", "town", "C", "\u200b", capsys.readouterr().out.strip()) == 2
    assert "不可见字符" in capsys.readouterr().out and "T02" not in read_directory(directory)


def test_serve_with_a_bad_config_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert serve.run("town", str(tmp_path / "missing.toml")) == 2
    assert "does not exist" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[node]\nid = "T01"\nrole = "village"\nkey_file = "k"\ndirectory = "d"\n', encoding="utf-8")
    assert serve.run("town", str(bad)) == 2
    assert "not a town node" in capsys.readouterr().out
    bad.write_text("[node\n", encoding="utf-8")
    assert serve.run("town", str(bad)) == 2
    assert "not valid TOML" in capsys.readouterr().out


def test_demo_flags_parse() -> None:
    args = build_parser().parse_args(["demo", "--errands", "5", "--until-converged", "--json"])
    assert args.errands == 5 and args.until_converged and args.json


def test_keys_init_with_sealing_prints_both_records_and_the_directory_keeps_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "directory.json"
    assert keys_init.run("C", tmp_path / "C.key", sealing=True) == 0
    signing, sealing = capsys.readouterr().out.strip().splitlines()
    assert json.loads(sealing)["algorithm"] == "x25519"
    assert (tmp_path / "C.enc.key").exists() or any(
        p.name.startswith("C") and "enc" in p.name for p in tmp_path.iterdir()
    )
    assert directory_cmd.run_add(directory, "C", "county", None, "", signing, sealing) == 0
    entry = read_directory(directory).get("C")
    assert {k.algorithm for k in entry.keys} == {"ed25519", "x25519"}
