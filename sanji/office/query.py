"""Turning what a person or a script typed into a ledger filter, refusing what cannot be meant.

Shared by the JSON API, the screen and the command line, so each refuses the same things
with the same words (a ValueError, which the web layer answers with 400).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sanji.office.ledger import LedgerFilter

MAX_FIELD = 96
MAX_SPAN_DAYS = 3 * 366 + 1
FILTER_FIELDS = (
    "matter",
    "kind",
    "stage",
    "node",
    "county",
    "township",
    "window",
    "handler",
    "department",
    "level",
)


class QueryProblem(ValueError):
    """A ledger query the office cannot run: ``str()`` in English, ``message_zh`` in Chinese (the screen's)."""

    def __init__(self, message: str, *, zh: str) -> None:
        super().__init__(message)
        self.message_zh = zh


DAY_NAMES_ZH = {"from": "起始日期", "to": "截止日期"}


# The days an office asks about: a date far outside them (9999-12-31) is a typing slip, and one day past it
# overflows the date type in the period arithmetic behind a ledger (it was a logged OverflowError, a bare 400).
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)


def parse_day(value: str, name: str) -> date:
    """A day the office asks about (``from``, ``to``): a date like 2026-10-01 within ``FIRST_DAY`` .. ``LAST_DAY``.
    The one parser of the ledger's, statistics', downloads' and business reports' dates, screen, API and command."""
    label = DAY_NAMES_ZH.get(name, name)
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise QueryProblem(
            f"{name} must be a date like 2026-10-01, not {value[:40]!r}", zh=f"{label}应写作 2026-10-01 这样的日期"
        ) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise QueryProblem(
            f"{name} must fall between {FIRST_DAY} and {LAST_DAY}, not {day}",
            zh=f"{label}应在 {FIRST_DAY} 至 {LAST_DAY} 之间",
        )
    return day


def build_filter(values: Mapping[str, str], *, default_from: date, default_to: date) -> LedgerFilter:
    """A filter from plain strings; dates default to the given period; ranges over three years are refused."""
    fields: dict[str, str] = {}
    for name in FILTER_FIELDS:
        value = (values.get(name) or "").strip()
        if len(value) > MAX_FIELD:
            raise ValueError(f"{name} is longer than {MAX_FIELD} characters")
        if any(ord(ch) < 32 for ch in value):
            raise ValueError(f"{name} holds a control character")
        fields[name] = value
    start = parse_day(values["from"], "from") if values.get("from") else default_from
    end = parse_day(values["to"], "to") if values.get("to") else default_to
    if end < start:
        raise QueryProblem(f"the period ends ({end}) before it starts ({start})", zh="截止日期早于起始日期")
    if (end - start).days > MAX_SPAN_DAYS:
        raise QueryProblem(
            "a ledger covers at most three years; ask for a shorter period", zh="台账最多查询三年，请缩短时间段"
        )
    return LedgerFilter(date_from=start.isoformat(), date_to=end.isoformat(), **fields)


def quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
