"""An in-memory replica of one node: the ledger rules of ``protocol.ledger`` persisted into dicts.

Development only (the simulation and the tests). Nothing here decides a rule: every receive, seal,
admission of actions and restore decision is asked of ``protocol.ledger``, and every session step of
``protocol.exchange`` — exactly what ``sanji.store.Store`` and ``sanji.sync.driver`` ask — so the
simulation proves properties of the real rules, and a test can feed the same frames to a ``Replica``
and to a real ``Store`` and compare.

Sans-IO: the node's wall clock is injected (``now_ms``). What a ``Store`` commits in one transaction,
a ``Replica`` changes in one method call: a crash between two calls loses nothing
(``snapshot``/``restore`` model exactly what survives), a crash "during" a call is modelled by the
caller not making it (an in-flight message is lost).

``ChildSession`` hands out one request at a time of ``protocol.exchange.child_session``; ``serve``
answers as ``sanji.sync.server.SyncServer`` does, for any node of the subtree (a village can go round
a dark township to the county).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from protocol import limits
from protocol.actions import Action
from protocol.batch import GENESIS, Batch, open_frame
from protocol.encoding import decode_action, encode
from protocol.errand import Projection, project
from protocol.errors import SanjiError
from protocol.exchange import (
    Absorb,
    Command,
    ConfirmChild,
    ConfirmPositions,
    Cursors,
    FramesAfter,
    FramesForChild,
    HeldAbove,
    HeldForChild,
    Now,
    OutboxSize,
    ParentCommand,
    PeerAcked,
    PeerHolds,
    PeerRecord,
    PositionsConfirmed,
    Recovered,
    Request,
    Response,
    SealOutbox,
    Send,
    Steps,
    Take,
    Tally,
    child_session,
    expected,
    parent_cursors,
    parent_pull,
)
from protocol.hlc import HybridClock
from protocol.ledger import (
    EVERY_STREAM,
    Apply,
    Effect,
    Event,
    Hold,
    Insert,
    PageBudget,
    Quarantine,
    Unhold,
    admit,
    ahead_of_parent,
    ancestor_streams,
    check_descendant,
    check_local,
    confirms_positions,
    drain,
    for_subtree,
    held_above,
    judge_batch,
    may_seal,
    open_addressed,
    own_streams,
    own_streams_behind,
    pushable,
    refuse,
    seal_stream,
    streams,
    wanted,
)
from protocol.session import (
    DEFAULT_BUDGET_BYTES,
    CursorsRequest,
    CursorsResponse,
    FrameResult,
    PullResponse,
    PushRequest,
    PushResponse,
)
from protocol.signing import SigningKey
from protocol.stream import StreamKey
from protocol.topology import Directory

FrameOpener = Callable[[bytes], Batch]

__all__ = [
    "ChildSession",
    "Quarantined",
    "Replica",
    "Request",
    "Response",
    "SessionReport",
    "SessionRunaway",
    "run_session",
    "serve",
]


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
    peer_acks: tuple[tuple[str, str, str, int], ...] = ()  # (peer, origin, scope, seq): the store's peer_acks
    restored: bool = False  # a backup copy (``protocol.ledger.RESTORED_MARK``), until the parent confirms it


_snapshot_decoder = msgspec.msgpack.Decoder(ReplicaSnapshot)


@dataclass
class _Stored:
    action: Action
    foreign: str  # why the action is kept but never judged; "" when it is judged normally


def _detail(kind: str, detail: Iterable[tuple[str, object]]) -> str:
    d = dict(detail)
    if kind == "refused":
        return str(d.get("error", ""))
    if "stream" in d:
        return f"{d['stream']}#{d.get('seq', '')}"
    return ", ".join(f"{k}={v}" for k, v in d.items())


class Replica:
    """One node's copy of everything: streams, batches, held and quarantined frames, actions, outbox."""

    def __init__(
        self,
        node_id: str,
        key: SigningKey,
        directory: Directory,
        *,
        now_ms: Callable[[], int] | None = None,
        opener: FrameOpener | None = None,
    ) -> None:
        if node_id not in directory:
            raise ValueError(f"node {node_id} is not in the directory")
        self.node_id = node_id
        self.key = key
        self.directory = directory
        self.now_ms: Callable[[], int] = now_ms or (lambda: 0)
        self.clock = HybridClock(now_ms=self.now_ms)
        self.batch_actions = limits.DEFAULT_BATCH_ACTIONS  # how many actions seal_outbox puts in one batch
        self._open: FrameOpener = opener or (lambda frame: open_frame(frame, directory))
        self._subtree = frozenset(directory.subtree(node_id))
        self.parent = directory.parent(node_id)
        # As the store: confirmed once (on disk), and confirmed in this process (``protocol.ledger.may_seal``).
        self.positions_confirmed = self.parent is None
        self.confirmed_children: set[str] = set()
        self.parent_confirmed = self.parent is None
        self.restored = False  # on disk, like the store's RESTORED_MARK meta row
        self._streams: dict[StreamKey, tuple[int, bytes]] = {}
        self._batches: dict[StreamKey, list[tuple[bytes, bytes]]] = {}  # seq-1 -> (hash, frame)
        self._held: dict[StreamKey, dict[int, tuple[bytes, bytes]]] = {}
        self.quarantine: list[Quarantined] = []
        self._actions: dict[str, _Stored] = {}
        self._by_errand: dict[str, list[str]] = {}
        self._outbox: list[tuple[str, str]] = []
        self._projections: dict[str, Projection] = {}
        self.peer_acks: dict[str, dict[StreamKey, int]] = {}
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
        check_local(self.node_id, errand_id, before.state, action, self.directory)
        moved = self._insert_actions([action], origin=action.node, scope=action.scope)
        self._outbox.append((action.id, action.scope))
        return self._recompute([errand_id, *sorted(moved)])[errand_id]

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
            key = StreamKey(self.node_id, scope)
            seq, last_hash = self.cursor(key)
            for sealed in seal_stream(
                key=self.key,
                stream=key,
                audience=self.directory.audience(self.node_id, scope),
                cursor=seq,
                last_hash=last_hash,
                actions=acts,
                now=self.clock.now,
                max_actions=max_actions,
            ):
                self._store_batch(key, sealed.seq, sealed.hash, sealed.frame)
                self._streams[key] = (sealed.seq, sealed.hash)
                made += 1
        self._outbox = [(aid, scope) for aid, scope in self._outbox if scope in kept]
        return made

    def may_seal(self, scope: str) -> bool:
        return may_seal(
            self.directory,
            self.node_id,
            scope,
            parent_confirmed=self.parent_confirmed,
            confirmed_children=self.confirmed_children,
            restored=self.restored,
        )

    def confirm_positions(self, *, by_parent: bool = True) -> None:
        if not confirms_positions(by_parent=by_parent, restored=self.restored):
            return
        self.parent_confirmed = True
        self.positions_confirmed = True
        if by_parent:
            self.restored = False

    def ancestor_cursors(self) -> dict[StreamKey, int]:
        """What this node holds of streams its ancestors wrote about its subtree (``ancestor_streams``)."""
        return ancestor_streams(self.directory, self.node_id).select(self.streams())

    def confirm_child(self, child: str, reported: Mapping[StreamKey, int]) -> dict[StreamKey, int]:
        """``Store.confirm_child``: the streams the child holds more of, or confirm the child."""
        below = self.directory.subtree(child) if child in self.directory else []
        mine = streams(origin_in=[self.node_id], scope_in=below).select(self.streams())
        ahead = ahead_of_parent(self.directory, self.node_id, child, reported, mine)
        if ahead is None:
            return {}
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
                batch = open_addressed(frame, self.node_id, self._open)
            except SanjiError as exc:
                receipt = refuse(frame, exc, peer)
                self._persist(receipt.effects)
                results.append(receipt.result)
                continue
            results.append(self._receive_one(batch, peer))
        return results

    def _receive_one(self, batch: Batch, peer: str) -> FrameResult:
        key = StreamKey(batch.origin, batch.scope)
        cursor, last_hash = self.cursor(key)
        held_hash = self._batches[key][batch.seq - 1][0] if batch.seq <= cursor else None
        receipt = judge_batch(batch, cursor=cursor, last_hash=last_hash, held_hash=held_hash, peer=peer)
        if receipt is None:
            held = {seq: frame for seq, (_, frame) in self._held.get(key, {}).items()}
            receipt = drain(batch, held, self._open, peer)
        self._persist(receipt.effects)
        return receipt.result

    def _persist(self, effects: Iterable[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Apply):
                self._apply(effect.batch)
            elif isinstance(effect, Hold):
                self._held.setdefault(effect.key, {}).setdefault(effect.seq, (effect.hash, effect.frame))
            elif isinstance(effect, Unhold):
                by_seq = self._held.get(effect.key, {})
                by_seq.pop(effect.seq, None)
                if not by_seq:
                    self._held.pop(effect.key, None)
            elif isinstance(effect, Quarantine):
                k = effect.key
                if any(
                    (q.origin, q.scope, q.seq, q.hash) == (k.origin, k.scope, effect.seq, effect.hash)
                    for q in self.quarantine
                ):
                    continue
                self.quarantine.append(
                    Quarantined(
                        origin=k.origin,
                        scope=k.scope,
                        seq=effect.seq,
                        hash=effect.hash,
                        frame=effect.frame,
                        reason=effect.reason,
                        peer=effect.peer,
                    )
                )
                if effect.event:
                    self.events.append((effect.event, effect.peer, _detail(effect.event, effect.detail)))
            elif isinstance(effect, Event):
                self.events.append((effect.kind, effect.peer, _detail(effect.kind, effect.detail)))

    def _apply(self, batch: Batch) -> None:
        key = StreamKey(batch.origin, batch.scope)
        self._store_batch(key, batch.seq, batch.hash, batch.frame)
        self._streams[key] = (batch.seq, batch.hash)
        self.applied.append((key, batch.seq))
        self.clock.observe(batch.payload.created)
        for action in batch.actions:
            self.clock.observe(action.at)
        moved = self._insert_actions(batch.actions, origin=batch.origin, scope=batch.scope)
        self._recompute(sorted({a.errand for a in batch.actions} | moved))

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
        which = streams(origin_in=origin_in, scope_in=scope_in, origin_not_in=origin_not_in or ())
        return which.select(self.streams())

    def cursors_for_child(self, child: str) -> dict[StreamKey, int]:
        """What this node holds of the streams a child can push up (``protocol.exchange``'s push)."""
        check_descendant(self.directory, self.node_id, child)
        held = self.streams()
        return dict(
            sorted(
                {
                    **pushable(self.directory, child).select(held),
                    **ancestor_streams(self.directory, child).select(held),
                }.items()
            )
        )

    def held_above(self, child: str, held: Mapping[StreamKey, int]) -> dict[StreamKey, int]:
        """The child's own streams of which this node's parent held more than this node does (``above``)."""
        if self.parent is None:
            return {}
        return held_above(child, self.peer_acks.get(self.parent, {}), held)

    def pull_cursors(self) -> dict[StreamKey, int]:
        return EVERY_STREAM.select(self.streams())

    def frames_for_child(self, child: str, known: Mapping[StreamKey, int], max_bytes: int) -> tuple[list[bytes], bool]:
        """Batches the child's subtree should receive and does not have yet, in order, within budget."""
        check_descendant(self.directory, self.node_id, child)
        ours = for_subtree(self.directory, child).select(self.streams())
        return self._frames_after(wanted(ours, known), max_bytes)

    def frames_for_parent(self, parent_has: Mapping[StreamKey, int], max_bytes: int) -> tuple[list[bytes], bool]:
        ours = pushable(self.directory, self.node_id).select(self.streams())
        return self._frames_after(wanted(ours, parent_has), max_bytes)

    def own_streams_behind(self, parent_has: Mapping[StreamKey, int]) -> list[str]:
        return own_streams_behind(self.node_id, parent_has, own_streams(self.node_id).select(self.streams()))

    def record_peer_cursors(self, peer: str, cursors: Mapping[StreamKey, int], *, exact: bool) -> None:
        """``Store.record_peer_cursors``: what ``peer`` holds (``exact``: of this subtree's streams, now)."""
        acks = self.peer_acks.setdefault(peer, {})
        if exact:
            for key in [k for k in acks if k.origin in self._subtree]:
                del acks[key]
        for key, seq in cursors.items():
            acks[key] = seq if exact else max(acks.get(key, 0), seq)

    def _frames_after(self, after: Mapping[StreamKey, int], max_bytes: int) -> tuple[list[bytes], bool]:
        page = PageBudget(max_bytes)
        frames: list[bytes] = []
        for key in sorted(after):
            rows = [frame for _, frame in self._batches.get(key, [])[after[key] :]]
            fit = page.take([len(f) for f in rows])
            frames.extend(rows[:fit])
            if page.full:
                return frames, True
        return frames, False

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
        return {k: seq for k, (seq, _) in sorted(self._streams.items())}

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

    def snapshot(self, *, backup: bool = False) -> bytes:
        """What survives a crash: everything committed, canonically encoded; ``backup``: a backup copy,
        which carries the restored mark (``sanji.backup`` writes ``RESTORED_MARK`` into every copy)."""
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
            peer_acks=tuple(
                (peer, k.origin, k.scope, seq)
                for peer in sorted(self.peer_acks)
                for k, seq in sorted(self.peer_acks[peer].items())
            ),
            restored=(self.restored or backup) and self.parent is not None,
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
    ) -> Replica:
        """A fresh process over the committed state (``Store.start``): the clock restarts from the data."""
        snap = _snapshot_decoder.decode(snapshot)
        replica = cls(snap.node, key, directory, now_ms=now_ms, opener=opener)
        for origin, scope, seq, last_hash in snap.streams:
            replica._streams[StreamKey(origin, scope)] = (seq, last_hash)
        for b in snap.batches:
            replica._store_batch(StreamKey(b.origin, b.scope), b.seq, b.hash, b.frame)
        for b in snap.held:
            replica._held.setdefault(StreamKey(b.origin, b.scope), {})[b.seq] = (b.hash, b.frame)
        replica.quarantine = list(snap.quarantine)
        if snap.positions_confirmed:
            replica.positions_confirmed = True
        replica.restored = snap.restored
        for peer, origin, scope, seq in snap.peer_acks:
            replica.peer_acks.setdefault(peer, {})[StreamKey(origin, scope)] = seq
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

    def _insert_actions(self, acts: Sequence[Action], *, origin: str, scope: str) -> set[str]:
        """Keep what ``admit`` keeps; returns the errands other than their own that a replaced foreign copy
        was filed under (``Store._insert_actions``)."""
        held = {a.id: bool(self._actions[a.id].foreign) for a in acts if a.id in self._actions}
        moved: set[str] = set()
        for change in admit(acts, origin=origin, scope=scope, held=held):
            a = change.action
            if isinstance(change, Insert):
                self._actions[a.id] = _Stored(a, change.foreign)
                self._by_errand.setdefault(a.errand, []).append(a.id)
                self.inserted.append(a.id)
            else:  # the author's own copy replaces a relay's foreign copy whole, filed under its own errand
                was = self._actions[a.id].action.errand
                self._actions[a.id] = _Stored(a, "")
                if was != a.errand:
                    self._by_errand[was].remove(a.id)
                    self._by_errand.setdefault(a.errand, []).append(a.id)
                    moved.add(was)
        return moved

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
    sender = request.sender
    check_descendant(replica.directory, replica.node_id, sender)
    if isinstance(request, CursorsRequest):
        answer = _answer_child(replica, parent_cursors(replica.directory, request))
        return CursorsResponse(
            node=replica.node_id,
            at=replica.clock.now(),
            cursors=answer.cursors,
            reclaim=answer.reclaim,
            above=answer.above,
            down=answer.down,
        )
    if isinstance(request, PushRequest):
        replica.clock.observe(request.at)
        results = replica.receive(request.frames, peer=sender)
        return PushResponse(node=replica.node_id, at=replica.clock.now(), results=tuple(results))
    replica.clock.observe(request.at)
    frames, more = _answer_child(replica, parent_pull(request))
    return PullResponse(node=replica.node_id, at=replica.clock.now(), frames=tuple(frames), more=more)


R = TypeVar("R")


def _answer_child(replica: Replica, steps: Generator[ParentCommand | FramesForChild, Any, R]) -> R:
    """Answer the parent's steps (``protocol.exchange.parent_cursors``/``parent_pull``) with the replica,
    as ``SyncServer`` answers them with the store."""
    answer: Any = None
    while True:
        try:
            command = steps.send(answer)
        except StopIteration as done:
            result: R = done.value
            return result
        answer = _perform_parent(replica, command)


def _perform_parent(r: Replica, command: ParentCommand | FramesForChild) -> Any:
    if isinstance(command, HeldForChild):
        return r.cursors_for_child(command.child)
    if isinstance(command, ConfirmChild):
        return r.confirm_child(command.child, dict(command.reported))
    if isinstance(command, PositionsConfirmed):
        return r.positions_confirmed
    if isinstance(command, OutboxSize):
        return r.outbox_size()
    if isinstance(command, SealOutbox):
        r.seal_outbox()
        return None
    if isinstance(command, Cursors):
        return command.which.select(r.streams())
    if isinstance(command, HeldAbove):
        return r.held_above(command.child, dict(command.held))
    return r.frames_for_child(command.child, dict(command.after), command.budget)


# -- the child's side of a session ----------------------------------------------------------


@dataclass
class SessionReport:
    pushed: int = 0
    pulled: int = 0
    refused: int = 0
    requests: int = 0
    stored_here: int = 0  # frames this node stored while pulling
    behind: list[str] = field(default_factory=list)


class ChildSession:
    """One exchange with the parent, one message at a time (``protocol.exchange.child_session``).

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
        self.tally = Tally()
        self._steps: Steps = child_session(replica.node_id, replica.directory, budget=budget, tally=self.tally)
        self._expect: type[Response] | None = None
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    @property
    def phase(self) -> str:
        return self.tally.phase

    @property
    def expecting(self) -> type[Response] | None:
        return self._expect

    @property
    def report(self) -> SessionReport:
        t = self.tally
        return SessionReport(
            pushed=t.pushed,
            pulled=t.pulled,
            refused=t.refused,
            requests=t.requests,
            stored_here=t.stored_here,
            behind=list(t.behind),
        )

    def start(self) -> Request:
        request = self._run(None)
        assert request is not None
        return request

    def step(self, response: Response) -> Request | None:
        if self._expect is None or not isinstance(response, self._expect):
            raise ValueError(f"session of {self.replica.node_id} did not expect {type(response).__name__}")
        self._expect = None
        return self._run(response)

    def _run(self, answer: object) -> Request | None:
        """Answer every local command until the session sends a request or ends."""
        while True:
            try:
                command = self._steps.send(answer)
            except StopIteration:
                self._done = True
                return None
            if isinstance(command, Send):
                self._expect = expected(command.request)
                return command.request
            answer = self._perform(command)

    def _perform(self, command: Command) -> object:
        r = self.replica
        if isinstance(command, Cursors):
            return command.which.select(r.streams())
        if isinstance(command, Now):
            return r.clock.now()
        if isinstance(command, Absorb):
            self.parent = command.reply.node
            r.clock.observe(command.reply.at)
            return None
        if isinstance(command, PeerHolds):
            r.record_peer_cursors(command.peer, command.cursors, exact=True)
            return None
        if isinstance(command, PeerRecord):
            return dict(r.peer_acks.get(command.peer, {}))
        if isinstance(command, PeerAcked):
            r.record_peer_cursors(command.peer, command.cursors, exact=False)
            return None
        if isinstance(command, FramesAfter):
            return r._frames_after(command.after, command.budget)
        if isinstance(command, Take):
            return r.receive(command.frames, peer=command.peer)
        if isinstance(command, Recovered):
            return None  # receipt counters are the store's, not modelled here
        if isinstance(command, ConfirmPositions):
            r.confirm_positions(by_parent=command.by_parent)
            return None
        if isinstance(command, SealOutbox):
            r.seal_outbox()
            return None
        raise AssertionError(f"unknown command {command!r}")


class SessionRunaway(RuntimeError):
    """A session went on past any reasonable number of requests: it makes no progress."""


def run_session(
    child: Replica, parent: Replica, *, budget: int = DEFAULT_BUDGET_BYTES, max_requests: int = 10_000
) -> SessionReport:
    """A whole session over a perfect link with ``parent`` (or any ancestor): for tests and settling."""
    session = ChildSession(child, budget=budget)
    request: Request | None = session.start()
    while request is not None:
        if session.tally.requests > max_requests:
            raise SessionRunaway(
                f"session of {child.node_id} with {parent.node_id} still going after {max_requests} requests "
                f"(phase {session.phase})"
            )
        request = session.step(serve(parent, request))
    return session.report
