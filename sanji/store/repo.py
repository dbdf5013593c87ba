"""The node's store: local actions, sealing, receiving, forwarding — the ledger core.

``Store`` is the one facade callers use; its peripheral parts are mixins in their own modules
(``blobs``, ``traffic``, ``eventlog``, ``documents``, ``views``, ``notifications``, over ``section``).

Invariants kept here:
- a received batch, the actions it carries, the errands they change and the
  stream cursor commit in one transaction, or not at all;
- a batch already held is acknowledged again and changes nothing;
- a batch whose predecessor is missing is held aside until it arrives;
- a batch that contradicts what is held (same number, other bytes) is
  quarantined with its reason, never applied and never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, insert, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol import ledger, limits
from protocol.actions import Action, Attach
from protocol.batch import GENESIS, Batch, frame_hash, open_frame
from protocol.encoding import decode_action, encode
from protocol.errand import ErrandState, Projection, Replayed, project, project_with_line
from protocol.errors import RevokedKey, RouteError, SanjiError
from protocol.hlc import HybridClock
from protocol.sealing import SealingKey
from protocol.session import FrameResult
from protocol.signing import SigningKey
from protocol.stream import StreamKey
from protocol.topology import Directory
from sanji.keys import NodeKey
from sanji.store import attached, bulk, projections, report_inputs, submissions
from sanji.store import schema as t
from sanji.store.archive import Archive
from sanji.store.blobs import Blobs, keep_blob
from sanji.store.documents import Documents
from sanji.store.engine import PG_WRITER_LOCK as PG_WRITER_LOCK  # kept importable from here for older callers
from sanji.store.engine import Database, NotLocked
from sanji.store.eventlog import EventLog
from sanji.store.intake import ActionRow, Intake, keyed
from sanji.store.notifications import NotificationQueue
from sanji.store.rows import upsert as _upsert
from sanji.store.rows import upsert_many as _upsert_many
from sanji.store.submissions import Once
from sanji.store.traffic import Traffic
from sanji.store.views import Views
from sanji.store.warm import WarmErrands

log = logging.getLogger("sanji.store")
FOREIGN = ledger.FOREIGN  # carried in a stream that may not carry it: kept for audit, never judged
LOGGED_REFUSALS = 3  # refused frames of one request or file written as their own event rows; the rest summed
# Batches read per statement while filling a page: a page takes what it needs of a long stream, never the
# whole rest of it (a new laptop's first download would otherwise read its history again for every page).
PAGE_ROWS = 256
CLOCK_MARK = "clock_mark"  # meta key: the greatest time this store's clock has issued or followed


async def _instance_id(conn: AsyncConnection, meta: dict[str, str]) -> str:
    """This database's random identity, made once when it is first opened (certificates bind to it)."""
    if "instance_id" not in meta:
        meta["instance_id"] = uuid.uuid4().hex
        await conn.execute(insert(t.meta).values(key="instance_id", value=meta["instance_id"]))
    return meta["instance_id"]


async def database_instance(db: Database) -> str:
    """The instance id of ``db`` (made now if the database is new), without opening a Store."""
    async with db.write() as conn:
        rows = dict((await conn.execute(select(t.meta.c.key, t.meta.c.value))).all())
        return await _instance_id(conn, rows)


@dataclass(frozen=True)
class ReceiveOutcome:
    results: list[FrameResult]
    applied_batches: int
    applied_actions: int


class _FrameFailed(Exception):
    """Frame ``index`` of a receive call raised ``error`` (``Store._take_all``)."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index, self.error = index, error


class _DeferredWritesFailed(Exception):
    """The rows a receive call kept to write at its end could not be written (``Store._take_all``)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True)
class _Touched:
    """The streams and errands a push's frames name, and the names of their locks (``write_touching``)."""

    streams: frozenset[StreamKey]
    errands: frozenset[str]

    @property
    def names(self) -> list[str]:
        return [f"stream {k.origin} {k.scope}" for k in self.streams] + [f"errand {e}" for e in self.errands]


# The most locks one push takes of its own (``write_touching``); one naming more takes the writer lock. Each
# is an entry of PostgreSQL's shared lock table, about 6,400 by default (``max_locks_per_transaction`` 64
# × ``max_connections`` 100) for every session together: a push names at most about as many errands as it
# carries actions (≈ 600 in a default 64 KB request; 311 in the benchmark's largest), a hand-carried file
# thousands. Eight hub processes at the cap hold about 5,100 (more: raise ``max_locks_per_transaction``,
# deploy/README.md); should the table still be full, the push falls back to the writer lock (``NotLocked``).
# At 256, a fifth of the benchmark's pushes took the writer lock and two processes gained 1.3× instead of 1.5–1.8×.
MAX_TOUCHED_LOCKS = 640


def _touched(opened: Sequence[Batch | Exception]) -> _Touched | None:
    """What the frames touch, if every one opened and they name few enough (None: the writer lock; a
    refused frame is quarantined under it, its stream not known)."""
    streams: set[StreamKey] = set()
    errands: set[str] = set()
    for batch in opened:
        if not isinstance(batch, Batch):
            return None
        streams.add(StreamKey(batch.origin, batch.scope))
        errands.update(a.errand for a in batch.actions)
    if len(streams) + len(errands) > MAX_TOUCHED_LOCKS:
        return None
    return _Touched(frozenset(streams), frozenset(errands))


class _Retake(Exception):
    """A receive call's first try on PostgreSQL, without a savepoint, failed: its transaction is rolled back
    and the call taken again under savepoints from where that try stopped (``Store._take_all``)."""

    def __init__(self, count: int, failure: Exception | None, defer: bool) -> None:
        super().__init__(count, failure, defer)
        self.count, self.failure, self.defer = count, failure, defer


class _Taken:
    """What one attempt at a receive call's frames answered and applied."""

    def __init__(self, failure: Exception | None) -> None:
        self.failure = failure  # the error of the frame after the last one taken, raised by the caller
        self.results: list[FrameResult] = []
        self.refusals: list[str] = []  # refused frames' codes, the first few logged one by one
        self.applied_batches = self.applied_actions = 0
        self.intake: Intake | None = None  # the attempt's: what it wrote is left warm once committed

    def add(self, receipt: ledger.Receipt) -> None:
        applied = receipt.applied
        self.applied_batches += len(applied)
        self.applied_actions += sum(len(b.actions) for b in applied)
        self.results.append(receipt.result)


class Store(Views, Documents, Traffic, Blobs, Archive, EventLog, NotificationQueue):
    """Everything one node keeps, behind methods that each keep the invariants above.

    The ledger core is here; reading, attachments, traffic, the event log, documents and the SMS queue
    are the parts it inherits (``sanji.store.section``), so every public name stays on ``Store``.
    """

    def __init__(
        self,
        db: Database,
        *,
        node_id: str,
        key: SigningKey,
        directory: Directory,
        sealing_key: SealingKey | None = None,
    ) -> None:
        if node_id not in directory:
            raise ValueError(f"node {node_id} is not in the directory")
        self.db = db
        self.node_id = node_id
        self.key = key
        # Opens the applicant details sealed to this node (protocol.sealing); read_key() attaches it to the key.
        if sealing_key is None and isinstance(key, NodeKey):
            sealing_key = key.sealing
        self.sealing_key = sealing_key
        self.directory = directory
        self.clock = HybridClock()
        self.instance_id = ""
        self._subtree = frozenset(directory.subtree(node_id))
        self._listeners: list[Callable[[], None]] = []
        # A child must not number new batches until its parent confirmed where its streams stand
        # (a node restored from a backup would otherwise reuse sequence numbers). The root is its own judge.
        self.positions_confirmed = directory.parent(node_id) is None
        # While a key rotation is in flight nothing is signed: the old key's retirement point is
        # this node's stream positions when it asked, so no batch may fall between the two keys.
        self.sealing_paused = False
        # Direct children that told this process what they hold of this node's streams. Only then are
        # new batches numbered in streams towards them: a node restored from a backup may have sent a
        # child batches it no longer holds, and takes them back first (``confirm_child``, ``reclaim``).
        self.confirmed_children: set[str] = set()
        # What each child last reported holding of this node's streams, as written here (``record_child_holds``).
        self._child_holds: dict[str, dict[StreamKey, int]] = {}
        self._sealed_ids: dict[tuple[str, int], frozenset[str]] = {}  # ``Views.handoffs``: own batches' action ids
        # The parent confirmed this node's streams in this process (``positions_confirmed`` is kept on
        # disk, so a disk restored from a backup brings it back): streams only ancestors hold wait for it.
        self.parent_confirmed = directory.parent(node_id) is None
        # This database is a backup copy (``ledger.RESTORED_MARK``) its parent has not confirmed since.
        self.restored = False
        # errands received lately, continued without reading them back
        self._warm = WarmErrands.for_role(directory.role(node_id))
        # PostgreSQL: pushes taken under the locks of what they touch or under the writer lock, and how many
        # of the latter fell back to it (``receive``).
        self.push_locks = Counter[str]()

    def use_directory(self, directory: Directory) -> None:
        """Verify with ``directory`` from now on (new certificates, rotated or revoked keys)."""
        if self.node_id not in directory:
            raise ValueError(f"node {self.node_id} is not in the new directory")
        self.directory = directory
        self._subtree = frozenset(directory.subtree(self.node_id))

    def use_key(self, key: SigningKey) -> None:
        """Sign with ``key`` from now on (a completed rotation)."""
        sealing = self.sealing_key
        self.key = key
        if isinstance(key, NodeKey) and key.sealing is not None:
            sealing = key.sealing
        self.sealing_key = sealing

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        if self.db.read_only:
            await self._start_on_replica()
            return
        async with self._write() as conn:
            rows = dict((await conn.execute(select(t.meta.c.key, t.meta.c.value))).all())
            if rows.get("node_id") not in (None, self.node_id):
                raise SanjiError(
                    f"this database belongs to node {rows['node_id']}, not {self.node_id}",
                    hint="Point the node at its own database file.",
                )
            if "node_id" not in rows:
                await conn.execute(insert(t.meta).values(key="node_id", value=self.node_id))
            if rows.get("positions_confirmed") == "1":
                # Confirmed once, kept across restarts: a restarted township cut off from the county
                # keeps serving its villages (every node works alone).
                self.positions_confirmed = True
            self.restored = rows.get(ledger.RESTORED_MARK) == "1" and self.directory.parent(self.node_id) is not None
            self.instance_id = await _instance_id(conn, rows)
            mark = rows.get(CLOCK_MARK)
            if mark is None:  # a store from before the mark was kept: read every action's time, once
                self.clock = HybridClock(int(await conn.scalar(select(func.max(t.actions.c.at))) or 0))
                await self._keep_clock(conn)
            else:  # the mark kept with every write: no scan of the actions at start
                self.clock = HybridClock(int(mark))

    async def _start_on_replica(self) -> None:
        """``start`` on a read-only replica (docs/scaling.md, 2.): what the primary's hub wrote, read, nothing
        written. A replica of another node's store, or of one never started, is refused."""
        async with self.db.read() as conn:
            rows = dict((await conn.execute(select(t.meta.c.key, t.meta.c.value))).all())
        if rows.get("node_id") != self.node_id or "instance_id" not in rows or CLOCK_MARK not in rows:
            raise SanjiError(
                f"this replica holds no started store of node {self.node_id} (it holds {rows.get('node_id')!r})",
                hint="Start the node's hub on the primary first; the replica follows it.",
            )
        self.positions_confirmed = rows.get("positions_confirmed") == "1"
        self.restored = rows.get(ledger.RESTORED_MARK) == "1" and self.directory.parent(self.node_id) is not None
        self.instance_id = rows["instance_id"]
        self.clock = HybridClock(int(rows[CLOCK_MARK]))

    async def _keep_clock(self, conn: AsyncConnection) -> None:
        """Write the clock's high-water mark, so a restart never issues a time before one already used.

        Kept with every write that stores actions, instead of reading the greatest time of every action at
        start (seconds at a county's million errands, at every start and every command that opens the store).
        Several hub processes on one database each keep the greatest of theirs (zero-padded: text compares
        as the number).
        """
        mark = {"key": CLOCK_MARK, "value": f"{self.clock.last:020d}"}
        await _upsert(conn, t.meta, mark, keys=("key",), greatest="value")

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every commit that adds something to send or show."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction through the database's one writer door, for books kept beside the store."""
        return self.db.write()

    # -- local actions ---------------------------------------------------------------

    async def act(
        self,
        errand_id: str,
        build: Callable[[Projection, int], Action],
        *,
        attachment: bytes | None = None,
        once: Once | None = None,
        first: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> Projection:
        """Record one local action, judged by the same rule every replica uses. ``attachment``: the bytes an
        ``attach`` step names, kept in the same transaction, so a refused step keeps none of them. ``once``: the
        sending form's one-time key, read and written in the same transaction (``sanji.store.submissions``): a
        key already used raises ``AlreadySent`` before anything is built, and nothing is written. ``first``:
        what the step needs written with it before it is built (a registration's receipt number), rolled back
        with it if it is refused."""
        async with self._write() as conn:
            if once is not None:
                await submissions.refuse_if_used(conn, once)
            if first is not None:
                await first(conn)
            before = project(errand_id, await self._load_actions(conn, [errand_id]), self.directory)
            action = build(before, self.clock.now())
            ledger.check_local(self.node_id, errand_id, before.state, action, self.directory)
            if attachment is not None:
                if not isinstance(action, Attach) or action.blob != hashlib.sha256(attachment).hexdigest():
                    raise ValueError("attachment bytes go with the attach step that names their hash")
                await keep_blob(conn, action.blob, attachment)
            _, moved = await self._insert_actions(conn, [action], origin=action.node, scope=action.scope)
            await self._keep_clock(conn)
            await conn.execute(insert(t.outbox).values(action_id=action.id, scope=action.scope))
            if once is not None:
                await submissions.keep(conn, once, errand_id, action.id)
            projections = await self._recompute(conn, [errand_id, *sorted(moved)])
        self._changed()
        return projections[errand_id]

    def may_seal(self, scope: str) -> bool:
        """Whether this process may number new batches in its stream of ``scope`` (``protocol.ledger.may_seal``)."""
        return ledger.may_seal(
            self.directory,
            self.node_id,
            scope,
            parent_confirmed=self.parent_confirmed,
            confirmed_children=self.confirmed_children,
            restored=self.restored,
        )

    async def seal_outbox(self, max_actions: int = limits.DEFAULT_BATCH_ACTIONS, *, force: bool = False) -> int:
        """Turn unsent local actions into signed batches, one stream per scope. Returns batches made.

        Streams towards a child not yet heard from in this process stay in the outbox (``may_seal``);
        ``force`` seals them anyway (an operator writing a hand-carried file: there is no link to ask).
        """
        made = 0
        if self.sealing_paused:
            return 0
        async with self._write() as conn:
            rows = (
                await conn.execute(
                    select(t.outbox.c.id, t.outbox.c.scope, t.actions.c.body)
                    .join(t.actions, t.actions.c.id == t.outbox.c.action_id)
                    .order_by(t.outbox.c.id)
                )
            ).all()
            by_scope: dict[str, list[Action]] = defaultdict(list)
            sealed_ids: list[int] = []
            for row_id, scope, body in rows:
                if force or self.may_seal(scope):
                    by_scope[scope].append(decode_action(body))
                    sealed_ids.append(row_id)
            for scope, acts in by_scope.items():
                key = StreamKey(self.node_id, scope)
                seq, last_hash = await self._cursor(conn, key)
                sealed = ledger.seal_stream(
                    key=self.key,
                    stream=key,
                    audience=self.directory.audience(self.node_id, scope),
                    cursor=seq,
                    last_hash=last_hash,
                    actions=acts,
                    now=self.clock.now,
                    max_actions=max_actions,
                )
                for batch in sealed:
                    await self._store_batch(conn, self.node_id, scope, batch.seq, batch.frame, batch.hash)
                made += len(sealed)
                if sealed:
                    await self._set_cursor(conn, key, sealed[-1].seq, sealed[-1].hash)
            if sealed_ids:
                await conn.execute(delete(t.outbox).where(t.outbox.c.id.in_(sealed_ids)))
        if made:
            self._changed()
        return made

    async def confirm_positions(self, *, by_parent: bool = True) -> None:
        if not ledger.confirms_positions(by_parent=by_parent, restored=self.restored):
            return
        self.parent_confirmed = True
        if not self.positions_confirmed:
            await self.set_meta("positions_confirmed", "1")
            self.positions_confirmed = True
        if by_parent and self.restored:
            await self.set_meta(ledger.RESTORED_MARK, "0")
            self.restored = False

    async def ancestor_cursors(self) -> dict[StreamKey, int]:
        """What this node holds of streams its ancestors wrote about its subtree (``ancestor_streams``)."""
        return await self.cursors_in(ledger.ancestor_streams(self.directory, self.node_id))

    def mine_below(self, child: str) -> ledger.StreamFilter:
        """This node's own streams about ``child``'s subtree: what ``confirm_child`` compares."""
        below = self.directory.subtree(child) if child in self.directory else []
        return ledger.streams(origin_in=[self.node_id], scope_in=below)

    async def confirm_child(
        self, child: str, reported: dict[StreamKey, int], *, held: dict[StreamKey, int] | None = None
    ) -> dict[StreamKey, int]:
        """Take a direct child's report of this node's streams. Returns those the child holds more of, with
        this node's cursors ("give me mine after these": this node was restored from a backup), or confirms
        the child when there are none (``protocol.ledger.ahead_of_parent``). ``held``: this node's cursors
        of at least ``mine_below(child)``, read by the caller just now (else read here)."""
        which = self.mine_below(child)
        mine = which.select(held) if held is not None else await self.cursors_in(which)
        ahead = ledger.ahead_of_parent(self.directory, self.node_id, child, reported, mine)
        if ahead is None:
            return {}
        if ahead:
            await self.log_event("restored", child, {"streams": sorted(str(k) for k in ahead)})
        else:
            self.confirmed_children.add(child)
        return ahead

    async def held_above(self, child: str, held: dict[StreamKey, int]) -> dict[StreamKey, int]:
        """The child's own streams of which this node's parent held more than this node does (``above``)."""
        parent = self.directory.parent(self.node_id)
        if parent is None:
            return {}
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(t.peer_acks.c.origin, t.peer_acks.c.scope, t.peer_acks.c.seq).where(
                        t.peer_acks.c.peer == parent, t.peer_acks.c.origin == child
                    )
                )
            ).all()
        return ledger.held_above(child, {StreamKey(o, sc): q for o, sc, q in rows}, held)

    async def frames_given_back(self, parent_has: dict[StreamKey, int], max_bytes: int) -> tuple[list[bytes], bool]:
        """The parent's own batches it lost and this node holds (``CursorsResponse.reclaim``)."""
        return await self._frames_after(dict(parent_has), max_bytes)

    async def own_streams_behind(self, parent_has: dict[StreamKey, int]) -> list[str]:
        """This node's own streams of which the parent holds more than this node: a restored backup."""
        mine = await self.cursors_in(ledger.own_streams(self.node_id))
        return ledger.own_streams_behind(self.node_id, parent_has, mine)

    async def note_recovery(self, streams: list[str]) -> None:
        """After taking own batches back: never reissue a receipt number the lost copy had issued."""
        async with self._write() as conn:
            bodies = (
                await conn.execute(
                    select(t.actions.c.body).where(t.actions.c.node == self.node_id, t.actions.c.kind == "register")
                )
            ).scalars()
            highest: dict[str, int] = {}
            for body in bodies:
                receipt = getattr(decode_action(body), "receipt", "")
                parts = receipt.split("-")
                if len(parts) == 3 and parts[2][:-1].isdigit():
                    highest[parts[1]] = max(highest.get(parts[1], 0), int(parts[2][:-1]))
            for day, seq in highest.items():
                key = f"counter:receipt:{day}"
                held = int(await conn.scalar(select(t.meta.c.value).where(t.meta.c.key == key)) or 0)
                if seq > held:
                    await _upsert(conn, t.meta, {"key": key, "value": str(seq)}, keys=("key",))
            await conn.execute(
                insert(t.events).values(
                    at=time.time(),
                    kind="restored",
                    peer="",
                    detail=json.dumps({"streams": streams}, ensure_ascii=False),
                )
            )

    # -- receiving -------------------------------------------------------------------

    async def receive(self, frames: Sequence[bytes], *, peer: str) -> ReceiveOutcome:
        """Verify and take each frame (``protocol.ledger``); one result per frame, in order.

        The frames of one call share one write transaction (one commit, one sync to disk, instead of one
        per frame): a frame that fails leaves nothing behind, the frames before it are committed and the
        error is raised, exactly as when every frame had its own transaction (``_take_all``).
        """
        # Every frame is verified first (pure; an error is kept and met at the frame's turn), so the rows
        # all of them touch are read once (``sanji.store.intake``) and written once at the end.
        directory = self.directory
        opened = [self._open_addressed(frame) for frame in frames]
        # Locked by what it touches where it can be (``Database.write_touching``), else by the writer lock.
        locked = None if self.db.is_sqlite else _touched(opened)
        retake: _Retake | None = None
        while True:
            try:
                async with self._write() if locked is None else self.db.write_touching(locked.names) as conn:
                    if self.directory is not directory:  # the keys changed (a revocation) while this push waited
                        directory = self.directory
                        opened = [self._open_addressed(frame) for frame in frames]
                        if locked is not None and _touched(opened) != locked:
                            raise NotLocked("the frames opened otherwise under the new keys")
                    scope = None if locked is None else (locked.streams, locked.errands)
                    taken = await self._take_all(conn, frames, opened, peer, retake, scope)
                    if taken.applied_batches:
                        await self._keep_clock(conn)
            except _Retake as again:  # taken again under the writer lock, whatever failed
                retake, locked = again, None
                continue
            except NotLocked:
                self.push_locks["fell_back"] += 1
                retake, locked = None, None
                continue
            break
        if not self.db.is_sqlite:
            self.push_locks["touched" if locked is not None else "writer"] += 1
        if taken.intake is not None:  # committed: the next push continues these errands from memory
            self._warm.keep(taken.intake.written, taken.intake.actions, taken.intake.lines)
        if taken.failure is not None:
            if taken.applied_batches:
                self._changed()
            raise taken.failure
        refusals = taken.refusals
        if len(refusals) > LOGGED_REFUSALS:
            await self._log_event(
                "refused_more",
                peer,
                {"count": len(refusals) - LOGGED_REFUSALS, "errors": dict(Counter(refusals[LOGGED_REFUSALS:]))},
            )
        if taken.applied_batches:
            self._changed()
        return ReceiveOutcome(taken.results, taken.applied_batches, taken.applied_actions)

    async def _take_all(
        self,
        conn: AsyncConnection,
        frames: Sequence[bytes],
        opened: Sequence[Batch | Exception],
        peer: str,
        retake: _Retake | None = None,
        locked: tuple[frozenset[StreamKey], frozenset[str]] | None = None,
    ) -> _Taken:
        """Take ``frames`` in the caller's transaction: every one, or those before the first that fails.

        A frame fails only on an error the ledger does not answer (a database error, a bug), which is rare,
        so the frames are taken under one savepoint for the whole call rather than one each (two statements
        a frame, and undoing a frame's changes to the intake): when frame ``k`` fails the savepoint is
        rolled back, the frames before ``k`` are taken again from scratch, and ``k``'s error is kept for the
        caller to raise. What is left is what one savepoint per frame left: ``k`` and the frames after it
        change nothing, its error is the one raised.

        The frames' batch and action rows are inserted at the end too, with the rest (``Intake(defer=True)``).
        Should those writes fail, the frame whose rows fail is not known: the call is taken again with each
        frame inserting its own rows, so that frame fails in its turn as above.

        On PostgreSQL the first try takes no savepoint: the ``SAVEPOINT`` and its ``RELEASE`` were two of the
        fifteen or so round trips of a push (BEGIN and COMMIT included), for a failure that seldom comes.
        Should that try fail, ``_Retake`` rolls back the caller's whole transaction (nothing in it comes
        before this call's frames but the writer's lock), and the caller begins another where the call goes
        on under savepoints from where the first try stopped (``retake``): the frames before the failing one
        are taken again and its error raised, as above. SQLite, where a statement costs no round trip,
        always takes the savepoint.
        """
        count, failure, defer = len(frames), None, True
        if retake is not None:
            count, failure, defer = retake.count, retake.failure, retake.defer
        guarded = retake is not None or self.db.is_sqlite
        while True:
            taken = _Taken(failure)
            if count == 0:
                return taken
            intake = taken.intake = Intake(defer=defer, warm=self._warm, locked=locked)
            try:
                async with conn.begin_nested() if guarded else nullcontext():
                    await intake.preload(conn, [b for b in opened[:count] if isinstance(b, Batch)])
                    for index in range(count):
                        try:
                            receipt = await self._take(conn, frames[index], peer, taken.refusals, opened[index], intake)
                        except NotLocked:
                            raise
                        except Exception as exc:
                            raise _FrameFailed(index, exc) from exc
                        taken.add(receipt)
                    try:
                        await intake.flush(conn)
                    except Exception as exc:
                        if not defer:
                            raise
                        raise _DeferredWritesFailed(exc) from exc
            except _FrameFailed as failed:
                count, failure = failed.index, failed.error
            except _DeferredWritesFailed as failed:
                # Taken again frame by frame, the call may well succeed: say why the end's writes failed.
                log.warning(
                    "the end-of-push writes of %d frame(s) from %s failed (%s: %s); taking them again frame by frame",
                    count,
                    peer,
                    type(failed.error).__name__,
                    failed.error,
                )
                defer = False
            else:
                return taken
            if not guarded:
                raise _Retake(count, failure, defer)

    def _open(self, frame: bytes) -> Batch:
        return open_frame(frame, self.directory)

    def _open_addressed(self, frame: bytes) -> Batch | Exception:
        try:
            return ledger.open_addressed(frame, self.node_id, self._open)
        except Exception as exc:
            return exc

    async def _take(
        self,
        conn: AsyncConnection,
        frame: bytes,
        peer: str,
        refusals: list[str],
        opened: Batch | Exception | None = None,
        intake: Intake | None = None,
    ) -> ledger.Receipt:
        """Verify one frame (``opened``: as ``_open_addressed`` verified it) and persist what the ledger
        decides, in the caller's transaction."""
        try:
            if isinstance(opened, Exception):
                raise opened
            batch = opened if opened is not None else ledger.open_addressed(frame, self.node_id, self._open)
        except SanjiError as exc:
            receipt = ledger.refuse(frame, exc, peer)
            effects = receipt.effects
            if not isinstance(exc, RevokedKey):  # a retired key's frame is quarantined once, not counted
                # One row per refused frame up to a cap; the rest are counted in one summary row below.
                if len(refusals) >= LOGGED_REFUSALS:
                    effects = ()
                refusals.append(exc.code)
            if effects:
                await self._persist(conn, effects, intake)
            return receipt
        return await self._receive_one(conn, batch, peer, intake)

    async def _receive_one(
        self, conn: AsyncConnection, batch: Batch, peer: str, intake: Intake | None = None
    ) -> ledger.Receipt:
        key = StreamKey(batch.origin, batch.scope)
        cursor, last_hash = await (intake.cursor(conn, key) if intake else self._cursor(conn, key))
        held_hash = None
        if batch.seq <= cursor and intake is not None:
            held_hash = await intake.batch_hash(conn, key, batch.seq)
        elif batch.seq <= cursor:
            held_hash = await conn.scalar(
                select(t.batches.c.hash).where(
                    t.batches.c.origin == key.origin, t.batches.c.scope == key.scope, t.batches.c.seq == batch.seq
                )
            )
        receipt = ledger.judge_batch(batch, cursor=cursor, last_hash=last_hash, held_hash=held_hash, peer=peer)
        if receipt is None:
            if intake is not None:
                successors = await intake.held_after(conn, key, batch.seq)
            else:
                rows = await conn.execute(
                    select(t.held.c.seq, t.held.c.frame).where(
                        t.held.c.origin == key.origin, t.held.c.scope == key.scope, t.held.c.seq > batch.seq
                    )
                )
                successors = {int(seq): bytes(frame) for seq, frame in rows.all()}
            receipt = ledger.drain(batch, successors, self._open, peer)
        await self._persist(conn, receipt.effects, intake)
        return receipt

    async def _persist(
        self, conn: AsyncConnection, effects: Iterable[ledger.Effect], intake: Intake | None = None
    ) -> None:
        """Write what the ledger decided, in the caller's transaction (``intake``: see ``receive``)."""
        for effect in effects:
            if isinstance(effect, ledger.Apply):
                await self._apply(conn, effect.batch, intake)
            elif isinstance(effect, ledger.Hold):
                key = effect.key
                if intake is not None:
                    intake.holding(key)
                exists = await conn.scalar(
                    select(func.count())
                    .select_from(t.held)
                    .where(t.held.c.origin == key.origin, t.held.c.scope == key.scope, t.held.c.seq == effect.seq)
                )
                if not exists:
                    await conn.execute(
                        insert(t.held).values(
                            origin=key.origin,
                            scope=key.scope,
                            seq=effect.seq,
                            hash=effect.hash,
                            frame=effect.frame,
                            received_at=time.time(),
                        )
                    )
            elif isinstance(effect, ledger.Unhold):
                key = effect.key
                await conn.execute(
                    delete(t.held).where(
                        t.held.c.origin == key.origin, t.held.c.scope == key.scope, t.held.c.seq == effect.seq
                    )
                )
            elif isinstance(effect, ledger.Quarantine):
                await self._quarantine(conn, effect)
            else:
                await self._log_event(effect.kind, effect.peer, dict(effect.detail), conn=conn)

    async def _quarantine(self, conn: AsyncConnection, q: ledger.Quarantine) -> None:
        seen = await conn.scalar(
            select(func.count())
            .select_from(t.quarantine)
            .where(
                t.quarantine.c.origin == q.key.origin,
                t.quarantine.c.scope == q.key.scope,
                t.quarantine.c.seq == q.seq,
                t.quarantine.c.hash == q.hash,
            )
        )
        if seen:  # the same frame again: one quarantine row is enough
            return
        await conn.execute(
            insert(t.quarantine).values(
                origin=q.key.origin,
                scope=q.key.scope,
                seq=q.seq,
                hash=q.hash,
                frame=q.frame,
                reason=q.reason,
                peer=q.peer,
                at=time.time(),
            )
        )
        if q.event:
            await self._log_event(q.event, q.peer, dict(q.detail), conn=conn)

    async def _apply(self, conn: AsyncConnection, batch: Batch, intake: Intake | None = None) -> int:
        if intake is not None and intake.defer:
            intake.add_batch(StreamKey(batch.origin, batch.scope), _batch_row(batch))
        else:
            await conn.execute(insert(t.batches).values(_batch_row(batch)))
        if intake is not None:
            intake.set_cursor(StreamKey(batch.origin, batch.scope), batch.seq, batch.hash)
        else:
            await self._set_cursor(conn, StreamKey(batch.origin, batch.scope), batch.seq, batch.hash)
        self.clock.observe(batch.payload.created)
        for action in batch.actions:
            self.clock.observe(action.at)
        fresh, moved = await self._insert_actions(
            conn, batch.actions, origin=batch.origin, scope=batch.scope, intake=intake
        )
        errands = sorted({a.errand for a in batch.actions} | moved)
        if intake is not None:
            await self._recompute(conn, errands, fresh=fresh, intake=intake)
        else:
            await self._recompute(conn, errands, fresh=fresh)
        return len(batch.actions)

    # -- forwarding ------------------------------------------------------------------

    async def cursors_where(
        self,
        *,
        origin_in: Iterable[str] | None = None,
        origin_not_in: Iterable[str] | None = None,
        scope_in: Iterable[str] | None = None,
    ) -> dict[StreamKey, int]:
        return await self.cursors_in(
            ledger.streams(origin_in=origin_in, scope_in=scope_in, origin_not_in=origin_not_in or ())
        )

    async def cursors_in(self, which: ledger.StreamFilter, *more: ledger.StreamFilter) -> dict[StreamKey, int]:
        """This node's cursors of the streams ``which`` names (or any of ``more`` names), in one statement."""
        query = select(t.streams.c.origin, t.streams.c.scope, t.streams.c.seq)
        clauses = [_stream_clause(w) for w in (which, *more)]
        if len(clauses) == 1:
            query = query.where(*clauses[0])
        else:
            query = query.where(or_(*(and_(true(), *c) for c in clauses)))
        async with self.db.read() as conn:
            return {StreamKey(o, s): q for o, s, q in (await conn.execute(query)).all()}

    async def cursors_for_child(self, child: str) -> dict[StreamKey, int]:
        """What this node holds of the streams a child can push up: its subtree's, and its ancestors'
        about its subtree (one it took from a fallback ancestor past this node comes up too)."""
        ledger.check_descendant(self.directory, self.node_id, child)
        written_below = await self.cursors_in(ledger.pushable(self.directory, child))
        about_it = await self.cursors_in(ledger.ancestor_streams(self.directory, child))
        return dict(sorted({**written_below, **about_it}.items()))

    async def pull_cursors(self) -> dict[StreamKey, int]:
        """What this node holds of every stream, its own included: what it asks its parent for.

        Streams written below this node are included: when a village carried its batches
        straight to the county (its township was down), the township catches up from the county.
        """
        return await self.cursors_in(ledger.EVERY_STREAM)

    async def frames_for_child(
        self, child: str, known: dict[StreamKey, int], max_bytes: int
    ) -> tuple[list[bytes], bool]:
        """Batches the child's subtree should receive and does not have yet, in order, within budget."""
        ledger.check_descendant(self.directory, self.node_id, child)
        ours = await self.cursors_in(ledger.for_subtree(self.directory, child))
        return await self._frames_after(ledger.wanted(ours, known), max_bytes)

    async def frames_for_parent(self, parent_has: dict[StreamKey, int], max_bytes: int) -> tuple[list[bytes], bool]:
        ours = await self.cursors_in(ledger.pushable(self.directory, self.node_id))
        return await self._frames_after(ledger.wanted(ours, parent_has), max_bytes)

    async def frames_after(self, after: dict[StreamKey, int], max_bytes: int) -> tuple[list[bytes], bool]:
        """The held batches after each cursor of ``after``, in stream order, within ``max_bytes``."""
        return await self._frames_after(after, max_bytes)

    async def _frames_after(self, wanted: dict[StreamKey, int], max_bytes: int) -> tuple[list[bytes], bool]:
        """Each stream is read ``PAGE_ROWS`` batches at a time until the page is full: what a page costs
        depends on the page, not on how much of the stream is left after it."""
        page = ledger.PageBudget(max_bytes)
        frames: list[bytes] = []
        async with self.db.reader.connect() as conn:
            for key in sorted(wanted):
                after = wanted[key]
                while True:
                    query = (
                        select(t.batches.c.seq, t.batches.c.frame, t.batches.c.size)
                        .where(
                            t.batches.c.origin == key.origin, t.batches.c.scope == key.scope, t.batches.c.seq > after
                        )
                        .order_by(t.batches.c.seq)
                        .limit(PAGE_ROWS)
                    )
                    rows = (await conn.execute(query)).all()
                    if not rows and after != wanted[key]:
                        break  # the stream ended right at the last read's end: that is not a full page
                    fit = page.take([r.size for r in rows])
                    frames.extend(r.frame for r in rows[:fit])
                    if page.full:
                        return frames, True
                    if len(rows) < PAGE_ROWS:
                        break
                    after = rows[-1].seq
        return frames, False

    async def frames_for_node(self, node: str, *, known: dict[StreamKey, int] | None = None) -> list[bytes]:
        """Every held batch addressed to ``node`` (any node on the path), in stream order: for a carried file."""
        if node not in self.directory:
            raise RouteError(f"node {node!r} is not in the directory")
        scopes = self.directory.subtree(node)
        ours = await self.cursors_where(scope_in=scopes)
        known = known or {}
        wanted = {k: known.get(k, 0) for k, seq in ours.items() if k.origin != node and seq > known.get(k, 0)}
        frames, _ = await self._frames_after(wanted, 1 << 62)
        return frames

    def _check_child(self, child: str) -> None:
        ledger.check_descendant(self.directory, self.node_id, child)

    # -- exchange bookkeeping ------------------------------------------------------------

    async def record_acks(self, peer: str, results: Iterable[FrameResult]) -> None:
        await self.record_peer_cursors(peer, ledger.acknowledged(results))

    async def record_peer_cursors(self, peer: str, cursors: dict[StreamKey, int], *, exact: bool = False) -> None:
        """What ``peer`` holds. ``exact``: its answer to a session's cursors, all of this subtree's streams
        it holds now — a peer restored from a backup holds less than it once acknowledged."""
        if not cursors and not exact:
            return
        async with self._write() as conn:
            if exact:
                held = await conn.execute(
                    select(t.peer_acks.c.origin, t.peer_acks.c.scope, t.peer_acks.c.seq).where(
                        t.peer_acks.c.peer == peer, t.peer_acks.c.origin.in_(sorted(self._subtree))
                    )
                )
                if {StreamKey(o, s): q for o, s, q in held.all()} == cursors:
                    return  # as recorded: no write (an idle exchange changes nothing a report reads)
                await conn.execute(
                    delete(t.peer_acks).where(
                        t.peer_acks.c.peer == peer, t.peer_acks.c.origin.in_(sorted(self._subtree))
                    )
                )
            for k, seq in cursors.items():
                await _upsert(
                    conn,
                    t.peer_acks,
                    {"peer": peer, "origin": k.origin, "scope": k.scope, "seq": seq},
                    keys=("peer", "origin", "scope"),
                    greatest=None if exact else "seq",
                )

    async def record_child_holds(self, child: str, reported: Mapping[StreamKey, int]) -> None:
        """What a direct child reported holding of this node's own streams (its cursors request's
        ``ancestor_streams``), kept in ``peer_acks`` under the child: how far the results this node sent down have
        reached it (``Views.handoffs``). Kept as reported now (a child restored from a backup holds less); written
        only when it differs from what this process last wrote, so an idle exchange writes nothing."""
        ledger.check_descendant(self.directory, self.node_id, child)
        mine = {k: q for k, q in reported.items() if k.origin == self.node_id and q > 0}
        if child not in self._child_holds:  # the first report this process hears: compare with what is kept
            async with self.db.read() as conn:
                kept = await conn.execute(
                    select(t.peer_acks.c.scope, t.peer_acks.c.seq).where(
                        t.peer_acks.c.peer == child, t.peer_acks.c.origin == self.node_id
                    )
                )
                self._child_holds[child] = {StreamKey(self.node_id, sc): q for sc, q in kept.all()}
        if self._child_holds[child] == mine:
            return
        async with self._write() as conn:
            await conn.execute(
                delete(t.peer_acks).where(t.peer_acks.c.peer == child, t.peer_acks.c.origin == self.node_id)
            )
            for k, seq in sorted(mine.items()):
                await conn.execute(insert(t.peer_acks).values(peer=child, origin=k.origin, scope=k.scope, seq=seq))
        self._child_holds[child] = mine

    async def peer_cursors(self, peer: str) -> dict[StreamKey, int]:
        """What this node last recorded ``peer`` holding (``record_peer_cursors``)."""
        async with self.db.reader.connect() as conn:
            rows = (
                await conn.execute(
                    select(t.peer_acks.c.origin, t.peer_acks.c.scope, t.peer_acks.c.seq).where(
                        t.peer_acks.c.peer == peer
                    )
                )
            ).all()
        return {StreamKey(o, s): q for o, s, q in rows}

    async def record_exchange(
        self, peer: str, *, ok: bool, error: str = "", sent: int = 0, received: int = 0, skew_ms: int | None = None
    ) -> None:
        now = time.time()
        async with self._write() as conn:
            row = (await conn.execute(select(t.exchanges).where(t.exchanges.c.peer == peer))).mappings().first()
            values: dict[str, Any] = {
                "peer": peer,
                "last_attempt_at": now,
                "last_ok_at": now if ok else (row["last_ok_at"] if row else None),
                "last_error": "" if ok else error,
                "failures": 0 if ok else (row["failures"] + 1 if row else 1),
                "skew_ms": skew_ms if skew_ms is not None else (row["skew_ms"] if row else 0),
                "bytes_sent": (row["bytes_sent"] if row else 0) + sent,
                "bytes_received": (row["bytes_received"] if row else 0) + received,
            }
            if row is None or row["last_error"] != values["last_error"]:
                report_inputs.touch(self.db)  # the node report says the parent's last error
            if row is None:
                await conn.execute(insert(t.exchanges).values(**values))
            else:
                await conn.execute(update(t.exchanges).where(t.exchanges.c.peer == peer).values(**values))

    # -- internals ---------------------------------------------------------------------

    async def _cursor(self, conn: AsyncConnection, key: StreamKey) -> tuple[int, bytes]:
        row = (
            await conn.execute(
                select(t.streams.c.seq, t.streams.c.last_hash).where(
                    t.streams.c.origin == key.origin, t.streams.c.scope == key.scope
                )
            )
        ).first()
        return (row[0], row[1]) if row else (0, GENESIS)

    async def _set_cursor(self, conn: AsyncConnection, key: StreamKey, seq: int, last_hash: bytes) -> None:
        await _upsert(
            conn,
            t.streams,
            {"origin": key.origin, "scope": key.scope, "seq": seq, "last_hash": last_hash},
            keys=("origin", "scope"),
        )

    async def _store_batch(
        self, conn: AsyncConnection, origin: str, scope: str, seq: int, frame: bytes, digest: bytes | None = None
    ) -> bytes:
        digest = digest or frame_hash(frame)
        await conn.execute(
            insert(t.batches).values(
                origin=origin, scope=scope, seq=seq, hash=digest, frame=frame, size=len(frame), received_at=time.time()
            )
        )
        return digest

    async def _insert_actions(
        self, conn: AsyncConnection, acts: Sequence[Action], *, origin: str, scope: str, intake: Intake | None = None
    ) -> tuple[list[Action], set[str]]:
        """Keep what ``ledger.admit`` keeps of ``acts``; returns the actions new to the projections, and the
        errands other than their own that a replaced foreign copy was filed under (to project again)."""
        ids = [a.id for a in acts]
        if intake is not None:
            await intake.ensure(conn, {a.errand for a in acts}, ids)
            held = intake.held(ids)
        else:
            held = {
                aid: status == FOREIGN
                for aid, status in (
                    await conn.execute(select(t.actions.c.id, t.actions.c.status).where(t.actions.c.id.in_(ids)))
                ).all()
            }
        rows = []
        inserted: list[Action] = []
        fresh: list[Action] = []
        moved: set[str] = set()
        for change in ledger.admit(acts, origin=origin, scope=scope, held=held):
            a = change.action
            if isinstance(change, ledger.Replace) or not change.foreign:
                fresh.append(a)
            if isinstance(change, ledger.Replace):
                # The author's copy wins whole: every column is the author's, not only the body. A relay's
                # copy may name another errand, kind, base or time (a forgery: the relaying node signed its
                # frame, kept verbatim in `batches` as the evidence, as for a copy whose body differs).
                row = _action_row(a, status="new", reason="")
                if intake is not None:
                    was = await intake.replace(conn, a, row)
                else:
                    was = await conn.scalar(select(t.actions.c.errand).where(t.actions.c.id == a.id))
                    await bulk.update_many(conn, t.actions, [keyed(row)], keys=("id",))
                if was is not None and was != a.errand:
                    moved.add(was)
                continue
            rows.append(_action_row(a, status=FOREIGN if change.foreign else "new", reason=change.foreign))
            inserted.append(a)
        if rows:
            if intake is None or not intake.defer:
                await conn.execute(insert(t.actions), rows)
            if intake is not None:
                intake.inserted(rows, inserted)
        return fresh, moved

    async def _load_actions(self, conn: AsyncConnection, errand_ids: Sequence[str]) -> list[Action]:
        rows = (
            await conn.execute(
                select(t.actions.c.body).where(t.actions.c.errand.in_(list(errand_ids)), t.actions.c.status != FOREIGN)
            )
        ).scalars()
        return [decode_action(b) for b in rows]

    async def _recompute(
        self,
        conn: AsyncConnection,
        errand_ids: Sequence[str],
        *,
        fresh: Sequence[Action] = (),
        intake: Intake | None = None,
    ) -> dict[str, Projection]:
        """Project ``errand_ids`` again and write their rows and their actions' statuses.

        ``fresh`` are actions just admitted and not yet projected: an errand they only continue in order is
        folded onto its kept row (``sanji.store.projections``); the others are projected from everything held.
        With ``intake`` (a receive call's) the rows are read from and written to it (it writes them at the end).
        """
        directory = self.directory
        ids = list(errand_ids)
        kept: dict[str, Any]
        held: dict[str, list[Any]] = defaultdict(list)  # rows of `actions`: projections.Held and the body
        reader = intake if intake is not None else Intake()  # one way of reading the rows, a call's or its own
        await reader.ensure(conn, ids, ())
        kept = {e: row for e in ids if (row := reader.kept.get(e)) is not None}
        for e in ids:
            held[e] = list(reader.actions.get(e, ()))
        by_errand: dict[str, list[Action]] = defaultdict(list)
        for new_action in fresh:
            by_errand[new_action.errand].append(new_action)
        out: dict[str, Projection] = {}
        changes: list[tuple[str, str, str]] = []  # (action id, status, reason)
        made: dict[str, tuple[Projection, str]] = {}  # projections of this call, with the errand's scope
        lines: dict[str, ErrandState | None] = {}  # their main lines' states before the notes (``Replayed``)
        for errand_id in ids:
            entries = held.get(errand_id, [])
            # An errand this call projected already is continued from that projection, not its kept row (the
            # row is written once, at the end of the call): the same projection, without decoding it back.
            earlier = intake.projected.get(errand_id) if intake is not None else None
            row = kept.get(errand_id)
            continued: Replayed | None = None
            # A projection is continued only under the basis it was made under (``protocol.errand.basis_scope``:
            # its path, or the whole tree when something was refused or waits), else projected all again.
            fresh_here = by_errand.get(errand_id, [])
            if earlier is not None:
                # Made in this call: another basis only if the directory was swapped meanwhile.
                same_basis = earlier[2] == projections.basis_of_projection(earlier[0], directory)
                if fresh_here and same_basis:
                    line = reader.line_of(earlier[0])
                    continued = projections.fold_projected(earlier[0], entries, fresh_here, directory, line=line)
            else:
                warm = intake.warm_projections.get(errand_id) if intake is not None else None
                if warm is not None:  # what this process wrote: the basis of the projection it holds
                    same_basis = row is not None and row.basis == projections.basis_of_projection(warm, directory)
                else:
                    same_basis = row is not None and row.basis == projections.kept_basis(
                        row, entries, fresh_here, directory
                    )
                if fresh_here and warm is not None and same_basis:
                    line = reader.line_of(warm)
                    continued = projections.fold_projected(warm, entries, fresh_here, directory, line=line)
                elif fresh_here and warm is None and (row is None or same_basis):
                    continued = projections.fold_kept(errand_id, row, entries, fresh_here, directory)
            if continued is not None:
                folded = continued.projection
                out[errand_id] = folded
                # A fold decides the fresh actions, may take up what waited, and judges every note again (one
                # refused may be allowed past a new step); what the main line held before stays as it was.
                # Only a few ids are asked (the fresh ones, what waited, the notes): each is looked up in the
                # projection's own tuples (``_verdict``), no sets of all it holds are built.
                fresh_ids = {a.id for a in fresh_here}
                note_kinds = projections.NOTE_KINDS
                # a tuple search per id is quadratic in a long history (a peer may send thousands of notes): sets then
                verdict_of = _Verdicts(folded) if len(folded.main) + len(folded.notes) > _SEARCHED else None
                for e in entries:
                    if e.id in fresh_ids:
                        changes.append((e.id, *(verdict_of(e.id) if verdict_of else _verdict(folded, e.id))))
                    elif e.status == "waiting" or (e.kind in note_kinds and e.status != FOREIGN):
                        new = verdict_of(e.id) if verdict_of else _verdict(folded, e.id)
                        if (e.status, e.reason) != new:
                            changes.append((e.id, *new))
                made[errand_id] = (folded, "" if folded.state else _unregistered_scope(entries))
                lines[errand_id] = continued.line
                continue
            decoded = [(e.id, None if e.status == FOREIGN else e.decoded(), e.status, e.reason) for e in entries]
            # An action applied under this basis passed the bounds then: judge does not walk them again. Under
            # another basis (other software, other tree) every action is judged in full.
            bounded = {e.id for e in entries if e.status == "applied"} if same_basis else set()
            replayed = project_with_line(
                errand_id, [a for _, a, _, _ in decoded if a is not None], directory, bounded=bounded
            )
            proj = replayed.projection
            out[errand_id] = proj
            lines[errand_id] = replayed.line
            verdict = _Verdicts(proj)
            for aid, action, status, reason in decoded:
                if action is None:
                    continue
                new = verdict(aid)
                if (status, reason) != new:
                    changes.append((aid, *new))
            scope = "" if proj.state else _unregistered_scope(entries)
            made[errand_id] = (proj, scope)
        if intake is not None:
            for aid, status, reason in changes:
                intake.set_status(aid, status, reason)
            for errand_id, (proj, scope) in made.items():
                basis = projections.basis_of_projection(proj, directory)
                intake.set_projection(proj, scope, basis, line=lines[errand_id])
            return out
        errand_rows = [
            projections.errand_row(p, scope=sc, basis=projections.basis_of_projection(p, directory))
            for p, sc in made.values()
        ]
        # One statement per kind of change, executed for many rows: a batch of 200 actions costs
        # two round trips to the database instead of 400.
        if changes:
            await conn.execute(
                update(t.actions)
                .where(t.actions.c.id == bindparam("b_id"))
                .values(status=bindparam("b_status"), reason=bindparam("b_reason")),
                [{"b_id": aid, "b_status": status, "b_reason": reason} for aid, status, reason in changes],
            )
            await attached.write(conn, *_attachment_changes(held, changes))
        if errand_rows:
            await _upsert_many(conn, t.errands, errand_rows, keys=("id",))
        return out


def _attachment_changes(
    held: Mapping[str, Sequence[ActionRow]], changes: Sequence[tuple[str, str, str]]
) -> tuple[list[Action], list[str]]:
    """The attach actions among ``changes`` whose status turns ``applied``, and those (by id) it turns from it:
    ``held`` are the rows as stored before the changes."""
    now = {aid: status == "applied" for aid, status, _ in changes}
    applied: list[Action] = []
    unapplied: list[str] = []
    for entries in held.values():
        for e in entries:
            if e.kind != attached.KIND or e.id not in now:
                continue
            was = e.status == "applied"
            if now[e.id] and not was:
                applied.append(e.decoded())
            elif was and not now[e.id]:
                unapplied.append(e.id)
    return applied, unapplied


def _unregistered_scope(entries: Sequence[Any]) -> str:
    """Where an errand with no registration yet is filed: the scope of its first action by id (not a foreign
    copy), the same whichever way its rows were read or in whatever order they came."""
    own = [e for e in entries if e.status != FOREIGN]
    return str(min(own, key=lambda e: e.id).decoded().scope) if own else ""


_SEARCHED = 32  # ids held by a projection up to which a tuple search beats building sets (``_verdict``)


def _verdict(proj: Projection, aid: str) -> tuple[str, str]:
    """``_Verdicts(proj)(aid)`` for one id: the same answer, from the projection's tuples and dict."""
    if aid in proj.main or aid in proj.notes:
        return ("applied", "")
    if aid in proj.waiting:
        return ("waiting", "")
    return ("rejected", proj.rejected.get(aid, "rejected"))


class _Verdicts:
    """The status and reason a projection gives each action it was projected from."""

    def __init__(self, proj: Projection) -> None:
        self.applied = {*proj.main, *proj.notes}
        self.waiting = set(proj.waiting)
        self.rejected = proj.rejected

    def __call__(self, aid: str) -> tuple[str, str]:
        if aid in self.applied:
            return ("applied", "")
        if aid in self.waiting:
            return ("waiting", "")
        return ("rejected", self.rejected.get(aid, "rejected"))


def _stream_clause(which: ledger.StreamFilter) -> list[ColumnElement[bool]]:
    """The conditions on ``streams`` rows that ``which`` names (none: every stream)."""
    clause: list[ColumnElement[bool]] = []
    if which.origin_in is not None:
        clause.append(t.streams.c.origin.in_(sorted(which.origin_in)))
    if which.origin_not_in:
        clause.append(t.streams.c.origin.not_in(sorted(which.origin_not_in)))
    if which.scope_in is not None:
        clause.append(t.streams.c.scope.in_(sorted(which.scope_in)))
    return clause


def _action_row(a: Action, *, status: str, reason: str) -> dict[str, Any]:
    """The row of `actions` holding ``a``: every column but the status is derived from the action."""
    return {
        "id": a.id,
        "errand": a.errand,
        "scope": a.scope,
        "node": a.node,
        "kind": type(a).__struct_config__.tag,
        "base": a.base,
        "at": a.at,
        "body": encode(a),
        "status": status,
        "reason": reason,
    }


def _batch_row(batch: Batch) -> dict[str, Any]:
    return {
        "origin": batch.origin,
        "scope": batch.scope,
        "seq": batch.seq,
        "hash": batch.hash,
        "frame": batch.frame,
        "size": len(batch.frame),
        "received_at": time.time(),
    }
