"""``sanji catalogue``: check a county's matter catalogue file, and sign it for every node.

``check FILE`` prints every problem with its row (or table) and field, Chinese first (``sanji.cli.say``),
and exits 2 if there is any; ``sign FILE --key KEYFILE --out OUT`` writes the signed envelope
(``protocol.catalogue``) only for a catalogue that checks clean. Nothing is
written when there is anything to fix.

After a county's restore (``sanji restore``): ``export --config NODE --version N --out FILE`` writes, at a township
or village, the signed catalogue of version N exactly as the node keeps it; ``recover --config COUNTY --from FILE``
takes it back at the county (``sanji.catalogue.recover``: its own signature, a version it lost), with the county
stopped, since a running node keeps what it holds in memory.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from protocol.catalogue import CatalogueError, catalogue_digest, sign_catalogue
from sanji.catalogue.loader import load_catalogue
from sanji.catalogue.recover import RecoveryRefused, recover_catalogue
from sanji.cli import say
from sanji.cli.args import version_arg
from sanji.cli.backup_cmd import node_answers
from sanji.cli.common import node_store, write_out
from sanji.config import ConfigError, NodeSettings, load_settings
from sanji.keys import read_key
from sanji.store.documents import LOST

MAX_RECOVER_FILE = 64 << 20  # above any signed catalogue (protocol.catalogue.MAX_CATALOGUE_BYTES): read no more


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("catalogue", help="check and sign the county's matter catalogue (事项目录)")
    inner = p.add_subparsers(dest="action", required=True)
    check = inner.add_parser("check", help="list every problem of a catalogue file (.toml, .json, .xlsx)")
    check.add_argument("file", help="the catalogue file")
    check.set_defaults(func=lambda a: run_check(Path(a.file)))
    sign = inner.add_parser("sign", help="sign a catalogue file with the county's key")
    sign.add_argument("file", help="the catalogue file (.toml, .json, .xlsx)")
    sign.add_argument("--key", required=True, help="the county node's private key file")
    sign.add_argument("--out", required=True, help="where to write the signed catalogue")
    sign.set_defaults(func=lambda a: run_sign(Path(a.file), Path(a.key), Path(a.out)))
    export = inner.add_parser("export", help="write a catalogue version this node holds, as signed (导出目录版本)")
    export.add_argument("--config", required=True, help="the node's TOML config (a township or village)")
    export.add_argument("--version", type=version_arg, required=True, help="the catalogue version to write")
    export.add_argument("--out", required=True, help="where to write the signed catalogue")
    export.set_defaults(func=lambda a: run_export(a.config, a.version, Path(a.out)))
    recover = inner.add_parser(
        "recover", help="at a restored county: take back a lost catalogue version from a file (找回目录版本)"
    )
    recover.add_argument("--config", required=True, help="the county's TOML config (the node stopped)")
    recover.add_argument("--from", dest="source", required=True, help="the file `catalogue export` wrote below")
    recover.set_defaults(func=lambda a: run_recover(a.config, Path(a.source)))


def run_check(path: Path) -> int:
    try:
        catalogue = load_catalogue(path)
    except CatalogueError as exc:
        say.document_failure(exc, "目录", str(path))
        return 2
    departments = sum(1 for m in catalogue.matters if m.department)
    say.info(
        f"{path}：{catalogue.county}事项目录第{catalogue.version}版（{catalogue.published_at}），"
        f"共 {len(catalogue.matters)} 个事项（其中 {departments} 个由县级部门审批）：没有发现问题",
        f"{path}: {catalogue.county} catalogue v{catalogue.version} of {catalogue.published_at}, "
        f"{len(catalogue.matters)} matters ({departments} decided by a county department): no problems",
    )
    return 0


def run_sign(path: Path, key_path: Path, out: Path) -> int:
    try:
        catalogue = load_catalogue(path)
    except CatalogueError as exc:
        say.document_failure(exc, "目录", str(path))
        return 2
    try:
        key = read_key(key_path)
    except (OSError, ValueError) as exc:
        say.error(f"不能用作签名密钥：{key_path}", f"cannot use {key_path} as a signing key: {exc}")
        return 2
    blob = sign_catalogue(catalogue, key)
    if not write_out(out, blob):
        return 2
    digest = catalogue_digest(blob)
    say.info(
        f"已用密钥 {key.key_id} 签发{catalogue.county}事项目录第{catalogue.version}版"
        f"（{len(catalogue.matters)} 个事项）→ {out}（{len(blob)} 字节，sha256 {digest}）",
        f"signed {catalogue.county} catalogue v{catalogue.version} ({len(catalogue.matters)} matters) "
        f"with key {key.key_id} -> {out} ({len(blob)} bytes, sha256 {digest})",
    )
    return 0


def _settings(config: str) -> NodeSettings | None:
    try:
        return load_settings(config)
    except ConfigError as exc:
        say.error(f"配置文件有误：{exc}", f"bad config: {exc}")
        return None


def run_export(config: str, version: int, out: Path) -> int:
    settings = _settings(config)
    if settings is None:
        return 2

    async def held() -> bytes | None:
        async with node_store(settings) as (store, _):
            return await store.document_version("catalogue", version)

    blob = asyncio.run(held())
    if blob is None:
        say.error(
            f"本节点没有第 {version} 版目录，无法导出",
            f"this node holds no catalogue version {version} to export",
        )
        return 1
    if not write_out(out, blob):
        return 2
    say.info(
        f"已导出第 {version} 版目录（县级签名原样）→ {out}（sha256 {catalogue_digest(blob)}）",
        f"wrote catalogue version {version} as signed -> {out} (sha256 {catalogue_digest(blob)})",
    )
    return 0


def run_recover(config: str, source: Path) -> int:
    settings = _settings(config)
    if settings is None:
        return 2
    if node_answers(settings):
        say.error(
            f"节点 {settings.node.id} 正在运行，请先停止它再找回目录版本",
            f"node {settings.node.id} is running on port {settings.node.port}; stop it first",
        )
        return 1
    try:
        with source.open("rb") as f:
            blob = f.read(MAX_RECOVER_FILE + 1)
    except OSError as exc:
        say.error(f"无法读取文件：{source}", f"cannot read {source}: {exc}")
        return 2
    if len(blob) > MAX_RECOVER_FILE:
        say.error(f"文件过大，不是目录：{source}", f"{source} is too large to be a signed catalogue")
        return 1

    async def recover() -> int:
        async with node_store(settings) as (store, _):
            try:
                done = await recover_catalogue(store, blob)
            except RecoveryRefused as exc:
                say.error(f"未找回：{exc.zh}", f"not taken back: {exc.message}")
                return 1
            say.info(
                f"已找回第 {done.version} 版目录（sha256 {done.digest}）；无法核对的版本："
                f"{done.lost_before or '无'} → {done.lost_after or '无'}",
                f"catalogue version {done.version} taken back; versions lost ({LOST.strip('_')}): "
                f"{done.lost_before or 'none'} -> {done.lost_after or 'none'}",
            )
            return 0

    return asyncio.run(recover())
