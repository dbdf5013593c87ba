"""The database decides which of two publications at once is kept, on SQLite and on PostgreSQL.

A hub may run several processes over one PostgreSQL database, so no lock of one process can decide: each
publisher here is a county context over its own ``Database`` object (as two processes are), and both publish
the same next version of the catalogue, the calendar or the assessment rules together (``asyncio.gather``).
The transaction that would keep it finds the version held or not (``Store.put_document``); exactly one is
kept, the other raises ``VersionNotNewer`` naming the version the database holds, and the document held is
the one whose publisher was told it was kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from protocol.assessment import RULES, default_rules
from protocol.calendar_doc import CALENDAR
from protocol.errors import VersionNotNewer
from sanji.catalogue import default_catalogue
from sanji.context import CATALOGUE, NodeContext
from sanji.workcalendar import checked_calendar, load_calendar
from tests.conftest import StoreOpener

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 4
BLOBS: dict[str, Callable[[NodeContext], Awaitable[bytes | None]]] = {
    CATALOGUE: NodeContext.catalogue_blob,
    CALENDAR: NodeContext.calendar_blob,
    RULES: NodeContext.rules_blob,
}


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'county.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


async def two_hub_processes(open_store: StoreOpener) -> tuple[NodeContext, NodeContext]:
    """Two county contexts, each over its own Database object on the one database."""
    first = NodeContext(await open_store("C"), load_calendar())
    second = NodeContext(await open_store("C"), load_calendar())
    return first, second


async def race(
    kind: str,
    contexts: tuple[NodeContext, NodeContext],
    publish: Callable[[NodeContext, int, int], Awaitable[bool]],
    start: int,
) -> None:
    """ROUNDS rounds from ``start``: both publish the same next version at once; exactly one is kept."""
    for version in range(start, start + ROUNDS):
        results = await asyncio.gather(
            *(publish(c, version, i) for i, c in enumerate(contexts)), return_exceptions=True
        )
        kept = [i for i, r in enumerate(results) if r is True]
        refused = [r for r in results if isinstance(r, VersionNotNewer)]
        assert len(kept) == 1 and len(refused) == 1, results
        assert (refused[0].held, refused[0].version, refused[0].document) == (version, version, kind)
        assert "版本" in refused[0].message_zh and refused[0].as_dict()["error_code"] == "version_not_newer"
        held = await contexts[0].store.document(kind)
        assert held is not None and held[0] == version
        winner = contexts[kept[0]]
        blob = await BLOBS[kind](winner)  # what the winner was told it published is what the database holds
        assert blob == held[1], (kind, version, kept)


async def test_two_catalogue_publications_at_once(open_store: StoreOpener) -> None:
    contexts = await two_hub_processes(open_store)
    assert await contexts[0].publish(default_catalogue())  # version 1

    async def publish(context: NodeContext, version: int, who: int) -> bool:
        catalogue = msgspec.structs.replace(default_catalogue(), version=version, published_at=f"2026-12-0{who + 1}")
        return await context.publish(catalogue)

    await race(CATALOGUE, contexts, publish, 2)


async def test_two_calendar_publications_at_once(open_store: StoreOpener) -> None:
    contexts = await two_hub_processes(open_store)
    doc = checked_calendar(ROOT / "deploy" / "calendar.example.toml")

    async def publish(context: NodeContext, version: int, who: int) -> bool:
        return await context.publish_calendar(msgspec.structs.replace(doc, version=version, note=f"第{who}号"))

    await race(CALENDAR, contexts, publish, 1)


async def test_two_rules_publications_at_once(open_store: StoreOpener) -> None:
    contexts = await two_hub_processes(open_store)
    await contexts[0].refresh_rules()  # the county signs the seed defaults, version 1

    async def publish(context: NodeContext, version: int, who: int) -> bool:
        rules = msgspec.structs.replace(default_rules("C"), version=version, centre_bonus_cap=10 + who)
        return await context.publish_rules(rules)

    await race(RULES, contexts, publish, 2)
