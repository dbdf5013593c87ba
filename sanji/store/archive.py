"""Archiving attachments: dropping the bytes of old attachments an ancestor provably holds (issue 16).

Village laptops have small disks and attachments (``sanji.store.blobs``) stayed forever. An attachment
may be archived here when

- every errand naming it (by any attach action this node holds, whatever its status) is closed —
  in ``protocol.stages.ANSWERED`` (delivered or filed) — and has been for ``after_days`` days
  (since the last action applied to it, ``errands.updated_at``); an attachment no attach action
  names is never archived;
- an ancestor of this node acknowledged holding it whole: a ``blob_acks`` row. The sync driver writes
  that row only after the ancestor's own ``blob/put`` reply said ``complete`` — which the ancestor
  says only once the bytes it committed hash to the attachment's name (``Blobs.blob_append``; its
  store commits with ``synchronous=FULL`` before it replies). So the acknowledgement already exists
  and is exact; nothing is derived from batch cursors (a batch carries the attach *action*, never the
  bytes, so a batch acknowledgement would prove nothing about the bytes).

Archiving one attachment is one transaction through the store's one writer door: the conditions are
read again inside it, the ``blob_archive`` mark (hash, size, which ancestor holds it, when) is
written and the bytes are dropped (the ``blobs`` row keeps hash and size, ``received = 0``,
``complete`` stays true so the node never asks for it again). A process killed mid-run leaves each
attachment either held or archived with its mark, never neither; a backup restored from before holds
the bytes again (and archives them again later), one from after holds the marks.

Fetching back (``restore_archived``): bytes an ancestor answered are kept only if
``protocol.archive.fetched_back`` finds them whole and exactly the attachment; then, in one
transaction, the bytes are held again and the mark goes (as ``put_blob`` and ``blob_append`` do when
the same file arrives again). Refused bytes leave the row and its mark as they were.

What it cannot see: an ancestor restored from a backup older than its acknowledgement. The
attachment then survives only further up (the ancestor forwarded it before it was restored, or
not); ``after_days`` (default 90) keeps the window far wider than the ancestors' backup interval.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select, update

from protocol.archive import KEPT_REASONS, Archivable, archive_verdict, check_after_days, fetched_back
from protocol.encoding import decode_action
from protocol.errors import FrameError, SanjiError
from protocol.hlc import wall_seconds
from sanji.store import schema as t
from sanji.store.blobs import hold_whole
from sanji.store.section import Section

DEFAULT_AFTER_DAYS = 90.0
__all__ = ["KEPT_REASONS", "Archive", "ArchivePlan", "Archived", "AttachmentArchived", "Candidate"]


class AttachmentArchived(SanjiError):
    """The attachment's bytes are no longer held here; an ancestor holds them."""

    code = "attachment_archived"


@dataclass(frozen=True)
class Archived:
    """An attachment archived here: its hash and size kept, held at ``held_at``."""

    hash: str
    size: int
    held_at: str
    archived_at: float

    def where(self) -> str:
        when = time.strftime("%Y-%m-%d", time.localtime(self.archived_at))
        return f"attachment {self.hash[:12]} ({self.size} bytes) was archived on {when}: it is held at {self.held_at}"


@dataclass(frozen=True)
class Candidate:
    hash: str
    size: int
    held_at: str  # the nearest ancestor that acknowledged it
    errands: tuple[str, ...]
    closed_at: float  # the latest close among its errands (wall-clock seconds)
    attaches: int  # attach actions held when it was planned


@dataclass
class ArchivePlan:
    """What an archive run would do (``dry_run``) or did."""

    after_days: float
    archivable: list[Candidate] = field(default_factory=list)
    kept: dict[str, list[str]] = field(default_factory=dict)  # reason -> hashes
    archived: list[Candidate] = field(default_factory=list)  # applied only
    already: int = 0  # archived before this run

    @property
    def bytes_freed(self) -> int:
        return sum(c.size for c in self.archived)

    @property
    def bytes_archivable(self) -> int:
        return sum(c.size for c in self.archivable)


@dataclass
class _Facts:
    held: dict[str, int]  # complete, bytes held: hash -> size
    held_since: dict[str, float]  # hash -> when its bytes were last written (wall-clock seconds)
    archived: set[str]
    named: dict[str, set[str]]  # hash -> errands naming it
    errands: dict[str, tuple[str, int]]  # errand -> (stage, updated_at hlc)
    acks: dict[str, set[str]]  # hash -> peers
    attaches: int  # attach actions held: more at archive time means the plan may be stale


class Archive(Section):
    """Which attachments may be archived here, archiving them, and what an archived one says."""

    def _ancestors(self) -> list[str]:
        """Nearest first."""
        return [n for n in reversed(self.directory.path(self.node_id)) if n != self.node_id]

    async def _archive_facts(self) -> _Facts:
        b, a, e = t.blobs.c, t.actions.c, t.errands.c
        async with self.db.reader.connect() as conn, conn.begin():
            rows = await conn.execute(
                select(b.hash, b.size, b.updated_at).where(b.complete.is_(True), b.received == b.size, b.size > 0)
            )
            held: dict[str, int] = {}
            held_since: dict[str, float] = {}
            for h, size, at in rows:
                held[h], held_since[h] = int(size), float(at)
            archived = set((await conn.execute(select(t.blob_archive.c.hash))).scalars())
            named: dict[str, set[str]] = {}
            attaches = 0
            for errand, body in await conn.execute(select(a.errand, a.body).where(a.kind == "attach", t.IN_KIND_INDEX)):
                digest = str(getattr(decode_action(body), "blob", ""))
                named.setdefault(digest, set()).add(errand)
                attaches += 1
            wanted = {x for names in named.values() for x in names}
            errands = {
                i: (str(stage), int(at))
                for i, stage, at in await conn.execute(select(e.id, e.stage, e.updated_at))
                if i in wanted
            }
            acks: dict[str, set[str]] = {}
            for peer, digest in await conn.execute(select(t.blob_acks.c.peer, t.blob_acks.c.hash)):
                acks.setdefault(digest, set()).add(peer)
        return _Facts(held, held_since, archived, named, errands, acks, attaches)

    def _judge(self, digest: str, size: int, facts: _Facts, after_days: float, now: float) -> Candidate | str:
        """A candidate, or the reason (a key of ``KEPT_REASONS``) it is kept: ``protocol.archive`` decides."""
        errands = facts.named.get(digest, set())
        verdict = archive_verdict(
            has_children=bool(self.directory.children(self.node_id)),
            errands=errands,
            closed={i: (stage, wall_seconds(at)) for i, (stage, at) in facts.errands.items() if i in errands},
            acknowledged_by=facts.acks.get(digest, set()),
            ancestors=self._ancestors(),
            after_days=after_days,
            now=now,
            held_since=facts.held_since.get(digest, 0.0),
        )
        if isinstance(verdict, Archivable):
            return Candidate(digest, size, verdict.held_at, tuple(sorted(errands)), verdict.closed_at, facts.attaches)
        return verdict

    async def archive_plan(self, *, after_days: float = DEFAULT_AFTER_DAYS, now: float | None = None) -> ArchivePlan:
        """What ``archive_blobs`` would archive now; changes nothing."""
        check_after_days(after_days)
        now = time.time() if now is None else now
        facts = await self._archive_facts()
        plan = ArchivePlan(after_days=after_days, already=len(facts.archived))
        for digest, size in sorted(facts.held.items()):
            verdict = self._judge(digest, size, facts, after_days, now)
            if isinstance(verdict, Candidate):
                plan.archivable.append(verdict)
            else:
                plan.kept.setdefault(verdict, []).append(digest)
        return plan

    async def archive_blobs(
        self, *, after_days: float = DEFAULT_AFTER_DAYS, now: float | None = None, limit: int | None = None
    ) -> ArchivePlan:
        """Archive what ``archive_plan`` allows, one attachment per transaction, each checked again inside it."""
        now = time.time() if now is None else now
        plan = await self.archive_plan(after_days=after_days, now=now)
        for candidate in plan.archivable[:limit]:
            if await self._archive_one(candidate, after_days, now):
                plan.archived.append(candidate)
        return plan

    async def _archive_one(self, candidate: Candidate, after_days: float, now: float) -> bool:
        b = t.blobs.c
        async with self._write() as conn:
            # Everything the plan read is read again under the write lock: an ack forgotten, a blob
            # replaced or an errand reopened since the plan leaves the attachment as it is.
            row = (
                await conn.execute(
                    select(b.size, b.received, b.complete, b.data, b.updated_at).where(b.hash == candidate.hash)
                )
            ).first()
            if row is None or not row[2] or int(row[1]) != int(row[0]) or int(row[0]) != candidate.size:
                return False
            if hashlib.sha256(bytes(row[3])).hexdigest() != candidate.hash:
                return False  # altered bytes are evidence of something: never dropped quietly (sanji verify)
            acked = await conn.scalar(
                select(t.blob_acks.c.peer).where(
                    t.blob_acks.c.hash == candidate.hash, t.blob_acks.c.peer == candidate.held_at
                )
            )
            if acked is None:
                return False
            a, e = t.actions.c, t.errands.c
            # No attach action arrived since the plan (else the plan may not know every errand naming
            # it: the next run decides), and the rule still says so for the errands it named.
            attaches = await conn.scalar(
                select(func.count()).select_from(t.actions).where(a.kind == "attach", t.IN_KIND_INDEX)
            )
            if int(attaches or 0) != candidate.attaches:
                return False
            rows = await conn.execute(select(e.id, e.stage, e.updated_at).where(e.id.in_(candidate.errands)))
            verdict = archive_verdict(
                has_children=bool(self.directory.children(self.node_id)),
                errands=candidate.errands,
                closed={str(i): (str(stage), wall_seconds(int(at))) for i, stage, at in rows},
                acknowledged_by={candidate.held_at},
                ancestors=self._ancestors(),
                after_days=after_days,
                now=now,
                held_since=float(row[4]),
            )
            if not isinstance(verdict, Archivable) or verdict.held_at != candidate.held_at:
                return False
            await conn.execute(delete(t.blob_archive).where(t.blob_archive.c.hash == candidate.hash))
            await conn.execute(
                insert(t.blob_archive).values(
                    hash=candidate.hash, size=candidate.size, held_at=candidate.held_at, archived_at=now
                )
            )
            await conn.execute(
                update(t.blobs).where(b.hash == candidate.hash).values(data=b"", received=0, updated_at=now)
            )
        return True

    async def archived_blob(self, digest: str) -> Archived | None:
        """The mark of an attachment archived here, or None."""
        c = t.blob_archive.c
        async with self.db.reader.connect() as conn:
            row = (await conn.execute(select(c.hash, c.size, c.held_at, c.archived_at).where(c.hash == digest))).first()
        return Archived(str(row[0]), int(row[1]), str(row[2]), float(row[3])) if row else None

    async def archived_count(self) -> tuple[int, int]:
        """(attachments archived here, their bytes)."""
        c = t.blob_archive.c
        async with self.db.reader.connect() as conn:
            rows = (await conn.execute(select(c.size))).scalars().all()
        return len(rows), sum(int(s) for s in rows)

    async def archived_blobs(self, *, errand: str | None = None) -> list[Archived]:
        """Attachments archived here (those an attach action of ``errand`` names), by hash."""
        c = t.blob_archive.c
        query = select(c.hash, c.size, c.held_at, c.archived_at).order_by(c.hash)
        async with self.db.reader.connect() as conn:
            if errand is not None:  # only the marks of the errand's own attachments are read
                a = t.actions.c
                bodies = (await conn.execute(select(a.body).where(a.kind == "attach", a.errand == errand))).scalars()
                named = sorted({str(getattr(decode_action(body), "blob", "")) for body in bodies} - {""})
                if not named:
                    return []
                query = query.where(c.hash.in_(named))
            rows = await conn.execute(query)
            return [Archived(str(h), int(s), str(w), float(at)) for h, s, w, at in rows]

    async def restore_archived(self, digest: str, data: bytes) -> bool:
        """Hold an archived attachment's bytes again, if they are exactly it; False if it was not archived.

        Raises ``FrameError`` (and keeps nothing) when ``protocol.archive.fetched_back`` refuses them.
        """
        c = t.blob_archive.c
        async with self._write() as conn:
            size = await conn.scalar(select(c.size).where(c.hash == digest))
            if size is None:
                return False  # held again already (another open, or the same scan attached again)
            refused = fetched_back(digest, int(size), data)
            if refused is not None:
                raise FrameError(refused)
            await hold_whole(conn, digest, data)
        return True
