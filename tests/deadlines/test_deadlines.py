"""限时办结 on the official calendar: protocol.deadlines with sanji.workcalendar's real data.

Every date asserted here was checked by hand against the State Council notices as encoded in
chinesecalendar 1.11.0:

* 2025 (国务院办公厅关于2025年部分节假日安排的通知): 国庆节、中秋节 10月1日至8日放假调休，
  9月28日（周日）、10月11日（周六）上班.
* 2026 (国务院办公厅关于2026年部分节假日安排的通知): 春节 2月15日（周日）至23日（周一）
  放假调休，2月14日（周六）、2月28日（周六）上班; 中秋节 9月25日至27日; 国庆节 10月1日至
  7日放假调休，9月20日（周日）、10月10日（周六）上班.

Warning rules: seed 000_7d0a7b4eb83de15a.txt ("系统会提前3天通过电脑提示…一旦超出了规定时限…
超时限的办事栏变红"), seed 003_612ca1eba8e874e0.txt ("临近承诺时限时,系统会发出红、黄色预警"),
seed 001_74fbf89f6caad6fd.txt ("受理办件超过承诺时限，每超一天扣2分"; 补正 under 容缺办理).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.calendar_doc import check_calendar
from protocol.deadlines import (
    CalendarData,
    CalendarInvalid,
    CalendarUnknown,
    DeadlineStatus,
    WorkCalendar,
    business_today,
    compute_due,
    deadline_status,
    paused_days,
    stage_due,
)
from protocol.errors import SanjiError
from sanji.workcalendar import bound_calendar, calendar_problems, library_data, load_calendar, read_calendar_file

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "calendar.example.toml"
CAL = load_calendar()
D = date


# -- the library's data ---------------------------------------------------------------------


def test_library_knows_2004_to_2026() -> None:
    assert CAL.known_years == tuple(range(2004, 2027))
    assert library_data().years == CAL.known_years


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (D(2026, 2, 13), True),  # Friday before the break
        (D(2026, 2, 14), True),  # Saturday, 调休上班
        (D(2026, 2, 15), False),  # 腊月二十八, first day off
        (D(2026, 2, 17), False),  # 春节
        (D(2026, 2, 23), False),  # Monday, last day off
        (D(2026, 2, 24), True),
        (D(2026, 2, 28), True),  # Saturday, 调休上班
        (D(2026, 3, 1), False),  # plain Sunday
        (D(2025, 9, 28), True),  # Sunday, 调休上班
        (D(2025, 10, 8), False),
        (D(2025, 10, 11), True),  # Saturday, 调休上班
        (D(2026, 9, 20), True),  # Sunday, 调休上班
        (D(2026, 9, 25), False),  # 中秋节, a Friday
        (D(2026, 10, 7), False),
        (D(2026, 10, 10), True),  # Saturday, 调休上班
    ],
)
def test_official_days(day: date, working: bool) -> None:
    assert CAL.is_working_day(day) is working


# -- working-day limits ----------------------------------------------------------------------


def test_spring_festival_2026_accepted_the_friday_before() -> None:
    # day 1 is the adjusted Saturday 2-14, days 2..5 are 2-24..2-27 after the nine days off
    assert CAL.add_working_days(D(2026, 2, 13), 5) == D(2026, 2, 27)
    assert compute_due(D(2026, 2, 13), 5, "working", calendar=CAL) == D(2026, 2, 27)


def test_spring_festival_2026_accepted_on_the_adjusted_saturday_counts_the_next_one() -> None:
    # accepted 2-14 (the last working day before the break): 2-24, 25, 26, 27 and the adjusted Saturday 2-28
    assert CAL.add_working_days(D(2026, 2, 14), 5) == D(2026, 2, 28)
    assert CAL.add_working_days(D(2026, 2, 14), 1) == D(2026, 2, 24)


def test_accepted_during_the_break_counts_from_the_first_working_day() -> None:
    assert CAL.add_working_days(D(2026, 2, 17), 1) == D(2026, 2, 24)
    assert CAL.add_working_days(D(2026, 2, 15), 5) == D(2026, 2, 28)


def test_national_day_2025() -> None:
    assert CAL.add_working_days(D(2025, 9, 26), 1) == D(2025, 9, 28)  # the adjusted Sunday
    assert CAL.add_working_days(D(2025, 9, 26), 3) == D(2025, 9, 30)
    assert CAL.add_working_days(D(2025, 9, 26), 5) == D(2025, 10, 10)
    assert CAL.add_working_days(D(2025, 9, 30), 3) == D(2025, 10, 11)  # the adjusted Saturday
    assert CAL.add_working_days(D(2025, 9, 30), 20) == D(2025, 11, 4)


def test_national_day_and_mid_autumn_2026() -> None:
    assert CAL.add_working_days(D(2026, 9, 18), 1) == D(2026, 9, 20)  # the adjusted Sunday
    assert CAL.add_working_days(D(2026, 9, 24), 1) == D(2026, 9, 28)  # skips 中秋 9-25..27
    assert CAL.add_working_days(D(2026, 9, 30), 3) == D(2026, 10, 10)  # 10-8, 10-9, adjusted Saturday


def test_start_day_never_counts_and_zero_is_the_same_day() -> None:
    assert CAL.add_working_days(D(2026, 3, 2), 1) == D(2026, 3, 3)
    assert CAL.add_working_days(D(2026, 3, 2), 0) == D(2026, 3, 2)
    assert CAL.add_working_days(D(2026, 3, 1), 0) == D(2026, 3, 1)  # 即办件 on a Sunday is due that day
    with pytest.raises(ValueError):
        CAL.add_working_days(D(2026, 3, 2), -1)


def test_working_days_between_is_half_open_and_antisymmetric() -> None:
    assert CAL.working_days_between(D(2026, 2, 13), D(2026, 2, 27)) == 5
    assert CAL.working_days_between(D(2026, 2, 27), D(2026, 2, 13)) == -5
    assert CAL.working_days_between(D(2026, 2, 16), D(2026, 2, 16)) == 0
    assert CAL.working_days_between(D(2026, 2, 15), D(2026, 2, 23)) == 0  # the whole break
    assert CAL.working_days_between(D(2025, 12, 31), D(2026, 1, 4)) == 1  # across the year: the adjusted Sunday


# -- calendar-day limits ---------------------------------------------------------------------


def test_calendar_days_roll_past_a_holiday() -> None:
    assert CAL.add_calendar_days(D(2025, 9, 26), 7, roll_forward=False) == D(2025, 10, 3)
    assert CAL.add_calendar_days(D(2025, 9, 26), 7) == D(2025, 10, 9)
    assert compute_due(D(2025, 9, 26), 7, "calendar", calendar=CAL) == D(2025, 10, 9)


def test_calendar_days_ending_on_an_adjusted_working_day_stay() -> None:
    assert compute_due(D(2026, 1, 15), 30, "calendar", calendar=CAL) == D(2026, 2, 14)
    assert compute_due(D(2026, 3, 2), 10, "calendar", calendar=CAL) == D(2026, 3, 12)


# -- pauses, extensions, two clocks --------------------------------------------------------


def test_supplement_pause_moves_the_deadline_by_the_paused_working_days() -> None:
    accepted = D(2026, 2, 9)
    assert compute_due(accepted, 5, "working", calendar=CAL) == D(2026, 2, 14)
    # 补正 asked 2-11 (two days used: 2-10, 2-11), materials arrive 2-25: 2-12, 13, 14, 24, 25 paused
    pause = (D(2026, 2, 11), D(2026, 2, 25))
    assert paused_days([pause], "working", calendar=CAL) == 5
    # three days left from 2-25: 2-26, 2-27 and the adjusted Saturday 2-28
    assert compute_due(accepted, 5, "working", [pause], calendar=CAL) == D(2026, 2, 28)


def test_open_pause_moves_the_deadline_day_by_day() -> None:
    accepted = D(2026, 3, 2)
    dues = [
        compute_due(accepted, 5, "working", [(D(2026, 3, 4), today)], calendar=CAL)
        for today in (D(2026, 3, 4), D(2026, 3, 5), D(2026, 3, 6), D(2026, 3, 7))
    ]
    assert dues == [D(2026, 3, 9), D(2026, 3, 10), D(2026, 3, 11), D(2026, 3, 11)]  # Saturday does not count


def test_overlapping_pauses_count_once_in_any_order() -> None:
    accepted = D(2026, 3, 2)
    a, b = (D(2026, 3, 3), D(2026, 3, 6)), (D(2026, 3, 5), D(2026, 3, 10))
    assert paused_days([a, b], "working", calendar=CAL) == paused_days([b, a], "working", calendar=CAL) == 5
    assert compute_due(accepted, 5, "working", [a, b], calendar=CAL) == compute_due(
        accepted, 5, "working", [(D(2026, 3, 3), D(2026, 3, 10))], calendar=CAL
    )


def test_bad_pauses_are_refused() -> None:
    with pytest.raises(ValueError, match="before it stopped"):
        compute_due(D(2026, 3, 2), 5, "working", [(D(2026, 3, 6), D(2026, 3, 5))], calendar=CAL)
    with pytest.raises(ValueError, match="before the clock started"):
        compute_due(D(2026, 3, 2), 5, "working", [(D(2026, 2, 27), D(2026, 3, 5))], calendar=CAL)


def test_calendar_limit_pauses_count_calendar_days() -> None:
    pause = (D(2026, 3, 4), D(2026, 3, 9))
    assert paused_days([pause], "calendar", calendar=CAL) == 5
    assert compute_due(D(2026, 3, 2), 10, "calendar", [pause], calendar=CAL) == D(2026, 3, 17)


def test_extension_adds_working_days() -> None:
    # 行政许可法 第四十二条: twenty working days, extended by ten with the head's approval
    assert compute_due(D(2025, 9, 30), 20, "working", calendar=CAL) == D(2025, 11, 4)
    assert compute_due(D(2025, 9, 30), 20, "working", extensions_days=10, calendar=CAL) == D(2025, 11, 18)
    with pytest.raises(ValueError):
        compute_due(D(2025, 9, 30), 20, "working", extensions_days=-1, calendar=CAL)


def test_whole_errand_clock_never_resets_stage_clock_does() -> None:
    accepted = D(2025, 9, 30)
    whole = compute_due(accepted, 20, "working", calendar=CAL)
    review = stage_due(D(2025, 10, 20), 3, "working", calendar=CAL)  # 审核 starts 10-20
    approve = stage_due(D(2025, 10, 31), 3, "working", calendar=CAL)  # 批准 starts 10-31
    assert (whole, review, approve) == (D(2025, 11, 4), D(2025, 10, 23), D(2025, 11, 5))
    assert approve > whole  # a stage may be in time while the whole errand is not


def test_unit_is_checked() -> None:
    with pytest.raises(ValueError, match="unit"):
        compute_due(D(2026, 3, 2), 5, "hours", calendar=CAL)  # type: ignore[arg-type]


# -- warnings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "level", "left", "over"),
    [
        (D(2026, 2, 13), "normal", 5, 0),
        (D(2026, 2, 16), "normal", 4, 0),  # inside the break
        (D(2026, 2, 24), "normal", 3, 0),
        (D(2026, 2, 25), "yellow", 2, 0),
        (D(2026, 2, 26), "yellow", 1, 0),
        (D(2026, 2, 27), "yellow", 0, 0),  # the due day is still in time
        (D(2026, 2, 28), "red", 0, 1),  # the adjusted Saturday is a day over
        (D(2026, 3, 1), "red", 0, 1),  # Sunday adds nothing
        (D(2026, 3, 2), "red", 0, 2),
        (D(2026, 3, 9), "red", 0, 7),
    ],
)
def test_yellow_red_and_days_over(today: date, level: str, left: int, over: int) -> None:
    status = deadline_status(D(2026, 2, 27), today, CAL)
    assert status == DeadlineStatus(level=level, working_days_left=left, working_days_over=over)  # type: ignore[arg-type]


def test_three_days_warning_of_seed_000() -> None:
    assert deadline_status(D(2026, 2, 27), D(2026, 2, 24), CAL, warn_days=3).level == "yellow"
    assert deadline_status(D(2026, 2, 27), D(2026, 2, 25), CAL, warn_days=0).level == "normal"
    with pytest.raises(ValueError):
        deadline_status(D(2026, 2, 27), D(2026, 2, 25), CAL, warn_days=-1)


def test_past_due_over_a_holiday_is_red_with_no_working_day_over_yet() -> None:
    assert deadline_status(D(2025, 9, 30), D(2025, 10, 5), CAL) == DeadlineStatus(
        level="red", working_days_left=0, working_days_over=0
    )
    assert deadline_status(D(2025, 9, 30), D(2025, 10, 9), CAL).working_days_over == 1


def test_status_is_the_same_on_every_node() -> None:
    shipped = msgspec.json.decode(msgspec.json.encode(CAL.to_data()), type=CalendarData)
    other = WorkCalendar.from_data(shipped)
    assert other == CAL and other.fingerprint == CAL.fingerprint
    due = compute_due(D(2026, 2, 13), 5, "working", calendar=other)
    one = deadline_status(due, D(2026, 2, 28), CAL)
    two = deadline_status(due, D(2026, 2, 28), other)
    assert msgspec.json.encode(one) == msgspec.json.encode(two)
    assert msgspec.json.decode(msgspec.json.encode(one)) == {
        "level": "red",
        "working_days_left": 0,
        "working_days_over": 1,
    }


# -- unknown years ------------------------------------------------------------------------------


def test_unknown_year_raises_never_guesses() -> None:
    with pytest.raises(CalendarUnknown) as info:
        CAL.is_working_day(D(2027, 1, 4))
    err = info.value
    assert isinstance(err, SanjiError)
    assert err.year == 2027 and not err.retryable
    assert "2027" in err.hint and "override" in err.hint
    assert err.as_dict()["error"] == "calendar_unknown"
    assert "2004-2026" in err.message


def test_unknown_year_reached_while_counting() -> None:
    assert CAL.add_working_days(D(2026, 12, 24), 4) == D(2026, 12, 30)
    with pytest.raises(CalendarUnknown):
        CAL.add_working_days(D(2026, 12, 28), 5)
    with pytest.raises(CalendarUnknown):
        CAL.add_working_days(D(2003, 12, 31), 1)
    with pytest.raises(CalendarUnknown):
        deadline_status(D(2026, 12, 31), D(2027, 1, 4), CAL)
    with pytest.raises(CalendarUnknown):
        compute_due(D(2026, 12, 25), 10, "calendar", calendar=CAL)  # 2027-01-04: is it a day off?
    assert not CAL.knows(D(2027, 1, 1)) and CAL.knows(D(2026, 12, 31))


# -- the county's calendar file -------------------------------------------------------------------

HEADER = 'county = "示范县"\nversion = 1\npublished_at = "2026-11-20"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendar.toml"
    path.write_text(text, encoding="utf-8")
    return path


def official(tmp_path: Path, text: str) -> WorkCalendar:
    doc = read_calendar_file(write(tmp_path, HEADER + text))
    assert check_calendar(doc) == []
    return bound_calendar(library_data(), doc, this_year=2026).official


def test_county_calendar_adds_a_year(tmp_path: Path) -> None:
    # a made-up 2027 arrangement, for the test only
    cal = official(
        tmp_path,
        '[year.2027]\nsource = "test"\nholidays = [2027-01-01, "2027-01-02", 2027-01-03, 2027-02-08, 2027-10-01]\n'
        "workdays = [2027-02-06]\n",
    )
    assert cal.known_years[-1] == 2027 and cal != CAL
    assert cal.add_working_days(D(2026, 12, 31), 1) == D(2027, 1, 4)
    assert cal.is_working_day(D(2027, 2, 6)) and not cal.is_working_day(D(2027, 2, 8))
    assert compute_due(D(2026, 12, 28), 5, "working", calendar=cal) == D(2027, 1, 5)
    # the library's years are untouched
    assert cal.add_working_days(D(2026, 2, 13), 5) == D(2026, 2, 27)
    with pytest.raises(CalendarUnknown):
        cal.is_working_day(D(2028, 1, 3))


def test_county_calendar_replaces_the_library_year(tmp_path: Path) -> None:
    cal = official(tmp_path, "[year.2026]\nholidays = [2026-01-01, 2026-05-01, 2026-10-01, 2026-10-02]\n")
    assert cal.is_working_day(D(2026, 2, 16))  # the library's Spring Festival is gone
    assert not cal.is_working_day(D(2026, 2, 14))  # and so is its adjusted Saturday
    assert cal.is_working_day(D(2025, 10, 11))  # other years stay the library's


def test_example_calendar_file_republishes_2026_unchanged() -> None:
    doc = read_calendar_file(EXAMPLE)
    assert [e.year for e in doc.years] == [2026] and calendar_problems(doc) == []
    assert bound_calendar(library_data(), doc, this_year=2026).official == CAL


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[year.2027]\nholidays = [2026-12-31]\n", "is not in 2027"),
        ("[year.2027]\nholidays = [2027-02-06]\nworkdays = [2027-02-06]\n", "both a holiday and a working day"),
        ("[year.2027]\nholidays = []\nworkdays = [2027-02-08]\n", "already a working day"),
        ("[year.2027]\nholidays = [2027-02-08]\n", "2027-01-01 \\(元旦\\) is a statutory holiday"),
        ("[year.2027]\nholidays = [2027-01-01, 2027-05-03, 2027-10-01]\n", "2027-02-08 \\(春节\\)"),
    ],
)
def test_wrong_calendars_are_listed_as_problems(tmp_path: Path, text: str, message: str) -> None:
    problems = calendar_problems(read_calendar_file(write(tmp_path, HEADER + text)))
    assert any(re.search(message, p) for p in problems), problems


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEADER + '[year.2027]\nholidays = ["2027-13-01"]\n', "not a YYYY-MM-DD date"),
        (HEADER + "[year.2027]\nholidays = [1]\n", "is not a date"),
        (HEADER + "[year.2027]\nworkdays = []\n", "'holidays' is required"),
        (HEADER + "[year.2027]\nholidays = []\nextra = 1\n", "unexpected key"),
        (HEADER + "[year.27]\nholidays = []\n", "four digits"),
        (HEADER + "[years.2027]\nholidays = []\n", "unexpected top-level key"),
        ('county = "示范县"\npublished_at = "2026-11-20"\n', "version must be a whole number"),
        ("[year.2027\n", "not valid TOML"),
    ],
)
def test_bad_calendar_files_are_refused_with_a_hint(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CalendarInvalid, match=message) as info:
        read_calendar_file(write(tmp_path, text))
    assert isinstance(info.value, SanjiError) and info.value.hint


def test_missing_calendar_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CalendarInvalid, match="does not exist"):
        read_calendar_file(tmp_path / "nope.toml")


def test_calendar_data_is_checked() -> None:
    with pytest.raises(CalendarInvalid, match="not a known year"):
        WorkCalendar(years=[2026], holidays=[D(2027, 1, 1)], workdays=[])
    with pytest.raises(CalendarInvalid, match="both"):
        WorkCalendar(years=[2026], holidays=[D(2026, 2, 14)], workdays=[D(2026, 2, 14)])
    with pytest.raises(CalendarInvalid, match="already a working day"):
        WorkCalendar(years=[2026], holidays=[], workdays=[D(2026, 2, 16)])
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"years": [2026], "holidays": ["x"], "workdays": []}', type=CalendarData)


# -- the business day ---------------------------------------------------------------------------


def test_business_today_turns_at_utc_16() -> None:
    utc = UTC
    assert business_today(datetime(2026, 2, 13, 15, 59, 59, tzinfo=utc)) == D(2026, 2, 13)
    assert business_today(datetime(2026, 2, 13, 16, 0, 0, tzinfo=utc)) == D(2026, 2, 14)
    assert business_today(datetime(2025, 12, 31, 16, 0, tzinfo=utc)) == D(2026, 1, 1)
    other_zone = timezone(timedelta(hours=-5))
    assert business_today(datetime(2026, 2, 13, 11, 0, tzinfo=other_zone)) == D(2026, 2, 14)  # 16:00 UTC


def test_business_today_with_a_week_slow_clock() -> None:
    local = datetime(2026, 2, 6, 16, 30, tzinfo=UTC)  # the node thinks it is 2-7 00:30 in China
    week = 7 * 86400
    assert business_today(local) == D(2026, 2, 7)
    assert business_today(local, offset_seconds=week) == D(2026, 2, 14)  # the county's day
    assert business_today(local, offset_seconds=-week) == D(2026, 1, 31)
    assert business_today(local, offset_seconds=-1800.5) == D(2026, 2, 6)  # half an hour back crosses midnight


def test_business_today_refuses_naive_times_and_bad_offsets() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        business_today(datetime(2026, 2, 13, 16, 0))
    with pytest.raises(ValueError, match="finite"):
        business_today(datetime(2026, 2, 13, 16, 0, tzinfo=UTC), float("nan"))


# -- properties -----------------------------------------------------------------------------------

SPAN = st.dates(min_value=D(2004, 1, 1), max_value=D(2026, 10, 31))


@settings(max_examples=300, deadline=None)
@given(start=SPAN, n=st.integers(min_value=1, max_value=40))
def test_add_working_days_lands_on_a_working_day_n_days_on(start: date, n: int) -> None:
    due = CAL.add_working_days(start, n)
    assert CAL.is_working_day(due)
    assert CAL.working_days_between(start, due) == n
    assert CAL.working_days_between(due, start) == -n
    assert CAL.add_working_days(start, n + 1) > due
    assert CAL.working_days_between(start, due - timedelta(days=1)) == n - 1


@settings(max_examples=200, deadline=None)
@given(due=SPAN, today=SPAN, warn=st.integers(min_value=0, max_value=5))
def test_status_agrees_with_counting(due: date, today: date, warn: int) -> None:
    status = deadline_status(due, today, CAL, warn_days=warn)
    if today > due:
        assert status.level == "red" and status.working_days_left == 0
        assert status.working_days_over == CAL.working_days_between(due, today) >= 0
    else:
        assert status.working_days_over == 0
        assert status.working_days_left == CAL.working_days_between(today, due) >= 0
        assert (status.level == "yellow") == (status.working_days_left <= warn)


@settings(max_examples=150, deadline=None)
@given(
    accepted=st.dates(min_value=D(2025, 1, 1), max_value=D(2026, 6, 30)),
    limit=st.integers(min_value=1, max_value=20),
    stop=st.integers(min_value=0, max_value=30),
    length=st.integers(min_value=0, max_value=30),
)
def test_a_pause_never_brings_the_deadline_forward(accepted: date, limit: int, stop: int, length: int) -> None:
    pause = (accepted + timedelta(days=stop), accepted + timedelta(days=stop + length))
    plain = compute_due(accepted, limit, "working", calendar=CAL)
    paused = compute_due(accepted, limit, "working", [pause], calendar=CAL)
    assert paused >= plain
    assert CAL.working_days_between(plain, paused) == paused_days([pause], "working", calendar=CAL)


# -- purity ---------------------------------------------------------------------------------------


def test_protocol_deadlines_is_pure() -> None:
    code = (
        "import json, sys, protocol.deadlines\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('chinese_calendar', 'sanji', 'sqlalchemy', 'litestar', 'httpx', 'tomllib'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []
