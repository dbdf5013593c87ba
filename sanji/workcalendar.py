"""A node's working-day calendar: built-in notices, the county's signed calendar, provisional years.

Three sources, later ones filling what earlier ones lack:

1. the ``chinesecalendar`` library (import name ``chinese_calendar``), which encodes the State
   Council's yearly notices (国务院办公厅关于某年部分节假日安排的通知); version 1.11.0 knows
   2004 to 2026. This is the built-in official data (calendar version 0);
2. the county's signed calendar (``protocol.calendar_doc``), published with ``sanji calendar
   publish`` and carried down the tree in every exchange; each year it lists *replaces* the
   library's year entirely;
3. for the years after the last official one, the provisional calendar of the statutory holidays
   (``sanji.statutory``): dates computed on it are 暂定 and corrected once the year is published.

The county's calendar file (TOML, see ``deploy/calendar.example.toml``)::

    county = "示范县"
    version = 1                       # each publication a higher number
    published_at = "2026-11-20"
    [year.2027]
    source = "国务院办公厅关于2027年部分节假日安排的通知"
    holidays = [2027-01-01, ...]      # every day off in the notice
    workdays = [2027-02-20, ...]      # weekend days that are worked (调休上班)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import chinese_calendar

from protocol.calendar_doc import BoundCalendar, CalendarYear, OfficialCalendar, check_calendar, official_data
from protocol.deadlines import CalendarData, CalendarError, CalendarInvalid, WorkCalendar
from sanji.statutory import FIRST_YEAR, LAST_YEAR, provisional_data, statutory_holidays

__all__ = [
    "FORMAT_HINT",
    "PROBLEMS_HINT",
    "PROVISIONAL_AHEAD",
    "CalendarProblems",
    "YearView",
    "bound_calendar",
    "calendar_problems",
    "checked_calendar",
    "library_data",
    "load_calendar",
    "publish_refusal",
    "publish_refusal_texts",
    "read_calendar_file",
    "summary",
    "summary_zh",
    "year_view",
]

STATUTE_SINCE = 2025  # 《全国年节及纪念日放假办法》 as amended by State Council decree 795, in force 2025-01-01
PROVISIONAL_AHEAD = 3  # provisional years kept beyond the later of this year and the last official one
FORMAT_HINT = (
    'Write county = "...", version = N, published_at = "YYYY-MM-DD", then one [year.YYYY] table per year '
    'with holidays = [...] and optionally workdays = [...] and source = "..."; see deploy/calendar.example.toml.'
)
PROBLEMS_HINT = "Correct every listed problem; the notice (国务院办公厅关于某年部分节假日安排的通知) lists them all."
_TOP_KEYS = frozenset({"county", "version", "published_at", "note", "year"})
_YEAR_KEYS = frozenset({"holidays", "workdays", "source"})


@lru_cache(maxsize=1)
def library_data() -> CalendarData:
    """The library's calendar: every year from its first to its last notice."""
    holidays: set[date] = {_as_date(d) for d in chinese_calendar.holidays}
    workdays: set[date] = {_as_date(d) for d in chinese_calendar.workdays}
    first = min(d.year for d in holidays)
    last = max(d.year for d in holidays)
    return CalendarData(
        years=tuple(range(first, last + 1)),
        holidays=tuple(sorted(holidays)),
        workdays=tuple(sorted(workdays)),
    )


def load_calendar() -> WorkCalendar:
    """The built-in official calendar (the library's notices): what a node starts with."""
    return WorkCalendar.from_data(library_data())


def bound_calendar(base: CalendarData, doc: OfficialCalendar | None, *, this_year: int) -> BoundCalendar:
    """Official years (built-in, then the county's) and provisional years after the last of them."""
    official = official_data(base, doc)
    last = max(official.years) if official.years else this_year - 1
    horizon = min(LAST_YEAR, max(last, this_year) + PROVISIONAL_AHEAD)
    provisional = provisional_data(range(max(last + 1, FIRST_YEAR), horizon + 1))
    return BoundCalendar(official, provisional, version=doc.version if doc else 0)


def _as_date(value: Any) -> date:
    if type(value) is not date:
        raise CalendarInvalid(f"the calendar library holds {value!r}, not a date")
    return value


def _fail(path: Path, message: str) -> CalendarInvalid:
    return CalendarInvalid(f"{path}: {message}", hint=FORMAT_HINT)


def _parse_days(path: Path, year: int, key: str, raw: object) -> tuple[date, ...]:
    if not isinstance(raw, list):
        raise _fail(path, f"year.{year}.{key} must be a list of dates")
    days: list[date] = []
    for item in raw:
        if type(item) is date:
            days.append(item)
        elif isinstance(item, str):
            try:
                days.append(date.fromisoformat(item))
            except ValueError:
                raise _fail(path, f"year.{year}.{key}: {item!r} is not a YYYY-MM-DD date") from None
        else:
            raise _fail(path, f"year.{year}.{key}: {item!r} is not a date")
    return tuple(days)


def read_calendar_file(path: Path) -> OfficialCalendar:
    """Parse a county calendar file into the document that is signed; content checks are separate."""
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise CalendarInvalid(f"calendar file {path} does not exist", hint=FORMAT_HINT) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _fail(path, f"not valid TOML: {exc}") from None
    except RecursionError:  # a crafted file of arrays inside arrays: the parser's recursion runs out
        raise _fail(path, "not valid TOML: lists or tables are nested too deeply") from None
    except ValueError:  # Python's own bound on turning digits into an int (a 5,000-digit number)
        raise _fail(
            path, "not valid TOML: a number is written with more digits than any calendar field holds"
        ) from None
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise _fail(path, f"unexpected top-level key {unknown[0]!r}")
    county, version, published = doc.get("county"), doc.get("version"), doc.get("published_at")
    if not isinstance(county, str):
        raise _fail(path, "county must be the publishing county's name")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _fail(path, "version must be a whole number (each publication a higher one)")
    if isinstance(published, date):
        published = published.isoformat()
    if not isinstance(published, str):
        raise _fail(path, 'published_at must be a date ("YYYY-MM-DD")')
    note = doc.get("note", "")
    if not isinstance(note, str):
        raise _fail(path, "note must be text")
    years = doc.get("year", {})
    if not isinstance(years, dict):
        raise _fail(path, "'year' must be a table of [year.YYYY] tables")
    entries: list[CalendarYear] = []
    for key, table in years.items():
        if not (isinstance(key, str) and key.isdigit() and len(key) == 4):
            raise _fail(path, f"[year.{key}]: the year must be four digits")
        year = int(key)
        if not isinstance(table, dict):
            raise _fail(path, f"year.{year} must be a table")
        extra = sorted(set(table) - _YEAR_KEYS)
        if extra:
            raise _fail(path, f"year.{year}: unexpected key {extra[0]!r}")
        if "holidays" not in table:
            raise _fail(path, f"year.{year}: 'holidays' is required (the official notice lists them)")
        source = table.get("source", "")
        if not isinstance(source, str):
            raise _fail(path, f"year.{year}.source must be a string")
        entries.append(
            CalendarYear(
                year=year,
                holidays=_parse_days(path, year, "holidays", table["holidays"]),
                workdays=_parse_days(path, year, "workdays", table.get("workdays", [])),
                source=source,
            )
        )
    return OfficialCalendar(county=county, version=version, published_at=published, years=tuple(entries), note=note)


def calendar_problems(doc: OfficialCalendar) -> list[str]:
    """``check_calendar``'s problems, plus every statutory festival day (lunar ones too) left out.

    A notice always gives the statutory days off (《全国年节及纪念日放假办法》); one that leaves a
    weekday festival out was mistyped. Made-up days (补假) are not required: the notice may move them.
    """
    problems = check_calendar(doc)
    for entry in doc.years:
        # The lunar festivals as today's rule has them (除夕 and 劳动节's second day) only from 2025.
        if not isinstance(entry.year, int) or not STATUTE_SINCE <= entry.year <= LAST_YEAR:
            continue
        held = set(entry.holidays)
        for d, name in sorted(statutory_holidays(entry.year).items()):
            if "补假" in name or d in held or d.weekday() >= 5:
                continue
            line = f"year {entry.year}.holidays: {d.isoformat()} ({name}) is a statutory holiday and must be listed"
            if line not in problems:
                problems.append(line)
    return problems


class CalendarProblems(CalendarInvalid):
    """A calendar file that parses but does not check clean: ``problems`` lists every fault."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(
            message,
            hint=PROBLEMS_HINT,
        )
        self.problems = problems


def checked_calendar(path: Path) -> OfficialCalendar:
    """A calendar file read and checked (``sanji calendar check``, the county's calendar page).

    Raises CalendarInvalid for a file that does not parse, CalendarProblems listing every fault otherwise.
    """
    doc = read_calendar_file(path)
    problems = calendar_problems(doc)
    if problems:
        raise CalendarProblems(f"{path}: {len(problems)} problem(s)", problems)
    return doc


def publish_refusal(held: OfficialCalendar | None, doc: OfficialCalendar) -> str:
    """Why ``doc`` may not replace the calendar held ('' if it may): it must be newer and keep every year.

    How far newer is ``NodeContext.publish_calendar``'s to refuse (``VersionTooFar``), asked on every path.
    ``publish_refusal_texts`` says it in Chinese and English (the county's calendar page).
    """
    return publish_refusal_texts(held, doc)[1]


def publish_refusal_texts(held: OfficialCalendar | None, doc: OfficialCalendar) -> tuple[str, str]:
    """``publish_refusal`` as (Chinese, English); ('', '') if ``doc`` may replace the calendar held."""
    if held is not None and doc.version <= held.version:
        return (
            f"本中心已持有第{held.version}版日历，新发布的版本号须更高",
            f"this hub already holds calendar v{held.version}; give the new publication a higher version",
        )
    dropped = sorted({e.year for e in held.years} - {e.year for e in doc.years}) if held else []
    if dropped:
        missing = ", ".join(map(str, dropped))
        return (
            f"第{doc.version}版漏掉了已持有版本发布过的 {'、'.join(map(str, dropped))} 年；"
            "新版本整体替换旧版本，请重新列出每一年",
            f"v{doc.version} leaves out {missing}, which the held version published; "
            "a new version replaces the old one whole, so list every year again",
        )
    return "", ""


def summary_zh(doc: OfficialCalendar) -> str:
    """``summary`` in Chinese, for the command line's first line."""
    years = "，".join(f"{e.year}年（放假 {len(e.holidays)} 天，调休上班 {len(e.workdays)} 天）" for e in doc.years)
    return f"{doc.county}工作日历第{doc.version}版（{doc.published_at}）：{years}"


def summary(doc: OfficialCalendar) -> str:
    years = ", ".join(
        f"{e.year} ({len(e.holidays)} days off, {len(e.workdays)} weekend days worked)" for e in doc.years
    )
    return f"{doc.county} working-day calendar v{doc.version} of {doc.published_at}: {years}"


@dataclass(frozen=True)
class YearView:
    """One year as ``sanji calendar show`` and the calendar page tell it.

    ``provisional``: no notice published the year (暂定, the statutory holidays alone); ``source``: the
    county calendar's version and notice, or the built-in notices; ``off``: days off with their names;
    ``worked``: weekend days worked (调休上班); ``working``: how many working days the year has.
    """

    year: int
    provisional: bool
    source: str
    off: list[tuple[date, str]]
    worked: list[date]
    working: int


# The library names its festivals in English; a clerk reads the notice's own names first.
FESTIVALS_ZH = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}


def library_name(d: date) -> str:
    """The festival the library names for a day off, Chinese first ('' if none)."""
    try:
        _, name = chinese_calendar.get_holiday_detail(d)
    except NotImplementedError:  # the library's answer for a year its notices do not cover
        return ""
    english = str(name or "")
    return f"{FESTIVALS_ZH[english]} {english}" if english in FESTIVALS_ZH else english


def year_view(bound: BoundCalendar, doc: OfficialCalendar | None, year: int) -> YearView:
    """A year's days off and weekend days worked on ``bound``; CalendarError if nothing covers it."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise CalendarError(f"the calendar covers {FIRST_YEAR}-{LAST_YEAR}, not {year}")
    calendar = bound.effective
    if not calendar.knows(date(year, 1, 1)):
        raise CalendarError(f"no official data for {year} and it is before the built-in notices; nothing is guessed")
    days = [date.fromordinal(o) for o in range(date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal() + 1)]
    off_days = [d for d in days if d in calendar.holidays]
    worked = sorted(d for d in calendar.workdays if d.year == year)
    provisional = bound.is_provisional(date(year, 1, 1))
    entry = doc.year(year) if doc is not None else None
    if provisional:
        names = statutory_holidays(year)
        source = (
            f"暂定 PROVISIONAL — the county has not published {year}; statutory holidays of "
            "《全国年节及纪念日放假办法》 (made-up days 补假 on the next working day), weekends off, "
            "no adjusted working days (调休上班) guessed"
        )
    elif entry is not None:
        names = {}
        source = f"county calendar v{bound.version}" + (f", {entry.source}" if entry.source else "")
    else:
        names = {d: library_name(d) for d in off_days}
        source = "built-in notices, chinesecalendar"
    working = sum(1 for d in days if calendar.is_working_day(d))
    return YearView(
        year=year,
        provisional=provisional,
        source=source,
        off=[(d, names.get(d, "")) for d in off_days],
        worked=worked,
        working=working,
    )
