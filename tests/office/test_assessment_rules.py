"""The assessment rules as signed data, and the scoring they define (pure: no store)."""

from __future__ import annotations

from datetime import date

import msgspec
import pytest

from protocol.assessment import (
    Appeal,
    Entry,
    ErrandRecord,
    Item,
    RulesError,
    assess,
    default_rules,
    open_rules,
    overdue_in,
    quarter_span,
    sign_rules,
)
from protocol.errors import FrameError, SignatureError
from sanji.layout import county_layout
from sanji.workcalendar import load_calendar

CAL = load_calendar()
Q4 = "2026Q4"
AS_OF = date(2026, 12, 31)


def entry(subject: str, item: str, count: int = 1, target: str = "staff", id: str = "") -> Entry:
    return Entry(id=id or f"EN-{subject}-{item}", quarter=Q4, target=target, subject=subject, item=item, count=count)  # type: ignore[arg-type]


def test_quarters() -> None:
    assert quarter_span("2026Q4") == (date(2026, 10, 1), date(2026, 12, 31))
    assert quarter_span("2027q1") == (date(2027, 1, 1), date(2027, 3, 31))
    for bad in ("2026Q5", "2026-Q4", "Q4", ""):
        with pytest.raises(ValueError, match="2026Q4"):
            quarter_span(bad)


def test_defaults_are_the_seed_sheets() -> None:
    rules = default_rules()
    assert {p.code: p.points for p in rules.parts} == {
        "conduct": 15,
        "skill": 20,
        "attendance": 20,
        "results": 30,
        "integrity": 15,
    }
    assert rules.item("overdue_day") == Item(
        code="overdue_day", name="受理办件超过承诺时限(每工作日)", target="staff", points=-2, part="results"
    )
    assert [(g.name, g.min_score, g.top) for g in rules.grades] == [
        ("优秀", 90, 10),
        ("称职", 75, 0),
        ("基本称职", 60, 0),
        ("不称职", 0, 0),
    ]
    assert (rules.centre_base, rules.centre_bonus_cap, rules.red_flag_top) == (100, 20, 5)


def test_signed_rules_open_only_with_the_county_key_and_unchanged() -> None:
    layout = county_layout(1, 1)
    keys = {r.key_id: r for e in layout.entries if e.id == "C" for r in e.keys}
    rules = msgspec.structs.replace(default_rules(), version=3)
    blob = sign_rules(rules, layout.keys["C"])
    assert open_rules(blob, keys) == rules
    changed = bytearray(blob)
    changed[len(changed) // 2] ^= 1
    with pytest.raises((SignatureError, FrameError)):
        open_rules(bytes(changed), keys)
    town_keys = {r.key_id: r for e in layout.entries if e.id == "T01" for r in e.keys}
    with pytest.raises(SignatureError):
        open_rules(sign_rules(rules, layout.keys["T01"]), keys)  # a township cannot publish rules
    assert open_rules(sign_rules(rules, layout.keys["T01"]), town_keys) == rules
    broken = msgspec.structs.replace(rules, items=(*rules.items, Item(code="x", name="x", target="staff", points=1)))
    with pytest.raises(RulesError, match="part"):
        sign_rules(broken, layout.keys["C"])


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"published_at": "0000-00-00"}, "published_at"),
        ({"published_at": "9999-12-31"}, "published_at"),
        ({"published_at": "2026-W40-1"}, "published_at"),  # an ISO week date Python reads: not the day written
        ({"centre_base": float("inf")}, "centre_base"),
    ],
)
def test_a_county_signs_only_real_days_and_readable_points(change: dict[str, object], says: str) -> None:
    """What an adversarial run published (and every township took up): a day 0000-00-00, a part of -1e300
    points. Signing refuses them now; received rules keep the old check, so earlier documents still open."""
    layout = county_layout(1, 1)
    rules = msgspec.structs.replace(default_rules(), version=3, **change)
    with pytest.raises(RulesError, match=says):
        sign_rules(rules, layout.keys["C"])
    part = rules.parts[0]
    huge = msgspec.structs.replace(default_rules(), version=3, parts=(msgspec.structs.replace(part, points=-1e300),))
    with pytest.raises(RulesError, match="points"):
        sign_rules(huge, layout.keys["C"])


def test_overdue_days_are_counted_inside_the_quarter_only() -> None:
    start, end = quarter_span(Q4)
    # due on Tuesday 2026-09-29, answered Friday 2026-10-09: the National Day holidays (10-01..10-08)
    # are not working days; 09-30 was in Q3, so Q4 counts only 10-09 (and 10-10, a worked Saturday, lies after).
    rec = ErrandRecord(errand="E", handler="h", centre="T01", due="2026-09-29", answered_on="2026-10-09")
    assert overdue_in(rec, start, end, AS_OF, CAL) == CAL.working_days_between(date(2026, 9, 30), date(2026, 10, 9))
    q3 = quarter_span("2026Q3")
    assert overdue_in(rec, *q3, AS_OF, CAL) == 1  # 09-30
    open_rec = ErrandRecord(errand="E", handler="h", centre="T01", due="2026-12-03")
    assert overdue_in(open_rec, start, end, date(2026, 12, 8), CAL) == 3


def test_parts_never_go_below_zero_and_bonuses_come_on_top() -> None:
    rules = default_rules()
    result = assess(
        rules,
        Q4,
        [],
        [entry("王芳", "absent", 5), entry("王芳", "media_county"), entry("王芳", "late")],
        [],
        calendar=CAL,
        as_of=AS_OF,
    )
    (s,) = result.staff
    assert s.parts["attendance"] == 0  # 5 x -5 and -2, 扣完为止
    assert s.bonus == 5 and s.total == 85
    assert sorted(line.ref for line in s.lines) == ["EN-王芳-absent", "EN-王芳-late", "EN-王芳-media_county"]


def test_excellent_needs_the_top_ten_and_ninety_and_no_disqualification() -> None:
    rules = default_rules()
    staff = [f"S{i:02d}" for i in range(12)]
    entries = [entry(name, "late", i % 3) for i, name in enumerate(staff) if i % 3]  # some lose 2 or 4 points
    entries.append(entry("S00", "thanks_letter", 2))  # S00: 106, but a complaint upheld disqualifies
    entries.append(entry("S00", "complaint_upheld"))
    records = [
        ErrandRecord(errand=f"E{i}", handler=n, centre="T01", answered_on="2026-11-02") for i, n in enumerate(staff)
    ]
    result = assess(rules, Q4, records, entries, [], calendar=CAL, as_of=AS_OF)
    by_name = {s.name: s for s in result.staff}
    assert by_name["S00"].total == 103 and by_name["S00"].rank == 1
    assert by_name["S00"].grade == "competent" and not by_name["S00"].eligible
    excellent = [s.name for s in result.staff if s.grade == "excellent"]
    # 100 x3 share rank 2, 98 x4 rank 5, 96 x4 rank 9: all within the top ten, S00 excluded (equal scores are never
    # told apart by their names)
    assert len(excellent) == 11 and all(by_name[n].rank <= 10 for n in excellent)
    assert sorted({s.rank for s in result.staff}) == [1, 2, 5, 9]
    fewer = msgspec.structs.replace(rules, grades=(msgspec.structs.replace(rules.grades[0], top=5), *rules.grades[1:]))
    top5 = assess(fewer, Q4, records, entries, [], calendar=CAL, as_of=AS_OF)
    assert {s.grade for s in top5.staff if s.rank > 5} == {"competent"}  # 96 or more, but outside the top five
    assert sum(s.grade == "excellent" for s in top5.staff) == 7  # ranks 2 and 5 (4 share the fifth place)


def test_errand_facts_and_appeals_change_scores_with_their_sources() -> None:
    rules = default_rules()
    records = [
        ErrandRecord(
            errand="E1", receipt="R1", handler="王芳", centre="T01", due="2026-11-09", answered_on="2026-11-11"
        ),
        ErrandRecord(errand="E2", handler="王芳", centre="T01", answered_on="2026-11-02", rating="不满意"),
        ErrandRecord(
            errand="E3",
            handler="李明",
            centre="T02",
            answered_on="2026-11-02",
            deemed=True,
            skipped_steps=("审核",),
            callbacks_dissatisfied=1,
        ),
    ]
    appeals = [
        Appeal(
            id="AP-1",
            quarter=Q4,
            target="staff",
            subject="王芳",
            reason="系统故障",
            status="upheld",
            points=4,
            part="results",
            decision="停电两日，超期不计",
        ),
        Appeal(id="AP-2", quarter=Q4, target="staff", subject="李明", reason="不服", status="pending"),
    ]
    result = assess(rules, Q4, records, [], appeals, calendar=CAL, as_of=AS_OF, centres=["T01", "T02", "T03"])
    wang, li = (next(s for s in result.staff if s.name == n) for n in ("王芳", "李明"))
    assert [(ln.item, ln.points, ln.ref) for ln in wang.lines] == [
        ("overdue_day", -4, "E1"),
        ("dissatisfied", -1, "E2"),
        ("appeal", 4, "AP-1"),
    ]
    assert wang.parts["results"] == 29 and wang.total == 99 and wang.errands == 2
    assert li.parts["results"] == 24 and li.total == 94  # deemed -3, skipped step -3
    assert result.pending_appeals == ["AP-2"]
    centres = {c.centre: c for c in result.centres}
    assert not centres["T01"].eligible and not centres["T01"].red_flag  # an overdue errand: 取消当季评先
    assert centres["T02"].total == 97 and centres["T02"].red_flag
    assert centres["T03"].total == 100 and centres["T03"].red_flag and centres["T01"].total == 100


def test_centre_bonuses_are_capped_and_only_five_red_flags() -> None:
    rules = default_rules()
    entries = [entry("T01", "award_first", 2, "centre", "a"), entry("T01", "standard_missing", 1, "centre", "b")]
    entries += [entry(f"T{i:02d}", "praise_letter", i, "centre", f"p{i}") for i in range(2, 9)]
    result = assess(rules, Q4, [], entries, [], calendar=CAL, as_of=AS_OF)
    t01 = next(c for c in result.centres if c.centre == "T01")
    assert (t01.bonus_claimed, t01.bonus, t01.deductions, t01.total) == (30, 20, -3, 117)
    assert sum(c.red_flag for c in result.centres) == 5
    # T04..T08 claim 20 or more, all capped to 120: five share the first place, T01 and below are not flagged
    assert [c.rank for c in result.centres] == [1, 1, 1, 1, 1, 6, 7, 8]
    assert {c.centre for c in result.centres if c.red_flag} == {"T04", "T05", "T06", "T07", "T08"}


def test_entries_under_items_the_rules_lack_are_kept_but_not_scored() -> None:
    result = assess(default_rules(), Q4, [], [entry("王芳", "no_such_item")], [], calendar=CAL, as_of=AS_OF)
    assert result.staff == []
