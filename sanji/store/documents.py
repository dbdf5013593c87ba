"""Documents that travel down (catalogue, calendar, trust), the ``meta`` table, durable counters, and
the reports of the nodes below."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

import msgspec
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.session import NodeReport
from sanji.store import schema as t
from sanji.store.rows import upsert as _upsert
from sanji.store.section import Section
from sanji.store.together import together

log = logging.getLogger("sanji.store")
# The kinds whose every version kept is recorded in ``document_versions``: only the catalogue's are ever compared
# (an errand's bound entry, ``protocol.binding.binding_refusal``); calendars and rules are not.
VERSIONED = frozenset({"catalogue"})
# The ``meta`` key (after the kind) of the versions a restored copy may have lost: ranges "a-b" (both held out),
# the last open ("a-") until a version is kept. ``sanji.backup.RECORD_LOST`` writes them, ``put_document`` closes
# them, ``NodeContext.catalogue_lost`` reads them.
LOST = "_versions_lost"
Lost = list[tuple[int, int | None]]
# What ``Documents.recover_version`` did with a version offered back: kept (re-filed, its range narrowed), already
# held with these bytes or with others, not inside a lost range, or the ranges do not read.
Recovered = Literal["kept", "held", "held_otherwise", "not_lost", "lost_unreadable"]


def parse_lost(value: str | None) -> Lost | None:
    """The ranges of a ``LOST`` value ("" or None: none); None if it does not read (typed by hand)."""
    ranges: Lost = []
    for part in (value or "").split(","):
        if not part.strip():
            continue
        low, dash, high = part.strip().partition("-")
        if not dash or not low.isdigit() or (high and not high.isdigit()):
            return None
        ranges.append((int(low), int(high) if high else None))
    return ranges


def format_lost(ranges: Lost) -> str:
    return ",".join(f"{low}-{'' if high is None else high}" for low, high in ranges)


class Documents(Section):
    """Versioned documents, ``meta`` values, counters that never hand a number out twice, node reports."""

    async def document(self, kind: str) -> tuple[int, bytes] | None:
        async with self.db.reader.connect() as conn:
            row = (
                await conn.execute(select(t.documents.c.version, t.documents.c.blob).where(t.documents.c.kind == kind))
            ).first()
        return (int(row[0]), bytes(row[1])) if row else None

    async def put_document(
        self,
        kind: str,
        version: int,
        blob: bytes,
        digest: str,
        *,
        then: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> bool:
        """Keep ``blob`` if it is newer than what is held; True if it was kept.

        A catalogue kept is kept in ``document_versions`` too (``VERSIONED``): a desk compares an errand's bound
        entry with the catalogue of the version it names (``document_version``). The first version kept there,
        if migration 0027 recorded none, is its floor in ``meta`` (``catalogue_versions_floor``). Only a version
        actually kept is recorded there, and a version recorded is never overwritten: a county restarting with a
        file that names a version it already held, with other content, must not make that content the county's
        vN (honest errands bound to the real vN would be refused as tampered). A blob of a version held with
        other bytes is logged. The first version kept after a restore closes the range of versions the copy may
        have lost (``LOST``, opened by ``sanji.backup.RECORD_LOST``): those between the copy's newest and it.

        ``then`` runs in the same transaction when it is kept (the publisher's audit event), so the
        document and its record are written together or not at all.
        """
        async with self._write() as conn:
            values = {"kind": kind, "version": version, "blob": blob, "digest": digest, "received_at": time.time()}
            recorded = None
            if kind in VERSIONED:
                recorded = await conn.scalar(
                    select(t.document_versions.c.digest).where(
                        t.document_versions.c.kind == kind, t.document_versions.c.version == version
                    )
                )
                if recorded is not None and recorded != digest:
                    log.warning(
                        "%s version %s offered with digest %s, but this node holds that version as %s: kept as held",
                        kind,
                        version,
                        digest,
                        recorded,
                    )
            held = await conn.scalar(select(t.documents.c.version).where(t.documents.c.kind == kind))
            if held is not None and held >= version:
                return False
            if kind in VERSIONED and recorded is None:
                await conn.execute(insert(t.document_versions).values(values))
                floor_key = f"{kind}_versions_floor"
                if not await conn.scalar(select(t.meta.c.value).where(t.meta.c.key == floor_key)):
                    # the first version this node keeps (or the first since a restore by an earlier build forgot
                    # the floor, ""): every one it keeps from here up is held
                    await _upsert(conn, t.meta, {"key": floor_key, "value": str(version)}, keys=("key",))
                await _close_lost(conn, kind, version)
            await _upsert(conn, t.documents, values, keys=("kind",))
            if then is not None:
                await then(conn)
        return True

    async def recover_version(self, kind: str, version: int, blob: bytes, digest: str) -> Recovered:
        """Re-file ``blob``, ``kind`` at ``version``, verified by the caller as this node's own signed document
        (``sanji.catalogue.recover``): kept only if the version lies in a range a restore lost (``LOST``) and is
        not recorded, which narrows that range around it. A version from the floor up outside every range was
        never published (the copy knows), and one recorded is never overwritten. One above the newest held
        becomes the newest (it was published after the copy; the nodes below hold it), and what lies above it
        stays lost, open: a later version may have been published too. Read and written in one transaction."""
        async with self._write() as conn:
            recorded = await conn.scalar(
                select(t.document_versions.c.digest).where(
                    t.document_versions.c.kind == kind, t.document_versions.c.version == version
                )
            )
            if recorded is not None:
                return "held" if recorded == digest else "held_otherwise"
            key = kind + LOST
            ranges = parse_lost(await conn.scalar(select(t.meta.c.value).where(t.meta.c.key == key)))
            if ranges is None:
                return "lost_unreadable"
            inside = next((r for r in ranges if r[0] <= version and (r[1] is None or version <= r[1])), None)
            if inside is None:
                return "not_lost"
            values = {"kind": kind, "version": version, "blob": blob, "digest": digest, "received_at": time.time()}
            await conn.execute(insert(t.document_versions).values(values))
            held = await conn.scalar(select(t.documents.c.version).where(t.documents.c.kind == kind))
            if held is None or version > held:
                await _upsert(conn, t.documents, values, keys=("kind",))
            low, high = inside
            narrowed: Lost = []
            for r in ranges:
                if r != inside:
                    narrowed.append(r)
                    continue
                if low < version:
                    narrowed.append((low, version - 1))
                if high is None or version < high:
                    narrowed.append((version + 1, high))
            await _upsert(conn, t.meta, {"key": key, "value": format_lost(narrowed)}, keys=("key",))
        return "kept"

    async def document_version(self, kind: str, version: int) -> bytes | None:
        """The blob of ``kind`` at ``version``, if this node has held that version (kept since migration 0026)."""
        async with self.db.reader.connect() as conn:
            blob = await conn.scalar(
                select(t.document_versions.c.blob).where(
                    t.document_versions.c.kind == kind, t.document_versions.c.version == version
                )
            )
        return None if blob is None else bytes(blob)

    async def meta_value(self, key: str) -> str | None:
        async with self.db.reader.connect() as conn:
            value = await conn.scalar(select(t.meta.c.value).where(t.meta.c.key == key))
        return None if value is None else str(value)

    async def set_meta(self, key: str, value: str) -> None:
        async with self._write() as conn:
            await _upsert(conn, t.meta, {"key": key, "value": value}, keys=("key",))

    async def next_counter(self, name: str) -> int:
        """A durable counter: a number handed out once is never handed out again by this store."""
        async with self._write() as conn:
            return await bump_counter(conn, name)

    async def record_reports(self, reports: Iterable[NodeReport], *, via: str) -> None:
        """Keep the newest report of each node below this one."""
        wanted = [r for r in reports if r.node in self._subtree and r.node != self.node_id]
        if not wanted:
            return

        async def write(conn: AsyncConnection) -> None:
            held = dict(
                (
                    await conn.execute(
                        select(t.node_reports.c.node, t.node_reports.c.at).where(
                            t.node_reports.c.node.in_([r.node for r in wanted])
                        )
                    )
                ).all()
            )
            for report in wanted:
                if held.get(report.node, -1) >= report.at:
                    continue
                body = msgspec.json.encode(report).decode()
                await _upsert(
                    conn,
                    t.node_reports,
                    {"node": report.node, "at": report.at, "via": via, "body": body},
                    keys=("node",),
                )

        # With the reports of every other request arriving meanwhile: one commit for all (issue 15's burst).
        await together(self.db, write)

    async def reports(self) -> list[NodeReport]:
        async with self.db.reader.connect() as conn:
            bodies = (await conn.execute(select(t.node_reports.c.body).order_by(t.node_reports.c.node))).scalars()
            return [msgspec.json.decode(b, type=NodeReport) for b in bodies]


async def _close_lost(conn: AsyncConnection, kind: str, version: int) -> None:
    """``version`` kept: an open range of versions lost in a restore ends below it (or is dropped, if it is the
    range's first: nothing was lost). Every version kept from here up is held again."""
    key = kind + LOST
    value = await conn.scalar(select(t.meta.c.value).where(t.meta.c.key == key))
    ranges = parse_lost(value)
    if ranges is None:
        log.warning("meta %s is %r, not ranges of versions: left as it is", key, value)
        return
    if not ranges or ranges[-1][1] is not None:
        return
    low = ranges.pop()[0]
    if version > low:
        ranges.append((low, version - 1))
    await _upsert(conn, t.meta, {"key": key, "value": format_lost(ranges)}, keys=("key",))


async def bump_counter(conn: AsyncConnection, name: str) -> int:
    """The counter ``name``'s next number, taken in the caller's write transaction (``Documents.next_counter``;
    a registration's receipt number, taken with the registration: ``ErrandService.register``)."""
    key = f"counter:{name}"
    value = int(await conn.scalar(select(t.meta.c.value).where(t.meta.c.key == key)) or 0) + 1
    await _upsert(conn, t.meta, {"key": key, "value": str(value)}, keys=("key",))
    return value
