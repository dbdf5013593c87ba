"""The provisional (暂定) working-day calendar: the statutory holidays alone, for years not yet published.

The State Council's yearly notice (国务院办公厅关于某年部分节假日安排的通知) comes out around
November; until the county publishes it, deadlines reaching into the next year must still be
dated, and never on plain weekends (元旦 would count as a working day). So a year nobody has
published is computed from 《全国年节及纪念日放假办法》 as amended with effect from 2025-01-01,
article 2 (全体公民放假的节日):

* 元旦 1 day (1 January); 春节 4 days (农历除夕、正月初一至初三); 清明节 1 day (the day of the
  清明 solar term); 劳动节 2 days (1–2 May); 端午节 1 day (农历五月初五); 中秋节 1 day (农历八月
  十五); 国庆节 3 days (1–3 October);
* article 6: a holiday for all citizens that falls on a Saturday or Sunday is made up (补假) on
  the next working day. Where two holidays fall on the same day (中秋 on 1–3 October) nothing
  is made up: the statute says nothing, and the notice will decide.

What is *not* guessed: the notice's adjusted working days (调休上班 weekend days) and the days it
moves next to a holiday to make a long break. Those are political choices made each year; a
provisional year has weekends off and the statutory days off, nothing more. Every date computed
on it is shown as 暂定 until the county publishes the year (``sanji calendar publish``).

Lunar dates and the 清明 solar term come from ``lunar-python`` (6tail's lunar library, also the
Java/JavaScript ``lunar``), never from astronomy written here.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

from lunar_python import Lunar

from protocol.deadlines import CalendarData

__all__ = ["FIRST_YEAR", "LAST_YEAR", "provisional_data", "statutory_holidays"]

FIRST_YEAR = 1901  # the lunar library's tables are exact over this span; outside it nothing is computed
LAST_YEAR = 2099
WEEKEND = (5, 6)


def _solar(lunar: object) -> date:
    solar = lunar.getSolar()  # type: ignore[attr-defined]
    return date(int(solar.getYear()), int(solar.getMonth()), int(solar.getDay()))


def _lunar_day(year: int, month: int, day: int) -> date:
    """The Gregorian date of a lunar month/day in the lunar year that begins in Gregorian ``year``."""
    return _solar(Lunar.fromYmd(year, month, day))


def _qingming(year: int) -> date:
    table = Lunar.fromYmd(year, 1, 1).getJieQiTable()
    solar = table["清明"]
    found = date(int(solar.getYear()), int(solar.getMonth()), int(solar.getDay()))
    if found.year != year:  # the lunar year's table always holds its own spring; a guard, not a branch
        raise ValueError(f"the lunar library placed 清明 of {year} on {found.isoformat()}")
    return found


@lru_cache(maxsize=256)
def statutory_holidays(year: int) -> dict[date, str]:
    """Every statutory day off of ``year`` with its festival's name, made-up days (补假) included.

    春节 of the lunar year that begins in ``year`` is counted in ``year``; its 除夕 may fall in
    late January of the same Gregorian year (never in the previous one for 1901–2099).
    """
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"the provisional calendar covers {FIRST_YEAR}-{LAST_YEAR}, not {year}")
    new_year = _lunar_day(year, 1, 1)
    days: dict[date, str] = {}

    def off(d: date, name: str) -> None:
        days[d] = f"{days[d]}、{name}" if d in days else name

    off(date(year, 1, 1), "元旦")
    for d in (new_year - timedelta(days=1), new_year, new_year + timedelta(days=1), new_year + timedelta(days=2)):
        off(d, "春节")
    off(_qingming(year), "清明节")
    for d in (date(year, 5, 1), date(year, 5, 2)):
        off(d, "劳动节")
    off(_lunar_day(year, 5, 5), "端午节")
    off(_lunar_day(year, 8, 15), "中秋节")
    for d in (date(year, 10, 1), date(year, 10, 2), date(year, 10, 3)):
        off(d, "国庆节")
    made_up: dict[date, str] = {}
    for d in sorted(days):
        if d.weekday() not in WEEKEND:
            continue
        # Article 6: made up on the next day that is neither a weekend nor already a day off.
        sub = d + timedelta(days=1)
        while sub.weekday() in WEEKEND or sub in days or sub in made_up:
            sub += timedelta(days=1)
        made_up[sub] = f"{days[d]}补假"
    days.update(made_up)
    # 除夕 of a lunar year starting in early February may not spill into the next Gregorian year,
    # and a made-up day after 31 December would: keep only this year's days (the next year's own
    # computation does not see this year's holidays, so a late-December make-up is dropped, not moved).
    return {d: name for d, name in days.items() if d.year == year}


def provisional_data(years: range | tuple[int, ...]) -> CalendarData:
    """The provisional calendar of ``years``: statutory days off, normal weekends, no adjusted working days."""
    chosen = tuple(sorted({y for y in years if FIRST_YEAR <= y <= LAST_YEAR}))
    holidays = sorted(d for y in chosen for d in statutory_holidays(y))
    return CalendarData(years=chosen, holidays=tuple(holidays), workdays=(), weekend=WEEKEND)
