"""``sanji archive``: drop the bytes of old attachments an ancestor holds, to free a village laptop's disk.

    sanji archive --config NODE.toml --dry-run [--after-days N] [--json]   what would go; changes nothing
    sanji archive --config NODE.toml --apply   [--after-days N] [--json]   archive it
    sanji archive --config NODE.toml --restore (--errand ID | --all) [--json]
                                        fetch archived attachments back from an ancestor (before a
                                        laptop goes offline for weeks)

``--dry-run`` and ``--apply`` are safe while the node runs (each attachment is one transaction through
the store's writer door). ``--restore`` refuses while the node answers on its port: the node's own
signed requests and the command's would race to the parent, which refuses one signed earlier that
arrives later; it prints how to ask the running node to restore them itself instead (an administrator's
``POST /api/archive/restore``, ``sanji.web.archive_restore``), and opening an attachment on the errand
page fetches that one back.
``--errand`` takes an errand id or a receipt number, and an errand not held here is an error (exit 2).
The rule is ``sanji.store.archive``'s: every errand naming the attachment delivered or closed more
than ``after_days`` ago (``[archive] after_days``, default 90) and an ancestor's acknowledgement that
it holds the attachment whole. ``--restore`` fetches back as opening one does (``sanji.sync.fetch_back``:
the parent, or an ancestor round it; kept only if whole and exactly the attachment) and reports what
came back. Exit 0 when it ran (and, restoring, everything came back), 1 when some attachment could not
be fetched back, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from typing import Any

from protocol.archive import KEPT_REASONS_ZH
from protocol.errors import SanjiError
from sanji.cli import say
from sanji.cli.backup_cmd import node_answers
from sanji.cli.common import node_store
from sanji.cli.errand_cmd import errand_by_ref
from sanji.config import ConfigError, NodeSettings, load_settings
from sanji.store.archive import KEPT_REASONS, Archived, ArchivePlan
from sanji.sync.fetch_back import RESTORE_TIMEOUT_S, FetchBack, links_for


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("archive", help="drop the bytes of old attachments an ancestor holds (frees a laptop's disk)")
    p.add_argument("--config", required=True, help="the node's TOML config")
    p.add_argument("--db", help="database URL overriding the config")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="list what would be archived; change nothing")
    mode.add_argument("--apply", action="store_true", help="archive it")
    mode.add_argument("--restore", action="store_true", help="fetch archived attachments back from an ancestor")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--errand", help="with --restore: the attachments of this errand")
    which.add_argument("--all", action="store_true", help="with --restore: every archived attachment")
    p.add_argument("--after-days", type=float, default=None, help="override [archive] after_days (default 90)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


async def _run(config: str, db: str | None, *, apply: bool, after_days: float | None) -> ArchivePlan:
    settings = load_settings(config, db=db)
    days = settings.archive.after_days if after_days is None else after_days
    async with node_store(settings) as (store, _):
        if apply:
            return await store.archive_blobs(after_days=days)
        return await store.archive_plan(after_days=days)


async def _restore(settings: NodeSettings, *, errand: str | None) -> list[tuple[Archived, SanjiError | None]]:
    """Every archived attachment asked for, and why it did not come back (None when it did).

    Raises ``BadArguments`` when ``errand`` (an id or a receipt number) is not an errand held here."""
    out: list[tuple[Archived, SanjiError | None]] = []
    async with node_store(settings) as (store, context):
        if errand is not None:
            errand = await errand_by_ref(store, errand)
        context.daily_blob_budget = settings.sync.daily_attachment_bytes  # shared with the node's sync
        links = links_for(settings, store)
        fetch = FetchBack(
            store,
            links,
            max_bytes=settings.sync.max_attachment_bytes,
            timeout=RESTORE_TIMEOUT_S,
            context=context,
        )
        try:
            for mark in await store.archived_blobs(errand=errand):
                try:
                    await fetch.open(mark.hash)
                    out.append((mark, None))
                except SanjiError as exc:
                    out.append((mark, exc))
        finally:
            await fetch.close()  # nothing goes on after the store closes
    return out


def _could_not_run(exc: Exception) -> int:
    say.failure(exc, file=sys.stderr)
    return 2


def restore(args: argparse.Namespace) -> int:
    if not args.all and not args.errand:
        say.error("取回附件须给出 --errand 办件编号或 --all", "--restore needs --errand ID or --all", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config, db=args.db)
        if node_answers(settings):
            # Its requests and this command's would be signed apart and could reach the parent out of order
            # (a request signed earlier but arriving later is refused as stale): one signer at a time.
            print(_ask_the_node(settings, args.config, errand=None if args.all else args.errand), file=sys.stderr)
            return 2
        results = asyncio.run(_restore(settings, errand=None if args.all else args.errand))
    except (ConfigError, ValueError, OSError, SanjiError) as exc:
        return _could_not_run(exc)
    back = [m for m, why in results if why is None]
    left = [(m, why) for m, why in results if why is not None]
    if args.json:
        shown = {
            "restored": [{"hash": m.hash, "size": m.size, "from_held_at": m.held_at} for m in back],
            "bytes": sum(m.size for m in back),
            "not_restored": [{"hash": m.hash, "size": m.size, "held_at": m.held_at, "why": w.message} for m, w in left],
        }
        print(json.dumps(shown, ensure_ascii=False, indent=2))
    else:
        for m in back:
            print(
                say.both(
                    f"已取回 {m.hash[:16]}  {m.size:>9} 字节（原由 {m.held_at} 持有）",
                    f"restored (was held at {m.held_at})",
                )
            )
        for m, why in left:
            said = say.error_pair(why, other="未能取回")
            print(say.both(f"未取回 {m.hash[:16]}  {m.size:>9} 字节：{said.zh}", f"not restored: {said.en}"))
        size = sum(m.size for m in back)
        say.info(
            f"已取回 {len(back)} 个附件，共 {size} 字节；{len(left)} 个仍在归档中",
            f"restored {len(back)} attachment(s), {size} bytes; {len(left)} still archived",
        )
    return 1 if left else 0


def _ask_the_node(settings: NodeSettings, config: str, *, errand: str | None) -> str:
    """How to have the running node restore them itself, with its own signer."""
    host = "127.0.0.1" if settings.node.host in ("0.0.0.0", "::") else settings.node.host
    body = json.dumps({"errand": errand} if errand else {}, ensure_ascii=False)  # {}: every archived attachment
    url = f"http://{host}:{settings.node.port}/api/archive/restore"
    return (
        f"error: 节点 {settings.node.id} 正在运行，本命令不能与它同时签名；"
        "请让节点自己取回（见下），或先停止节点再运行 --restore。"
        f" Node {settings.node.id} is running on port {settings.node.port}, and this command cannot sign "
        "beside it. Ask the node to fetch them back itself, as an administrator with a token "
        f"(sanji accounts token --config {config} --name ADMIN):\n"
        f"  curl -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
        f"-d '{body}' {url}\n"
        "It answers at once and fetches them back in the background (/api/node shows attachments.archived_here "
        "falling). Or stop the node and run --restore again."
    )


def as_dict(plan: ArchivePlan, *, applied: bool) -> dict[str, Any]:
    chosen = plan.archived if applied else plan.archivable
    return {
        "applied": applied,
        "after_days": plan.after_days,
        "attachments": [
            {"hash": c.hash, "size": c.size, "held_at": c.held_at, "errands": list(c.errands)} for c in chosen
        ],
        "bytes": sum(c.size for c in chosen),
        "kept": {reason: len(hashes) for reason, hashes in sorted(plan.kept.items())},
        "archived_before": plan.already,
    }


def run(args: argparse.Namespace) -> int:
    if args.restore:
        return restore(args)
    if args.errand or args.all:
        say.error(
            "参数 --errand 和 --all 只能与 --restore 一起使用", "--errand and --all go with --restore", file=sys.stderr
        )
        return 2
    if args.after_days is not None and not (math.isfinite(args.after_days) and args.after_days >= 0):
        say.error(
            "归档天数（--after-days）应为不小于 0 的有限天数",
            "--after-days must be a finite number of days, not negative",
            file=sys.stderr,
        )
        return 2
    try:
        plan = asyncio.run(_run(args.config, args.db, apply=args.apply, after_days=args.after_days))
    except (ConfigError, ValueError, OSError, SanjiError) as exc:
        return _could_not_run(exc)
    if args.json:
        print(json.dumps(as_dict(plan, applied=args.apply), ensure_ascii=False, indent=2))
        return 0
    chosen = plan.archived if args.apply else plan.archivable
    verb_zh, verb = ("已归档", "archived") if args.apply else ("可归档", "would archive")
    for c in chosen:
        errands = ", ".join(c.errands)
        print(
            say.both(
                f"{verb_zh} {c.hash[:16]}  {c.size:>9} 字节  由 {c.held_at} 持有  办件 {errands}",
                f"{verb} (held at {c.held_at}, errands {errands})",
            )
        )
    total = sum(c.size for c in chosen)
    say.info(
        f"{verb_zh} {len(chosen)} 个附件，共 {total} 字节（办结已超过 {plan.after_days:g} 天的办件）",
        f"{verb} {len(chosen)} attachment(s), {total} bytes (errands closed over {plan.after_days:g} days ago)",
    )
    if args.apply and len(plan.archived) < len(plan.archivable):
        changed = len(plan.archivable) - len(plan.archived)
        say.info(
            f"{changed} 个附件在归档时有变动，已保留；请稍后再运行",
            f"{changed} changed while archiving and were kept; run again later",
        )
    for reason, hashes in sorted(plan.kept.items()):
        print(
            say.both(f"保留 {len(hashes)} 个：{KEPT_REASONS_ZH[reason]}", f"kept {len(hashes)}: {KEPT_REASONS[reason]}")
        )
    if plan.already:
        print(say.both(f"{plan.already} 个此前已归档", f"{plan.already} archived before"))
    if not args.apply and chosen:
        say.info(
            "未作任何改动（--dry-run）；加 --apply 运行即归档",
            "nothing was changed (--dry-run); run with --apply to archive",
        )
    return 0
