"""The ledger rules of one node, pure: what a received frame, a local action or a seal changes.

Every function here takes the facts a node has loaded (its cursor of a stream, the frames it holds
aside, which actions it already keeps) and returns *effects*; it reads no clock, socket or disk.
``sanji.store.Store`` persists the effects in one database transaction, the in-memory replica of
the simulation (``devtools.replica``) into dicts, so both keep the same ledger by construction.

Invariants decided here:
- a frame not addressed to this node, or that fails verification, changes nothing but the event log;
  one signed with a key retired before its position is quarantined as evidence, never applied;
- a batch next in line is applied with every held successor that chains to it; one whose
  predecessor is missing is held aside; one that contradicts what is held is quarantined, once;
- an action carried in a stream that may not carry it is kept as *foreign*, never judged; the
  author's own copy replaces a foreign copy whenever it arrives (nobody can suppress an action by
  sending a relay's copy ahead of it);
- a node numbers new batches in a stream only when every neighbour that could hold more of it has
  spoken in this process (``may_seal``): a node restored from a backup never reuses a number.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from protocol import limits
from protocol.actions import Action
from protocol.batch import Batch, frame_hash, seal
from protocol.errand import ErrandState, judge
from protocol.errors import ActionRefused, ChainFork, RevokedKey, RouteError, SanjiError
from protocol.session import FrameResult, take_within_budget
from protocol.signing import SigningKey
from protocol.stream import StreamKey, Verdict, classify
from protocol.topology import Directory

FrameOpener = Callable[[bytes], Batch]
FOREIGN = "foreign"  # the status of an action kept for audit, never judged
CHAIN_BROKEN = "held batch does not chain to its predecessor"
LOGGED_MESSAGE_CHARS = 300  # of a refused frame's error message, in its event-log row

# -- effects ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Apply:
    """Store the batch, move the stream's cursor to it, admit its actions, recompute their errands."""

    batch: Batch


@dataclass(frozen=True)
class Hold:
    """Keep the frame aside until its predecessor arrives (kept once)."""

    key: StreamKey
    seq: int
    hash: bytes
    frame: bytes


@dataclass(frozen=True)
class Unhold:
    """A held frame was taken up (applied or quarantined): it is no longer held aside."""

    key: StreamKey
    seq: int


@dataclass(frozen=True)
class Quarantine:
    """Keep the frame as evidence, never applied: once per (stream, seq, hash); ``event`` logged then."""

    key: StreamKey
    seq: int
    hash: bytes
    frame: bytes
    reason: str
    peer: str
    event: str = ""  # the event-log kind written when the frame is first quarantined ("" for none)
    detail: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Event:
    """An entry of the node's event log."""

    kind: str
    peer: str
    detail: tuple[tuple[str, Any], ...]


Effect = Apply | Hold | Unhold | Quarantine | Event


@dataclass(frozen=True)
class Receipt:
    """What receiving one frame answers (``result``) and changes (``effects``, in order)."""

    result: FrameResult
    effects: tuple[Effect, ...] = ()

    @property
    def applied(self) -> tuple[Batch, ...]:
        return tuple(e.batch for e in self.effects if isinstance(e, Apply))


# -- receiving -------------------------------------------------------------------------------------


def open_addressed(frame: bytes, node: str, opener: FrameOpener) -> Batch:
    """Verify ``frame`` and check it is for ``node``: in its stream's audience, or one of its own batches
    coming back (a node restored from a backup takes its own batches back). Raises SanjiError."""
    batch = opener(frame)
    if node not in batch.payload.audience and batch.origin != node:
        raise RouteError(f"stream {batch.origin}->{batch.scope} is not addressed to {node}")
    return batch


def refuse(frame: bytes, exc: SanjiError, peer: str) -> Receipt:
    """A frame that failed verification or routing. A retired key's frame is evidence of a stolen or
    retired key in use: quarantined, not dropped; anything else is logged and forgotten."""
    if isinstance(exc, RevokedKey):
        result = FrameResult(
            origin=exc.origin, scope=exc.scope, seq=exc.seq, status="refused", error=exc.code, message=exc.message
        )
        key = StreamKey(exc.origin, exc.scope)
        detail: tuple[tuple[str, Any], ...] = (("stream", str(key)), ("seq", exc.seq))
        quarantine = Quarantine(key, exc.seq, frame_hash(frame), frame, exc.message, peer, "revoked_key", detail)
        return Receipt(result, (quarantine,))
    # The logged message is bounded: a crafted frame must not write what it likes into the event log.
    detail = (("error", exc.code), ("message", exc.message[:LOGGED_MESSAGE_CHARS]), ("size", len(frame)))
    return Receipt(
        FrameResult(status="refused", error=exc.code, message=exc.message), (Event("refused", peer, detail),)
    )


def _result(batch: Batch, status: str, error: str = "", message: str = "") -> FrameResult:
    return FrameResult(
        origin=batch.origin,
        scope=batch.scope,
        seq=batch.seq,
        status=status,  # type: ignore[arg-type]
        error=error,
        message=message,
    )


def judge_batch(batch: Batch, *, cursor: int, last_hash: bytes, held_hash: bytes | None, peer: str) -> Receipt | None:
    """The fate of a verified batch given the stream's cursor (``protocol.stream.classify``).

    ``held_hash``: the hash stored for ``batch.seq`` when ``batch.seq <= cursor``. None means the batch
    is next in line: load the frames held aside for its stream and ask ``drain``.
    """
    key = StreamKey(batch.origin, batch.scope)
    verdict = classify(
        seq=batch.seq, prev=batch.prev, digest=batch.hash, cursor=cursor, last_hash=last_hash, held_hash=held_hash
    )
    if verdict is Verdict.DUPLICATE:
        return Receipt(_result(batch, "duplicate"))
    if verdict is Verdict.FORK:
        fork = ChainFork(f"batch {batch.seq} of stream {key} conflicts with the one held (held up to {cursor})")
        detail = (("stream", str(key)), ("seq", batch.seq))
        quarantine = Quarantine(key, batch.seq, batch.hash, batch.frame, fork.message, peer, "fork", detail)
        return Receipt(_result(batch, "refused", fork.code, fork.message), (quarantine,))
    if verdict is Verdict.HOLD:
        held = Hold(key, batch.seq, batch.hash, batch.frame)
        return Receipt(_result(batch, "held", "chain_gap", f"waiting for batch {cursor + 1} of {key}"), (held,))
    return None


def drain(batch: Batch, held: Mapping[int, bytes], opener: FrameOpener, peer: str) -> Receipt:
    """Apply ``batch`` (next in line), then every held successor that chains to it, in order.

    A held successor that does not chain is quarantined and the drain stops there.
    """
    key = StreamKey(batch.origin, batch.scope)
    effects: list[Effect] = [Apply(batch)]
    seq, last = batch.seq, batch.hash
    while seq + 1 in held:
        successor = opener(held[seq + 1])
        effects.append(Unhold(key, seq + 1))
        if successor.prev != last:
            effects.append(Quarantine(key, successor.seq, successor.hash, successor.frame, CHAIN_BROKEN, peer))
            break
        effects.append(Apply(successor))
        seq, last = successor.seq, successor.hash
    return Receipt(_result(batch, "stored"), tuple(effects))


# -- actions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Insert:
    action: Action
    foreign: str  # why it is kept but never judged; "" when it is judged normally


@dataclass(frozen=True)
class Replace:
    """The author's own copy takes the place of a foreign copy held under the same id."""

    action: Action


def foreign_reason(action: Action, *, origin: str, scope: str) -> str:
    """Why ``action`` may not be judged when carried in stream (origin, scope); "" when it may."""
    if action.node != origin:
        return f"written by {action.node} but carried in {origin}'s stream"
    if action.scope != scope:
        return f"about scope {action.scope} but carried in the stream of {scope}"
    return ""


def admit(actions: Iterable[Action], *, origin: str, scope: str, held: Mapping[str, bool]) -> list[Insert | Replace]:
    """What to keep of a batch's actions; ``held`` maps each id already kept to whether its copy is foreign."""
    known = dict(held)
    out: list[Insert | Replace] = []
    for action in actions:
        foreign = foreign_reason(action, origin=origin, scope=scope)
        if action.id in known:
            if known[action.id] and not foreign:
                out.append(Replace(action))
                known[action.id] = False
            continue
        known[action.id] = bool(foreign)
        out.append(Insert(action, foreign))
    return out


def check_local(node: str, errand_id: str, before: ErrandState | None, action: Action, directory: Directory) -> None:
    """A local action is recorded only if this node wrote it about this errand and the rule allows it."""
    if action.node != node or action.errand != errand_id:
        raise ActionRefused("an action must be written by this node about this errand")
    reason = judge(before, action, directory)
    if reason is not None:
        raise ActionRefused(reason)


# -- sealing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sealed:
    """Batch ``seq`` of stream ``key``, signed."""

    key: StreamKey
    seq: int
    hash: bytes
    frame: bytes


def seal_stream(
    *,
    key: SigningKey,
    stream: StreamKey,
    audience: tuple[str, ...],
    cursor: int,
    last_hash: bytes,
    actions: Sequence[Action],
    now: Callable[[], int],
    max_actions: int = limits.DEFAULT_BATCH_ACTIONS,
) -> list[Sealed]:
    """The next batches of ``stream`` carrying ``actions`` in order, at most ``max_actions`` each.

    Frames above ``TARGET_FRAME_BYTES`` are split: a dropped transfer on a 2G link redoes at most one.
    """
    out: list[Sealed] = []
    seq, last = cursor, last_hash
    start = 0
    while start < len(actions):
        take = min(max_actions, len(actions) - start)
        while True:
            frame = seal(
                key=key,
                origin=stream.origin,
                scope=stream.scope,
                audience=audience,
                seq=seq + 1,
                prev=last,
                created=now(),
                actions=actions[start : start + take],
            )
            if len(frame) <= limits.TARGET_FRAME_BYTES or take == 1:
                break
            take = max(1, take // 2)
        start += take
        seq += 1
        last = frame_hash(frame)
        out.append(Sealed(stream, seq, last, frame))
    return out


def may_seal(
    directory: Directory,
    node: str,
    scope: str,
    *,
    parent_confirmed: bool,
    confirmed_children: Collection[str],
    restored: bool = False,
) -> bool:
    """Whether this process may number new batches in ``node``'s stream of ``scope``: every neighbour that
    could hold more of it has spoken *in this process* (a disk restored from a backup must hear it again) —
    its own parent for its own scope (always true at the root), the next child down for the others
    (a direct child that reported what it holds of ``node``'s streams and was not ahead of it).

    ``restored``: the store came from a backup (``RESTORED_MARK``) and its parent has not confirmed it
    since. Every stream a node writes is pushed up, so the parent may hold batches of a stream towards a
    child that the child never received (simulation seed 213): a restored node numbers nothing until
    its parent has spoken too. A node merely restarted lost nothing, and keeps serving its villages
    while the county is dark."""
    if scope == node:
        return parent_confirmed
    if directory.next_hop_down(node, scope) not in confirmed_children:
        return False
    return parent_confirmed or not restored


RESTORED_MARK = "restored_from_backup"  # the meta key every backup copy carries; cleared by the parent's word


def confirms_positions(*, by_parent: bool, restored: bool) -> bool:
    """Whether an ancestor's answer confirms where this node's streams stand (``ConfirmPositions``).

    Its own parent always does. A fallback ancestor does only for a node that has numbered nothing and
    was not restored from a backup: a restored disk may have numbered batches that sit only at the dark
    parent (simulation seed 187), so nothing of its own is numbered until the parent answers."""
    return by_parent or not restored


# -- which streams -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamFilter:
    """A set of streams by origin and scope (None: any); the store turns it into a query."""

    origin_in: frozenset[str] | None = None
    scope_in: frozenset[str] | None = None
    origin_not_in: frozenset[str] = frozenset()

    def __contains__(self, key: StreamKey) -> bool:
        return (
            (self.origin_in is None or key.origin in self.origin_in)
            and key.origin not in self.origin_not_in
            and (self.scope_in is None or key.scope in self.scope_in)
        )

    def select(self, cursors: Mapping[StreamKey, int]) -> dict[StreamKey, int]:
        return {k: seq for k, seq in sorted(cursors.items()) if k in self}


def streams(
    *, origin_in: Iterable[str] | None = None, scope_in: Iterable[str] | None = None, origin_not_in: Iterable[str] = ()
) -> StreamFilter:
    return StreamFilter(
        None if origin_in is None else frozenset(origin_in),
        None if scope_in is None else frozenset(scope_in),
        frozenset(origin_not_in),
    )


EVERY_STREAM = StreamFilter()


def ancestor_streams(directory: Directory, node: str) -> StreamFilter:
    """Streams ``node``'s ancestors wrote about its subtree: what a child reports (``ancestor_streams``)."""
    ancestors = set(directory.path(node)) - {node}
    return streams(origin_in=ancestors, scope_in=directory.subtree(node))


def own_streams(node: str) -> StreamFilter:
    return streams(origin_in=[node])


def pushable(directory: Directory, node: str) -> StreamFilter:
    """Streams a node of ``node``'s subtree wrote: what it pushes up, what a parent reports to it."""
    return streams(origin_in=directory.subtree(node))


def for_subtree(directory: Directory, node: str) -> StreamFilter:
    """Streams about errands of ``node``'s subtree, its own included (a child restored from an old backup
    takes its own batches back): what a parent serves it."""
    return streams(scope_in=directory.subtree(node))


def check_descendant(directory: Directory, node: str, other: str) -> None:
    """Any node below ``node`` may sync with it: a village whose township is down falls back to the county."""
    if other not in directory or other == node or node not in directory.path(other):
        raise RouteError(
            f"{other!r} is not a child (or other descendant) of {node}",
            hint="Sync with your own parent, or an ancestor configured as a fallback.",
        )


def wanted(ours: Mapping[StreamKey, int], known: Mapping[StreamKey, int]) -> dict[StreamKey, int]:
    """Streams of which ``ours`` holds more than ``known``, each with the cursor to send after."""
    return {k: known.get(k, 0) for k, seq in sorted(ours.items()) if seq > known.get(k, 0)}


class PageBudget:
    """How many frames of each stream go into one page of at most ``max_bytes``.

    Streams are offered in order; only the first frame of a whole page may exceed the budget (a frame
    larger than the budget must still move), never the first frame of each stream.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.count = 0
        self.full = False

    def take(self, sizes: Sequence[int]) -> int:
        """How many of the next frames (``sizes``, in order) fit; afterwards ``full`` says to stop."""
        if self.full:
            return 0
        fit = take_within_budget(sizes, self.max_bytes - self.used) if self.used < self.max_bytes else 0
        if self.count and fit and self.used + sizes[0] > self.max_bytes:
            fit = 0
        if fit == 0 and self.count:
            self.full = True
            return 0
        self.used += sum(sizes[:fit])
        self.count += fit
        if fit < len(sizes):
            self.full = True
        return fit


# -- restored nodes --------------------------------------------------------------------------------


def ahead_of_parent(
    directory: Directory, node: str, child: str, reported: Mapping[StreamKey, int], mine: Mapping[StreamKey, int]
) -> dict[StreamKey, int] | None:
    """A direct child's report of ``node``'s streams towards it: those it holds more of, each with ``node``'s
    cursor ("give me mine after these": ``node`` was restored from a backup). None when ``child`` is not a
    direct child (a grandchild on a fallback link speaks for its own branch only: nothing to confirm)."""
    if child not in directory or directory.parent(child) != node:
        return None
    below = directory.subtree(child)
    return {
        k: mine.get(k, 0)
        for k, seq in sorted(reported.items())
        if k.origin == node and k.scope in below and seq > mine.get(k, 0)
    }


def own_streams_behind(node: str, known_above: Mapping[StreamKey, int], mine: Mapping[StreamKey, int]) -> list[str]:
    """``node``'s own streams of which an ancestor holds more than ``node``: it was restored from a backup."""
    return sorted(str(k) for k, seq in known_above.items() if k.origin == node and seq > mine.get(k, 0))


def held_above(
    child: str, parent_holds: Mapping[StreamKey, int], held: Mapping[StreamKey, int]
) -> dict[StreamKey, int]:
    """The child's own streams of which this node's parent held more than this node does (``above``)."""
    return {k: seq for k, seq in sorted(parent_holds.items()) if k.origin == child and seq > held.get(k, 0)}


# Where the hand-off that put an errand in transit (``protocol.stages.IN_TRANSIT``) is, as the node that wrote it
# knows: still here (in the outbox, or in a batch its receiver has not acknowledged) or held by the receiver.
Handoff = Literal["queued", "delivered", ""]
QUEUED: Handoff = "queued"
DELIVERED: Handoff = "delivered"


def handoff_reached(here: str, author: str, action_id: str, *, heard: bool, waiting: Collection[str]) -> Handoff:
    """Whether the hand-off ``action_id`` by ``author`` has reached its receiver, as ``here`` knows it.

    ``heard``: ``here`` keeps a record of what the receiver holds (its parent's cursors and push acknowledgements,
    a child's report of what it holds of ``here``'s streams); ``waiting``: the ids of ``here``'s own actions the
    receiver has not acknowledged (unsealed, or in a batch after the receiver's cursor of its stream). Only the
    author can tell (``""`` elsewhere, and where nothing was heard from the receiver): a node that relays or reads
    a copy does not know what passed between two other nodes. Delivered is not received: the receiver holds the
    action, and its ``receive`` (签收) is the receiver's own step, which ends the transit."""
    if author != here or not heard:
        return ""
    return QUEUED if action_id in waiting else DELIVERED


def acknowledged(results: Iterable[FrameResult]) -> dict[StreamKey, int]:
    """The highest batch of each stream a peer stored or already held, from its push results."""
    best: dict[StreamKey, int] = {}
    for r in results:
        if r.status in ("stored", "duplicate"):
            k = StreamKey(r.origin, r.scope)
            best[k] = max(best.get(k, 0), r.seq)
    return best
