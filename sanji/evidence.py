"""Evidence: re-check what a node stores against the signatures that make it evidence (``sanji verify``).

Not the staff's audit log (``sanji.auth.book``: who did what, hash-chained); this module re-checks
the signed batches themselves.

责任追究 (DOMAIN.md): every action records who, where and when, and must hold up as
evidence. A node's database is evidence only because every batch in it is signed by
its origin and chained to its predecessor; this module re-checks that from the
stored bytes alone, trusting nothing the store derived from them.

``verify(store)`` re-checks every stored batch and every errand:

- each row of ``batches``: the hash stored with it is sha256 of its bytes; its
  signature and contents pass ``protocol.batch.open_frame`` with the node's directory;
  the frame's own origin, scope and number are the row's;
- each stream ``(origin, scope)`` holds exactly batches 1..n, batch 1 chained to the
  genesis hash and every later ``prev`` equal to the hash of its predecessor, and the
  ``streams`` cursor stands at n with batch n's hash;
- each errand's stored digest equals ``project()`` over the actions decoded from the
  verified frames (minus those a stream may not carry, as the store does) plus this
  node's own unsealed outbox actions;
- each row of ``actions`` -- the history the screens and the API show -- is a
  byte-identical copy of a signed action (or an unsealed outbox action) and has the
  status the projection gives it.

It is CPU-bound (Ed25519, zlib, msgpack and the projection), so it runs in two phases
on a process pool, reading everything inside one read transaction (a consistent
snapshot, even while the node keeps working):

1. the main process streams ``batches`` in key order and hands chunks of consecutive
   rows to the workers, which verify them and route every action they carry into a
   shard (a range of errand ids); the main process stitches the chains across chunk
   boundaries;
2. each shard -- its actions, its stored errand digests, its stored action rows and
   outbox -- is projected and compared by a worker.

``export_errand(store, errand_id)`` writes a self-contained evidence bundle (plain JSON)
for one errand: its whole history (who, in what role, at which node, when, and with
what status), every frame that carried one of its actions (hex), the hashes of each
of those streams from batch 1 up to the last such frame, the public key records that
signed them and the directory entries needed to judge them. ``verify_bundle(bundle)``
re-checks all of it offline, with no database: signatures, frame hashes against the
chain, each frame's ``prev`` against the chain, the history against the signed
actions, statuses, state and digest recomputed with ``project()``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import gc
import hashlib
import multiprocessing
import os
import sqlite3
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import msgspec
from sqlalchemy import ColumnElement, and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol import limits
from protocol.actions import Action, kind_of
from protocol.batch import ENC_ZLIB, GENESIS, BatchPayload, frame_hash, open_frame, split_frame
from protocol.encoding import decode_action, decode_actions
from protocol.errand import Projection, project
from protocol.errors import SanjiError
from protocol.hlc import wall_seconds
from protocol.signing import KeyRecord, key_id_for
from protocol.topology import Directory, NodeEntry
from sanji.store import Store, attached
from sanji.store import schema as t

BUNDLE_FORMAT = "sanji-evidence/1"
CHINA_TIME = timezone(timedelta(hours=8), "CST")  # 北京时间: what the staff's clocks showed

# Problem kinds, in the order a reader should care about them.
KINDS = {
    "frame_refused": "a stored batch fails verification (signature, format or route): not what was signed",
    "misfiled": "a validly signed batch sits in the row of another batch (swapped or copied)",
    "hash_mismatch": "the hash stored with a batch is not the hash of its bytes",
    "gap": "batches are missing from a stream",
    "chain_broken": "a batch does not name the hash of the batch before it",
    "cursor_mismatch": "the stream cursor disagrees with the batches held",
    "digest_mismatch": "an errand's stored digest is not what its signed actions give",
    "errand_missing": "signed actions name an errand the store has no row for",
    "action_unbacked": "the store's history holds an action that no stored batch carries",
    "action_missing": "a signed action is missing from the store's history",
    "action_altered": "the store's copy of an action differs from the signed one",
    "status_mismatch": "an action's stored status is not the one the projection gives",
    "attachment_altered": "an attachment's bytes do not hash to its name or are not its size",
    "attachment_dropped": "an attachment's bytes are gone with no archive mark",
    "archive_unbacked": "an attachment was archived without an ancestor's acknowledgement, or its mark disagrees",
    "attachment_row": "the kept row of an applied attach action (table attachments) is missing, extra or differs",
}

# -- reports ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One finding, located as precisely as the evidence allows."""

    kind: str
    message: str
    stream: str = ""  # "origin->scope"
    seq: int | None = None
    errand: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = [w for w in (self.stream and f"stream {self.stream}", self.seq and f"batch {self.seq}") if w]
        if self.errand:
            where.append(f"errand {self.errand}")
        return f"[{self.kind}] {', '.join(where) or '-'}: {self.message}"


@dataclass
class EvidenceReport:
    node: str
    streams: int = 0
    batches: int = 0
    batches_verified: int = 0
    actions: int = 0  # actions carried in verified batches
    foreign_actions: int = 0  # ... of which a stream may not carry them (kept, never judged)
    outbox_actions: int = 0  # own actions not sealed yet: no signature exists for them
    errands: int = 0
    stored_actions: int = 0  # rows of `actions` compared with the signed copies
    attachments: int = 0  # whole attachments held here, each hashed again
    attachments_archived: int = 0  # ... archived here (sanji.store.archive): hash and size kept, no bytes
    workers: int = 1
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out

    def summary_zh(self) -> str:
        """``summary`` in Chinese, the line ``sanji verify store`` prints above it."""
        verdict = "未发现问题" if self.ok else f"发现 {len(self.problems)} 处问题"
        return (
            f"{self.node} 核验：{verdict}——{self.streams} 条数据流中的 {self.batches} 批（已验签 "
            f"{self.batches_verified} 批），签名操作 {self.actions} 条，未封批 {self.outbox_actions} 条，"
            f"办件 {self.errands} 件，已比对历史记录 {self.stored_actions} 条，已重算哈希的附件 {self.attachments} 个，"
            f"已归档 {self.attachments_archived} 个，{self.workers} 个进程用时 {self.seconds:.1f} 秒"
        )

    def summary(self) -> str:
        verdict = "clean" if self.ok else f"{len(self.problems)} problem(s)"
        return (
            f"audit of {self.node}: {verdict} -- {self.batches} batches in {self.streams} streams "
            f"({self.batches_verified} verified), {self.actions} signed actions, {self.outbox_actions} unsealed, "
            f"{self.errands} errands, {self.stored_actions} history rows compared, "
            f"{self.attachments} attachments hashed, {self.attachments_archived} archived, "
            f"{self.seconds:.1f} s on {self.workers} process(es)"
        )


# -- phase 1: verify chunks of batch rows (runs in a worker) ---------------------------------------

Row = tuple[str, str, int, bytes, bytes]  # origin, scope, seq, stored hash, frame


class _Carried(msgspec.Struct, frozen=True, array_like=True):
    """An action as found in a verified frame, with where it was found."""

    action: Action
    origin: str
    scope: str
    seq: int
    foreign: bool  # the frame's stream may not carry it (another writer or another scope)


class _CarriedRaw(msgspec.Struct, frozen=True, array_like=True):
    """The same, with the action left as its msgpack bytes (what the store keeps as ``actions.body``)."""

    action: msgspec.Raw
    origin: str
    scope: str
    seq: int
    foreign: bool


# Actions hold no dicts, so this writes each action exactly as protocol.encoding.encode does.
_blob_encoder = msgspec.msgpack.Encoder(order="deterministic")
_carried_decoder = msgspec.msgpack.Decoder(list[_Carried])
_carried_raw_decoder = msgspec.msgpack.Decoder(list[_CarriedRaw])
_payload_decoder = msgspec.msgpack.Decoder(BatchPayload)
_worker_directory: Directory | None = None


def _init_worker(entries: bytes) -> None:
    global _worker_directory
    _worker_directory = Directory(msgspec.msgpack.decode(entries, type=list[NodeEntry]))


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one CPU-bound task.

    A task builds hundreds of thousands of small objects and frees them all at the end; with the
    collector on, it re-scans them over and over (a third of the time, measured). Nothing here
    makes reference cycles, so reference counting frees everything anyway.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _directory(directory: Directory | None) -> Directory:
    chosen = directory or _worker_directory
    if chosen is None:
        raise RuntimeError("evidence worker started without a directory")
    return chosen


@dataclass
class _Segment:
    """The rows of one stream inside one chunk: enough to check the links at its ends."""

    origin: str
    scope: str
    first_seq: int
    first_prev: bytes | None  # None: not known (the frame failed or is misfiled)
    last_seq: int
    last_link: bytes | None  # hash the next batch must name; None if not known
    last_stored: bytes  # the hash column of the last row (what the cursor should name)


@dataclass
class _ChunkResult:
    segments: list[_Segment]
    problems: list[Problem]
    blobs: dict[int, bytes]  # shard -> msgpack list[_Carried]
    suspects: dict[str, str]  # errand -> the failed batch that names it
    batches: int
    verified: int
    actions: int
    foreign: int
    cpu: float


Place = tuple[str, str, int]  # origin, scope, seq of a batch; seq 0: the unsealed outbox


def _label(origin: str, scope: str, seq: int) -> str:
    return f"batch {seq} of {origin}->{scope}"


def _where(place: Place) -> str:
    return _label(*place) if place[2] else "the unsealed outbox"


def _few(items: Iterable[str], n: int = 5) -> str:
    ordered = sorted(items)
    shown = ", ".join(ordered[:n])
    return shown + (f" and {len(ordered) - n} more" if len(ordered) > n else "")


def _short(digest: bytes) -> str:
    return digest.hex()[:16] + "…"


def _untrusted_errands(frame: bytes) -> set[str]:
    """Which errands a frame that FAILED verification names, if it still parses: for attribution only."""
    try:
        key_id, signed, _ = split_frame(frame)
        payload = _payload_decoder.decode(signed[5 + len(key_id) + 4 :])
        body = payload.body
        if payload.encoding == ENC_ZLIB:
            body = zlib.decompressobj().decompress(body, limits.MAX_BODY_BYTES)
        return {a.errand for a in decode_actions(body)}
    except (SanjiError, msgspec.MsgspecError, zlib.error, ValueError, UnicodeDecodeError):
        return set()


def _link_problems(
    origin: str, scope: str, prev_seq: int | None, prev_link: bytes | None, seq: int, own_prev: bytes | None
) -> list[Problem]:
    """What is wrong between the batch held before ``seq`` in its stream (``prev_seq``) and ``seq``."""
    stream = f"{origin}->{scope}"
    if prev_seq is None:
        if seq > 1:
            missing = "batch 1 is" if seq == 2 else f"batches 1..{seq - 1} are"
            return [Problem("gap", f"{missing} missing: the stream starts at batch {seq}", stream, 1)]
        if own_prev is not None and own_prev != GENESIS:
            return [Problem("chain_broken", f"batch 1 names {_short(own_prev)} instead of the genesis hash", stream, 1)]
        return []
    if seq > prev_seq + 1:
        missing = f"batch {prev_seq + 1} is" if seq == prev_seq + 2 else f"batches {prev_seq + 1}..{seq - 1} are"
        return [
            Problem("gap", f"{missing} missing: the stream goes from batch {prev_seq} to {seq}", stream, prev_seq + 1)
        ]
    if prev_link is not None and own_prev is not None and own_prev != prev_link:
        return [
            Problem(
                "chain_broken",
                f"batch {seq} names {_short(own_prev)} as its predecessor, "
                f"but batch {prev_seq} held here hashes to {_short(prev_link)}",
                stream,
                seq,
            )
        ]
    return []


def _verify_chunk(rows: Sequence[Row], bounds: Sequence[str], directory: Directory | None = None) -> _ChunkResult:
    """Verify consecutive ``batches`` rows (sorted by origin, scope, seq) and route their actions to shards."""
    started = time.process_time()
    with _gc_paused():
        result = _verify_chunk_inner(rows, bounds, _directory(directory))
    result.cpu = time.process_time() - started
    return result


def _verify_chunk_inner(rows: Sequence[Row], bounds: Sequence[str], d: Directory) -> _ChunkResult:
    shards: dict[int, list[_Carried]] = defaultdict(list)
    problems: list[Problem] = []
    segments: list[_Segment] = []
    suspects: dict[str, str] = {}
    verified = actions = foreign = 0
    seg: _Segment | None = None
    for origin, scope, seq, stored, frame in rows:
        stream = f"{origin}->{scope}"
        actual = frame_hash(frame)
        own_prev: bytes | None = None
        link: bytes | None = None
        try:
            batch = open_frame(frame, d)
        except SanjiError as exc:
            message = f"batch {seq} is refused: {exc.message}"
            if actual != stored:
                message += "; its bytes no longer hash to the hash stored with it (they changed after it was stored)"
            named = _untrusted_errands(frame)
            if named:
                message += f"; it names errand(s) {_few(named)}"
                for errand in named:
                    suspects.setdefault(errand, _label(origin, scope, seq))
            problems.append(Problem("frame_refused", message, stream, seq))
        else:
            verified += 1
            if (batch.origin, batch.scope, batch.seq) != (origin, scope, seq):
                problems.append(
                    Problem(
                        "misfiled",
                        f"the row of batch {seq} holds batch {batch.seq} of {batch.origin}->{batch.scope} "
                        "(a validly signed frame in the wrong place: swapped or copied)",
                        stream,
                        seq,
                    )
                )
            else:
                own_prev, link = batch.prev, actual
                if actual != stored:
                    problems.append(
                        Problem(
                            "hash_mismatch",
                            f"the hash stored with batch {seq} is {_short(stored)}, but its bytes hash to "
                            f"{_short(actual)} (the hash column was changed; the frame itself verifies)",
                            stream,
                            seq,
                        )
                    )
            for action in batch.actions:
                is_foreign = action.node != batch.origin or action.scope != batch.scope
                foreign += is_foreign
                shard = bisect.bisect_right(bounds, action.errand)
                shards[shard].append(_Carried(action, batch.origin, batch.scope, batch.seq, is_foreign))
            actions += len(batch.actions)
        if seg is not None and (seg.origin, seg.scope) == (origin, scope):
            problems.extend(_link_problems(origin, scope, seg.last_seq, seg.last_link, seq, own_prev))
            seg.last_seq, seg.last_link, seg.last_stored = seq, link, stored
        else:
            seg = _Segment(origin, scope, seq, own_prev, seq, link, stored)
            segments.append(seg)
    blobs = {shard: _blob_encoder.encode(items) for shard, items in shards.items()}
    return _ChunkResult(
        segments=segments,
        problems=problems,
        blobs=blobs,
        suspects=suspects,
        batches=len(rows),
        verified=verified,
        actions=actions,
        foreign=foreign,
        cpu=0.0,
    )


# -- phase 2: project one shard of errands and compare (runs in a worker) --------------------------

StoredAction = tuple[str, str, bytes, str, str]  # id, errand, body, status, reason


@dataclass
class _ShardInput:
    blobs: list[bytes]
    suspects: dict[str, str]
    lo: str | None  # the shard: errand ids in [lo, hi)
    hi: str | None
    check_history: bool
    # Either the rows below come with the task (read in the main process's snapshot), or the
    # worker reads them itself from this SQLite file (see _Fence for how that stays honest).
    db_path: str = ""
    digests: list[tuple[str, str]] = field(default_factory=list)  # errand id, stored digest
    outbox: list[tuple[str, bytes]] = field(default_factory=list)  # action id, body: unsealed own actions
    stored: list[StoredAction] | None = None  # the `actions` rows of these errands (None: not compared)


def _range_sql(column: str, lo: str | None, hi: str | None) -> tuple[str, list[str]]:
    clauses, params = [], []
    if lo is not None:
        clauses.append(f"{column} >= ?")
        params.append(lo)
    if hi is not None:
        clauses.append(f"{column} < ?")
        params.append(hi)
    return (" AND ".join(clauses) or "1"), params


def _read_shard_sqlite(inp: _ShardInput) -> None:
    """Read a shard's stored rows straight from the SQLite file, in one read transaction (in a worker)."""
    con = sqlite3.connect(inp.db_path, timeout=60, isolation_level=None)
    try:
        con.execute("PRAGMA query_only = ON")
        con.execute("BEGIN")
        where, params = _range_sql("id", inp.lo, inp.hi)
        inp.digests = con.execute(f"SELECT id, digest FROM {t.errands.name} WHERE {where}", params).fetchall()
        where, params = _range_sql("a.errand", inp.lo, inp.hi)
        inp.outbox = con.execute(
            f"SELECT a.id, a.body FROM {t.outbox.name} o JOIN {t.actions.name} a ON a.id = o.action_id WHERE {where}",
            params,
        ).fetchall()
        if inp.check_history:
            where, params = _range_sql("errand", inp.lo, inp.hi)
            inp.stored = con.execute(
                f"SELECT id, errand, body, status, reason FROM {t.actions.name} WHERE {where}", params
            ).fetchall()
        con.execute("COMMIT")
    finally:
        con.close()


@dataclass
class _ShardResult:
    problems: list[Problem]
    errands: int
    stored_actions: int
    outbox: int
    cpu: float


Copy = tuple[Action, bytes, Place]  # the action, its msgpack bytes, where it was found
Copies = dict[str, list[Copy]]  # action id -> every copy found


def _expected_status(proj: Projection, action_id: str) -> tuple[str, str]:
    """The (status, reason) the store gives an action, per ``Store._recompute``."""
    if action_id in proj.main or action_id in proj.notes:
        return "applied", ""
    if action_id in proj.waiting:
        return "waiting", ""
    return "rejected", proj.rejected.get(action_id, "rejected")


def _describe(action: Action) -> str:
    return f"{kind_of(action)} by {action.actor or '?'} ({action.role or '?'}) at {action.node}, {_when(action.at)}"


def _field_diff(stored: bytes, signed: Action) -> str:
    try:
        held = msgspec.to_builtins(decode_action(stored))
    except (msgspec.MsgspecError, ValueError):
        return "the stored copy does not even decode"
    want = msgspec.to_builtins(signed)
    changed = [k for k in sorted(set(held) | set(want)) if held.get(k) != want.get(k)]
    return "; ".join(f"{k}: {held.get(k)!r} stored, {want.get(k)!r} signed" for k in changed[:4])


def _same_action(stored: bytes, copy: Copy) -> bool:
    if stored == copy[1]:
        return True
    try:  # an encoder change could reorder bytes without changing the action
        return decode_action(stored) == copy[0]
    except (msgspec.MsgspecError, ValueError):
        return False


def _check_shard(inp: _ShardInput, directory: Directory | None = None) -> _ShardResult:
    started = time.process_time()
    with _gc_paused():
        if inp.db_path:
            _read_shard_sqlite(inp)
        result = _check_shard_inner(inp, _directory(directory))
    result.cpu = time.process_time() - started
    return result


def _check_shard_inner(inp: _ShardInput, d: Directory) -> _ShardResult:
    legit: dict[str, Copies] = defaultdict(dict)
    foreign: dict[str, Copies] = defaultdict(dict)
    repeated: set[str] = set()  # errands with an action id carried more than once
    for blob in inp.blobs:
        for c, raw in zip(_carried_decoder.decode(blob), _carried_raw_decoder.decode(blob), strict=True):
            target = foreign if c.foreign else legit
            found = target[c.action.errand].setdefault(c.action.id, [])
            if found:
                repeated.add(c.action.errand)
            found.append((c.action, bytes(raw.action), (c.origin, c.scope, c.seq)))
    unsealed: dict[str, int] = defaultdict(int)
    for _, body in inp.outbox:
        action = decode_action(body)
        found = legit[action.errand].setdefault(action.id, [])
        if found:
            repeated.add(action.errand)
        found.append((action, body, ("", "", 0)))
        unsealed[action.errand] += 1
    stored_digest = dict(inp.digests)
    stored_rows: dict[str, list[StoredAction]] = defaultdict(list)
    for row in inp.stored or ():
        stored_rows[row[1]].append(row)
    problems: list[Problem] = []
    errands = sorted(set(stored_digest) | set(legit) | set(foreign) | set(stored_rows))
    for errand in errands:
        copies = legit.get(errand, {})
        acts = [found[0][0] for found in copies.values()]
        proj = project(errand, acts + _extra_copies(copies) if errand in repeated else acts, d)
        unbacked: list[str] = []
        if inp.stored is not None:
            unbacked = _compare_history(errand, proj, copies, foreign.get(errand, {}), stored_rows[errand], problems)
        held = stored_digest.get(errand)
        if held is None:
            if copies:
                problems.append(
                    Problem(
                        "errand_missing",
                        f"{len(copies)} signed action(s) name this errand, but the store has no row for it",
                        errand=errand,
                    )
                )
            continue
        if held != proj.digest:
            signed = len(copies) - unsealed.get(errand, 0)
            message = (
                f"stored digest {held[:16]}… differs from {proj.digest[:16]}… recomputed from "
                f"{signed} signed and {unsealed.get(errand, 0)} unsealed action(s)"
            )
            if errand in inp.suspects:
                message += f"; {inp.suspects[errand]}, which names this errand, failed verification"
            if unbacked:
                message += f"; the store's history also holds {_few(unbacked)}, which no verified batch carries"
            problems.append(Problem("digest_mismatch", message, errand=errand))
    return _ShardResult(
        problems=problems,
        errands=len(errands),
        stored_actions=len(inp.stored or ()),
        outbox=len(inp.outbox),
        cpu=0.0,
    )


def _extra_copies(copies: Copies) -> list[Action]:
    """Second and later copies of an id that differ from the first: project() itself picks among them."""
    return [c[0] for found in copies.values() if len(found) > 1 for c in found[1:] if c[1] != found[0][1]]


def _compare_history(
    errand: str,
    proj: Projection,
    copies: Copies,
    foreign: Copies,
    rows: list[StoredAction],
    problems: list[Problem],
) -> list[str]:
    """Compare the stored `actions` rows of one errand with the evidence; returns the unbacked ids."""
    unbacked: list[str] = []
    explained = False  # statuses follow from the evidence only when the evidence is complete
    held: set[str] = set()
    pending: list[tuple[str, str, str]] = []
    for action_id, _, body, status, reason in rows:
        held.add(action_id)
        found = copies.get(action_id)
        if found:
            if found[0][1] != body and not any(_same_action(body, c) for c in found):
                action, _, place = found[0]
                problems.append(
                    Problem(
                        "action_altered",
                        f"the stored copy of action {action_id} ({_describe(action)}) differs from the one in "
                        f"{_where(place)}: {_field_diff(body, action)}",
                        errand=errand,
                    )
                )
            pending.append((action_id, status, reason))
        elif action_id in foreign:
            if status != "foreign":
                problems.append(
                    Problem(
                        "status_mismatch",
                        f"action {action_id} is carried only by {_where(foreign[action_id][0][2])}, a stream that "
                        f"may not carry it, yet it is stored as {status!r}",
                        errand=errand,
                    )
                )
        else:
            unbacked.append(action_id)
            explained = True
            try:
                what = _describe(decode_action(body))
            except (msgspec.MsgspecError, ValueError):
                what = "it does not decode"
            problems.append(
                Problem(
                    "action_unbacked",
                    f"action {action_id} ({what}) is in the store's history, but no stored batch that verifies "
                    "carries it and it is not in the outbox",
                    errand=errand,
                )
            )
    for action_id, found in {**foreign, **copies}.items():
        if action_id not in held:
            explained = True
            problems.append(
                Problem(
                    "action_missing",
                    f"action {action_id} ({_describe(found[0][0])}), signed in {_where(found[0][2])}, "
                    "is missing from the store's history",
                    errand=errand,
                )
            )
    if not explained:
        for action_id, status, reason in pending:
            want = _expected_status(proj, action_id)
            if (status, reason) != want:
                got = status + (f" ({reason})" if reason else "")
                expected = want[0] + (f" ({want[1]})" if want[1] else "")
                if status == "foreign":
                    expected += f"; a valid copy is in {_where(copies[action_id][0][2])}"
                problems.append(
                    Problem(
                        "status_mismatch",
                        f"action {action_id} is stored as {got}, but the signed actions make it {expected}",
                        errand=errand,
                    )
                )
    return unbacked


# -- the orchestration (main process) -----------------------------------------------------------------

T = TypeVar("T")


class _Runner:
    """Run tasks on the pool with a bounded number in flight, or in this process when there is no pool."""

    def __init__(self, pool: ProcessPoolExecutor | None, directory: Directory, in_flight: int) -> None:
        self.pool = pool
        self.directory = directory
        self.in_flight = in_flight
        self.futures: list[asyncio.Future[Any]] = []
        self.results: list[Any] = []

    async def submit(self, fn: Callable[..., T], *args: Any) -> None:
        if self.pool is None:
            self.results.append(fn(*args, self.directory))
            await asyncio.sleep(0)
            return
        while sum(not f.done() for f in self.futures) >= self.in_flight:
            await asyncio.wait([f for f in self.futures if not f.done()], return_when=asyncio.FIRST_COMPLETED)
        task: Callable[[], Any] = functools.partial(fn, *args, None)
        self.futures.append(asyncio.get_running_loop().run_in_executor(self.pool, task))

    async def drain(self) -> list[Any]:
        if self.futures:
            self.results.extend(await asyncio.gather(*self.futures))
            self.futures = []
        out, self.results = self.results, []
        return out


def _ordered(conn: AsyncConnection, column: Any) -> Any:
    """Compare errand ids byte-wise on every database, as Python's bisect does."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column


def _in_range(conn: AsyncConnection, column: Any, lo: str | None, hi: str | None) -> ColumnElement[bool]:
    col = _ordered(conn, column)
    clauses: list[ColumnElement[bool]] = []
    if lo is not None:
        clauses.append(col >= lo)
    if hi is not None:
        clauses.append(col < hi)
    if not clauses:
        return true()
    return and_(*clauses)


async def _shard_bounds(conn: AsyncConnection, shards_wanted: int) -> list[str]:
    total = int(await conn.scalar(select(func.count()).select_from(t.errands)) or 0)
    shards = max(1, min(shards_wanted, total))
    bounds: list[str] = []
    for i in range(1, shards):
        bound = await conn.scalar(
            select(t.errands.c.id).order_by(_ordered(conn, t.errands.c.id)).limit(1).offset(i * total // shards)
        )
        if bound is not None and (not bounds or bound > bounds[-1]):
            bounds.append(str(bound))
    return bounds


class _Fence:
    """Tells whether anyone committed to an SQLite file since it was made (``PRAGMA data_version``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._con = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._start = self._version()

    def _version(self) -> int:
        return int(self._con.execute("PRAGMA data_version").fetchone()[0])

    def changed(self) -> bool:
        return self._version() != self._start

    def close(self) -> None:
        self._con.close()


def _sqlite_file(url: str) -> str:
    if not url.startswith("sqlite"):
        return ""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return "" if path in ("", ":memory:") or path.startswith("file:") else path


async def _phase2(
    conn: AsyncConnection,
    runner: _Runner,
    blobs: dict[int, list[bytes]],
    suspects: dict[str, str],
    bounds: list[str],
    check_history: bool,
    db_path: str,
) -> list[_ShardResult]:
    a = t.actions.c
    for shard in range(len(bounds) + 1):
        lo = bounds[shard - 1] if shard > 0 else None
        hi = bounds[shard] if shard < len(bounds) else None
        inp = _ShardInput(
            blobs=blobs.get(shard, []),
            suspects={e: why for e, why in suspects.items() if bisect.bisect_right(bounds, e) == shard},
            lo=lo,
            hi=hi,
            check_history=check_history,
            db_path=db_path,
        )
        if not db_path:
            inp.digests = [
                (str(i), str(dg))
                for i, dg in await conn.execute(
                    select(t.errands.c.id, t.errands.c.digest).where(_in_range(conn, t.errands.c.id, lo, hi))
                )
            ]
            inp.outbox = [
                (str(i), bytes(body))
                for i, body in await conn.execute(
                    select(a.id, a.body)
                    .join(t.outbox, t.outbox.c.action_id == a.id)
                    .where(_in_range(conn, a.errand, lo, hi))
                )
            ]
            if check_history:
                inp.stored = [
                    (str(i), str(e), bytes(body), str(st), str(reason or ""))
                    for i, e, body, st, reason in await conn.execute(
                        select(a.id, a.errand, a.body, a.status, a.reason).where(_in_range(conn, a.errand, lo, hi))
                    )
                ]
        await runner.submit(_check_shard, inp)
    results: list[_ShardResult] = await runner.drain()
    return results


SMALL_STORE_BATCHES = 256  # below this, starting worker processes costs more than it saves


async def verify(
    store: Store,
    *,
    workers: int | None = None,
    chunk_bytes: int = 2 * 1024 * 1024,
    errands_per_shard: int = 10_000,
    check_history: bool = True,
) -> EvidenceReport:
    """Re-check every stored batch, chain, errand digest and history row of ``store``'s node.

    ``workers``: processes to verify on; by default up to 2 (the cores of a township PC), or 1
    for a small store. With 1 everything runs in this process. Worker processes are started
    with ``spawn``: a script calling this must guard its entry point with
    ``if __name__ == "__main__":``. ``check_history=False`` skips comparing the ``actions`` rows.
    """
    started = time.perf_counter()
    db_file = _sqlite_file(store.db.url)
    fence = _Fence(db_file) if db_file else None  # taken before the snapshot below: errs on the safe side
    try:
        return await _verify(store, fence, workers, chunk_bytes, errands_per_shard, check_history, started)
    finally:
        if fence is not None:
            fence.close()


async def _verify(
    store: Store,
    fence: _Fence | None,
    workers: int | None,
    chunk_bytes: int,
    errands_per_shard: int,
    check_history: bool,
    started: float,
) -> EvidenceReport:
    directory = store.directory
    async with store.db.reader.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():  # one snapshot for everything read below
            if workers is None:
                batches = int(await conn.scalar(select(func.count()).select_from(t.batches)) or 0)
                workers = 1 if batches < SMALL_STORE_BATCHES else min(2, os.cpu_count() or 1)
            report = EvidenceReport(node=store.node_id, workers=max(1, workers))
            pool: ProcessPoolExecutor | None = None
            if workers > 1:
                pool = ProcessPoolExecutor(
                    workers,
                    mp_context=multiprocessing.get_context("spawn"),  # never fork a process that runs threads
                    initializer=_init_worker,
                    initargs=(msgspec.msgpack.encode(directory.nodes()),),
                )
            try:
                runner = _Runner(pool, directory, in_flight=workers * 2)
                ancestors = [n for n in directory.path(store.node_id) if n != store.node_id]
                await _run(
                    conn, runner, report, fence, chunk_bytes, errands_per_shard, check_history, started, ancestors
                )
            finally:
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


async def _run(
    conn: AsyncConnection,
    runner: _Runner,
    report: EvidenceReport,
    fence: _Fence | None,
    chunk_bytes: int,
    errands_per_shard: int,
    check_history: bool,
    started: float,
    directory_ancestors: Sequence[str],
) -> None:
    timings = report.timings
    total_errands = int(await conn.scalar(select(func.count()).select_from(t.errands)) or 0)
    bounds = await _shard_bounds(conn, max(report.workers * 4, -(-total_errands // errands_per_shard)))

    # Phase 1: stream the batches in key order, verify chunks on the pool.
    b = t.batches.c
    result = await conn.stream(select(b.origin, b.scope, b.seq, b.hash, b.frame).order_by(b.origin, b.scope, b.seq))
    chunk: list[Row] = []
    size = 0
    async for part in result.partitions(256):
        for origin, scope, seq, stored, frame in part:
            chunk.append((origin, scope, int(seq), bytes(stored), bytes(frame)))
            size += len(frame)
            if size >= chunk_bytes:
                await runner.submit(_verify_chunk, chunk, bounds)
                chunk, size = [], 0
    if chunk:
        await runner.submit(_verify_chunk, chunk, bounds)
    chunks: list[_ChunkResult] = await runner.drain()
    timings["phase1_frames_s"] = round(time.perf_counter() - started, 3)
    timings["phase1_worker_cpu_s"] = round(sum(c.cpu for c in chunks), 3)

    # Stitch the chains across chunk boundaries; compare the ends with the cursors.
    ends: dict[tuple[str, str], _Segment] = {}
    for c in chunks:
        report.problems.extend(c.problems)
        report.batches += c.batches
        report.batches_verified += c.verified
        report.actions += c.actions
        report.foreign_actions += c.foreign
        for seg in c.segments:
            before = ends.get((seg.origin, seg.scope))
            report.problems.extend(
                _link_problems(
                    seg.origin,
                    seg.scope,
                    before.last_seq if before else None,
                    before.last_link if before else None,
                    seg.first_seq,
                    seg.first_prev,
                )
            )
            ends[(seg.origin, seg.scope)] = seg
    report.streams = len(ends)
    s = t.streams.c
    cursors = {
        (o, sc): (int(q), bytes(h)) for o, sc, q, h in await conn.execute(select(s.origin, s.scope, s.seq, s.last_hash))
    }
    for key, seg in sorted(ends.items()):
        stream = f"{key[0]}->{key[1]}"
        cursor = cursors.pop(key, None)
        if cursor is None:
            report.problems.append(
                Problem(
                    "cursor_mismatch", f"batches up to {seg.last_seq} are held but the stream has no cursor", stream
                )
            )
        elif cursor[0] != seg.last_seq:
            report.problems.append(
                Problem(
                    "cursor_mismatch",
                    f"the cursor says {cursor[0]} batches, but the last batch stored is {seg.last_seq}",
                    stream,
                    seg.last_seq,
                )
            )
        elif cursor[1] != seg.last_stored:
            report.problems.append(
                Problem(
                    "cursor_mismatch",
                    f"the cursor names hash {_short(cursor[1])} for batch {seg.last_seq}, "
                    f"but that batch is stored with hash {_short(seg.last_stored)}",
                    stream,
                    seg.last_seq,
                )
            )
    for key, (seq, _) in sorted(cursors.items()):
        if seq > 0:
            report.problems.append(
                Problem("cursor_mismatch", f"the cursor says {seq} batches, but none is stored", f"{key[0]}->{key[1]}")
            )

    # Phase 2: project each shard of errands and compare with what is stored.
    blobs: dict[int, list[bytes]] = defaultdict(list)
    suspects: dict[str, str] = {}
    for c in chunks:
        for shard, blob in c.blobs.items():
            blobs[shard].append(blob)
        suspects.update(c.suspects)
    del chunks
    phase2 = time.perf_counter()
    # With a pool on an SQLite file, the workers read their shard's rows themselves (the main process
    # would otherwise read a million rows alone). Their snapshots are later than this one, so if the
    # node committed anything meanwhile and they found problems, those are re-checked in this snapshot.
    own_reads = fence if runner.pool is not None else None
    shards = await _phase2(conn, runner, blobs, suspects, bounds, check_history, own_reads.path if own_reads else "")
    if own_reads is not None and own_reads.changed() and any(r.problems for r in shards):
        timings["phase2_rechecked_in_snapshot"] = 1
        shards = await _phase2(conn, runner, blobs, suspects, bounds, check_history, "")
    for r in shards:
        report.problems.extend(r.problems)
        report.errands += r.errands
        report.stored_actions += r.stored_actions
        report.outbox_actions += r.outbox
    timings["phase2_errands_s"] = round(time.perf_counter() - phase2, 3)
    timings["phase2_worker_cpu_s"] = round(sum(r.cpu for r in shards), 3)
    timings["shards"] = len(bounds) + 1
    attachments = time.perf_counter()
    await _check_attachments(conn, report, directory_ancestors)
    await _check_attachment_rows(conn, report)
    timings["attachments_s"] = round(time.perf_counter() - attachments, 3)
    order = list(KINDS)
    report.problems.sort(key=lambda p: (order.index(p.kind), p.stream, p.seq or 0, p.errand, p.message))


async def _check_attachments(conn: AsyncConnection, report: EvidenceReport, ancestors: Sequence[str]) -> None:
    """Every whole attachment held here hashes to its name; an archived one keeps its name and size.

    The bytes of an archived attachment are held by the ancestor its mark names (``sanji.store.archive``):
    its hash and size stay here, so the attach actions naming it remain checkable, and the mark must
    stand on an acknowledgement from an ancestor. Attachments still arriving (incomplete) are skipped.
    """
    a = t.blob_archive.c
    marks = {str(h): (int(size), str(peer)) for h, size, peer in await conn.execute(select(a.hash, a.size, a.held_at))}
    acks = {(str(p), str(h)) for p, h in await conn.execute(select(t.blob_acks.c.peer, t.blob_acks.c.hash))}
    b = t.blobs.c
    result = await conn.stream(select(b.hash, b.size, b.received, b.complete, b.data).order_by(b.hash))
    async for part in result.partitions(16):
        for digest, size, received, complete, data in part:
            digest, size, received, content = str(digest), int(size), int(received), bytes(data)
            mark = marks.pop(digest, None)
            if mark is not None and not content:
                report.attachments_archived += 1
                if mark[0] != size:
                    report.problems.append(
                        Problem(
                            "archive_unbacked", f"attachment {digest[:12]} is {size} bytes but archived as {mark[0]}"
                        )
                    )
                elif mark[1] not in ancestors or (mark[1], digest) not in acks:
                    report.problems.append(
                        Problem(
                            "archive_unbacked",
                            f"attachment {digest[:12]} is marked as held at {mark[1]}, "
                            "which is not an ancestor that acknowledged it",
                        )
                    )
                continue
            if not complete:
                continue  # still arriving: a finished transfer is hashed by the store before it is kept
            report.attachments += 1
            if received != size or len(content) != size:
                report.problems.append(
                    Problem(
                        "attachment_dropped" if not content else "attachment_altered",
                        f"attachment {digest[:12]} should be {size} bytes but {len(content)} are held",
                    )
                )
            elif hashlib.sha256(content).hexdigest() != digest:
                report.problems.append(
                    Problem("attachment_altered", f"the bytes held for attachment {digest[:12]} hash to something else")
                )
    for digest in sorted(marks):
        report.problems.append(
            Problem("archive_unbacked", f"attachment {digest[:12]} is marked archived but the store has no row for it")
        )


async def _check_attachment_rows(conn: AsyncConnection, report: EvidenceReport) -> None:
    """The kept rows of ``attachments`` (``sanji.store.attached``) are exactly the applied attach actions.

    Sync and downloads read those rows instead of decoding every attach action, so a row missing would keep an
    attachment from travelling or being fetched, and an extra one would offer bytes no applied action names.
    Phase 2 has checked each action's stored status against its errand's projection; this checks the rows
    against those statuses, decoding each applied attach action as the rows' writers do.
    """
    a = t.actions.c
    applied: dict[str, tuple[str, int, str, str]] = {}
    result = await conn.stream(select(a.body).where(a.kind == attached.KIND, a.status == "applied"))
    async for part in result.partitions(500):
        for (body,) in part:
            row = attached.row(decode_action(bytes(body)))
            applied[row["action"]] = (row["blob"], row["size"], row["errand"], row["scope"])
    k = t.attachments.c
    kept = {
        str(action): (str(blob), int(size), str(errand), str(scope))
        for action, blob, size, errand, scope in await conn.execute(select(k.action, k.blob, k.size, k.errand, k.scope))
    }
    for action in sorted(applied.keys() | kept.keys()):
        want, have = applied.get(action), kept.get(action)
        if want == have:
            continue
        if have is None:
            message = f"applied attach action {action} has no row in attachments"
        elif want is None:
            message = f"attachments holds a row for {action}, which is no applied attach action"
        else:
            message = f"the attachments row of {action} says {have}, its action says {want}"
        report.problems.append(Problem("attachment_row", message, errand=(want or have or ("", 0, "", ""))[2]))


# -- evidence bundles -----------------------------------------------------------------------------


def _when(at: int) -> str:
    """An action's hybrid-clock time as Beijing time, to the second."""
    try:
        return datetime.fromtimestamp(wall_seconds(at), CHINA_TIME).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"(hybrid clock {at})"


def _key_json(key: KeyRecord) -> dict[str, Any]:
    return {
        "node": key.node,
        "key_id": key.key_id,
        "algorithm": key.algorithm,
        "public_key": key.public_key.hex(),
        "revoked": key.revoked,
    }


def _plain_json(value: Any) -> Any:
    """What a value looks like after a JSON round trip (tuples become lists)."""
    return msgspec.json.decode(msgspec.json.encode(value))


def _history_entry(
    action: Action, directory: Directory, *, evidence: str, carried_in: list[dict[str, Any]]
) -> dict[str, Any]:
    node = directory.get(action.node) if action.node in directory else None
    entry: dict[str, Any] = {
        "id": action.id,
        "kind": kind_of(action),
        "node": action.node,
        "node_name": node.name if node else "",
        "node_role": node.role if node else "",
        "actor": action.actor,
        "role": action.role,
        "acting_for": action.acting_for,
        "at": action.at,
        "time": _when(action.at),
        "base": action.base,
        "evidence": evidence,  # signed | foreign | unsealed | none
        "carried_in": carried_in,
        "action": _plain_json(action),
    }
    return entry


Found = dict[str, list[tuple[Action, str, str, int, bool]]]  # action id -> (action, origin, scope, seq, foreign)


async def _scan_stream(
    conn: AsyncConnection,
    d: Directory,
    origin: str,
    scope: str,
    errand_id: str,
    found: Found,
    frames: dict[tuple[str, str, int], bytes],
    problems: list[str],
) -> list[str]:
    """Verify one stream from batch 1, collect the errand's actions; returns the chain of hashes read."""
    chain: list[str] = []
    last_link: bytes | None = GENESIS
    b = t.batches.c
    result = await conn.stream(
        select(b.seq, b.hash, b.frame).where(b.origin == origin, b.scope == scope).order_by(b.seq)
    )
    try:
        async for part in result.partitions(64):
            for seq_value, stored_hash, frame_value in part:
                seq, frame = int(seq_value), bytes(frame_value)
                label = _label(origin, scope, seq)
                if seq != len(chain) + 1:
                    problems.append(f"stream {origin}->{scope}: batch {len(chain) + 1} is missing (next held: {seq})")
                    return chain
                actual = frame_hash(frame)
                chain.append(actual.hex())
                if actual != bytes(stored_hash):
                    problems.append(f"{label}: the stored hash differs from the hash of its bytes")
                try:
                    batch = open_frame(frame, d)
                except SanjiError as exc:
                    problems.append(f"{label} is refused: {exc.message}")
                    last_link = None
                    continue
                if (batch.origin, batch.scope, batch.seq) != (origin, scope, seq):
                    problems.append(f"{label}: the row holds batch {batch.seq} of {batch.origin}->{batch.scope}")
                elif last_link is not None and batch.prev != last_link:
                    problems.append(f"{label} does not chain to batch {seq - 1}")
                last_link = actual
                for action in batch.actions:
                    if action.errand == errand_id:
                        is_foreign = action.node != batch.origin or action.scope != batch.scope
                        found[action.id].append((action, batch.origin, batch.scope, batch.seq, is_foreign))
                        frames[(origin, scope, seq)] = frame
    finally:
        await result.close()
    return chain


async def export_errand(store: Store, errand_id: str) -> dict[str, Any]:
    """A self-contained, JSON-serialisable evidence bundle for one errand (see the module docstring)."""
    d = store.directory
    problems: list[str] = []
    a = t.actions.c
    async with store.db.reader.connect() as conn, conn.begin():
        row = (
            await conn.execute(select(t.errands.c.scope, t.errands.c.digest).where(t.errands.c.id == errand_id))
        ).first()
        if row is None:
            raise SanjiError(
                f"errand {errand_id} is not held at {store.node_id}",
                hint="Export from a node on the errand's path (its village, township or the county).",
            )
        scope, stored_digest = str(row[0]), str(row[1])
        stored_rows = {
            str(i): (str(sc), bytes(body), str(st), str(reason or ""))
            for i, sc, body, st, reason in await conn.execute(
                select(a.id, a.scope, a.body, a.status, a.reason).where(a.errand == errand_id)
            )
        }
        outbox_ids = set(
            (
                await conn.execute(select(t.outbox.c.action_id).where(t.outbox.c.action_id.in_(list(stored_rows))))
            ).scalars()
        )
        # Legitimate evidence sits in the streams of the errand's scope; a stray action naming another
        # scope sits in that scope's streams, and the actions table says which.
        scopes = {scope} | {sc for sc, _, _, _ in stored_rows.values()}
        streams = sorted(
            (str(o), str(sc))
            for o, sc in await conn.execute(
                select(t.batches.c.origin, t.batches.c.scope).distinct().where(t.batches.c.scope.in_(sorted(scopes)))
            )
        )
        found: Found = defaultdict(list)
        frames: dict[tuple[str, str, int], bytes] = {}
        chains: dict[tuple[str, str], list[str]] = {}
        for origin, sc in streams:
            chains[(origin, sc)] = await _scan_stream(conn, d, origin, sc, errand_id, found, frames, problems)
    unsealed = {i: decode_action(stored_rows[i][1]) for i in sorted(outbox_ids)}
    evidence = [copies[0][0] for copies in found.values() if any(not c[4] for c in copies)]
    evidence_by_id = {act.id: act for act in evidence}
    proj = project(errand_id, [*evidence, *unsealed.values()], d)
    if proj.digest != stored_digest:
        problems.append(f"the stored digest {stored_digest} differs from {proj.digest} recomputed from the evidence")
    history: list[dict[str, Any]] = []
    for action_id, copies in found.items():
        legit = [c for c in copies if not c[4]]
        chosen = legit or copies
        action = evidence_by_id.get(action_id, chosen[0][0])
        entry = _history_entry(
            action,
            d,
            evidence="signed" if legit else "foreign",
            carried_in=[{"origin": o, "scope": s, "seq": q} for _, o, s, q, _ in chosen],
        )
        history.append(entry)
    for action_id, action in unsealed.items():
        if action_id in evidence_by_id:
            continue
        entry = _history_entry(action, d, evidence="unsealed", carried_in=[])
        entry["body"] = stored_rows[action_id][1].hex()
        history.append(entry)
    for action_id, (_, body, _, _) in stored_rows.items():
        if action_id in found or action_id in unsealed:
            continue
        problems.append(f"action {action_id} is in the store's history but no stored batch carries it")
        try:
            entry = _history_entry(decode_action(body), d, evidence="none", carried_in=[])
        except (msgspec.MsgspecError, ValueError):
            entry = {"id": action_id, "evidence": "none", "carried_in": []}
        entry["body"] = body.hex()
        history.append(entry)
    for entry in history:
        action_id = entry["id"]
        if entry["evidence"] in ("signed", "unsealed"):
            entry["status"], entry["reason"] = _expected_status(proj, action_id)
        else:
            entry["status"], entry["reason"] = entry["evidence"] if entry["evidence"] == "foreign" else "unbacked", ""
        held = stored_rows.get(action_id)
        entry["stored_status"] = held[2] if held else "(not in the store's history)"
        entry["stored_reason"] = held[3] if held else ""
    history.sort(key=lambda e: (e.get("at", 0), e["id"]))
    # Each stream's chain from batch 1 up to the last frame carrying one of the errand's actions.
    last_needed: dict[tuple[str, str], int] = {}
    for origin, sc, seq in frames:
        last_needed[(origin, sc)] = max(seq, last_needed.get((origin, sc), 0))
    signers: dict[str, KeyRecord] = {}
    for frame in frames.values():
        key = d.key(split_frame(frame)[0])
        if key is not None:
            signers[key.key_id] = key
    wanted_nodes: set[str] = set()
    for node in {scope, *(s for _, s in last_needed), *(k.node for k in signers.values())} | {
        e["node"] for e in history if e.get("node")
    }:
        if node in d:
            wanted_nodes.update(d.path(node))
    nodes = []
    for entry_node in d.nodes():
        if entry_node.id in wanted_nodes:
            keys = [_key_json(k) for k in signers.values() if k.node == entry_node.id]
            nodes.append(
                {
                    "id": entry_node.id,
                    "role": entry_node.role,
                    "parent": entry_node.parent,
                    "name": entry_node.name,
                    "keys": keys,
                }
            )
    return {
        "format": BUNDLE_FORMAT,
        "errand": errand_id,
        "scope": scope,
        "exported_by": store.node_id,
        "exported_at": datetime.now(CHINA_TIME).isoformat(timespec="seconds"),
        "digest": {"stored": stored_digest, "recomputed": proj.digest},
        "state": _plain_json(proj.state),
        "history": history,
        "frames": [
            {"origin": o, "scope": s, "seq": q, "hash": frame_hash(f).hex(), "frame": f.hex()}
            for (o, s, q), f in sorted(frames.items())
        ],
        "streams": [
            {"origin": o, "scope": s, "chain": chains[(o, s)][:n]} for (o, s), n in sorted(last_needed.items())
        ],
        "nodes": nodes,
        "problems": problems,
        "how_to_verify": "sanji verify check-bundle THIS_FILE.json --directory directory.json",
    }


@dataclass
class BundleReport:
    errand: str
    ok: bool = False
    digest: str = ""
    frames: int = 0
    signed_actions: int = 0
    unsigned_actions: int = 0
    keys_from: str = ""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_HEADLINE_FIELDS = ("kind", "node", "actor", "role", "acting_for", "at", "base")


def verify_bundle(bundle: Mapping[str, Any], directory: Directory | None = None) -> BundleReport:
    """Re-check an evidence bundle offline, with no database.

    ``directory``: the county's directory, if the inspector has it; the bundle's keys are then
    checked against it. Without it the keys come from the bundle itself, and the report says so.
    """
    errand = str(bundle.get("errand", "")) if isinstance(bundle, Mapping) else ""
    report = BundleReport(errand=errand)
    try:
        _verify_bundle(bundle, directory, report)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, msgspec.MsgspecError) as exc:
        report.problems.append(f"the bundle is malformed: {type(exc).__name__}: {exc}")
    report.ok = not report.problems
    return report


def _verify_bundle(bundle: Mapping[str, Any], trusted: Directory | None, report: BundleReport) -> None:
    problems = report.problems
    if not isinstance(bundle, Mapping) or bundle.get("format") != BUNDLE_FORMAT:
        problems.append(f"not a Sanji evidence bundle (format must be {BUNDLE_FORMAT!r})")
        return
    errand = bundle["errand"]
    if not isinstance(errand, str) or not errand:
        raise ValueError("errand must be a non-empty string")
    entries: list[NodeEntry] = []
    for node in bundle["nodes"]:
        keys = []
        for k in node["keys"]:
            record = KeyRecord(
                node=k["node"],
                key_id=k["key_id"],
                algorithm=k["algorithm"],
                public_key=bytes.fromhex(k["public_key"]),
                revoked=bool(k["revoked"]),
            )
            if record.key_id != key_id_for(record.algorithm, record.public_key):
                problems.append(f"key {record.key_id} of {record.node}: the key id does not belong to that public key")
            keys.append(record)
        entries.append(
            NodeEntry(id=node["id"], role=node["role"], parent=node["parent"], name=node["name"], keys=tuple(keys))
        )
    own = Directory(entries)
    if trusted is None:
        d = own
        report.keys_from = "bundle"
        ids = ", ".join(f"{k.node}:{k.key_id}" for entry in entries for k in entry.keys)
        report.notes.append(
            "the public keys were taken from the bundle itself; check that these key ids are in the county's "
            f"directory ({ids}), or pass --directory"
        )
    else:
        d = trusted
        report.keys_from = "directory"
        for entry in entries:
            for k in entry.keys:
                held = trusted.key(k.key_id)
                if held is None or held.node != k.node or held.public_key != k.public_key:
                    problems.append(f"key {k.key_id} of {k.node} in the bundle is not that node's key in the directory")
            if entry.id in trusted and (trusted.get(entry.id).role, trusted.get(entry.id).parent) != (
                entry.role,
                entry.parent,
            ):
                problems.append(f"node {entry.id}: role or parent in the bundle differ from the directory")
    chains: dict[tuple[str, str], list[str]] = {}
    for s in bundle["streams"]:
        chain = [str(h) for h in s["chain"]]
        for h in chain:
            if len(bytes.fromhex(h)) != 32:
                raise ValueError(f"chain of {s['origin']}->{s['scope']} holds {h!r}, not a sha256 hash")
        chains[(s["origin"], s["scope"])] = chain
    legit: dict[str, list[tuple[Action, tuple[str, str, int]]]] = defaultdict(list)
    foreign: dict[str, list[tuple[Action, tuple[str, str, int]]]] = defaultdict(list)
    for f in bundle["frames"]:
        place = (str(f["origin"]), str(f["scope"]), int(f["seq"]))
        label = _label(*place)
        raw = bytes.fromhex(f["frame"])
        actual = frame_hash(raw)
        report.frames += 1
        if actual.hex() != f["hash"]:
            problems.append(f"{label}: the frame hashes to {actual.hex()}, not to the hash the bundle gives")
        try:
            batch = open_frame(raw, d)
        except SanjiError as exc:
            problems.append(f"{label} is refused: {exc.message}")
            continue
        if (batch.origin, batch.scope, batch.seq) != place:
            problems.append(f"{label}: the frame is batch {batch.seq} of {batch.origin}->{batch.scope}")
            continue
        listed = chains.get(place[:2])
        if listed is None or len(listed) < batch.seq:
            problems.append(f"{label}: the bundle gives no chain of {place[0]}->{place[1]} up to batch {batch.seq}")
        else:
            if listed[batch.seq - 1] != actual.hex():
                problems.append(
                    f"{label}: the chain lists {listed[batch.seq - 1][:16]}… for it, but it hashes to {_short(actual)}"
                )
            expected_prev = GENESIS.hex() if batch.seq == 1 else listed[batch.seq - 2]
            if batch.prev.hex() != expected_prev:
                problems.append(
                    f"{label} names {_short(batch.prev)} as its predecessor, not the chain's {expected_prev[:16]}…"
                )
        for action in batch.actions:
            if action.errand == errand:
                is_foreign = action.node != batch.origin or action.scope != batch.scope
                (foreign if is_foreign else legit)[action.id].append((action, place))
    history = {str(e["id"]): e for e in bundle["history"]}
    if len(history) != len(bundle["history"]):
        problems.append("the history lists an action twice")
    unsigned: list[Action] = []
    for e in history.values():
        if e["evidence"] == "unsealed":
            action = decode_action(bytes.fromhex(e["body"]))
            if action.id != e["id"] or action.errand != errand:
                problems.append(f"unsealed action {e['id']}: its body is another action")
                continue
            unsigned.append(action)
        elif e["evidence"] == "none":
            problems.append(f"action {e['id']} is in the node's history, but no signed batch carries it")
        elif e["evidence"] in ("signed", "foreign"):
            if e["id"] not in (legit if e["evidence"] == "signed" else foreign):
                problems.append(
                    f"action {e['id']} is listed as {e['evidence']}, but no frame in the bundle carries it so"
                )
        else:
            problems.append(f"action {e['id']}: unknown evidence {e['evidence']!r}")
    for action_id, copies in {**foreign, **legit}.items():
        e = history.get(action_id)
        if e is None:
            problems.append(f"action {action_id}, signed in {_label(*copies[0][1])}, is missing from the history")
            continue
        action = copies[0][0]
        if e["action"] != _plain_json(action):
            problems.append(f"action {action_id}: the history's copy differs from the signed one")
        headline = {k: e.get(k) for k in _HEADLINE_FIELDS}
        signed = {k: _plain_json(getattr(action, k)) if k != "kind" else kind_of(action) for k in _HEADLINE_FIELDS}
        if headline != signed:
            changed = [k for k in _HEADLINE_FIELDS if headline[k] != signed[k]]
            problems.append(f"action {action_id}: {', '.join(changed)} in the history differ from the signed action")
        if e["time"] != _when(action.at):
            problems.append(
                f"action {action_id}: the time shown ({e['time']}) is not the signed time {_when(action.at)}"
            )
        node = d.get(action.node) if action.node in d else None
        if node is not None and (e["node_name"], e["node_role"]) != (node.name, node.role):
            problems.append(f"action {action_id}: node name or role in the history differ from the directory")
        places = sorted((c["origin"], c["scope"], c["seq"]) for c in e["carried_in"])
        if action_id in legit and places != sorted(p for _, p in legit[action_id]):
            problems.append(f"action {action_id}: the batches the history names are not the ones that carry it")
    for e in history.values():
        if e["evidence"] == "unsealed":
            body_action = next((u for u in unsigned if u.id == e["id"]), None)
            if body_action is not None and e["action"] != _plain_json(body_action):
                problems.append(f"unsealed action {e['id']}: the history's copy differs from its body")
    proj = project(errand, [copies[0][0] for copies in legit.values()] + unsigned, d)
    report.digest = proj.digest
    report.signed_actions = len(legit)
    report.unsigned_actions = len(unsigned)
    if unsigned:
        report.notes.append(
            f"{len(unsigned)} action(s) were not sealed into a signed batch when the bundle was made; "
            "nothing but the exporting node vouches for them"
        )
    if bundle["digest"]["recomputed"] != proj.digest:
        problems.append(
            f"the bundle's digest {bundle['digest']['recomputed']} does not follow from its actions ({proj.digest})"
        )
    if bundle["digest"]["stored"] != proj.digest:
        problems.append(
            f"the exporting node's stored digest {bundle['digest']['stored']} differs from the evidence ({proj.digest})"
        )
    if bundle["state"] != _plain_json(proj.state):
        problems.append("the state in the bundle is not the state the actions give")
    for e in history.values():
        if (e["evidence"] in ("signed", "unsealed") and e["id"] in legit) or e["evidence"] == "unsealed":
            want = _expected_status(proj, e["id"])
            if (e["status"], e["reason"]) != want:
                problems.append(
                    f"action {e['id']}: status {e['status']!r} in the history, but the actions make it {want[0]!r}"
                )
    for problem in bundle.get("problems", []):
        report.notes.append(f"the exporting node reported: {problem}")
