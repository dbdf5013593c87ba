"""``sanji backup`` and ``sanji restore``: copy a node's store while it runs; put a copy back while it is stopped."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx

from protocol.errors import SanjiError
from sanji.backup import backup, listing, prune, restore
from sanji.cli import say
from sanji.config import ConfigError, NodeSettings, load_settings


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    b = sub.add_parser("backup", help="copy this node's store (safe while it runs) and prune old copies")
    b.add_argument("--config", required=True)
    b.add_argument("--db", help="database URL overriding the config")
    b.add_argument("--out", help="directory for the copy (default: [backup] dir, or <data_dir>/backups)")
    b.add_argument("--list", action="store_true", help="list the copies held instead of taking one")
    b.set_defaults(func=run_backup)
    r = sub.add_parser("restore", help="put a backup in place of this node's store (stop the node first)")
    r.add_argument("--config", required=True)
    r.add_argument("--db", help="database URL overriding the config")
    r.add_argument("--from", dest="source", required=True, help="backup file: .db (SQLite), .dump (PostgreSQL)")
    r.set_defaults(func=run_restore)


def _settings(args: argparse.Namespace) -> NodeSettings | None:
    try:
        return load_settings(args.config, db=args.db)
    except ConfigError as exc:
        say.failure(exc)
        return None


def run_backup(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    out = Path(args.out) if args.out else settings.backup_dir
    if args.list:
        for held in listing(out, node=settings.node.id):
            print(f"{held.path}\t{held.size}")
        return 0
    try:
        made = backup(settings.db_url, out, node=settings.node.id)
    except SanjiError as exc:
        say.failure(exc)
        return 1
    gone = prune(out, node=settings.node.id, keep_days=settings.backup.keep_days)
    days = f"{settings.backup.keep_days:g}"
    say.info(
        f"已备份到 {made.path}（{made.size} 字节）；已删除 {len(gone)} 份超过 {days} 天的旧备份",
        f"backed up to {made.path} ({made.size} bytes); {len(gone)} copies older than {days} days removed",
    )
    return 0


def node_answers(settings: NodeSettings) -> bool:
    host = "127.0.0.1" if settings.node.host in ("0.0.0.0", "::") else settings.node.host
    try:
        httpx.get(f"http://{host}:{settings.node.port}/healthz", timeout=1.0)
    except httpx.HTTPError:
        return False
    return True


def run_restore(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    if node_answers(settings):
        say.error(
            f"节点 {settings.node.id} 正在运行，请先停止它再恢复",
            f"node {settings.node.id} is running on port {settings.node.port}; stop it first "
            "(systemctl stop sanji-node@...)",
        )
        return 1
    try:
        kept = restore(settings.db_url, Path(args.source))
    except SanjiError as exc:
        say.failure(exc)
        return 1
    say.info(
        f"已从 {args.source} 恢复" + (f"；被替换的数据库保留为 {kept}" if kept else ""),
        f"restored {args.source}" + (f"; the store it replaced is kept as {kept}" if kept else ""),
    )
    say.info(
        "请启动节点：副本较旧时它先升级副本，再从上级节点取回副本缺少的内容",
        "start the node: it migrates the copy if it is older, then takes back from its parent what the copy lacks",
    )
    return 0
