"""What a parent reads about a sync request before serving it, in one statement (issue 15).

Every signed request asks the same few questions of the database before it is served: have the trust
documents changed on disk (another hub process, ``sanji trust revoke``), is the sender frozen as a clone,
and which versions of the documents that travel down (catalogue, calendar, assessment rules) are held
now (``sanji calendar publish``, ``sanji rules publish`` or another hub process may have stored newer
ones). Asked one by one they were a connection, a ``BEGIN`` and a ``ROLLBACK`` each, and the documents
were read whole to compare their versions; at 5,000 children exchanging every minute that is most of an
idle exchange. Here they are one ``SELECT`` of scalar subqueries: the versions only, a document itself is
read when its version is newer than the one this process holds (``sanji.context.NodeContext``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from protocol.assessment import RULES
from protocol.calendar_doc import CALENDAR
from sanji.context import CATALOGUE
from sanji.store import Store
from sanji.store import schema as t

DOCUMENTS = (CATALOGUE, CALENDAR, RULES)


@dataclass(frozen=True)
class Glance:
    """The answers, read together: the trust documents' mark (``TrustBook.refresh``), whether the sender is
    frozen (``sanji.store.clones``), and each travelling document's version held (None: none held)."""

    trust_mark: tuple[int, int]
    frozen: bool
    versions: dict[str, int | None]


async def glance(store: Store, sender: str) -> Glance:
    docs, frozen = t.documents, t.frozen_children
    columns = [
        select(func.count()).select_from(t.trust_docs).scalar_subquery(),
        select(func.max(t.trust_docs.c.seq)).scalar_subquery(),
        select(func.count()).select_from(frozen).where(frozen.c.child == sender).scalar_subquery(),
        *(select(docs.c.version).where(docs.c.kind == kind).scalar_subquery() for kind in DOCUMENTS),
    ]
    async with store.db.reading(), store.db.read() as conn:  # one statement: no transaction around it
        row = (await conn.execute(select(*columns))).one()
    rows, top, is_frozen, *versions = row
    return Glance(
        trust_mark=(int(rows or 0), int(top or 0)),
        frozen=bool(is_frozen),
        versions={kind: None if v is None else int(v) for kind, v in zip(DOCUMENTS, versions, strict=True)},
    )
