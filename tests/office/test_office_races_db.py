"""Two decisions on one appeal at once, by two hub processes over one database, on SQLite and on PostgreSQL.

Each decider is an ``OfficeBook`` over its own ``Database`` object (as two processes are); both decide the same
appeal together (``asyncio.gather``). The check that it is still pending runs in the write transaction that
appends the decision, which holds the writer lock (the advisory lock on PostgreSQL): exactly one is recorded,
the other refused as a decision sent afterwards is, and the chain of records still verifies.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sanji.office.book import OfficeBook, OfficeRefused
from tests.conftest import StoreOpener

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
        appeal = await books[0].file_appeal(
            quarter=Q, target="staff", subject=f"王芳{round_}", reason="复核", by="主任"
        )
        results = await asyncio.gather(
            books[0].decide_appeal(appeal.id, upheld=True, points=3, part="attendance", reason="属实", by="甲"),
            books[1].decide_appeal(appeal.id, upheld=False, reason="维持", by="乙"),
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
