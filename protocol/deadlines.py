"""限时办结: errand deadlines on the official Chinese working-day calendar.

Pure: the standard library and msgspec only, no I/O. The calendar is *data* (which
days are off, which weekend days are worked) handed in by the caller — a node builds
it with ``sanji.workcalendar.load_calendar`` — so every node that holds the same
calendar computes the same deadline and the same warning level from the same inputs.

Rules (see shared/DOMAIN.md, "Rules that software enforces", and the seeds):

* Limits are promised in working days (承诺时限, 限时办结制: seeds 001 and 003) on the
  official calendar: the State Council's yearly notice (国务院办公厅关于某年部分节假日
  安排的通知) makes some weekdays holidays and some weekend days working days (调休上班).
  A year the calendar has no data for is never guessed as "plain weekends": asking
  about it raises :class:`CalendarUnknown`.
* Counting (:meth:`WorkCalendar.add_working_days`): the day of acceptance (受理之日)
  does not count; the deadline is the n-th working day *after* it, and the whole of
  that day is still in time. Accepting on a non-working day changes nothing: day 1 is
  the first working day after it.
* Calendar-day limits (:meth:`WorkCalendar.add_calendar_days`) also start the day
  after acceptance; when the last day falls on a day off, the deadline moves to the
  first working day after it (民法典 第二百零三条: 期间的最后一日是法定休假日的，以法定
  休假日结束的次日为期间的最后一日).
* Two clocks (DOMAIN.md): the whole-errand deadline is anchored at acceptance and never
  resets; a per-stage deadline is the same computation anchored at the stage's start
  (:func:`stage_due`).
* Pauses: while the applicant is asked to supplement materials (补正 / 容缺, seed 001:
  "一次性告知需补正、补齐的材料以及补齐的时限") the clock stops, from the request to the
  materials' arrival, and the deadline moves by the paused days (:func:`compute_due`).
* Extensions (延长, e.g. 行政许可法 第四十二条: 二十日 + 经负责人批准延长十日) add days in
  the limit's own unit.
* Warnings (:func:`deadline_status`): yellow as the deadline nears — seed 000 warns
  "提前3天", seed 003 raises "红、黄色预警" and texts the handling department's leader —
  and red once it has passed ("一旦超出了规定时限…超时限的办事栏变红", seed 000), with
  the working days over counted for assessment ("受理办件超过承诺时限，每超一天扣2分",
  seed 001).
* The business day is the date in China Standard Time (UTC+8, no daylight saving), on
  the county's clock (:func:`business_today`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Literal

import msgspec

from protocol.errors import SanjiError

__all__ = [
    "CHINA_STANDARD_TIME",
    "UNIT_NAMES",
    "CalendarData",
    "CalendarError",
    "CalendarInvalid",
    "CalendarUnknown",
    "DeadlineStatus",
    "Level",
    "Unit",
    "WorkCalendar",
    "business_today",
    "compute_due",
    "deadline_status",
    "paused_days",
    "push_due",
    "stage_due",
]

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
"""UTC+8. China has kept no daylight saving time since 1991, so a fixed offset is exact."""

Unit = Literal["working", "calendar"]
UNIT_NAMES: dict[str, tuple[str, str]] = {
    "working": ("个工作日", "working days"),
    "calendar": ("个自然日", "calendar days"),
}
"""How a count of days in each unit is said (Chinese, English): notices, SMS and the provincial export alike."""
Level = Literal["normal", "yellow", "red"]

_ONE_DAY = timedelta(days=1)


class CalendarError(SanjiError):
    code = "calendar_error"
    default_hint = "The working-day calendar cannot answer this; check the county's calendar data."


class CalendarUnknown(CalendarError):
    """The calendar holds no official data for the year asked about."""

    code = "calendar_unknown"

    def __init__(self, year: int, known_years: Sequence[int]) -> None:
        span = f"{min(known_years)}-{max(known_years)}" if known_years else "none"
        super().__init__(
            f"the working-day calendar has no data for {year} (known years: {span})",
            hint=(
                f"Publish the official arrangement for {year} (国务院办公厅关于{year}年部分节假日安排的通知) "
                "in the county's calendar override file, or upgrade the calendar library; "
                "deadlines are never guessed from plain weekends."
            ),
        )
        self.year = year


class CalendarInvalid(CalendarError, ValueError):
    """The calendar data contradict themselves (a day both off and worked, a day outside its year...)."""

    code = "calendar_invalid"
    default_hint = "Correct the calendar data: every listed day belongs to a known year and is either off or worked."


class CalendarData(msgspec.Struct, frozen=True, kw_only=True):
    """A calendar as plain, canonically ordered data: what a county publishes to its nodes."""

    years: tuple[int, ...]
    holidays: tuple[date, ...]
    workdays: tuple[date, ...]
    weekend: tuple[int, ...] = (5, 6)


class WorkCalendar:
    """The official working-day calendar for a set of known years.

    ``holidays``  days off (法定节假日 and the days moved next to them); weekend days may
                  be listed too, it changes nothing.
    ``workdays``  adjusted working days (调休上班): weekend days that are worked.
    ``weekend``   the normal weekly days off, as ``date.weekday()`` numbers (Saturday 5, Sunday 6).
    ``years``     the years whose official arrangement the data hold. Asking about any other
                  year raises :class:`CalendarUnknown`.

    Immutable; equal calendars have equal :attr:`fingerprint`.
    """

    __slots__ = ("_fingerprint", "_holidays", "_weekend", "_workdays", "_years")

    def __init__(
        self,
        *,
        years: Iterable[int],
        holidays: Iterable[date],
        workdays: Iterable[date],
        weekend: Iterable[int] = (5, 6),
    ) -> None:
        self._years = frozenset(years)
        self._holidays = frozenset(holidays)
        self._workdays = frozenset(workdays)
        self._weekend = frozenset(weekend)
        self._validate()
        self._fingerprint = hashlib.sha256(msgspec.json.encode(self.to_data())).hexdigest()

    def _validate(self) -> None:
        for day in self._weekend:
            if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
                raise CalendarInvalid(f"weekend day {day!r} is not a weekday number 0 (Monday) .. 6 (Sunday)")
        for name, days in (("holiday", self._holidays), ("adjusted working day", self._workdays)):
            for d in days:
                if type(d) is not date:
                    raise CalendarInvalid(f"{name} {d!r} is not a date")
                if d.year not in self._years:
                    raise CalendarInvalid(f"{name} {d.isoformat()} lies in {d.year}, which is not a known year")
        both = sorted(self._holidays & self._workdays)
        if both:
            raise CalendarInvalid(f"{both[0].isoformat()} is listed both as a holiday and as a working day")
        for d in sorted(self._workdays):
            if d.weekday() not in self._weekend:
                raise CalendarInvalid(
                    f"adjusted working day {d.isoformat()} is a {d.strftime('%A')}, already a working day",
                    hint="List only weekend days that are worked (调休上班); is it meant to be a holiday?",
                )

    # -- data ---------------------------------------------------------------------------

    @classmethod
    def from_data(cls, data: CalendarData) -> WorkCalendar:
        return cls(years=data.years, holidays=data.holidays, workdays=data.workdays, weekend=data.weekend)

    def to_data(self) -> CalendarData:
        return CalendarData(
            years=tuple(sorted(self._years)),
            holidays=tuple(sorted(self._holidays)),
            workdays=tuple(sorted(self._workdays)),
            weekend=tuple(sorted(self._weekend)),
        )

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical data: two nodes with the same fingerprint compute the same deadlines."""
        return self._fingerprint

    @property
    def known_years(self) -> tuple[int, ...]:
        return tuple(sorted(self._years))

    @property
    def holidays(self) -> frozenset[date]:
        return self._holidays

    @property
    def workdays(self) -> frozenset[date]:
        return self._workdays

    @property
    def weekend(self) -> frozenset[int]:
        return self._weekend

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WorkCalendar):
            return NotImplemented
        return self._fingerprint == other._fingerprint

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __repr__(self) -> str:
        years = self.known_years
        span = f"{years[0]}-{years[-1]}" if years else "no years"
        return f"<WorkCalendar {span} {self._fingerprint[:12]}>"

    # -- days ---------------------------------------------------------------------------

    def knows(self, d: date) -> bool:
        """Whether the calendar holds official data for ``d``'s year."""
        return d.year in self._years

    def _require(self, d: date) -> None:
        if d.year not in self._years:
            raise CalendarUnknown(d.year, self.known_years)

    def is_working_day(self, d: date) -> bool:
        """An adjusted working day is worked; a holiday is off; otherwise the normal week decides."""
        self._require(d)
        if d in self._workdays:
            return True
        if d in self._holidays:
            return False
        return d.weekday() not in self._weekend

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after ``start``; ``start`` itself never counts.

        ``n == 0`` returns ``start`` unchanged (an on-the-spot errand, 即办件, is due the day it
        is accepted); for ``n >= 1`` the result is always a working day and
        ``working_days_between(start, result) == n``. Negative ``n`` is refused.
        """
        _check_count("n", n)
        self._require(start)
        d = start
        left = n
        while left:
            d += _ONE_DAY
            if self.is_working_day(d):
                left -= 1
        return d

    def working_days_between(self, a: date, b: date) -> int:
        """Working days in the half-open span (a, b]: ``a`` does not count, ``b`` does.

        Antisymmetric: ``working_days_between(b, a) == -working_days_between(a, b)``.
        This is the number of working days a clock started on ``a`` has run by the end of ``b``.
        """
        if b < a:
            return -self.working_days_between(b, a)
        self._require(a)
        count = 0
        d = a
        while d < b:
            d += _ONE_DAY
            if self.is_working_day(d):
                count += 1
        return count

    def next_working_day(self, d: date) -> date:
        """``d`` if it is a working day, else the first working day after it."""
        return d if self.is_working_day(d) else self.add_working_days(d, 1)

    def add_calendar_days(self, start: date, n: int, *, roll_forward: bool = True) -> date:
        """``start`` plus ``n`` calendar days (``start`` does not count).

        With ``roll_forward`` (the default, 民法典 第二百零三条) a last day that is a day off moves
        to the first working day after it; an adjusted working day (调休上班) is not a day off.
        """
        _check_count("n", n)
        self._require(start)
        end = start + timedelta(days=n)
        return self.next_working_day(end) if roll_forward else end


# -- errand deadlines ----------------------------------------------------------------------


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must not be negative (got {value})")


def _merged(pauses: Sequence[tuple[date, date]], anchor: date) -> list[tuple[date, date]]:
    spans = []
    for stopped, resumed in pauses:
        if resumed < stopped:
            raise ValueError(f"pause resumed on {resumed.isoformat()}, before it stopped on {stopped.isoformat()}")
        if stopped < anchor:
            raise ValueError(
                f"pause stopped on {stopped.isoformat()}, before the clock started on {anchor.isoformat()}"
            )
        spans.append((stopped, resumed))
    spans.sort()
    merged: list[tuple[date, date]] = []
    for stopped, resumed in spans:
        if merged and stopped <= merged[-1][1]:
            if resumed > merged[-1][1]:
                merged[-1] = (merged[-1][0], resumed)
        else:
            merged.append((stopped, resumed))
    return merged


def paused_days(
    pauses: Sequence[tuple[date, date]], unit: Unit, *, calendar: WorkCalendar, anchor: date | None = None
) -> int:
    """Days the clock stood still, in ``unit``, over the union of the pauses.

    A pause ``(stopped_on, resumed_on)`` stops the clock after ``stopped_on`` (that day has run)
    and restarts it after ``resumed_on`` (the arrival day, like the acceptance day, does not
    count): it covers the days in (stopped_on, resumed_on]. Overlapping pauses count once.
    A pause still open is passed with today as its ``resumed_on``.
    """
    if unit not in ("working", "calendar"):
        raise ValueError(f"unit must be 'working' or 'calendar', not {unit!r}")
    spans = _merged(pauses, anchor if anchor is not None else date.min)
    if unit == "working":
        return sum(calendar.working_days_between(s, r) for s, r in spans)
    return sum((r - s).days for s, r in spans)


def compute_due(
    accepted_on: date,
    limit: int,
    unit: Unit,
    pauses: Sequence[tuple[date, date]] = (),
    extensions_days: int = 0,
    *,
    calendar: WorkCalendar,
) -> date:
    """The last day (inclusive) on which the errand is still in time.

    ``limit`` and ``extensions_days`` are in ``unit``: for ``"working"`` the due day is
    ``calendar.add_working_days(accepted_on, limit + paused + extensions_days)``; for
    ``"calendar"`` it is ``accepted_on + limit + paused + extensions_days`` calendar days,
    moved past a day off. ``paused`` is :func:`paused_days` of ``pauses`` in the same unit.
    The anchor never moves: a supplement pauses the clock, it does not restart it.
    """
    _check_count("limit", limit)
    _check_count("extensions_days", extensions_days)
    total = limit + paused_days(pauses, unit, calendar=calendar, anchor=accepted_on) + extensions_days
    if unit == "working":
        return calendar.add_working_days(accepted_on, total)
    return calendar.add_calendar_days(accepted_on, total)


def push_due(due: date, days: int, unit: Unit, *, calendar: WorkCalendar) -> date:
    """``due`` moved later by ``days`` in ``unit``, the errand's limit's own: a closed pause's days
    (:func:`paused_days` in the same unit) or an extension's. A desk moves a deadline it already holds this
    way; :func:`compute_due` from the acceptance is exact where a calendar-day deadline was rolled past a day
    off before it was moved (the 暂定 correction recomputes so)."""
    _check_count("days", days)
    if unit == "working":
        return calendar.add_working_days(due, days)
    if unit == "calendar":
        return calendar.add_calendar_days(due, days)
    raise ValueError(f"unit must be 'working' or 'calendar', not {unit!r}")


def stage_due(
    stage_started_on: date,
    limit: int,
    unit: Unit,
    pauses: Sequence[tuple[date, date]] = (),
    extensions_days: int = 0,
    *,
    calendar: WorkCalendar,
) -> date:
    """The per-stage clock: :func:`compute_due` anchored at the stage's start; it resets at each stage."""
    return compute_due(stage_started_on, limit, unit, pauses, extensions_days, calendar=calendar)


class DeadlineStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where an open errand stands against its deadline on a given business day.

    ``working_days_left``  working days in (today, due]: 0 on the due day itself.
    ``working_days_over``  working days in (due, today]: 0 until past due; may stay 0 while
                           past due over a holiday, the level is red all the same.
    """

    level: Level
    working_days_left: int
    working_days_over: int


def deadline_status(due: date, today: date, calendar: WorkCalendar, *, warn_days: int = 2) -> DeadlineStatus:
    """normal; yellow once ``working_days_left <= warn_days`` (the due day included); red once past due."""
    _check_count("warn_days", warn_days)
    if today > due:
        return DeadlineStatus(
            level="red", working_days_left=0, working_days_over=calendar.working_days_between(due, today)
        )
    left = calendar.working_days_between(today, due)
    return DeadlineStatus(
        level="yellow" if left <= warn_days else "normal", working_days_left=left, working_days_over=0
    )


def business_today(now_utc: datetime, offset_seconds: float = 0) -> date:
    """Today's date in China Standard Time, on the county's clock.

    ``now_utc`` is this node's clock reading and must carry a timezone. ``offset_seconds`` is
    the measured offset of the county's clock from this node's (county minus local): a node
    whose clock is a week slow passes ``+7 * 86400``.
    """
    if now_utc.tzinfo is None or now_utc.utcoffset() is None:
        raise ValueError("now_utc must be timezone-aware (e.g. datetime.now(timezone.utc))")
    if not math.isfinite(offset_seconds):
        raise ValueError(f"offset_seconds must be finite, not {offset_seconds!r}")
    return (now_utc + timedelta(seconds=offset_seconds)).astimezone(CHINA_STANDARD_TIME).date()
