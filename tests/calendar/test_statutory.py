"""The provisional calendar: statutory holidays from the lunar library, checked against the known notices."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import pytest

from protocol.calendar_doc import BoundCalendar
from protocol.deadlines import CalendarData, compute_due
from sanji.statutory import provisional_data, statutory_holidays
from sanji.workcalendar import bound_calendar, library_data

D = date
OFFICIAL = library_data()
KNOWN = [y for y in OFFICIAL.years if y >= 2008]  # 清明, 端午 and 中秋 became days off in 2008


def off_officially(d: date) -> bool:
    return not chinese_calendar.is_workday(d)


@pytest.mark.parametrize("year", KNOWN)
def test_every_festival_day_of_the_statute_is_off_in_every_known_notice(year: int) -> None:
    """Until 2024 the statute had a 3-day 春节 without 除夕 and a 1-day 劳动节; from 2025 the amended text."""
    for day, name in statutory_holidays(year).items():
        if "补假" in name:
            continue
        eve = name == "春节" and day == min(d for d, n in statutory_holidays(year).items() if n == "春节")
        if year < 2025 and (eve or (name == "劳动节" and day.day == 2)):
            continue
        assert off_officially(day), f"{day} ({name}) is a working day in the {year} notice"


def test_2027_new_year_and_spring_festival() -> None:
    days = statutory_holidays(2027)
    assert days[D(2027, 1, 1)] == "元旦"
    assert [d for d, n in sorted(days.items()) if n == "春节"] == [
        D(2027, 2, 5),
        D(2027, 2, 6),
        D(2027, 2, 7),
        D(2027, 2, 8),
    ]
    assert days[D(2027, 4, 5)] == "清明节" and days[D(2027, 6, 9)] == "端午节" and days[D(2027, 9, 15)] == "中秋节"
    # art. 6: Saturday and Sunday of 春节 made up on the next working days
    assert days[D(2027, 2, 9)] == days[D(2027, 2, 10)] == "春节补假"


def test_overlapping_festivals_are_named_together_and_not_made_up() -> None:
    days = statutory_holidays(2028)  # 中秋 falls on 3 October
    assert days[D(2028, 10, 3)] in ("国庆节、中秋节", "中秋节、国庆节")


def test_provisional_years_never_guess_adjusted_working_days() -> None:
    data = provisional_data(range(2027, 2030))
    assert data.workdays == () and data.weekend == (5, 6) and data.years == (2027, 2028, 2029)


def test_the_2027_case_skips_new_years_day() -> None:
    bound = bound_calendar(OFFICIAL, None, this_year=2026)
    assert bound.is_provisional(D(2027, 1, 1)) and not bound.is_provisional(D(2026, 12, 31))
    due = compute_due(D(2026, 12, 21), 10, "working", calendar=bound.effective)
    assert due == D(2027, 1, 5)  # not 2027-01-04: 元旦 is no working day
    assert bound.span_provisional(D(2026, 12, 21), due)
    assert not bound.span_provisional(D(2026, 12, 1), D(2026, 12, 18))


def truncated(last: int) -> BoundCalendar:
    """The calendar as a node saw it before the notice for ``last + 1`` came out."""
    data = CalendarData(
        years=tuple(y for y in OFFICIAL.years if y <= last),
        holidays=tuple(d for d in OFFICIAL.holidays if d.year <= last),
        workdays=tuple(d for d in OFFICIAL.workdays if d.year <= last),
    )
    return bound_calendar(data, None, this_year=last)


@pytest.mark.parametrize("year", [y for y in KNOWN if y + 1 in OFFICIAL.years])
def test_the_year_boundary(year: int) -> None:
    """Errands accepted in the last working weeks of a year, before next year's notice is out.

    The provisional due never falls on a statutory holiday of the new year, is never earlier than a
    plain-weekends guess would make it (holidays only push it), and is marked 暂定; once the notice is
    known the recomputed due is exactly the official one.
    """
    before = truncated(year)
    official = bound_calendar(OFFICIAL, None, this_year=year)
    weekends_only = CalendarData(years=(year, year + 1), holidays=(), workdays=())
    plain = bound_calendar(weekends_only, None, this_year=year).official
    start = D(year, 12, 31) - timedelta(days=21)
    while start <= D(year, 12, 31):
        for limit in (1, 3, 5, 10, 20, 30):
            due = compute_due(start, limit, "working", calendar=before.effective)
            if due.year == year:
                assert not before.span_provisional(start, due)
                continue
            assert before.span_provisional(start, due), (start, limit)
            assert due not in statutory_holidays(due.year)
            assert due >= compute_due(start, limit, "working", calendar=plain)
            assert not official.span_provisional(
                start, compute_due(start, limit, "working", calendar=official.effective)
            )
        start += timedelta(days=1)
