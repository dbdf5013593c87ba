"""One ``Store.receive`` call's view of the rows its frames touch: read once, written once (issue 15).

Applying a frame used to ask the database, each time, for its stream's cursor, the held successors
of its stream, which of its action ids are held, the touched errands' kept rows and their actions,
and then to write the cursor, the actions' statuses and the errand rows: about twelve statements a
frame. Inside one receive call (one write transaction, nothing else writes meanwhile) those answers
only change by what the call itself writes, so ``Intake`` reads them once for all the call's frames
(``preload``: one statement each for the cursors, the held streams, the actions by errand or id and
the errands' rows; whatever a drained successor adds is read when first needed), keeps them up to
date as frames apply, and writes the cursors, statuses and errand rows at the end in one statement
each (``flush``), before the transaction commits.

With ``defer`` the frames' batch and action rows are kept here too and inserted at the end, one
statement each for the whole call (an action's row goes in with its final status, so only rows stored by
earlier calls get a status update, and a foreign copy stored by an earlier call that its author's copy
replaces is rewritten whole in one statement too); what a frame asks of them meanwhile (a batch already
taken, a foreign copy to replace) is answered from here. Without it (``Store._take_all`` falls back to that when
the end's writes fail, to find the frame they fail on) each frame inserts its own rows as it applies.

Nothing here is undone: a frame that fails rolls back the whole call's savepoint, and the frames before
it are taken again with a new ``Intake`` (``Store._take_all``), so the end writes exactly what the
frames before it left, as when every frame wrote its own rows.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from weakref import WeakKeyDictionary

import msgspec
from sqlalchemy import BindParameter, ColumnElement, Engine, Select, String, bindparam, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import ARRAY

from protocol import ledger
from protocol.actions import Action
from protocol.batch import GENESIS, Batch
from protocol.encoding import decode_action
from protocol.errand import ErrandState, Projection
from protocol.stream import StreamKey
from sanji.store import attached, bulk
from sanji.store import schema as t
from sanji.store.engine import NotLocked
from sanji.store.projections import errand_row
from sanji.store.rows import compiled_once
from sanji.store.warm import WarmErrands

# Values bound in one IN list: a carried file's frames all come in one call, far more than a push's.
CHUNK = 4000


# The reads, each of the rows whose column is one of a list of values ("ids"), given how that column is
# matched against the list. Their columns need no conversion by either driver (text, integers, bytes).
_Listed = Callable[[Any], ColumnElement[bool]]
_READS: dict[str, Callable[[_Listed], Select[Any]]] = {
    "streams": lambda listed: select(
        t.streams.c.origin, t.streams.c.scope, t.streams.c.seq, t.streams.c.last_hash
    ).where(listed(t.streams.c.origin)),
    "held": lambda listed: select(t.held.c.origin, t.held.c.scope).where(listed(t.held.c.origin)).distinct(),
    "kept": lambda listed: select(
        t.errands.c.id,
        t.errands.c.state,
        t.errands.c.digest,
        t.errands.c.basis,
        t.errands.c.scope,
        t.errands.c.waiting,
    ).where(listed(t.errands.c.id)),
    "actions": lambda listed: select(
        t.actions.c.id,
        t.actions.c.errand,
        t.actions.c.base,
        t.actions.c.kind,
        t.actions.c.status,
        t.actions.c.reason,
        t.actions.c.body,
    ).where(listed(t.actions.c.errand)),
    "statuses": lambda listed: select(t.actions.c.id, t.actions.c.status).where(listed(t.actions.c.id)),
}

# Through SQLAlchemy, built once: an IN list built from a push's thousands of ids cost more than running
# it (each value coerced into the expression); an expanding parameter takes the list as it is.
_IDS: BindParameter[str] = bindparam("ids", expanding=True)
_EXPANDING = {name: build(lambda column: column.in_(_IDS)) for name, build in _READS.items()}


def _listed_as(dialect: str) -> _Listed:
    """How a column is matched against the list bound as one value: an array in PostgreSQL, JSON in SQLite."""
    if dialect == "postgresql":
        return lambda column: column == func.any(bindparam("ids", type_=ARRAY(String)))
    return lambda column: column.in_(select(literal_column("value")).select_from(func.json_each(bindparam("ids"))))


def _driver_read(name: str, dialect: str) -> Select[Any]:
    return _READS[name](_listed_as(dialect))


_driver_reads: WeakKeyDictionary[Engine, Counter[str]] = WeakKeyDictionary()


def driver_reads(engine: Engine) -> Counter[str]:
    """How many of each read (``_READS``) ``Intake`` sent on ``engine`` past SQLAlchemy, whose statement
    events do not see them: what counts statements (the benchmarks, the tests) adds these."""
    sent = _driver_reads.get(engine)
    if sent is None:
        sent = _driver_reads[engine] = Counter()
    return sent


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[i : i + CHUNK] for i in range(0, len(values), CHUNK)]


def keyed(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` of `actions` as ``bulk.update_many`` takes it: every other column set where ``id`` matches."""
    return {**{c: v for c, v in row.items() if c != "id"}, "k_id": row["id"]}


class ActionRow(msgspec.Struct, gc=False):
    """The columns of one stored action ``Store._recompute`` reads (``projections.Held`` and the body).

    A struct built in C and left out of the cyclic collector (it holds strings, bytes and an immutable
    decoded action, never itself): a push makes one per action of every errand it touches.

    A row kept warm (``sanji.store.warm``) is ``shared``: the calls that take it hold that very row, and
    one that changes it changes a copy of its own (``Intake._own``), so a call that rolls back leaves the
    warm rows as committed without copying the many it only reads."""

    id: str
    errand: str
    base: int
    kind: str
    status: str
    reason: str
    body: bytes
    action: Action | None = None  # the body decoded, once (an action this call received comes decoded)
    shared: bool = False  # kept warm: never changed again, only copied

    def decoded(self) -> Action:
        # Caching the decoded body changes nothing a shared row stands for: the same body, decoded.
        if self.action is None:
            self.action = decode_action(self.body)
        return self.action

    def copy(self) -> ActionRow:
        mine = copy.copy(self)
        mine.shared = False
        return mine


class KeptRow:
    """The columns of an ``errands`` row ``Store._recompute`` reads."""

    __slots__ = ("basis", "digest", "id", "scope", "state", "waiting")

    def __init__(self, id: str, state: bytes | None, digest: str, basis: str, scope: str, waiting: int = 0) -> None:
        self.id, self.state, self.digest, self.basis, self.scope = id, state, digest, basis, scope
        self.waiting = waiting


class Intake:
    def __init__(
        self,
        *,
        defer: bool = False,
        warm: WarmErrands | None = None,
        locked: tuple[frozenset[StreamKey], frozenset[str]] | None = None,
    ) -> None:
        self.defer = defer
        # The streams and errands the call's transaction locked, when it locked only those (``NotLocked``).
        self.locked = locked
        self.warm = warm  # what this process left of errands it projected lately (``sanji.store.warm``)
        # Projections of errands taken warm: made by this process and stored as they are, so a fold
        # continues them without decoding the kept state or checking its digest (``Store._recompute``).
        self.warm_projections: dict[str, Projection] = {}
        # The state the main line of each projection taken warm or made by this call reached before its notes
        # (``protocol.errand.Replayed``), beside that very projection: memory only (``line_of``).
        self.lines: dict[str, tuple[Projection, ErrandState | None]] = {}
        self.written: dict[str, tuple[Projection, str]] = {}  # what ``flush`` wrote: (projection, basis)
        self._batch_rows: dict[tuple[StreamKey, int], dict[str, Any]] = {}  # deferred: in the order taken
        self._action_rows: dict[str, dict[str, Any]] = {}  # deferred, by id, in the order inserted
        self._replaced: dict[str, dict[str, Any]] = {}  # deferred: rows of earlier calls rewritten whole, by id
        self.cursors: dict[StreamKey, tuple[int, bytes]] = {}
        self.held_streams: set[StreamKey] = set()  # streams with held successors (may be stale: then asked)
        self._streams_read: set[StreamKey] = set()  # streams whose held successors were asked about
        self.kept: dict[str, KeptRow | None] = {}  # errands read (None: no row yet)
        # The projections this call made (with the errand's scope and their basis): their rows are written
        # once, at the end, and a later batch of the call continues from them (``Store._recompute``).
        self.projected: dict[str, tuple[Projection, str, str]] = {}
        self.actions: dict[str, list[ActionRow]] = {}  # every action row of each errand read
        self._rows: dict[str, ActionRow] = {}  # the rows above by id (``_row``: with those taken warm)
        # Rows taken warm, added to ``_rows`` only once one is asked for by id (``_row``), which a push
        # seldom does: it asks for its own new rows and the few it changes.
        self._warm_rows: list[Sequence[ActionRow]] = []
        # Every action id known to be held, with its status; not those of rows taken warm: an id a push
        # asks about is asked of the database (``ensure``), which says what the warm row does.
        self.status_of: dict[str, str] = {}
        self._known: set[str] = set()  # action ids asked about (held or not)
        self._dirty_cursors: dict[StreamKey, tuple[int, bytes]] = {}
        self._dirty_status: dict[str, tuple[str, str]] = {}
        # The attach actions whose status this call set, each with whether it was ``applied`` before the
        # call: their rows of ``attachments`` are written with the statuses (``flush``).
        self._attaches: dict[str, bool] = {}
        self._unread_status: set[str] = set()  # ids whose status was set with no row read (kind not known)
        self._driver: tuple[AsyncConnection, Any] | None = None  # a connection read on, and the driver's under it

    # -- reading once -------------------------------------------------------------------------

    async def preload(self, conn: AsyncConnection, batches: Sequence[Batch]) -> None:
        """Read what the frames of one call will ask: their streams' cursors and held successors, and the
        errands (rows and actions) and action ids of the batches not held already."""
        wanted = {StreamKey(b.origin, b.scope) for b in batches}
        if not wanted:
            return
        origins = sorted({k.origin for k in wanted})
        for origin, scope, seq, last_hash in await self._read(conn, "streams", origins):
            key = StreamKey(origin, scope)
            if key in wanted:
                self.cursors[key] = (int(seq), bytes(last_hash))
        for key in wanted:
            self.cursors.setdefault(key, (0, GENESIS))
        for origin, scope in await self._read(conn, "held", origins):
            self.held_streams.add(StreamKey(origin, scope))
        self._streams_read |= wanted
        new = [a for b in batches if b.seq > self.cursors[StreamKey(b.origin, b.scope)][0] for a in b.actions]
        await self.ensure(conn, {a.errand for a in new}, [a.id for a in new])

    async def held_after(self, conn: AsyncConnection, key: StreamKey, seq: int) -> dict[int, bytes]:
        """The held successors of ``key`` after ``seq`` (none asked for when the stream holds none)."""
        if key in self._streams_read and key not in self.held_streams:
            return {}
        rows = await conn.execute(
            select(t.held.c.seq, t.held.c.frame).where(
                t.held.c.origin == key.origin, t.held.c.scope == key.scope, t.held.c.seq > seq
            )
        )
        return {int(s): bytes(frame) for s, frame in rows.all()}

    def holding(self, key: StreamKey) -> None:
        """A frame of ``key`` was held."""
        self.held_streams.add(key)

    async def cursor(self, conn: AsyncConnection, key: StreamKey) -> tuple[int, bytes]:
        held = self.cursors.get(key)
        if held is None:
            if self.locked is not None and key not in self.locked[0]:
                raise NotLocked(f"stream {key} is not locked")
            row = (
                await conn.execute(
                    select(t.streams.c.seq, t.streams.c.last_hash).where(
                        t.streams.c.origin == key.origin, t.streams.c.scope == key.scope
                    )
                )
            ).first()
            held = self.cursors[key] = (int(row[0]), bytes(row[1])) if row else (0, GENESIS)
        return held

    async def ensure(self, conn: AsyncConnection, errand_ids: Iterable[str], action_ids: Iterable[str]) -> None:
        """Read the errands and action ids not read yet (what a call's frames add is kept here already)."""
        errands = sorted({e for e in errand_ids if e not in self.kept})
        if self.locked is not None and not self.locked[1].issuperset(errands):
            raise NotLocked(f"errands {sorted(set(errands) - self.locked[1])[:3]} are not locked")
        for e in errands:
            self.kept[e] = None
            self.actions[e] = []
        for part in _chunks(errands):
            # Rows unpacked as tuples: a named attribute of a result row costs several times more, and a
            # push reads every action of the errands it touches.
            for eid, state, digest, basis, scope, waiting in await self._read(conn, "kept", part):
                self.kept[eid] = KeptRow(eid, state, digest, basis, scope, waiting)
            cold = self._take_warm(part)
            if not cold:
                continue
            for r in await self._read(conn, "actions", cold):
                self._remember(ActionRow(*r))
        # An id held in a row read is known too (``status_of``): rows are not added to ``_known`` one by one.
        status_of, known = self.status_of, self._known
        ids = sorted({i for i in action_ids if i not in status_of and i not in known})
        self._known.update(ids)
        for part in _chunks(ids):
            for aid, status in await self._read(conn, "statuses", part):
                self.status_of.setdefault(aid, status)

    async def _read(self, conn: AsyncConnection, name: str, values: Sequence[str]) -> Sequence[Sequence[Any]]:
        """The rows of read ``name`` (``_READS``) for ``values``, as tuples.

        Sent to the driver directly when it is in the transaction ``conn`` began: through SQLAlchemy each
        read of a push's ids cost the event loop about 0.4 ms (the greenlet hop, the execution context, the
        expanding IN, the result rows), the driver's own call about 0.07 ms, and a push reads four times
        before it writes. The same statement, the same connection and transaction: only the wrapping is
        left out. Otherwise (a driver not in a transaction yet, another dialect) through SQLAlchemy.
        """
        if self._driver is None or self._driver[0] is not conn:
            self._driver = (conn, (await conn.get_raw_connection()).driver_connection)
        driver = self._driver[1]
        dialect = conn.dialect.name
        rows: Sequence[Sequence[Any]]
        failed: Exception | None = None
        try:
            if dialect == "sqlite" and driver.in_transaction:
                listed = json.dumps(list(values))
                # json_each gives U+0000 back as another string than the one stored: an id holding it (taken
                # before judge refuses it) would be missed, and the push would insert it twice.
                if "\\u0000" not in listed:
                    sql, _ = compiled_once(conn, ("intake", name), _driver_read, name, dialect)
                    rows = await driver.execute_fetchall(sql, (listed,))
                    driver_reads(conn.sync_engine)[name] += 1
                    return rows
            elif dialect == "postgresql" and driver.is_in_transaction():
                sql, _ = compiled_once(conn, ("intake", name), _driver_read, name, dialect)
                rows = await driver.fetch(sql, list(values))
                driver_reads(conn.sync_engine)[name] += 1
                return rows
        except Exception as exc:
            # Asked again through SQLAlchemy, which raises what the driver raised as it always does (a
            # DBAPIError, the connection invalidated if it was lost: what the callers and the error pages
            # tell apart), or answers if the driver's failure was its own.
            failed = exc
        try:
            rows = (await conn.execute(_EXPANDING[name], {"ids": list(values)})).all()
        except Exception as exc:
            if failed is not None:  # on PostgreSQL the first error aborted the transaction: say what it was
                exc.add_note(f"the same read sent to the driver failed first: {type(failed).__name__}: {failed}")
            raise
        return rows

    def _take_warm(self, errands: Sequence[str]) -> list[str]:
        """Take the rows of ``errands`` this process left warm and still stored as it wrote them; returns
        the others, to read."""
        if self.warm is None:
            return list(errands)
        cold = []
        for eid in errands:
            row = self.kept[eid]
            warm = None if row is None else self.warm.take(eid, (row.digest, row.waiting, row.basis))
            if warm is None:
                cold.append(eid)
                continue
            # The rows themselves, shared (``ActionRow.shared``): copied only when this call changes one.
            self.actions[eid].extend(warm.rows)
            self._warm_rows.append(warm.rows)
            self.warm_projections[eid] = warm.projection
            self.lines[eid] = (warm.projection, warm.line)
        return cold

    def _remember(self, row: ActionRow) -> None:
        self.actions[row.errand].append(row)
        self._rows[row.id] = row
        self.status_of[row.id] = row.status

    def _row(self, aid: str) -> ActionRow | None:
        """The row of ``aid`` among those read or taken warm (None: not among them)."""
        row = self._rows.get(aid)
        if row is None and self._warm_rows:
            # Once one is asked for, all: the rows written here since, if any, are the newer ones.
            by_id = {r.id: r for rows in self._warm_rows for r in rows}
            by_id.update(self._rows)
            self._rows = by_id
            self._warm_rows.clear()
            row = self._rows.get(aid)
        return row

    def _own(self, row: ActionRow) -> ActionRow:
        """``row`` as this call may change it: a shared row is replaced by a copy, here and in its errand's list."""
        if not row.shared:
            return row
        mine = self._rows[row.id] = row.copy()
        listed = self.actions[row.errand]
        for i, r in enumerate(listed):
            if r is row:
                listed[i] = mine
                break
        return mine

    # -- what a frame changes -------------------------------------------------------------

    def held(self, ids: Iterable[str]) -> dict[str, bool]:
        """``ledger.admit``'s ``held``: which of ``ids`` are held, and whether as a foreign copy."""
        return {i: self.status_of[i] == ledger.FOREIGN for i in ids if i in self.status_of}

    def add_batch(self, key: StreamKey, row: dict[str, Any]) -> None:
        """A batch row to insert at the end (``defer``)."""
        self._batch_rows[key, row["seq"]] = row

    async def batch_hash(self, conn: AsyncConnection, key: StreamKey, seq: int) -> bytes | None:
        """The hash of batch ``seq`` of ``key`` held here or in the database (None: not held)."""
        row = self._batch_rows.get((key, seq))
        if row is not None:
            return bytes(row["hash"])
        held: bytes | None = await conn.scalar(
            select(t.batches.c.hash).where(
                t.batches.c.origin == key.origin, t.batches.c.scope == key.scope, t.batches.c.seq == seq
            )
        )
        return held

    async def replace(self, conn: AsyncConnection, action: Action, row: dict[str, Any]) -> str | None:
        """The author's ``action`` (its full ``row`` of `actions`, status ``new``) takes the place of the
        foreign copy held under its id, every column of it: a relay may have relabelled the copy (another
        errand, kind, base or time), and the author's copy wins whole. Returns the errand the foreign copy
        was filed under (None: not found), for the caller to project again when it is not ``action``'s.

        A copy an earlier frame of this call left to insert is replaced in place; one stored by an earlier
        call is updated at the end with the rest (``defer``), or now."""
        aid = action.id
        kept = self._row(aid)
        if kept is not None:
            kept = self._own(kept)
        pending = self._action_rows.get(aid)
        if kept is None and pending is None:  # filed under an errand this call has not read: read it
            errand = await conn.scalar(select(t.actions.c.errand).where(t.actions.c.id == aid))
            if errand is not None:
                await self.ensure(conn, [errand], ())
                kept = self._row(aid)
                if kept is not None:
                    kept = self._own(kept)
        was: str | None = kept.errand if kept is not None else pending["errand"] if pending is not None else None
        if pending is not None:
            pending.update(row)
        elif self.defer:
            self._replaced[aid] = dict(row)
        else:
            await bulk.update_many(conn, t.actions, [keyed(row)], keys=("id",))
        self.status_of[aid] = row["status"]
        self._known.add(aid)
        if kept is not None:
            if kept.errand != action.errand:  # the row moves to the author's errand's list
                self.actions[kept.errand].remove(kept)
                if action.errand in self.actions:
                    self.actions[action.errand].append(kept)
                else:
                    del self._rows[aid]
            kept.errand, kept.base, kept.kind = action.errand, row["base"], row["kind"]
            kept.status, kept.reason, kept.body, kept.action = row["status"], row["reason"], row["body"], action
        elif action.errand in self.actions:
            added = ActionRow(aid, action.errand, row["base"], row["kind"], row["status"], row["reason"], row["body"])
            added.action = action
            self.actions[action.errand].append(added)
            self._rows[aid] = added
        return was

    def set_cursor(self, key: StreamKey, seq: int, last_hash: bytes) -> None:
        self.cursors[key] = self._dirty_cursors[key] = (seq, last_hash)

    def inserted(self, rows: Sequence[dict[str, Any]], actions: Sequence[Action]) -> None:
        """Action rows the frame inserted (``defer``: to insert at the end), and the actions they hold."""
        for r, action in zip(rows, actions, strict=True):
            if self.defer:
                self._action_rows[r["id"]] = r
            row = ActionRow(r["id"], r["errand"], r["base"], r["kind"], r["status"], r["reason"], r["body"], action)
            if row.errand in self.actions:
                self.actions[row.errand].append(row)
                self._rows[row.id] = row
            self.status_of[row.id] = row.status
            self._known.add(row.id)

    def set_status(self, aid: str, status: str, reason: str) -> None:
        self.status_of[aid] = status
        self._dirty_status[aid] = (status, reason)
        row = self._row(aid)
        if row is None:
            self._unread_status.add(aid)
        else:
            if row.kind == attached.KIND and aid not in self._attaches:
                self._attaches[aid] = row.status == "applied"
            row = self._own(row)
            row.status, row.reason = status, reason

    def set_projection(self, proj: Projection, scope: str, basis: str, *, line: ErrandState | None = None) -> None:
        self.projected[proj.errand] = (proj, scope, basis)
        self.lines[proj.errand] = (proj, line)

    def line_of(self, proj: Projection) -> ErrandState | None:
        """The main line's state kept beside ``proj`` (None: not known, as for a row read back)."""
        known = self.lines.get(proj.errand)
        return known[1] if known is not None and known[0] is proj else None

    # -- writing once -------------------------------------------------------------------------

    async def flush(self, conn: AsyncConnection) -> None:
        """Write the batches, actions, cursors, statuses and errand rows the applied frames left, one
        statement each."""
        await bulk.insert_many(conn, t.batches, list(self._batch_rows.values()))
        if self._action_rows:
            for aid, row in self._action_rows.items():
                final = self._dirty_status.pop(aid, None)
                if final is not None:
                    row["status"], row["reason"] = final
            await bulk.insert_many(conn, t.actions, list(self._action_rows.values()))
        if self._replaced:
            for aid, row in self._replaced.items():
                final = self._dirty_status.pop(aid, None)
                if final is not None:
                    row["status"], row["reason"] = final
            await bulk.update_many(conn, t.actions, [keyed(r) for _, r in sorted(self._replaced.items())], keys=("id",))
        cursors = [
            {"origin": k.origin, "scope": k.scope, "seq": seq, "last_hash": h}
            for k, (seq, h) in sorted(self._dirty_cursors.items())
        ]
        await bulk.upsert_many(conn, t.streams, cursors, keys=("origin", "scope"))
        statuses = [{"status": s, "reason": r, "k_id": aid} for aid, (s, r) in sorted(self._dirty_status.items())]
        await bulk.update_many(conn, t.actions, statuses, keys=("id",))
        await self._write_attachments(conn)
        errands = [errand_row(p, scope=scope, basis=basis) for _, (p, scope, basis) in sorted(self.projected.items())]
        await bulk.upsert_many(conn, t.errands, errands, keys=("id",))
        self.written.update((e, (p, basis)) for e, (p, _, basis) in self.projected.items())
        self._batch_rows.clear()
        self._action_rows.clear()
        self._replaced.clear()
        self._dirty_cursors.clear()
        self._dirty_status.clear()
        self._attaches.clear()
        self._unread_status.clear()
        self.projected.clear()

    async def _write_attachments(self, conn: AsyncConnection) -> None:
        """The rows of ``attachments`` of the attach actions whose status turned ``applied`` or from it."""
        applied: list[Action] = []
        unapplied: list[str] = []
        unread = set(self._unread_status)
        for aid, was in self._attaches.items():
            now = self.status_of.get(aid) == "applied"
            if now and not was:
                row = self._row(aid)
                if row is None:
                    unread.add(aid)
                else:
                    applied.append(row.decoded())
            elif was and not now:
                unapplied.append(aid)
        if unread:
            # Not met so far (a status is set only on a row read): asked of the rows just written, whatever
            # they were before.
            a = t.actions.c
            for part in _chunks(sorted(unread)):
                query = select(a.id, a.status, a.body).where(a.id.in_(part), a.kind == attached.KIND)
                for aid, status, body in await conn.execute(query):
                    if status == "applied":
                        applied.append(decode_action(body))
                    else:
                        unapplied.append(aid)
        await attached.write(conn, applied, unapplied)
