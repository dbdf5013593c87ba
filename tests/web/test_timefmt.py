"""Screens show China Standard Time and "how long ago", never seconds since the epoch."""

from __future__ import annotations

from datetime import UTC, datetime

from sanji.bilingual import Pair
from sanji.web.timefmt import ago, ago_pair, cst

NOON_CST = datetime(2026, 12, 5, 4, 0, tzinfo=UTC).timestamp()  # 12:00 in Beijing


def test_cst_is_beijing_time_whatever_the_machine() -> None:
    assert cst(NOON_CST) == "2026-12-05 12:00"
    assert cst(datetime(2026, 12, 31, 16, 30, tzinfo=UTC).timestamp()) == "2027-01-01 00:30"  # the next day there
    assert cst(None) == "—" and cst("x") == "—" and cst(10**30) == "—"


def test_ago_reads_like_a_person_says_it() -> None:
    assert ago(NOON_CST, now=NOON_CST + 20) == "刚刚 just now"
    assert ago(NOON_CST, now=NOON_CST + 180) == "3 分钟前 3 min ago"
    assert ago(NOON_CST, now=NOON_CST + 2 * 3600 + 5) == "2 小时前 2 h ago"
    assert ago(NOON_CST, now=NOON_CST + 3 * 86400) == "3 天前 3 d ago"
    assert ago(NOON_CST, now=NOON_CST + 30 * 86400) == "2026-12-05 12:00"  # a month on: the date itself
    assert ago(NOON_CST + 600, now=NOON_CST) == "2026-12-05 12:10"  # a clock ahead: when, not "in the future"
    assert ago(0) == "—" and ago("x") == "—"


def test_ago_as_a_pair_for_the_reader_s_order() -> None:
    assert ago_pair(NOON_CST, now=NOON_CST + 20) == Pair("刚刚", "just now")
    assert ago_pair(NOON_CST, now=NOON_CST + 2 * 86400) == Pair("2 天前", "2 d ago")
    assert ago_pair(0) == "—" and ago_pair(NOON_CST, now=NOON_CST + 8 * 86400) == cst(NOON_CST)
