"""One-time form keys across processes: two hub processes on one database, a form's two sendings split between them.

Each ``open_store`` call opens its own ``Database`` (its own engines and locks), as a second hub process would;
on PostgreSQL they meet only in the server (the writer's advisory lock, the key's primary key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.store import Store
from sanji.store import schema as t
from sanji.store.submissions import (
    MAX_KEY,
    AlreadySent,
    KeyMalformed,
    KeyReused,
    Once,
    from_header,
    keep,
    new_key,
    once,
    refuse_if_used,
)
from tests.conftest import StoreOpener


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'node.db'}"


FORM = RegisterForm(matter="低保", applicant_name="张三", actor="窗口", in_person=True)


async def kinds(store: Store, kind: str) -> int:
    async with store.db.reader.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(t.actions).where(t.actions.c.kind == kind)) or 0)


async def outcomes(sendings: Sequence[Awaitable[object]]) -> tuple[int, int]:
    """(taken, sent again) of ``sendings`` awaited together."""
    answers = await asyncio.gather(*sendings, return_exceptions=True)
    sent_again = [a for a in answers if isinstance(a, AlreadySent)]
    others = [a for a in answers if isinstance(a, BaseException) and not isinstance(a, AlreadySent)]
    assert not others, others
    return len(answers) - len(sent_again), len(sent_again)


async def test_a_note_sent_six_times_at_once_through_two_processes_is_taken_once(open_store: StoreOpener) -> None:
    first, second = await open_store("T01"), await open_store("T01")
    errand = (await ErrandService(first).register(FORM)).errand
    key = Once("act", new_key(), "kind=note\ntext=请尽快")
    note = ActionForm(kind="note", actor="窗口", text="请尽快")
    sendings = [ErrandService(store).act(errand, note, once=key) for store in (first, second) * 3]
    assert await outcomes(sendings) == (1, 5)
    assert await kinds(first, "note") == 1
    # Later, from either process: the same answer, nothing written; the key names the errand and the step.
    with pytest.raises(AlreadySent) as again:
        await ErrandService(second).act(errand, note, once=key)
    assert again.value.errand == errand and len(again.value.action) == 32
    assert await kinds(second, "note") == 1


async def test_a_registration_sent_at_once_through_two_processes_is_one_errand(open_store: StoreOpener) -> None:
    first, second = await open_store("T01"), await open_store("T01")
    key = Once("register", new_key())
    sendings = [ErrandService(store).register(FORM, once=key) for store in (first, second) * 2]
    assert await outcomes(sendings) == (1, 3)
    assert await kinds(first, "register") == 1
    numbers = select(t.meta.c.value).where(t.meta.c.key.like("counter:receipt:%"))
    async with first.db.reader.connect() as conn:
        assert (await conn.execute(numbers)).scalars().all() == ["1"]  # one number taken: no gap in the day's
    with pytest.raises(AlreadySent):  # sent again later, naming the errand registered
        await ErrandService(second).register(FORM, once=key)
    another = await ErrandService(second).register(FORM, once=Once("register", new_key()))
    async with first.db.reader.connect() as conn:
        assert (await conn.execute(numbers)).scalars().all() == ["2"]
    assert another.state is not None and "-0002" in another.state.receipt  # the next number, its check letter after


def test_a_key_of_another_shape_protects_nothing_and_keys_of_other_purposes_never_meet() -> None:
    assert once("act", "") is None and once("act", "short") is None and once("act", "x" * 65) is None
    assert once("act", "a'b;--" + "x" * 20) is None
    key = new_key()
    assert once("act", key) == Once("act", key)
    assert Once("act", key).stored != Once("complain", key).stored
    assert Once("act", key, "text=一").stored != Once("act", key, "text=二").stored
    assert len(Once("complain", "x" * 64, "y").stored) <= t.submissions.c.key.type.length  # type: ignore[attr-defined]


_ENTRIES = "/api/office/assessment/entries"


def _header(sent: str, body: object, *, account: str = "#1", path: str = _ENTRIES) -> Once:
    key = from_header(sent, body, node="C", account=account, method="POST", path=path)
    assert key is not None
    return key


def test_a_client_key_is_scoped_to_its_node_and_account_and_names_one_request() -> None:
    body = {"subject": "王伟"}
    first = _header("retry-1", body)
    assert _header("retry-1", body).stored == first.stored  # the same request again: the same key
    assert _header("retry-1", body, account="#2").bare != first.bare  # another account's key never meets it
    elsewhere = from_header("retry-1", body, node="T01", account="#1", method="POST", path=_ENTRIES)
    assert elsewhere is not None and elsewhere.bare != first.bare  # another node's neither
    assert _header("retry-1", body, path="/api/office/assessment/appeals").bare == first.bare  # one key, any path
    assert _header("retry-1", body, path="/api/office/assessment/appeals").stored != first.stored  # another request
    assert len(_header("k" * MAX_KEY, body).stored) <= t.submissions.c.key.type.length  # type: ignore[attr-defined]
    assert from_header(None, body, node="C", account="", method="POST", path="/x") is None
    for bad in ("", " ", "k" * (MAX_KEY + 1), "键", "a\tb", " lead", "a\x00b"):
        with pytest.raises(KeyMalformed):
            from_header(bad, body, node="C", account="#1", method="POST", path="/x")


async def test_a_key_sent_with_another_body_is_refused_whatever_the_database_collates(
    open_store: StoreOpener, db_url: str
) -> None:
    """An office API's ``Idempotency-Key`` (``one_body``) sent again with another body is ``KeyReused``, found by
    the key's mark: on PostgreSQL under a Chinese (ICU) collation, which passes over punctuation, as under bytes."""
    store = await open_store("T01")
    if db_url.startswith("postgres"):
        async with store.db.write() as conn:
            await conn.execute(text('ALTER TABLE submissions ALTER COLUMN key TYPE varchar(96) COLLATE "zh-x-icu"'))
    first = _header("retry-1", {"subject": "王伟"})
    other = _header("retry-1", {"subject": "李强"})
    assert first is not None and other is not None
    async with store.db.write() as conn:
        await refuse_if_used(conn, first)
        await keep(conn, first, "", "E1")
    async with store.db.write() as conn:
        with pytest.raises(AlreadySent) as again:
            await refuse_if_used(conn, first)
        assert again.value.action == "E1"
        with pytest.raises(KeyReused):
            await refuse_if_used(conn, other)
        # another key is another request
        await refuse_if_used(conn, _header("retry-2", {"subject": "李强"}) or first)
