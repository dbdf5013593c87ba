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
from sanji.cli.common import node_store
from sanji.config import ConfigError, load_settings
from sanji.statutory import FIRST_YEAR, LAST_YEAR
from sanji.workcalendar import (
    CalendarProblems,
    bound_calendar,
    checked_calendar,
    library_data,
    publish_refusal,
    summary,
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
        print(f"error: {exc}")
        if isinstance(exc, SanjiError) and exc.hint:
            print(f"hint: {exc.hint}")
        return 2


def _read(path: Path) -> OfficialCalendar | None:
    try:
        return checked_calendar(path)
    except CalendarProblems as exc:
        print(f"error: {exc.message}")
        for problem in exc.problems:
            print(f"  {problem}")
        print(f"hint: {exc.hint}")
        return None
    except CalendarError as exc:
        print(f"error: {exc.message}")
        if exc.hint:
            print(f"hint: {exc.hint}")
        return None


def run_check(path: Path) -> int:
    doc = _read(path)
    if doc is None:
        return 2
    print(f"{path}: {summary(doc)}: no problems")
    return 0


async def run_publish(config: str, path: Path) -> int:
    settings = load_settings(config)
    if settings.node.role != COUNTY:
        print(f"error: {settings.node.id} is a {settings.node.role}; only the county hub publishes the calendar")
        return 2
    doc = _read(path)
    if doc is None:
        return 2
    async with node_store(settings) as (_, context):
        refusal = publish_refusal(context.calendar_doc, doc)
        if refusal:
            print(f"error: {refusal}")
            return 2
        try:
            await context.publish_calendar(doc)
        except VersionNotNewer as exc:  # published meanwhile (the desk, another command): as if checked after it
            print(f"error: {publish_refusal(context.calendar_doc, doc) or exc.message}")
            return 2
    print(f"published {summary(doc)}")
    print("every node takes it with its next exchange; provisional (暂定) deadlines are corrected by their custodians")
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
        print(f"error: {exc.message}")
        return 2
    print(f"{year}: {view.source}" if view.provisional else f"{year}: official ({view.source})")
    for d, name in view.off:
        print(f"  {d.isoformat()} {'一二三四五六日'[d.weekday()]} 休 {name}".rstrip())
    for d in view.worked:
        print(f"  {d.isoformat()} {'一二三四五六日'[d.weekday()]} 班 调休上班")
    counts = f"{len(view.off)} statutory or announced days off, {len(view.worked)} weekend days worked"
    print(f"{counts}, {view.working} working days")
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
        print(f"error: --from {start_text!r} is not a YYYY-MM-DD date")
        return 2
    if not 0 <= days <= MAX_WORKING_DAYS:
        print(f"error: --working-days must be between 0 and {MAX_WORKING_DAYS}, not {days}")
        return 2
    if not FIRST_YEAR <= start.year <= LAST_YEAR - 3:
        print(f"error: the calendar covers {FIRST_YEAR}-{LAST_YEAR}; {start.isoformat()} is outside it")
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
    mark = f"（暂定 provisional: {', '.join(map(str, years))} not published）" if provisional else ""
    print(f"{days} working days after {start.isoformat()}: {due.isoformat()}{mark}")
    version = f"county calendar v{bound.version}" if bound.version else "built-in notices (v0)"
    print(f"calendar: {version}; weekday holidays skipped: {', '.join(skipped) or 'none'}")
    return 0
