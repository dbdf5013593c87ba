"""``sanji verify``: re-check a node's stored evidence, export one errand's evidence, check an export.

    sanji verify store --config NODE.toml [--json] [--workers N]
    sanji verify export --config NODE.toml --errand ID --out FILE.json
    sanji verify check-bundle FILE.json [--directory directory.json] [--json]

``store`` exits 0 when everything checks out, 1 when it found problems, 2 when it could
not run. ``check-bundle`` needs no node and no database: an inspector (纪检监察) runs it
on the exported file alone, ideally with the county's directory file so the keys in the
bundle are checked against the ones the county published.

``sanji audit verify | export | check-bundle`` is the old name: it still works, after a one-line
notice on stderr, so operators' scripts keep running while they are changed ("audit" is the staff's
audit log, ``sanji accounts log``; this command checks evidence).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from protocol.errors import SanjiError
from sanji.cli import say
from sanji.cli.common import node_store, write_out
from sanji.config import ConfigError, load_settings
from sanji.evidence import EvidenceReport, export_errand, verify, verify_bundle
from sanji.evidence_words import bundle_zh, store_problem_pair
from sanji.keys import read_directory

DEPRECATED = "note: " + say.both(
    "`sanji audit` 已改名为 `sanji verify`（`sanji audit verify` 即 `sanji verify store`）；旧名称将在以后的版本中删除",
    "`sanji audit` is now `sanji verify` (`sanji audit verify` is `sanji verify store`);"
    " the old name will be removed in a later release",
)


# Where ``check-bundle`` took the keys it checked signatures with (``BundleReport.keys_from``).
KEYS_FROM_ZH = {"bundle": "证据包本身", "directory": "节点目录"}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    verify_parser = sub.add_parser(
        "verify", help="re-check stored batches, chains and digests; export or check evidence"
    )
    _add_commands(verify_parser, store="store", dest="verify_command")
    audit = sub.add_parser("audit", help="deprecated: the old name of `sanji verify`")
    _add_commands(audit, store="verify", dest="audit_command", notice=DEPRECATED)


def _add_commands(parser: argparse.ArgumentParser, *, store: str, dest: str, notice: str = "") -> None:
    commands = parser.add_subparsers(dest=dest, required=True, metavar="COMMAND")

    def run(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        def noted(args: argparse.Namespace) -> int:
            if notice:
                print(notice, file=sys.stderr)
            return func(args)

        return noted

    ver = commands.add_parser(store, help="re-check every stored batch, chain, digest and history row")
    ver.add_argument("--config", required=True, help="the node's TOML config")
    ver.add_argument("--json", action="store_true", help="print the whole report as JSON")
    ver.add_argument("--workers", type=int, default=None, help="processes to use (default: up to 2)")
    ver.set_defaults(func=run(lambda a: run_verify(a.config, as_json=a.json, workers=a.workers)))

    exp = commands.add_parser("export", help="write one errand's evidence bundle (JSON) for an inspector")
    exp.add_argument("--config", required=True, help="the node's TOML config")
    exp.add_argument("--errand", required=True, help="the errand id")
    exp.add_argument("--out", required=True, help="file to write, e.g. T01V01-xxxx.evidence.json")
    exp.set_defaults(func=run(lambda a: run_export(a.config, a.errand, Path(a.out))))

    chk = commands.add_parser("check-bundle", help="re-verify an evidence bundle offline (no database needed)")
    chk.add_argument("file", help="the bundle written by `sanji verify export`")
    chk.add_argument("--directory", help="the county's directory.json, to check the bundle's keys against")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    chk.set_defaults(func=run(lambda a: run_check_bundle(Path(a.file), a.directory, as_json=a.json)))


def _fail(zh: str, en: str) -> int:
    say.error(zh, en, file=sys.stderr)
    return 2


def _failed(exc: Exception) -> int:
    say.failure(exc, file=sys.stderr, other="核验未完成")
    return 2


async def _verify(config: str, workers: int | None) -> EvidenceReport:
    settings = load_settings(config)
    async with node_store(settings) as (store, _):
        return await verify(store, workers=workers)


def run_verify(config: str, *, as_json: bool = False, workers: int | None = None) -> int:
    if workers is not None and workers < 1:
        return _fail("进程数（--workers）至少为 1", "--workers must be at least 1")
    try:
        report = asyncio.run(_verify(config, workers))
    except (ConfigError, ValueError, OSError, SanjiError) as exc:
        return _failed(exc)
    if as_json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        say.info(report.summary_zh(), report.summary())
        for problem in report.problems[:200]:
            said = store_problem_pair(problem)
            print(f"  {said.zh}")
            print(f"    {said.en}")
        if len(report.problems) > 200:
            more = len(report.problems) - 200
            print(f"  {say.both(f'……另有 {more} 处（--json 列出全部）', f'... and {more} more (use --json for all)')}")
    return 0 if report.ok else 1


async def _export(config: str, errand: str) -> dict[str, Any]:
    settings = load_settings(config)
    async with node_store(settings) as (store, _):
        return await export_errand(store, errand)


def run_export(config: str, errand: str, out: Path) -> int:
    try:
        bundle = asyncio.run(_export(config, errand))
    except (ConfigError, ValueError, OSError, SanjiError) as exc:
        return _failed(exc)
    if not write_out(out, (json.dumps(bundle, ensure_ascii=False, indent=1) + "\n").encode("utf-8")):
        return 2
    actions, frames = len(bundle["history"]), len(bundle["frames"])
    say.info(
        f"已将办件 {errand} 的证据写入 {out}：操作 {actions} 条，签名批次 {frames} 批",
        f"wrote the evidence of errand {errand}: {actions} actions, {frames} signed batches, to {out}",
    )
    for problem in bundle["problems"]:
        print(f"  警告：{bundle_zh(problem)}")
        print(f"    warning: {problem}")
    return 0


def run_check_bundle(path: Path, directory: str | None, *, as_json: bool = False) -> int:
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _fail(f"证据包不存在：{path}", f"{path} does not exist")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _fail(f"无法读取证据包 {path}", f"cannot read {path}: {exc}")
    try:
        trusted = read_directory(Path(directory)) if directory else None
    except FileNotFoundError:
        return _fail(f"节点目录文件不存在：{directory}", f"{directory} does not exist")
    except (OSError, msgspec.MsgspecError, ValueError) as exc:
        return _fail(f"无法读取节点目录 {directory}", f"cannot read the directory {directory}: {exc}")
    if not isinstance(bundle, dict):
        return _fail(f"不是证据包：{path}", f"{path} is not an evidence bundle")
    report = verify_bundle(bundle, trusted)
    if as_json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        verdict_zh, verdict = ("核验通过", "VERIFIED") if report.ok else ("核验未通过", "NOT VERIFIED")
        keys_zh = KEYS_FROM_ZH.get(report.keys_from, report.keys_from)
        say.info(
            f"{verdict_zh}：办件 {report.errand}，签名批次 {report.frames} 批，签名操作 {report.signed_actions} 条、"
            f"未签名操作 {report.unsigned_actions} 条，摘要 {report.digest or '-'}（密钥取自{keys_zh}）",
            f"{verdict}: errand {report.errand}, {report.frames} signed batches, {report.signed_actions} signed and "
            f"{report.unsigned_actions} unsigned actions, digest {report.digest or '-'} (keys from {report.keys_from})",
        )
        for problem in report.problems:
            print(f"  问题：{bundle_zh(problem)}")
            print(f"    problem: {problem}")
        for note in report.notes:
            print(f"  说明：{bundle_zh(note)}")
            print(f"    note: {note}")
    return 0 if report.ok else 1
