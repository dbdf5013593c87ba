"""A county store that already holds many errands, made by bulk-inserting copies of rows an ingest wrote.

``bench.store_growth`` needs county stores of 10 thousand to a million errands. Receiving that many
through ``Store.receive`` would take hours, so the store is filled with copies of the rows one real
ingest of the corpus wrote (``Reference``: every row of the four tables ``Store.receive`` writes —
``batches``, ``streams``, ``actions``, ``errands`` — read from a fresh county that took every recorded
push), each copy with its ids remapped so no two copies, and no copy and the measured pushes, collide:

- ids are made as ``sanji.service`` mints them, time first, with the copy's times *before* the
  reference's: copy ``i`` of ``n`` sits ``n - i`` spans earlier (the reference's time span rounded up
  to whole days, plus one: about a county's day of registrations a copy, so a million errands go back
  years), so the copies follow each other in the order they are inserted and all precede the measured
  pushes, as a store that has run for a while holds older ids. An action id is 12 hex digits of its
  ``at``'s milliseconds so moved, then 20 hex digits of ``blake2b(tag:id)``; an errand id ``<scope>-``
  + 8 hex digits of its first action's second so moved + 8 hex digits of ``blake2b(tag:errand)``: the
  lengths of real ids, and their order, so the indexes grow at the edges they grow at in a county
  (random ids, as ``sanji.service`` minted before 0.4.0, put every insert on a random leaf). The
  ``actions.at`` column moves by as much (the ``(kind, at)`` index would otherwise take each measured
  action among a thousand copies of its own time), and so does the day in the ``errands.receipt``
  column (``moved_receipt``); the bodies and states keep the reference's times and receipts, so the
  rule's time checks (deemed approvals, urgings' answer dates) judge every copy as the reference;
- an action's ``body`` and an errand's ``state`` are the stored msgpack with the old id strings
  replaced by the new ones of the same length (still valid canonical msgpack), and the errand's
  ``digest`` is recomputed (``protocol.errand.digest_of``: it covers the errand's and its actions' ids);
- batches are kept verbatim (the signed frames of the corpus, so their sizes are real) under a stream
  of their own, ``(origin, scope + suffix)``, copy ``i`` at ``seq + i × n``: a few long streams, as a
  county that has taken years of pushes holds, not one new stream per copy. These frames are not what
  their stream key says (``sanji verify store`` would report them); the ingest never opens a batch of a
  stream it is not receiving.

Everything else in a copy (scopes, stages, holders, matters, statuses, receipts) is the reference's,
so the prefilled errands sit in the same villages as the measured ones. ``check`` proves a prefilled
store sane: ``Store`` opens it, the counts are what was inserted, and every errand of the first and
last copy projects (``project`` over its decoded bodies) to the digest its row holds.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from protocol.encoding import decode_action
from protocol.errand import ErrandState, digest_of, project
from protocol.hlc import COUNTER_BITS, wall_ms
from protocol.receipts import check_char
from protocol.topology import Directory

TABLES = ("batches", "streams", "actions", "errands")
HELD_SUFFIX = "~held"  # the streams prefilled copies live in
LIMIT_SUFFIX = "~limit"  # the streams of the rows the bulk-insert limit writes
DAY_MS = 24 * 3600 * 1000
IDS = "timed"  # how copies' ids are made (in a kept store's name: one with random ids, before 0.4.0, is not reused)
COMMIT_EVERY = 50  # copies per transaction while prefilling: bounds the WAL of a million-errand fill
FOREIGN = "foreign"

_state_decoder = msgspec.msgpack.Decoder(ErrandState)
_RECEIPT = re.compile(r"(?P<node>[A-Z0-9]{1,24})-(?P<day>[0-9]{6})-(?P<seq>[0-9]{4,6})[0-9A-Z]")


@dataclass(frozen=True)
class Shape:
    """What an errand's digest covers besides its state: the ids of its main line, notes and refusals."""

    main: tuple[str, ...]
    notes: tuple[str, ...]
    rejected: dict[str, str]


@dataclass
class Reference:
    """The rows one ingest of the corpus wrote into a fresh county, read back from its SQLite file."""

    columns: dict[str, list[str]]
    rows: dict[str, list[tuple[Any, ...]]]
    shapes: dict[str, Shape] = field(default_factory=dict)
    action_ms: dict[str, int] = field(default_factory=dict)  # each action's ``at``, wall milliseconds
    errand_ms: dict[str, int] = field(default_factory=dict)  # each errand's earliest action's
    span_ms: int = 24 * 3600 * 1000  # a copy's place in time: the reference's span in whole days, plus one

    def count(self, table: str) -> int:
        return len(self.rows[table])

    @property
    def errands(self) -> int:
        return self.count("errands")

    @property
    def actions(self) -> int:
        return self.count("actions")


def read_reference(db_path: Path, directory: Directory) -> Reference:
    """Read the ingest's rows and each errand's shape; the shape must give back every stored digest."""
    con = sqlite3.connect(db_path)
    try:
        columns: dict[str, list[str]] = {}
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for table in TABLES:
            cur = con.execute(f"SELECT * FROM {table} ORDER BY 1, 2")
            columns[table] = [d[0] for d in cur.description]
            rows[table] = [tuple(r) for r in cur.fetchall()]
    finally:
        con.close()
    return reference_from(columns, rows, directory)


def reference_from(
    columns: dict[str, list[str]], rows: dict[str, list[tuple[Any, ...]]], directory: Directory
) -> Reference:
    """The reference of these rows (any database's), with each errand's shape checked against its digest."""
    ref = Reference(columns, rows)
    a = _index(ref, "actions")
    by_errand: dict[str, list[Any]] = {}
    for row in ref.rows["actions"]:
        if row[a["status"]] != FOREIGN:  # as Store._load_actions: a foreign copy is not projected
            by_errand.setdefault(row[a["errand"]], []).append(decode_action(row[a["body"]]))
    for row in ref.rows["actions"]:
        ms = wall_ms(row[a["at"]])
        ref.action_ms[row[a["id"]]] = ms
        ref.errand_ms[row[a["errand"]]] = min(ms, ref.errand_ms.get(row[a["errand"]], ms))
    if ref.action_ms:
        ref.span_ms = ((max(ref.action_ms.values()) - min(ref.action_ms.values())) // DAY_MS + 1) * DAY_MS
    e = _index(ref, "errands")
    for row in ref.rows["errands"]:
        errand = row[e["id"]]
        proj = project(errand, by_errand.get(errand, []), directory)
        if proj.digest != row[e["digest"]]:
            raise AssertionError(f"reference errand {errand}: projected digest differs from its row")
        ref.shapes[errand] = Shape(proj.main, proj.notes, dict(proj.rejected))
    seqs: dict[tuple[str, str], list[int]] = {}
    b = _index(ref, "batches")
    for row in ref.rows["batches"]:
        seqs.setdefault((row[b["origin"]], row[b["scope"]]), []).append(row[b["seq"]])
    for key, got in seqs.items():
        if sorted(got) != list(range(1, len(got) + 1)):
            raise AssertionError(f"reference stream {key}: batches are not seq 1..n")
    return ref


def _index(ref: Reference, table: str) -> dict[str, int]:
    return {name: i for i, name in enumerate(ref.columns[table])}


def action_id(old: str, tag: str, ms: int) -> str:
    """``new_action_id``'s shape: 12 hex digits of milliseconds, 20 of a hash that keeps copies apart."""
    return f"{ms:012x}{hashlib.blake2b(f'{tag}:{old}'.encode(), digest_size=10).hexdigest()}"


def errand_id(old: str, tag: str, seconds: int) -> str:
    """``new_errand_id``'s shape: ``<scope>-``, 8 hex digits of seconds, 8 of a hash that keeps copies apart."""
    scope, _, _ = old.rpartition("-")
    return f"{scope}-{seconds:08x}{hashlib.blake2b(f'{tag}:{old}'.encode(), digest_size=4).hexdigest()}"


def errand_ids(ref: Reference, index: int, suffix: str, place: int) -> dict[str, str]:
    """The new id of each reference errand in copy ``index``, ``place`` spans from the reference in time."""
    tag, shift = f"{suffix}{index}", place * ref.span_ms
    return {old: errand_id(old, tag, (ref.errand_ms[old] + shift) // 1000) for old in ref.shapes}


@dataclass
class Copy:
    """One copy's rows, ready for ``executemany`` in the reference's column order."""

    batches: list[tuple[Any, ...]]
    actions: list[tuple[Any, ...]]
    errands: list[tuple[Any, ...]]


def copy_rows(ref: Reference, index: int, suffix: str, place: int) -> Copy:
    """Copy ``index`` of the reference, ids remapped with the tag ``suffix + index`` and their times moved
    by ``place`` spans (negative: before the reference; the held copy ``i`` of ``n`` is at ``i - n``)."""
    tag, shift = f"{suffix}{index}", place * ref.span_ms
    b, a, e = _index(ref, "batches"), _index(ref, "actions"), _index(ref, "errands")
    lengths = stream_lengths(ref)
    batches = []
    for row in ref.rows["batches"]:
        r = list(row)
        key = (row[b["origin"]], row[b["scope"]])
        r[b["scope"]] = row[b["scope"]] + suffix
        r[b["seq"]] = row[b["seq"]] + index * lengths[key]
        batches.append(tuple(r))
    errands_new = errand_ids(ref, index, suffix, place)
    ids_new: dict[str, str] = {}
    actions = []
    for row in ref.rows["actions"]:
        old_id, old_errand = row[a["id"]], row[a["errand"]]
        new_id, new_errand = action_id(old_id, tag, ref.action_ms[old_id] + shift), errands_new[old_errand]
        ids_new[old_id] = new_id
        r = list(row)
        r[a["id"]], r[a["errand"]] = new_id, new_errand
        r[a["at"]] = row[a["at"]] + (shift << COUNTER_BITS)
        body: bytes = row[a["body"]]
        r[a["body"]] = body.replace(old_errand.encode(), new_errand.encode()).replace(old_id.encode(), new_id.encode())
        actions.append(tuple(r))
    errands = []
    for row in ref.rows["errands"]:
        old = row[e["id"]]
        new = errands_new[old]
        shape = ref.shapes[old]
        r = list(row)
        r[e["id"]] = new
        r[e["receipt"]] = moved_receipt(row[e["receipt"]], shift)
        state: bytes | None = row[e["state"]]
        decoded = None
        if state is not None:
            state = state.replace(old.encode(), new.encode())
            decoded = _state_decoder.decode(state)
            r[e["state"]] = state
        r[e["digest"]] = digest_of(
            new,
            decoded,
            [ids_new[i] for i in shape.main],
            [ids_new[i] for i in shape.notes],
            {ids_new[i]: why for i, why in shape.rejected.items()},
        )
        errands.append(tuple(r))
    return Copy(batches, actions, errands)


def moved_receipt(receipt: str, shift_ms: int) -> str:
    """The receipt number the copy's errand would have had (``protocol.receipts``: node, day, sequence, check
    character), its day moved by ``shift_ms`` (whole days): the ``receipt`` index then holds the copies'
    numbers before the measured ones, day after day, as a county's; the same numbers for every copy put each
    measured errand's among a thousand equal ones, a different leaf each (what a 100,000-errand ingest wrote
    most of: issue 15, session 11)."""
    match = _RECEIPT.match(receipt)
    if match is None:
        return receipt
    day = datetime.strptime(match["day"], "%y%m%d").date() + timedelta(milliseconds=shift_ms)
    body = f"{match['node']}-{day:%y%m%d}-{match['seq']}"
    return body + check_char(body)


def stream_lengths(ref: Reference) -> dict[tuple[str, str], int]:
    s = _index(ref, "streams")
    return {(row[s["origin"]], row[s["scope"]]): row[s["seq"]] for row in ref.rows["streams"]}


def stream_rows(ref: Reference, copies: int, suffix: str) -> list[tuple[Any, ...]]:
    """The cursors of the streams ``copies`` copies fill: the last seq and hash of each."""
    s = _index(ref, "streams")
    out = []
    for row in ref.rows["streams"]:
        r = list(row)
        r[s["scope"]] = row[s["scope"]] + suffix
        r[s["seq"]] = row[s["seq"]] * copies
        out.append(tuple(r))
    return out


def insert_sql(ref: Reference, table: str) -> str:
    cols = ref.columns[table]
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"


def insert_copy(con: sqlite3.Connection, ref: Reference, copy: Copy) -> None:
    con.executemany(insert_sql(ref, "batches"), copy.batches)
    con.executemany(insert_sql(ref, "actions"), copy.actions)
    con.executemany(insert_sql(ref, "errands"), copy.errands)


def copies_for(errands: int, ref: Reference) -> int:
    """Whole copies of the reference that hold at least ``errands`` errands."""
    return -(-errands // ref.errands)


def prefill(db_path: Path, ref: Reference, copies: int) -> dict[str, Any]:
    """Insert ``copies`` copies into the migrated, started, otherwise empty county store at ``db_path``.

    Setup, not measurement: no sync to disk while filling (``synchronous=OFF``), a big page cache, a
    commit every ``COMMIT_EVERY`` copies, then the WAL checkpointed into the file."""
    started = time.perf_counter()
    build_s = 0.0
    con = sqlite3.connect(db_path)
    try:
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-262144")  # 256 MB
        for first in range(0, copies, COMMIT_EVERY):
            with con:
                for index in range(first, min(copies, first + COMMIT_EVERY)):
                    mark = time.perf_counter()
                    rows = copy_rows(ref, index, HELD_SUFFIX, index - copies)
                    build_s += time.perf_counter() - mark
                    insert_copy(con, ref, rows)
        if copies:
            with con:
                con.executemany(insert_sql(ref, "streams"), stream_rows(ref, copies, HELD_SUFFIX))
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return filled(ref, copies, time.perf_counter() - started, build_s, db_path.stat().st_size)


def filled(ref: Reference, copies: int, seconds: float, remap_seconds: float, database_bytes: int) -> dict[str, Any]:
    """What a prefill reports, on either database: the rows it holds now, and what filling them took."""
    return {
        "copies": copies,
        "errands": copies * ref.errands,
        "actions": copies * ref.actions,
        "batches": copies * ref.count("batches"),
        "streams": ref.count("streams") if copies else 0,
        "seconds": round(seconds, 2),
        "remap_seconds": round(remap_seconds, 2),
        "database_bytes": database_bytes,
    }


def bulk_insert_limit(db_path: Path, ref: Reference) -> dict[str, Any]:
    """The database's own floor for what one ingest writes: the same rows (one more copy, fresh ids),
    inserted with ``sqlite3.executemany`` in one transaction and committed as durably as the store
    commits (WAL, ``synchronous=FULL``: ``sanji.store.engine``), timed without building the rows. Its ids
    are a span after the reference's: the newest in the store, as what a county takes in next would be."""
    rows = copy_rows(ref, 0, LIMIT_SUFFIX, 1)
    streams = stream_rows(ref, 1, LIMIT_SUFFIX)
    con = sqlite3.connect(db_path, isolation_level=None)
    try:
        con.execute("PRAGMA synchronous=FULL")
        started = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        insert_copy(con, ref, rows)
        con.executemany(insert_sql(ref, "streams"), streams)
        con.execute("COMMIT")
        seconds = time.perf_counter() - started
    finally:
        con.close()
    return limit("executemany", ref, len(streams), seconds)


def limit(how: str, ref: Reference, streams: int, seconds: float) -> dict[str, Any]:
    """What a bulk-insert limit reports, on either database: one copy's rows written ``how``, in ``seconds``."""
    return {
        "what": f"the rows one ingest writes (batches, actions, errands, streams; fresh ids), {how}",
        "actions": ref.actions,
        "rows": ref.count("batches") + ref.actions + ref.errands + streams,
        "seconds": seconds,
        "actions_per_s": ref.actions / seconds,
    }


def expected_counts(ref: Reference, copies: int) -> dict[str, int]:
    return {
        "batches": copies * ref.count("batches"),
        "streams": ref.count("streams") if copies else 0,
        "actions": copies * ref.actions,
        "errands": copies * ref.errands,
    }


def counts(db_path: Path) -> dict[str, int]:
    con = sqlite3.connect(db_path)
    try:
        return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}
    finally:
        con.close()


def sample_errands(ref: Reference, copies: int) -> Iterator[str]:
    """Every errand of the first and of the last copy."""
    for index in sorted({0, copies - 1}) if copies else ():
        yield from errand_ids(ref, index, HELD_SUFFIX, index - copies).values()


def check_projections(db_path: Path, errand_ids: list[str], directory: Directory) -> int:
    """Project each errand from the bodies stored for it; its row must hold that digest. Returns how many."""
    con = sqlite3.connect(db_path)
    try:
        for errand in errand_ids:
            row = con.execute("SELECT digest FROM errands WHERE id = ?", (errand,)).fetchone()
            if row is None:
                raise AssertionError(f"prefilled errand {errand} has no row")
            bodies = con.execute(
                "SELECT body FROM actions WHERE errand = ? AND status != ?", (errand, FOREIGN)
            ).fetchall()
            proj = project(errand, [decode_action(b[0]) for b in bodies], directory)
            if proj.digest != row[0]:
                raise AssertionError(f"prefilled errand {errand}: its actions project to another digest")
    finally:
        con.close()
    return len(errand_ids)
