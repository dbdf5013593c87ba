"""``sanji demo``: a whole county on loopback — one hub, townships, villages — each a real process.

``--city``: a city hub above two (``--counties``) such counties; errands climb to the city, which
holds both counties' and acts on none.

Errands are registered at the villages and travel up and down by signed batches
while a script plays the staff at every desk. The run ends when every errand has
been delivered and every node on an errand's path holds the same digest for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from protocol.stages import SHOWN_LABELS as STAGE_LABELS
from protocol.stages import SHOWN_STAGES as STAGES
from sanji.cli import say
from sanji.client import NodeClient
from sanji.demo.cluster import Cluster
from sanji.demo.staff import (
    DEMO_PASSWORD,
    Desk,
    Tally,
    check_convergence,
    register_errands,
    seed_accounts,
    stage_counts,
    work_desk,
)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="run a whole county on loopback and watch errands travel")
    p.add_argument("--errands", type=int, default=40, help="how many errands to register (default 40)")
    p.add_argument("--towns", type=int, default=2)
    p.add_argument("--villages", type=int, default=2, help="villages per township")
    p.add_argument(
        "--until-converged",
        action="store_true",
        help="run until every errand is delivered and all replicas agree (the default behaviour)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object at the end instead of tables")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    p.add_argument("--workdir", default="var/demo", help="where node keys, configs, databases and logs go")
    p.add_argument("--interval", type=float, default=0.5, help="sync interval of each node in seconds")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument(
        "--county-db", help="PostgreSQL URL for the hub at the top (the county, or the city) instead of SQLite"
    )
    p.add_argument(
        "--city",
        action="store_true",
        help="a city hub above --counties counties (each with --towns and --villages), the same protocol a level up",
    )
    p.add_argument("--counties", type=int, default=2, help="counties under the city with --city (default 2)")
    p.add_argument("--serve", action="store_true", help="keep the nodes running afterwards (Ctrl-C stops)")
    p.add_argument(
        "--directory",
        action="store_true",
        help="hand every node a directory.json instead of enrolling it with a token and a certificate",
    )
    p.set_defaults(func=lambda args: run(args))


# Ways a launcher is told to end besides Ctrl-C: systemd, a CI timeout or `kill PID` (SIGTERM), a
# closed terminal (SIGHUP). Each must run the same clean-up as Ctrl-C, or the nodes outlive us.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP) if hasattr(signal, "SIGHUP") else (signal.SIGTERM,)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, OSError) as exc:  # a node that would not start: say which and where its log is
        say.failure(exc, file=sys.stderr, other="演示未能启动")
        return 1


async def _run(args: argparse.Namespace) -> int:
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    stopped_by: list[int] = []

    def on_signal(signum: int) -> None:
        stopped_by.append(signum)
        if main is not None:
            main.cancel()

    for signum in STOP_SIGNALS:
        try:
            loop.add_signal_handler(signum, on_signal, signum)
        except (NotImplementedError, RuntimeError):  # Windows event loops have no signal handlers
            pass
    try:
        return await _run_cluster(args)
    except asyncio.CancelledError:
        if not stopped_by:
            raise
        return 128 + stopped_by[0]


async def _run_cluster(args: argparse.Namespace) -> int:
    console = Console(stderr=args.json)
    started = time.monotonic()
    cluster = Cluster.prepare(
        Path(args.workdir),
        towns=args.towns,
        villages_per_town=args.villages,
        interval=args.interval,
        county_db=args.county_db,
        enroll=not args.directory,
        open_demo=True,
        counties=args.counties if args.city else 0,
    )
    if not args.json:
        how_zh = "各用一次性令牌入网" if cluster.enroll else "共用一份 directory.json"
        how = "each joining with a one-time token" if cluster.enroll else "from a shared directory.json"
        console.print(
            f"[bold]三级联办演示 Sanji demo[/] — 在 {cluster.workdir} 启动 {len(cluster.nodes)} 个节点，{how_zh}",
            soft_wrap=True,
        )
        console.print(f"starting {len(cluster.nodes)} nodes in {cluster.workdir}, {how}", soft_wrap=True)
    try:
        await asyncio.to_thread(cluster.start)
        desks = [Desk(n.id, n.role, NodeClient(n.url)) for n in cluster.nodes.values()]
        try:
            result = await _drive(args, cluster, desks, console, started)
        finally:
            for desk in desks:
                await desk.client.close()
        if args.serve:
            console.print("各节点继续运行；请在浏览器中打开以下地址，按 Ctrl-C 停止。")
            console.print("Nodes keep running; open these in a browser. Ctrl-C stops them.")
            for n in cluster.nodes.values():
                console.print(f"  {n.id:8} {n.role:8} {n.url}/")
            # Open mode needs no login; staff accounts show what a post, a department or a window may do.
            configs = {n.id: n.config for n in cluster.nodes.values()}
            console.print(f"可登录的工作人员账号（/login，密码 {DEMO_PASSWORD}）及其部门或窗口：")
            console.print(f"Staff accounts to log in with (/login, password {DEMO_PASSWORD}), department or window:")
            for line in await seed_accounts(configs):
                console.print(f"  {line}")
            try:
                await asyncio.Event().wait()  # until Ctrl-C cancels us
            except asyncio.CancelledError:
                pass
    finally:
        # Blocking on purpose: no await here, so a second signal cannot cancel the clean-up halfway.
        cluster.stop()
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    return 0 if result["converged"] else 1


async def _drive(
    args: argparse.Namespace, cluster: Cluster, desks: list[Desk], console: Console, started: float
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    tally = Tally()
    directory = cluster.layout.directory
    villages = [d for d in desks if d.role == "village"]
    counts: dict[str, dict[str, int]] = {}
    converged = False
    deadline = started + args.timeout
    live = (
        Live(console=console, refresh_per_second=4, transient=False) if not args.json and console.is_terminal else None
    )
    if live:
        live.start()
    try:
        pending = args.errands
        last_line = 0.0
        while time.monotonic() < deadline:
            if pending:
                wave = min(pending, max(1, len(villages) * 3))
                await register_errands(villages, wave, rng, tally)
                pending -= wave
            steps = sum(await asyncio.gather(*(work_desk(d, rng, tally) for d in desks)))
            counts = await stage_counts(desks)
            delivered = _finished(counts, villages)
            if live:
                live.update(_progress_table(counts, desks, delivered, args.errands, time.monotonic() - started))
            elif not args.json and time.monotonic() - last_line >= 2.0:
                last_line = time.monotonic()
                console.print(_progress_line(counts, delivered, args.errands, last_line - started), soft_wrap=True)
            closed = sum(counts[d.node_id].get("closed", 0) for d in villages)
            if not pending and closed >= args.errands and steps == 0:
                check = await check_convergence(desks, directory)
                if check.converged and check.errands == args.errands:
                    converged = True
                    break
            await asyncio.sleep(0.2)
    finally:
        if live:
            live.stop()
    seconds = round(time.monotonic() - started, 2)
    check = await check_convergence(desks, directory)
    counts = await stage_counts(desks)
    delivered = _finished(counts, villages)
    closed = sum(counts[d.node_id].get("closed", 0) for d in villages)
    result: dict[str, Any] = {
        "errands": tally.registered,
        "delivered": delivered,
        "closed": closed,
        "converged": converged and check.converged,
        "seconds": seconds,
        "actions_taken": tally.actions,
        "stale_views_retried": tally.refused,
        "nodes": counts,
        "mismatched": check.mismatched[:20],
        "misplaced": check.misplaced[:20],
    }
    if not args.json:
        console.print(_progress_table(counts, desks, delivered, args.errands, seconds))
        if result["converged"]:
            console.print(
                f"[green]✔ 全部一致 Converged:[/] {check.errands} 件办件全部送达归档；每件办件线路上的各节点摘要相同"
                f"（{seconds} 秒）"
            )
            console.print(
                f"all {check.errands} errands delivered and filed; every node on each errand's path holds the same "
                f"digest ({seconds}s)."
            )
        else:
            console.print(
                f"[red]✘ 未能一致 Not converged[/]（{seconds} 秒后）：{len(check.mismatched)} 件办件不一致，"
                f"{len(check.misplaced)} 件存放在线路之外。日志：{cluster.workdir}/*/node.log"
            )
            console.print(
                f"after {seconds}s: {len(check.mismatched)} errands differ, {len(check.misplaced)} held off their "
                f"path. Logs: {cluster.workdir}/*/node.log"
            )
    return result


def _finished(counts: dict[str, dict[str, int]], villages: list[Desk]) -> int:
    """Errands delivered to the applicant (and possibly already filed) at their villages."""
    return sum(counts[d.node_id].get("delivered", 0) + counts[d.node_id].get("closed", 0) for d in villages)


def _progress_line(counts: dict[str, dict[str, int]], delivered: int, total: int, seconds: float) -> str:
    """One line for logs and pipes: where the errands are, as the county hub sees them."""
    hub = next((c for n, c in counts.items() if n == "C"), {})
    where = " · ".join(f"{STAGE_LABELS[s].split()[0]} {hub[s]}" for s in STAGES if hub.get(s))
    return f"{seconds:6.1f}s  送达 delivered {delivered}/{total}  |  县级视图 hub view: {where or '—'}"


def _progress_table(
    counts: dict[str, dict[str, int]], desks: list[Desk], delivered: int, total: int, seconds: float
) -> Table:
    shown = [s for s in STAGES if any(c.get(s) for c in counts.values())] or list(STAGES[:1])
    table = Table(title=f"办件进度 Errands: {delivered}/{total} delivered · {seconds:.1f}s")
    table.add_column("节点 Node")
    table.add_column("层级 Tier")
    for stage in shown:
        table.add_column(STAGE_LABELS[stage].replace(" ", "\n", 1), justify="right")
    table.add_column("合计 Total", justify="right")
    for desk in desks:
        row = counts.get(desk.node_id, {})
        table.add_row(desk.node_id, desk.role, *[str(row.get(s, 0) or "") for s in shown], str(sum(row.values())))
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_parser(sub)
    ns = parser.parse_args(["demo", *sys.argv[1:]])
    sys.exit(run(ns))
