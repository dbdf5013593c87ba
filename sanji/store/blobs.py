"""Attachments: whole files made here, chunks resumed from where they stopped, who acknowledged what.

A chunk at any offset but the end of what is held changes nothing; a finished file that does not hash
to its name is thrown away.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.bounds import MAX_ATTACHMENT_BYTES
from protocol.errors import FrameError
from sanji.store import schema as t
from sanji.store.rows import upsert as _upsert
from sanji.store.section import Section

MAX_BLOB_BYTES = MAX_ATTACHMENT_BYTES  # one scan or photo (protocol.bounds: every node agrees)


class Blobs(Section):
    """Attachments held here, by SHA-256, and which peer acknowledged which."""

    async def put_blob(self, data: bytes) -> str:
        """Keep a whole attachment made here; returns its SHA-256 (hex). A desk attaching a file keeps it with
        its ``attach`` step instead (``keep_blob`` in ``Store.act``): a refused step keeps no bytes."""
        digest = hashlib.sha256(data).hexdigest()
        async with self._write() as conn:
            await keep_blob(conn, digest, data)
        return digest

    async def blob_state(self, digest: str) -> tuple[int, int, bool] | None:
        """(size, contiguous bytes held, complete) or None."""
        async with self.db.reader.connect() as conn:
            row = (
                await conn.execute(
                    select(t.blobs.c.size, t.blobs.c.received, t.blobs.c.complete).where(t.blobs.c.hash == digest)
                )
            ).first()
        return (int(row[0]), int(row[1]), bool(row[2])) if row else None

    async def blob_append(self, digest: str, size: int, offset: int, data: bytes) -> tuple[int, bool]:
        """Add a chunk at ``offset`` if it continues what is held; returns (held, complete).

        A chunk at any other offset changes nothing: the reply tells the sender where to resume.
        When the last byte arrives the whole content must hash to ``digest`` or it is thrown away.
        """
        if size < 0 or size > MAX_BLOB_BYTES:
            raise FrameError(f"attachment of {size} bytes exceeds the limit of {MAX_BLOB_BYTES}")
        async with self._write() as conn:
            row = (
                await conn.execute(
                    select(t.blobs.c.size, t.blobs.c.received, t.blobs.c.complete, t.blobs.c.data).where(
                        t.blobs.c.hash == digest
                    )
                )
            ).first()
            held, complete, content = (int(row[1]), bool(row[2]), bytes(row[3])) if row else (0, False, b"")
            if row is not None and int(row[0]) != size:
                raise FrameError(f"attachment {digest[:12]} is {row[0]} bytes here, not {size}")
            if complete and held != size:
                # Archived here (hash and size kept, bytes dropped): "complete" would be a lie a child
                # acknowledges; take the bytes again from the start instead.
                held, complete, content = 0, False, b""
            if complete or offset != held or not data:
                return held, complete
            content += data[: size - held]
            held = len(content)
            complete = held == size
            if complete and hashlib.sha256(content).hexdigest() != digest:
                content, held, complete = b"", 0, False  # corrupted on the way: start again
            if complete:
                await unarchive(conn, digest)
            values = {
                "hash": digest,
                "size": size,
                "received": held,
                "data": content,
                "complete": complete,
                "updated_at": time.time(),
            }
            await _upsert(conn, t.blobs, values, keys=("hash",))
            return held, complete

    async def blob_read(self, digest: str, offset: int, max_bytes: int) -> tuple[int, int, bytes]:
        """(size, contiguous bytes held, data from offset)."""
        async with self.db.reader.connect() as conn:
            row = (
                await conn.execute(
                    select(t.blobs.c.size, t.blobs.c.received, t.blobs.c.data).where(t.blobs.c.hash == digest)
                )
            ).first()
        if row is None:
            return 0, 0, b""
        size, held, content = int(row[0]), int(row[1]), bytes(row[2])
        return size, held, content[offset : min(held, offset + max(0, max_bytes))]

    async def attachments(self, *, scopes: Iterable[str] | None = None) -> dict[str, int]:
        """Attachments named by applied attach actions (of errands of ``scopes``): hash -> size.

        Read from their kept rows (``sanji.store.attached``), not by decoding every attach action held."""
        c = t.attachments.c
        query = select(c.blob, c.size).distinct()
        if scopes is not None:
            query = query.where(c.scope.in_(list(scopes)))
        async with self.db.reader.connect() as conn:
            return {str(h): int(size) for h, size in await conn.execute(query)}

    async def attachment_named(self, digest: str, *, scopes: Iterable[str]) -> bool:
        """Whether an applied attach action of an errand of ``scopes`` names the attachment ``digest``: one
        row looked up by its hash (every chunk a child sends or fetches asks it)."""
        c = t.attachments.c
        query = select(c.action).where(c.blob == digest, c.scope.in_(list(scopes))).limit(1)
        async with self.db.reader.connect() as conn:
            return (await conn.scalar(query)) is not None

    async def attachment_errands(self, digest: str) -> list[str]:
        """The errands whose applied attach actions name the attachment ``digest``, by id."""
        c = t.attachments.c
        query = select(c.errand).where(c.blob == digest).distinct().order_by(c.errand)
        async with self.db.reader.connect() as conn:
            return [str(e) for e in (await conn.execute(query)).scalars()]

    async def blobs_wanted(self) -> dict[str, int]:
        """Attachments this node should hold but does not have whole yet."""
        c, b = t.attachments.c, t.blobs.c
        whole = select(b.hash).where(b.hash == c.blob, b.complete.is_(True)).exists()
        query = select(c.blob, c.size).where(~whole).distinct()
        async with self.db.reader.connect() as conn:
            return {str(h): int(size) for h, size in await conn.execute(query)}

    async def blobs_to_send(self, peer: str) -> dict[str, int]:
        """Whole attachments held here that ``peer`` has not acknowledged (an archived one holds no bytes to send)."""
        c, b, k = t.attachments.c, t.blobs.c, t.blob_acks.c
        held = select(b.hash).where(b.hash == c.blob, b.complete.is_(True), b.received == b.size).exists()
        acked = select(k.hash).where(k.peer == peer, k.hash == c.blob).exists()
        query = select(c.blob, c.size).where(held, ~acked).distinct()
        async with self.db.reader.connect() as conn:
            return {str(h): int(size) for h, size in await conn.execute(query)}

    async def ack_blob(self, peer: str, digest: str) -> None:
        async with self._write() as conn:
            exists = await conn.scalar(
                select(func.count())
                .select_from(t.blob_acks)
                .where(t.blob_acks.c.peer == peer, t.blob_acks.c.hash == digest)
            )
            if not exists:
                await conn.execute(insert(t.blob_acks).values(peer=peer, hash=digest))


async def keep_blob(conn: AsyncConnection, digest: str, data: bytes) -> None:
    """Hold ``data`` (hashing to ``digest``) whole unless it is held whole already."""
    row = (await conn.execute(select(t.blobs.c.complete, t.blobs.c.received).where(t.blobs.c.hash == digest))).first()
    if row is None or not row[0] or int(row[1]) != len(data):  # missing, partial or archived here
        await hold_whole(conn, digest, data)


async def hold_whole(conn: AsyncConnection, digest: str, data: bytes) -> None:
    """Hold ``data`` (already known to hash to ``digest``) whole; no longer archived here."""
    await unarchive(conn, digest)
    values = {
        "hash": digest,
        "size": len(data),
        "received": len(data),
        "data": data,
        "complete": True,
        "updated_at": time.time(),
    }
    await _upsert(conn, t.blobs, values, keys=("hash",))


async def unarchive(conn: AsyncConnection, digest: str) -> None:
    """The bytes are held again: a stale archive mark would have the node fetch back a file it holds."""
    await conn.execute(delete(t.blob_archive).where(t.blob_archive.c.hash == digest))
