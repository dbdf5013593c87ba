"""``sanji calendar``: check, publish and read the county's working-day calendar (工作日历).

``check FILE`` lists every problem of a calendar file; ``publish --config CONFIG FILE`` signs it
with the county hub's key and stores it, and it reaches every node with the next exchanges (county
only); ``show YEAR`` prints a year's days off and says whether the year is official or provisional
(暂定); ``due --from DATE --working-days N`` dates a deadline and says on which calendar version it
was counted and whether it is provisional. ``show`` and ``due`` read a node's held calendar with
``--config``, else the built-in one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from protocol.calendar_doc import BoundCalendar, OfficialCalendar
from protocol.deadlines import CalendarError, business_today
from protocol.errors import SanjiError, VersionNotNewer
from protocol.topology import COUNTY
from sanji.cli import say
from sanji.cli.common import node_store
from sanji.config import ConfigError, load_settings
from sanji.statutory import FIRST_YEAR, LAST_YEAR
from sanji.workcalendar import (
    bound_calendar,
    checked_calendar,
    library_data,
    publish_refusal_texts,
    summary,
    summary_zh,
    year_view,
)

MAX_WORKING_DAYS = 1000  # a deadline is at most a few hundred working days away; more is a typing error


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("calendar", help="the county's working-day calendar (工作日历): check, publish, show, due")
    inner = p.add_subparsers(dest="action", required=True)
    check = inner.add_parser("check", help="list every problem of a calendar file (TOML)")
    check.add_argument("file")
    check.set_defaults(func=lambda a: run_check(Path(a.file)))
    publish = inner.add_parser("publish", help="county hub: sign the calendar file and send it down the tree")
    publish.add_argument("--config", required=True, help="the county hub's TOML config")
    publish.add_argument("file")
    publish.set_defaults(func=lambda a: _run(run_publish(a.config, Path(a.file))))
    show = inner.add_parser("show", help="a year's days off, official or provisional (暂定)")
    show.add_argument("year", type=int)
    show.add_argument("--config", default="", help="read this node's held calendar (else the built-in one)")
    show.set_defaults(func=lambda a: _run(run_show(a.year, a.config)))
    due = inner.add_parser("due", help="the deadline N working days after a date")
    due.add_argument("--from", dest="start", required=True, help="the day of acceptance, YYYY-MM-DD")
    due.add_argument("--working-days", dest="days", type=int, required=True)
    due.add_argument("--json", action="store_true", help="one JSON object (for programs)")
    due.add_argument("--config", default="", help="read this node's held calendar (else the built-in one)")
    due.set_defaults(func=lambda a: _run(run_due(a.start, a.days, a.config, as_json=a.json)))


def _run(coro: Any) -> int:
    try:
        return int(asyncio.run(coro))
    except (ConfigError, SanjiError, FileNotFoundError) as exc:
        say.failure(exc)
        return 2


def _read(path: Path) -> OfficialCalendar | None:
    try:
        return checked_calendar(path)
    except CalendarError as exc:  # CalendarProblems lists every problem; a file that does not parse names its own
        say.document_failure(exc, "日历", str(path))
        return None


def run_check(path: Path) -> int:
    doc = _read(path)
    if doc is None:
        return 2
    say.info(f"{path}：{summary_zh(doc)}：没有发现问题", f"{path}: {summary(doc)}: no problems")
    return 0


async def run_publish(config: str, path: Path) -> int:
    settings = load_settings(config)
    if settings.node.role != COUNTY:
        say.error(
            f"工作日历只能由县级中心发布，{settings.node.id} 不是县级中心",
            f"{settings.node.id} is a {settings.node.role}; only the county hub publishes the calendar",
        )
        return 2
    doc = _read(path)
    if doc is None:
        return 2
    async with node_store(settings) as (_, context):
        zh, en = publish_refusal_texts(context.calendar_doc, doc)
        if en:
            say.error(zh, en)
            return 2
        try:
            await context.publish_calendar(doc)
        except VersionNotNewer as exc:  # published meanwhile (the desk, another command): as if checked after it
            zh, en = publish_refusal_texts(context.calendar_doc, doc)
            say.error(zh or exc.message_zh, en or exc.message_en)
            return 2
    say.info(f"已发布{summary_zh(doc)}", f"published {summary(doc)}")
    say.info(
        "各节点下次同步时收到；按暂定日历计算的期限由各办件所在节点更正",
        "every node takes it with its next exchange; provisional (暂定) deadlines are corrected by their custodians",
    )
    return 0


async def _bound(config: str, this_year: int) -> BoundCalendar:
    if not config:
        return bound_calendar(library_data(), None, this_year=this_year)
    async with node_store(load_settings(config)) as (_, context):
        return bound_calendar(library_data(), context.calendar_doc, this_year=this_year)


def _today() -> date:
    return business_today(datetime.now(UTC))


async def run_show(year: int, config: str) -> int:
    doc = await _held_doc(config) if config else None
    bound = await _bound(config, max(_today().year, year))
    try:
        view = year_view(bound, doc, year)
    except CalendarError as exc:
        say.failure(exc)
        return 2
    if view.provisional:
        say.info(
            f"{year} 年：暂定（县里尚未发布该年日历：按《全国年节及纪念日放假办法》的法定节假日，补假顺延，周末休息，"
            "不推测调休上班日）",
            f"{year}: {view.source}",
        )
    else:
        say.info(f"{year} 年：正式", f"{year}: official ({view.source})")
    for d, name in view.off:
        print(f"  {d.isoformat()} {'一二三四五六日'[d.weekday()]} 休 {name}".rstrip())
    for d in view.worked:
        print(f"  {d.isoformat()} {'一二三四五六日'[d.weekday()]} 班 调休上班")
    say.info(
        f"法定或公告放假 {len(view.off)} 天，周末调休上班 {len(view.worked)} 天，全年工作日 {view.working} 天",
        f"{len(view.off)} statutory or announced days off, {len(view.worked)} weekend days worked, "
        f"{view.working} working days",
    )
    return 0


async def _held_doc(config: str) -> OfficialCalendar:
    async with node_store(load_settings(config)) as (_, context):
        if context.calendar_doc is None:
            return OfficialCalendar(county="", version=0, published_at="", years=())
        return context.calendar_doc


async def run_due(start_text: str, days: int, config: str, *, as_json: bool) -> int:
    try:
        start = date.fromisoformat(start_text)
    except ValueError:
        say.error("受理日期（--from）应为 YYYY-MM-DD 格式的日期", f"--from {start_text!r} is not a YYYY-MM-DD date")
        return 2
    if not 0 <= days <= MAX_WORKING_DAYS:
        say.error(
            f"工作日数（--working-days）应在 0 到 {MAX_WORKING_DAYS} 之间",
            f"--working-days must be between 0 and {MAX_WORKING_DAYS}, not {days}",
        )
        return 2
    if not FIRST_YEAR <= start.year <= LAST_YEAR - 3:
        say.error(
            f"工作日历只覆盖 {FIRST_YEAR}—{LAST_YEAR} 年，{start.isoformat()} 不在其内",
            f"the calendar covers {FIRST_YEAR}-{LAST_YEAR}; {start.isoformat()} is outside it",
        )
        return 2
    bound = await _bound(config, max(_today().year, start.year + (days // 200) + 1))
    calendar = bound.effective
    due = calendar.add_working_days(start, days)
    provisional = bound.span_provisional(start, due)
    off = [
        date.fromordinal(o)
        for o in range(start.toordinal() + 1, due.toordinal() + 1)
        if date.fromordinal(o) in calendar.holidays and date.fromordinal(o).weekday() not in calendar.weekend
    ]
    years = sorted(y for y in bound.provisional_years if start.year <= y <= due.year)
    skipped = [d.isoformat() for d in off]
    out: dict[str, object] = {
        "from": start.isoformat(),
        "working_days": days,
        "due": due.isoformat(),
        "calendar_version": bound.version,
        "provisional": provisional,
        "provisional_years": years,
        "weekday_holidays_skipped": skipped,
    }
    if as_json:
        print(json.dumps(out, ensure_ascii=False))
        return 0
    unpublished = ", ".join(map(str, years))
    mark_zh = f"（暂定：{unpublished} 年的日历尚未发布）" if provisional else ""
    mark = f" (provisional: {unpublished} not published)" if provisional else ""
    say.info(
        f"{start.isoformat()} 之后第 {days} 个工作日：{due.isoformat()}{mark_zh}",
        f"{days} working days after {start.isoformat()}: {due.isoformat()}{mark}",
    )
    version_zh = f"县级日历第 {bound.version} 版" if bound.version else "内置通知（第 0 版）"
    version = f"county calendar v{bound.version}" if bound.version else "built-in notices (v0)"
    say.info(
        f"日历：{version_zh}；跳过的工作日节假日：{'、'.join(skipped) or '无'}",
        f"calendar: {version}; weekday holidays skipped: {', '.join(skipped) or 'none'}",
    )
    return 0
