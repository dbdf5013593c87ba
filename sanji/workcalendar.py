"""The official working-day calendar, as a :class:`protocol.deadlines.WorkCalendar`.

Two sources, the second winning:

1. the ``chinesecalendar`` library (import name ``chinese_calendar``), which encodes the
   State Council's yearly notices (国务院办公厅关于某年部分节假日安排的通知); version
   1.11.0 knows 2004 to 2026;
2. a TOML file the county publishes for years the library does not know yet (the notice
   comes out each November) or to correct it. A year listed there *replaces* the
   library's data for that year entirely. Format (see workcalendar_overrides.example.toml)::

       [year.2027]
       source = "国务院办公厅关于2027年部分节假日安排的通知"   # optional, for the record
       holidays = [2027-01-01, 2027-02-06]   # days off; TOML dates or "YYYY-MM-DD" strings
       workdays = [2027-02-14]               # weekend days that are worked (调休上班)

A year in neither source is unknown: asking about it raises
:class:`protocol.deadlines.CalendarUnknown`, never a guess from plain weekends.
"""

from __future__ import annotations

import tomllib
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import chinese_calendar

from protocol.deadlines import CalendarData, CalendarInvalid, WorkCalendar

__all__ = ["OverrideYear", "library_data", "load_calendar", "read_overrides"]

_FORMAT_HINT = (
    "Write each year as [year.2027] with holidays = [2027-01-01, ...] and workdays = [...] "
    '(TOML dates or "YYYY-MM-DD" strings); see sanji/workcalendar_overrides.example.toml.'
)
_YEAR_KEYS = frozenset({"holidays", "workdays", "source"})


class OverrideYear:
    """One year's official arrangement as published in the override file."""

    __slots__ = ("holidays", "source", "workdays", "year")

    def __init__(self, year: int, holidays: frozenset[date], workdays: frozenset[date], source: str) -> None:
        self.year = year
        self.holidays = holidays
        self.workdays = workdays
        self.source = source

    def __repr__(self) -> str:
        return f"<OverrideYear {self.year}: {len(self.holidays)} holidays, {len(self.workdays)} workdays>"


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


def _as_date(value: Any) -> date:
    if type(value) is not date:
        raise CalendarInvalid(f"the calendar library holds {value!r}, not a date")
    return value


def _fail(path: Path, message: str) -> CalendarInvalid:
    return CalendarInvalid(f"{path}: {message}", hint=_FORMAT_HINT)


def _parse_days(path: Path, year: int, key: str, raw: object) -> frozenset[date]:
    if not isinstance(raw, list):
        raise _fail(path, f"year.{year}.{key} must be a list of dates")
    days: set[date] = set()
    for item in raw:
        if type(item) is date:
            d = item
        elif isinstance(item, str):
            try:
                d = date.fromisoformat(item)
            except ValueError:
                raise _fail(path, f"year.{year}.{key}: {item!r} is not a YYYY-MM-DD date") from None
        else:
            raise _fail(path, f"year.{year}.{key}: {item!r} is not a date")
        if d.year != year:
            raise _fail(path, f"year.{year}.{key}: {d.isoformat()} is not in {year}")
        if d in days:
            raise _fail(path, f"year.{year}.{key}: {d.isoformat()} is listed twice")
        days.add(d)
    return frozenset(days)


def read_overrides(path: Path) -> dict[int, OverrideYear]:
    """Parse and check a county override file; a missing or malformed file is an error."""
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise CalendarInvalid(
            f"calendar override file {path} does not exist",
            hint="Give the path of the county's published file, or no path to use the library alone.",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"year"})
    if unknown:
        raise _fail(path, f"unexpected top-level key {unknown[0]!r}; only [year.YYYY] tables are read")
    years = doc.get("year", {})
    if not isinstance(years, dict):
        raise _fail(path, "'year' must be a table of [year.YYYY] tables")
    out: dict[int, OverrideYear] = {}
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
        holidays = _parse_days(path, year, "holidays", table["holidays"])
        workdays = _parse_days(path, year, "workdays", table.get("workdays", []))
        both = sorted(holidays & workdays)
        if both:
            raise _fail(path, f"year.{year}: {both[0].isoformat()} is both a holiday and a workday")
        out[year] = OverrideYear(year, holidays, workdays, source)
    return out


def load_calendar(overrides_path: Path | None = None) -> WorkCalendar:
    """The library's calendar, with the county's override file (if given) winning year by year."""
    base = library_data()
    if overrides_path is None:
        return WorkCalendar.from_data(base)
    overrides = read_overrides(overrides_path)
    replaced = set(overrides)
    holidays = {d for d in base.holidays if d.year not in replaced}
    workdays = {d for d in base.workdays if d.year not in replaced}
    for entry in overrides.values():
        holidays |= entry.holidays
        workdays |= entry.workdays
    try:
        return WorkCalendar(
            years=set(base.years) | replaced, holidays=holidays, workdays=workdays, weekend=base.weekend
        )
    except CalendarInvalid as exc:
        raise _fail(overrides_path, exc.message) from None
