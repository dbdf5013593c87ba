"""Two decisions on one appeal at once, by two hub processes over one database, on SQLite and on PostgreSQL.

Each decider is an ``OfficeBook`` over its own ``Database`` object (as two processes are); both decide the same
appeal together (``asyncio.gather``). The check that it is still pending runs in the write transaction that
appends the decision, which holds the writer lock (the advisory lock on PostgreSQL): exactly one is recorded,
the other refused as a decision sent afterwards is, and the chain of records still verifies.
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest

from protocol.assessment import Assessment, assess, default_rules
from sanji.office.book import OfficeBook, OfficeRefused
from sanji.workcalendar import load_calendar
from tests.conftest import StoreOpener

RULES = default_rules("C")


async def scored(book: OfficeBook) -> Assessment:
    """The quarter as assessed from the office's records alone (no errands here)."""
    entries, appeals = await book.entries(Q), await book.appeals(Q)
    return assess(RULES, Q, [], entries, appeals, calendar=load_calendar(), as_of=date(2026, 12, 31))


Q = "2026Q4"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'county.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


async def test_two_decisions_at_once_record_one(open_store: StoreOpener) -> None:
    books = (OfficeBook(await open_store("C")), OfficeBook(await open_store("C")))
    for round_ in range(5):
        subject = f"王芳{round_}"
        await books[0].add_entry(
            quarter=Q, target="staff", subject=subject, item="late", count=2, by="主任", rules=RULES
        )
        appeal = await books[0].file_appeal(
            quarter=Q, target="staff", subject=subject, reason="复核", by="主任", scored=await scored(books[0])
        )
        now = await scored(books[0])
        results = await asyncio.gather(
            books[0].decide_appeal(
                appeal.id, upheld=True, points=3, part="attendance", reason="属实", by="甲", rules=RULES, scored=now
            ),
            books[1].decide_appeal(appeal.id, upheld=False, reason="维持", by="乙", rules=RULES, scored=now),
            return_exceptions=True,
        )
        decided = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, OfficeRefused)]
        assert len(decided) == 1 and len(refused) == 1, results
        assert refused[0].message_zh == f"申诉 {appeal.id} 已经作出决定"
        for book in books:
            (held,) = [a for a in await book.appeals(Q) if a.id == appeal.id]
            assert held.status == decided[0].status and held.decided_by == decided[0].decided_by
        records = [r for r in await books[1].records(Q) if getattr(r, "appeal", None) == appeal.id]
        assert len(records) == 1  # the one decision, no second
    assert await books[0].verify() == []


async def test_two_upheld_at_once_in_one_part_give_back_no_more_than_was_deducted(open_store: StoreOpener) -> None:
    """Two appeals about one person, upheld together by two processes in the part 4 points were deducted in, 3
    each: one is recorded; the other is refused, reading the first's decision inside its own write."""
    books = (OfficeBook(await open_store("C")), OfficeBook(await open_store("C")))
    await books[0].add_entry(quarter=Q, target="staff", subject="王芳", item="late", count=2, by="主任", rules=RULES)
    filed = [
        await books[0].file_appeal(
            quarter=Q, target="staff", subject="王芳", reason="复核", by="王芳", scored=await scored(books[0])
        )
        for _ in range(2)
    ]
    now = await scored(books[0])
    results = await asyncio.gather(
        *(
            book.decide_appeal(
                ap.id, upheld=True, points=3, part="attendance", reason="属实", by="主任", rules=RULES, scored=now
            )
            for book, ap in zip(books, filed, strict=True)
        ),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, OfficeRefused)]
    assert len(refused) == 1 and "1分可退还" in refused[0].message_zh, results
    (wang,) = [s for s in (await scored(books[1])).staff if s.name == "王芳"]
    assert wang.parts["attendance"] == 19 and wang.bonus == 0
