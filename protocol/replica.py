"""An in-memory replica of one node, with the same semantics as ``sanji.store.Store``.

Sans-IO: nothing here reads a clock, a socket or a disk. The node's wall clock is
injected (``now_ms``), frames are verified with ``protocol.batch.open_frame`` and
judged with ``protocol.stream.classify``, errands are projected with
``protocol.errand.project`` — the same rules the real store applies — so a
simulation can run a whole county in one process, deterministically, and a test
can feed the same frames to a ``Replica`` and to a real ``Store`` and compare.

What a ``Store`` commits in one transaction, a ``Replica`` changes in one method
call: a crash between two calls loses nothing (``snapshot``/``restore`` model
exactly what survives), a crash "during" a call is modelled by the caller not
making it (an in-flight message is lost).

The child's side of a sync session is ``ChildSession``: an explicit state machine
that hands out one request at a time and consumes the matching response (cursors →
[its own batches back, if it was restored from an old copy] → seal → push pages →
pull pages), mirroring ``sanji.sync.driver.sync_once``. The parent's side is
``serve``, mirroring ``sanji.sync.server.SyncServer``; like it, it serves any node
of its subtree, so a village can go round a dark township to the county.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from protocol import limits
from protocol.actions import Action
from protocol.batch import GENESIS, Batch, frame_hash, open_frame, seal
from protocol.encoding import decode_action, encode
from protocol.errand import Projection, judge, project
from protocol.errors import ActionRefused, ChainFork, RouteError, SanjiError
from protocol.hlc import HybridClock
from protocol.session import (
    DEFAULT_BUDGET_BYTES,
    CursorsRequest,
    CursorsResponse,
    FrameResult,
    PullRequest,
    PullResponse,
    PushRequest,
    PushResponse,
    cursor_map,
    cursors_from,
    take_within_budget,
)
from protocol.signing import SigningKey
from protocol.stream import StreamKey, Verdict, classify
from protocol.topology import Directory

MAX_PULL_BYTES = 4 * 1024 * 1024  # as sanji.sync.server.MAX_PULL_BYTES

Request = CursorsRequest | PushRequest | PullRequest
Response = CursorsResponse | PushResponse | PullResponse
FrameOpener = Callable[[bytes], Batch]


class Quarantined(msgspec.Struct, frozen=True, kw_only=True):
    origin: str
    scope: str
    seq: int
    hash: bytes
    frame: bytes
    reason: str
    peer: str


class _SnapBatch(msgspec.Struct, frozen=True, array_like=True):
    origin: str
    scope: str
    seq: int
    hash: bytes
    frame: bytes


class _SnapAction(msgspec.Struct, frozen=True, array_like=True):
    body: bytes
    foreign: str


class ReplicaSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a ``Store`` keeps on disk that sync depends on, in a canonical order."""

    node: str
    streams: tuple[tuple[str, str, int, bytes], ...]
    batches: tuple[_SnapBatch, ...]
    held: tuple[_SnapBatch, ...]
    quarantine: tuple[Quarantined, ...]
    actions: tuple[_SnapAction, ...]  # in insertion order
    outbox: tuple[tuple[str, str], ...]  # (action id, scope), in order
    positions_confirmed: bool = False  # kept on disk, like the store's meta row


_snapshot_decoder = msgspec.msgpack.Decoder(ReplicaSnapshot)


@dataclass
class _Stored:
    action: Action
    foreign: str  # why the action is kept but never judged; "" when it is judged normally


class Replica:
    """One node's copy of everything: streams, batches, held and quarantined frames, actions, outbox.

    ``reclaim_own`` (the store today) lets a node restored from an old backup take its own batches
    back from its parent: its pull cursors include its own streams, a parent serves a child its own
    streams too, a node accepts frames of its own streams (as duplicates, or as the missing
    continuation of its own chain), and a child numbers no new batch before its parent has told it
    where its streams stand (``positions_confirmed``). ``reclaim_own=False`` is the store before that
    recovery existed: every stream but one's own is pulled, and the outbox is sealed at once.

    A parent serves any node of its subtree, not only its children: a village whose township is
    down falls back to the county.
    """

    def __init__(
        self,
        node_id: str,
        key: SigningKey,
        directory: Directory,
        *,
        now_ms: Callable[[], int] | None = None,
        opener: FrameOpener | None = None,
        reclaim_own: bool = True,
    ) -> None:
        if node_id not in directory:
            raise ValueError(f"node {node_id} is not in the directory")
        self.node_id = node_id
        self.key = key
        self.directory = directory
        self.now_ms: Callable[[], int] = now_ms or (lambda: 0)
        self.clock = HybridClock(now_ms=self.now_ms)
        self.reclaim_own = reclaim_own
        self.batch_actions = limits.DEFAULT_BATCH_ACTIONS  # how many actions seal_outbox puts in one batch
        self._open: FrameOpener = opener or (lambda frame: open_frame(frame, directory))
        self._subtree = frozenset(directory.subtree(node_id))
        self.parent = directory.parent(node_id)
        # A child must not number new batches until its parent confirmed where its streams stand
        # (with reclaim_own; a fresh process starts unconfirmed, the root is its own judge).
        self.positions_confirmed = self.parent is None or not reclaim_own
        # Children that told this process what they hold of this node's streams (with reclaim_own): only
        # then may it number new batches in streams towards them. A node restored from a backup may have
        # sent a child batches it no longer holds; the child gives them back first (``reclaim``).
        self.confirmed_children: set[str] = set()
        # Its parent confirmed its streams *in this process*: a disk restored from a backup brings back
        # ``positions_confirmed`` too, so the streams only its ancestors hold wait for a fresh word.
        self.parent_confirmed = self.parent is None or not reclaim_own
        # What the parent held of the streams below this node at the last exchange (with reclaim_own):
        # a child restored from a backup is told its own streams stand there too, not only here, so a
        # village that once went round its township to the county cannot renumber what the county holds.
        self.upstream: dict[StreamKey, int] = {}
        self._streams: dict[StreamKey, tuple[int, bytes]] = {}
        self._batches: dict[StreamKey, list[tuple[bytes, bytes]]] = {}  # seq-1 -> (hash, frame)
        self._held: dict[StreamKey, dict[int, tuple[bytes, bytes]]] = {}
        self.quarantine: list[Quarantined] = []
        self._actions: dict[str, _Stored] = {}
        self._by_errand: dict[str, list[str]] = {}
        self._outbox: list[tuple[str, str]] = []
        self._projections: dict[str, Projection] = {}
        # Instrumentation, not state: what was applied since this object was created. A simulator
        # drains these after every call to count applications across crashes.
        self.inserted: list[str] = []  # action ids, each time one is added to the store
        self.applied: list[tuple[StreamKey, int]] = []  # batches, each time one is applied
        self.events: list[tuple[str, str, str]] = []  # (kind, peer, detail): refused frames, forks

    # -- local actions -----------------------------------------------------------------

    def act(self, errand_id: str, build: Callable[[Projection, int], Action]) -> Projection:
        """Record one local action, judged by the same rule every replica uses (``Store.act``)."""
        before = project(errand_id, self._judged_actions(errand_id), self.directory)
        action = build(before, self.clock.now())
        if action.node != self.node_id or action.errand != errand_id:
            raise ActionRefused("an action must be written by this node about this errand")
        reason = judge(before.state, action, self.directory)
        if reason is not None:
            raise ActionRefused(reason)
        self._insert_actions([action], origin=action.node, scope=action.scope)
        self._outbox.append((action.id, action.scope))
        return self._recompute([errand_id])[errand_id]

    def seal_outbox(self, max_actions: int | None = None) -> int:
        """Turn unsent local actions into signed batches, one stream per scope. Returns batches made."""
        max_actions = max_actions or self.batch_actions
        by_scope: dict[str, list[Action]] = {}
        for action_id, scope in self._outbox:
            stored = self._actions.get(action_id)
            if stored is not None:
                by_scope.setdefault(scope, []).append(stored.action)
        made = 0
        kept: set[str] = set()
        for scope, acts in by_scope.items():
            if not self.may_seal(scope):
                kept.add(scope)
                continue
            audience = self.directory.audience(self.node_id, scope)
            key = StreamKey(self.node_id, scope)
            seq, last_hash = self.cursor(key)
            start = 0
            while start < len(acts):
                take = min(max_actions, len(acts) - start)
                while True:
                    frame = seal(
                        key=self.key,
                        origin=self.node_id,
                        scope=scope,
                        audience=audience,
                        seq=seq + 1,
                        prev=last_hash,
                        created=self.clock.now(),
                        actions=acts[start : start + take],
                    )
                    # Small frames: a dropped transfer on a 2G link redoes at most one of them.
                    if len(frame) <= limits.TARGET_FRAME_BYTES or take == 1:
                        break
                    take = max(1, take // 2)
                start += take
                seq += 1
                last_hash = frame_hash(frame)
                self._store_batch(key, seq, last_hash, frame)
                made += 1
            self._streams[key] = (seq, last_hash)
        self._outbox = [(aid, scope) for aid, scope in self._outbox if scope in kept]
        return made

    def may_seal(self, scope: str) -> bool:
        """Whether this process may number new batches in its stream of ``scope`` (see confirmed_children)."""
        if not self.reclaim_own:
            return True
        if scope == self.node_id:
            return self.parent_confirmed
        return self.directory.next_hop_down(self.node_id, scope) in self.confirmed_children

    def ancestor_cursors(self) -> dict[StreamKey, int]:
        """What this node holds of streams its ancestors wrote about its subtree (``ancestor_streams``)."""
        ancestors = set(self.directory.path(self.node_id)) - {self.node_id}
        return self.cursors_where(origin_in=ancestors, scope_in=self._subtree)

    def confirm_child(self, child: str, reported: Mapping[StreamKey, int]) -> dict[StreamKey, int]:
        """Take a direct child's report of this node's streams; return those it holds more of (with this
        node's cursors: "give me mine after these"), or confirm the child when there are none."""
        if self.directory.parent(child) != self.node_id:
            return {}  # a grandchild on a fallback link speaks for its own branch only: nothing to confirm
        below = self.directory.subtree(child)
        mine = self.cursors_where(origin_in=[self.node_id], scope_in=below)
        ahead = {
            k: mine.get(k, 0)
            for k, seq in reported.items()
            if k.origin == self.node_id and k.scope in below and seq > mine.get(k, 0)
        }
        if ahead:
            self.events.append(("restored", child, ",".join(str(k) for k in sorted(ahead))))
        else:
            self.confirmed_children.add(child)
        return ahead

    def frames_given_back(self, parent_has: Mapping[StreamKey, int], max_bytes: int) -> tuple[list[bytes], bool]:
        """The parent's own batches it lost and this node holds (``CursorsResponse.reclaim``)."""
        return self._frames_after(dict(parent_has), max_bytes)

    def outbox_size(self) -> int:
        return len(self._outbox)

    # -- receiving ---------------------------------------------------------------------

    def receive(self, frames: Sequence[bytes], *, peer: str = "") -> list[FrameResult]:
        """Verify and take each frame; one result per frame, in order (``Store.receive``)."""
        results: list[FrameResult] = []
        for frame in frames:
            try:
                batch = self._open(frame)
                own = self.reclaim_own and batch.origin == self.node_id
                if self.node_id not in batch.payload.audience and not own:
                    raise RouteError(f"stream {batch.origin}->{batch.scope} is not addressed to {self.node_id}")
            except SanjiError as exc:
                self.events.append(("refused", peer, exc.code))
                results.append(FrameResult(status="refused", error=exc.code, message=exc.message))
                continue
            results.append(self._receive_one(batch, peer))
        return results

    def _receive_one(self, batch: Batch, peer: str) -> FrameResult:
        key = StreamKey(batch.origin, batch.scope)

        def result(status: str, error: str = "", message: str = "") -> FrameResult:
            return FrameResult(
                origin=batch.origin,
                scope=batch.scope,
                seq=batch.seq,
                status=status,  # type: ignore[arg-type]
                error=error,
                message=message,
            )

        cursor, last_hash = self.cursor(key)
        held_hash = self._batches[key][batch.seq - 1][0] if batch.seq <= cursor else None
        verdict = classify(
            seq=batch.seq, prev=batch.prev, digest=batch.hash, cursor=cursor, last_hash=last_hash, held_hash=held_hash
        )
        if verdict is Verdict.DUPLICATE:
            return result("duplicate")
        if verdict is Verdict.FORK:
            fork = ChainFork(f"batch {batch.seq} of stream {key} conflicts with the one held (held up to {cursor})")
            if not any(
                (q.origin, q.scope, q.seq, q.hash) == (batch.origin, batch.scope, batch.seq, batch.hash)
                for q in self.quarantine
            ):
                self._quarantine(batch, fork.message, peer)
                self.events.append(("fork", peer, f"{key}#{batch.seq}"))
            return result("refused", fork.code, fork.message)
        if verdict is Verdict.HOLD:
            self._held.setdefault(key, {}).setdefault(batch.seq, (batch.hash, batch.frame))
            return result("held", "chain_gap", f"waiting for batch {cursor + 1} of {key}")
        self._apply(batch)
        seq, last = batch.seq, batch.hash
        held = self._held.get(key, {})
        while seq + 1 in held:  # held successors may now follow
            _, frame = held.pop(seq + 1)
            successor = self._open(frame)
            if successor.prev != last:
                self._quarantine(successor, "held batch does not chain to its predecessor", peer)
                break
            self._apply(successor)
            seq, last = successor.seq, successor.hash
        if not held:
            self._held.pop(key, None)
        return result("stored")

    def _quarantine(self, batch: Batch, reason: str, peer: str) -> None:
        self.quarantine.append(
            Quarantined(
                origin=batch.origin,
                scope=batch.scope,
                seq=batch.seq,
                hash=batch.hash,
                frame=batch.frame,
                reason=reason,
                peer=peer,
            )
        )

    def _apply(self, batch: Batch) -> None:
        key = StreamKey(batch.origin, batch.scope)
        self._store_batch(key, batch.seq, batch.hash, batch.frame)
        self._streams[key] = (batch.seq, batch.hash)
        self.applied.append((key, batch.seq))
        self.clock.observe(batch.payload.created)
        for action in batch.actions:
            self.clock.observe(action.at)
        self._insert_actions(batch.actions, origin=batch.origin, scope=batch.scope)
        self._recompute(sorted({a.errand for a in batch.actions}))

    # -- forwarding --------------------------------------------------------------------

    def cursor(self, key: StreamKey) -> tuple[int, bytes]:
        return self._streams.get(key, (0, GENESIS))

    def cursors_where(
        self,
        *,
        origin_in: Iterable[str] | None = None,
        origin_not_in: Iterable[str] | None = None,
        scope_in: Iterable[str] | None = None,
    ) -> dict[StreamKey, int]:
        o_in = None if origin_in is None else frozenset(origin_in)
        o_out = frozenset(origin_not_in or ())
        s_in = None if scope_in is None else frozenset(scope_in)
        return {
            k: seq
            for k, (seq, _) in sorted(self._streams.items())
            if (o_in is None or k.origin in o_in) and k.origin not in o_out and (s_in is None or k.scope in s_in)
        }

    def cursors_for_child(self, child: str) -> dict[StreamKey, int]:
        """What this node holds of the streams a child can push up."""
        self._check_child(child)
        return self.cursors_where(origin_in=self.directory.subtree(child))

    def held_above(self, child: str, held: Mapping[StreamKey, int]) -> dict[StreamKey, int]:
        """The child's own streams of which this node's parent held more than this node does (``above``)."""
        if not self.reclaim_own:
            return {}
        return {k: seq for k, seq in self.upstream.items() if k.origin == child and seq > held.get(k, 0)}

    def pull_cursors(self) -> dict[StreamKey, int]:
        """What this node holds of every stream but its own (all of them with ``reclaim_own``)."""
        if self.reclaim_own:
            return self.cursors_where()
        return self.cursors_where(origin_not_in=[self.node_id])

    def frames_for_child(self, child: str, known: Mapping[StreamKey, int], max_bytes: int) -> tuple[list[bytes], bool]:
        """Batches the child's subtree should receive and does not have yet, in order, within budget."""
        self._check_child(child)
        subtree = self.directory.subtree(child)
        if self.reclaim_own:
            ours = self.cursors_where(scope_in=subtree)
        else:
            ours = self.cursors_where(origin_not_in=[child], scope_in=subtree)
        wanted = {k: known.get(k, 0) for k, seq in ours.items() if seq > known.get(k, 0)}
        return self._frames_after(wanted, max_bytes)

    def frames_for_parent(self, parent_has: Mapping[StreamKey, int], max_bytes: int) -> tuple[list[bytes], bool]:
        ours = self.cursors_where(origin_in=self._subtree)
        wanted = {k: parent_has.get(k, 0) for k, seq in ours.items() if seq > parent_has.get(k, 0)}
        return self._frames_after(wanted, max_bytes)

    def own_streams_behind(self, parent_has: Mapping[StreamKey, int]) -> list[str]:
        """This node's own streams of which the parent holds more than this node: a restored backup."""
        mine = self.cursors_where(origin_in=[self.node_id])
        return sorted(str(k) for k, seq in parent_has.items() if k.origin == self.node_id and seq > mine.get(k, 0))

    def _frames_after(self, wanted: Mapping[StreamKey, int], max_bytes: int) -> tuple[list[bytes], bool]:
        frames: list[bytes] = []
        used = 0
        for key in sorted(wanted):
            rows = [frame for _, frame in self._batches.get(key, [])[wanted[key] :]]
            fit = take_within_budget((len(f) for f in rows), max_bytes - used) if used < max_bytes else 0
            if frames and fit and used + len(rows[0]) > max_bytes:
                fit = 0  # only the first frame of a whole response may exceed the budget, not of each stream
            if fit == 0 and frames:
                return frames, True
            for frame in rows[:fit]:
                frames.append(frame)
                used += len(frame)
            if fit < len(rows):
                return frames, True
        return frames, False

    def _check_child(self, child: str) -> None:
        # Any node below this one may sync here: a village whose township is down falls back to the county.
        if child not in self.directory or child == self.node_id or self.node_id not in self.directory.path(child):
            raise RouteError(
                f"{child} is not a child (or other descendant) of {self.node_id}",
                hint="Sync with your own parent node, or an ancestor configured as a fallback.",
            )

    # -- reading -----------------------------------------------------------------------

    def projections(self) -> dict[str, Projection]:
        """Errand id -> projection, for every errand this node holds any action of."""
        return dict(self._projections)

    def projection(self, errand_id: str) -> Projection | None:
        return self._projections.get(errand_id)

    def digests(self) -> dict[str, str]:
        return {e: p.digest for e, p in sorted(self._projections.items())}

    def actions(self) -> dict[str, Action]:
        """Every action held, by id (foreign ones included)."""
        return {aid: s.action for aid, s in self._actions.items()}

    def foreign(self) -> dict[str, str]:
        return {aid: s.foreign for aid, s in self._actions.items() if s.foreign}

    def streams(self) -> dict[StreamKey, int]:
        return self.cursors_where()

    def frames(self) -> list[bytes]:
        """Every batch held, stream by stream, in order."""
        return [frame for key in sorted(self._batches) for _, frame in self._batches[key]]

    def held_count(self) -> int:
        return sum(len(v) for v in self._held.values())

    def held_keys(self) -> list[tuple[StreamKey, int]]:
        return sorted((k, seq) for k, by_seq in self._held.items() for seq in by_seq)

    def take_instrumentation(self) -> tuple[list[str], list[tuple[StreamKey, int]]]:
        inserted, applied = self.inserted, self.applied
        self.inserted, self.applied = [], []
        return inserted, applied

    # -- durability --------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """What survives a crash: everything committed, canonically encoded."""
        snap = ReplicaSnapshot(
            node=self.node_id,
            streams=tuple((k.origin, k.scope, seq, h) for k, (seq, h) in sorted(self._streams.items())),
            batches=tuple(
                _SnapBatch(k.origin, k.scope, i + 1, h, f)
                for k in sorted(self._batches)
                for i, (h, f) in enumerate(self._batches[k])
            ),
            held=tuple(
                _SnapBatch(k.origin, k.scope, seq, h, f)
                for k in sorted(self._held)
                for seq, (h, f) in sorted(self._held[k].items())
            ),
            quarantine=tuple(self.quarantine),
            actions=tuple(_SnapAction(encode(s.action), s.foreign) for s in self._actions.values()),
            outbox=tuple(self._outbox),
            positions_confirmed=self.positions_confirmed and self.parent is not None,
        )
        return encode(snap)

    def fingerprint(self) -> str:
        """A digest of the durable state: equal fingerprints, equal replicas."""
        return hashlib.sha256(self.snapshot()).hexdigest()

    @classmethod
    def restore(
        cls,
        snapshot: bytes,
        key: SigningKey,
        directory: Directory,
        *,
        now_ms: Callable[[], int] | None = None,
        opener: FrameOpener | None = None,
        reclaim_own: bool = True,
    ) -> Replica:
        """A fresh process over the committed state (``Store.start``): the clock restarts from the data."""
        snap = _snapshot_decoder.decode(snapshot)
        replica = cls(snap.node, key, directory, now_ms=now_ms, opener=opener, reclaim_own=reclaim_own)
        for origin, scope, seq, last_hash in snap.streams:
            replica._streams[StreamKey(origin, scope)] = (seq, last_hash)
        for b in snap.batches:
            replica._store_batch(StreamKey(b.origin, b.scope), b.seq, b.hash, b.frame)
        for b in snap.held:
            replica._held.setdefault(StreamKey(b.origin, b.scope), {})[b.seq] = (b.hash, b.frame)
        replica.quarantine = list(snap.quarantine)
        if snap.positions_confirmed:
            replica.positions_confirmed = True
        last = 0
        for a in snap.actions:
            action = decode_action(a.body)
            replica._actions[action.id] = _Stored(action, a.foreign)
            replica._by_errand.setdefault(action.errand, []).append(action.id)
            last = max(last, action.at)
        replica._outbox = [(aid, scope) for aid, scope in snap.outbox]
        replica.clock = HybridClock(last, now_ms=replica.now_ms)
        replica._recompute(list(replica._by_errand))
        return replica

    # -- internals ---------------------------------------------------------------------

    def _store_batch(self, key: StreamKey, seq: int, digest: bytes, frame: bytes) -> None:
        chain = self._batches.setdefault(key, [])
        if len(chain) != seq - 1:
            raise AssertionError(f"batch {seq} of {key} stored out of order (holding {len(chain)})")
        chain.append((digest, frame))

    def _insert_actions(self, acts: Sequence[Action], *, origin: str, scope: str) -> None:
        for a in acts:
            if a.id in self._actions:
                continue
            foreign = ""
            if a.node != origin:
                foreign = f"written by {a.node} but carried in {origin}'s stream"
            elif a.scope != scope:
                foreign = f"about scope {a.scope} but carried in the stream of {scope}"
            self._actions[a.id] = _Stored(a, foreign)
            self._by_errand.setdefault(a.errand, []).append(a.id)
            self.inserted.append(a.id)

    def _judged_actions(self, errand_id: str) -> list[Action]:
        stored = (self._actions[aid] for aid in self._by_errand.get(errand_id, ()))
        return [s.action for s in stored if not s.foreign]

    def _recompute(self, errand_ids: Iterable[str]) -> dict[str, Projection]:
        out: dict[str, Projection] = {}
        for errand_id in errand_ids:
            proj = project(errand_id, self._judged_actions(errand_id), self.directory)
            self._projections[errand_id] = proj
            out[errand_id] = proj
        return out


# -- the parent's side of a session ---------------------------------------------------------


def serve(replica: Replica, request: Request) -> Response:
    """Answer one request from a child (``SyncServer``). Raises RouteError for a stranger."""
    directory = replica.directory
    sender = request.sender
    if sender not in directory or sender == replica.node_id or replica.node_id not in directory.path(sender):
        raise RouteError(
            f"{sender!r} is not a child (or other descendant) of {replica.node_id}",
            hint="Sync with your own parent, or an ancestor configured as a fallback.",
        )
    if isinstance(request, CursorsRequest):
        held = replica.cursors_for_child(sender)
        reclaim: dict[StreamKey, int] = {}
        if replica.reclaim_own:
            reclaim = replica.confirm_child(sender, cursor_map(request.ancestor_streams))
        return CursorsResponse(
            node=replica.node_id,
            at=replica.clock.now(),
            cursors=cursors_from(held),
            reclaim=cursors_from(reclaim),
            above=cursors_from(replica.held_above(sender, held)),
        )
    if isinstance(request, PushRequest):
        replica.clock.observe(request.at)
        results = replica.receive(request.frames, peer=sender)
        return PushResponse(node=replica.node_id, at=replica.clock.now(), results=tuple(results))
    replica.clock.observe(request.at)
    budget = max(1, min(request.max_bytes, MAX_PULL_BYTES))
    if replica.positions_confirmed and replica.outbox_size():
        replica.seal_outbox()  # our own fresh actions go down in this very pull
    frames, more = replica.frames_for_child(sender, cursor_map(request.cursors), budget)
    return PullResponse(node=replica.node_id, at=replica.clock.now(), frames=tuple(frames), more=more)


# -- the child's side of a session ----------------------------------------------------------


class Phase(enum.Enum):
    CURSORS = "cursors"
    RECLAIM = "reclaim"  # pulling this node's own batches back before numbering new ones
    PUSH = "push"
    PULL = "pull"
    DONE = "done"


@dataclass
class SessionReport:
    pushed: int = 0
    pulled: int = 0
    refused: int = 0
    requests: int = 0
    stored_here: int = 0  # frames this node stored while pulling
    behind: list[str] = field(default_factory=list)


class ChildSession:
    """One exchange with the parent, one message at a time (``sync_once`` without the I/O).

    ``start()`` returns the first request; each ``step(response)`` consumes the answer to the
    request last handed out and returns the next one, or None when the session is over. If a
    request or its answer is lost, the caller drops the session: cursors are the only session
    state, so the next session resumes where this one stopped. The session talks to whichever
    ancestor answers (the parent, or a fallback): ``parent`` becomes the node that answered.
    """

    def __init__(self, replica: Replica, *, budget: int = DEFAULT_BUDGET_BYTES) -> None:
        if replica.parent is None:
            raise ValueError(f"{replica.node_id} has no parent to sync with")
        self.replica = replica
        self.parent: str = replica.parent
        self.budget = budget
        self.phase = Phase.CURSORS
        self.report = SessionReport()
        self.parent_has: dict[StreamKey, int] = {}
        self.give_back: dict[StreamKey, int] = {}  # the parent's own batches it lost, to push back first
        self.above: dict[StreamKey, int] = {}  # this node's streams as the parent's parent held them
        self._more = False
        self._expect: type[Response] | None = None

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    @property
    def expecting(self) -> type[Response] | None:
        return self._expect

    def start(self) -> Request:
        r = self.replica
        if not r.reclaim_own:
            r.seal_outbox()  # the store before own-stream recovery seals first
        ancestors = cursors_from(r.ancestor_cursors()) if r.reclaim_own else ()
        return self._send(CursorsRequest(sender=r.node_id, ancestor_streams=ancestors), CursorsResponse)

    def step(self, response: Response) -> Request | None:
        if self._expect is None or not isinstance(response, self._expect):
            raise ValueError(f"session of {self.replica.node_id} did not expect {type(response).__name__}")
        self._expect = None
        r = self.replica
        if isinstance(response, CursorsResponse):
            peer = response.node  # the parent, or the ancestor a fallback link reached
            if peer == r.node_id or peer not in r.directory.path(r.node_id):
                raise RouteError(f"{peer!r} answered, but it is not an ancestor of {r.node_id}")
            self.parent = peer
            r.clock.observe(response.at)
            self.parent_has = cursor_map(response.cursors)
            self.give_back = cursor_map(response.reclaim)
            if r.reclaim_own and peer == r.parent:
                for key, seq in self.parent_has.items():
                    r.upstream[key] = max(r.upstream.get(key, 0), seq)
            self.above = cursor_map(response.above)
            if r.reclaim_own:
                behind = r.own_streams_behind(self._known_above())
                if behind:
                    self.report.behind = behind
                    self.phase = Phase.RECLAIM
                    return self._pull()
                return self._confirmed()
            return self._push()
        if isinstance(response, PushResponse):
            progressed = False
            for result in response.results:
                if result.status in ("stored", "duplicate", "held"):
                    key = StreamKey(result.origin, result.scope)
                    if result.status != "held":
                        self.parent_has[key] = max(self.parent_has.get(key, 0), result.seq)
                        progressed = True
                    self.report.pushed += 1
                else:
                    self.report.refused += 1
            if not self._more or not progressed:
                return self._pull()
            return self._push()
        if response.frames:
            results = r.receive(response.frames, peer=self.parent)
            self.report.pulled += len(response.frames)
            self.report.refused += sum(1 for x in results if x.status == "refused")
            self.report.stored_here += sum(1 for x in results if x.status == "stored")
            if not any(x.status == "stored" for x in results):
                return self._after_pull()  # the page moved nothing forward: asking again would spin
        if not response.more:
            return self._after_pull()
        return self._pull()

    def _after_pull(self) -> Request | None:
        if self.phase is Phase.RECLAIM:
            if self.replica.own_streams_behind(self._known_above()):
                # The parent knows its own parent holds more of this node's streams than it could
                # hand back yet: number nothing new until they have come down.
                self.phase = Phase.DONE
                return None
            return self._confirmed()
        self.phase = Phase.DONE
        return None

    def _known_above(self) -> dict[StreamKey, int]:
        """Where this node's streams stand above it: at the parent, or at the parent's parent."""
        merged = dict(self.parent_has)
        for key, seq in self.above.items():
            merged[key] = max(merged.get(key, 0), seq)
        return merged

    def _confirmed(self) -> Request | None:
        self.replica.positions_confirmed = True
        self.replica.parent_confirmed = True
        self.replica.seal_outbox()
        return self._push()

    def _push(self) -> Request | None:
        self.phase = Phase.PUSH
        r = self.replica
        if self.give_back:  # the parent was restored from a backup: its own lost batches go back first
            frames, _ = r.frames_given_back(self.give_back, self.budget)
            self.give_back = {}
            if frames:
                self._more = True
                return self._send(PushRequest(sender=r.node_id, at=r.clock.now(), frames=tuple(frames)), PushResponse)
        frames, self._more = r.frames_for_parent(self.parent_has, self.budget)
        if not frames:
            return self._pull()
        return self._send(PushRequest(sender=r.node_id, at=r.clock.now(), frames=tuple(frames)), PushResponse)

    def _pull(self) -> Request:
        if self.phase is not Phase.RECLAIM:
            self.phase = Phase.PULL
        r = self.replica
        known = r.pull_cursors()
        request = PullRequest(sender=r.node_id, at=r.clock.now(), cursors=cursors_from(known), max_bytes=self.budget)
        return self._send(request, PullResponse)

    def _send(self, request: Request, expect: type[Response]) -> Request:
        self._expect = expect
        self.report.requests += 1
        return request


class SessionRunaway(RuntimeError):
    """A session went on past any reasonable number of requests: it makes no progress."""


def run_session(
    child: Replica, parent: Replica, *, budget: int = DEFAULT_BUDGET_BYTES, max_requests: int = 10_000
) -> SessionReport:
    """A whole session over a perfect link with ``parent`` (or any ancestor): for tests and settling."""
    session = ChildSession(child, budget=budget)
    request: Request | None = session.start()
    while request is not None:
        if session.report.requests > max_requests:
            raise SessionRunaway(
                f"session of {child.node_id} with {parent.node_id} still going after {max_requests} requests "
                f"(phase {session.phase.value})"
            )
        request = session.step(serve(parent, request))
    return session.report
