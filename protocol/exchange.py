"""The child's side of one sync session, as a sans-IO sequence of steps.

``child_session`` is a generator: it yields one *command* at a time and is sent the host's answer
(the value each command's docstring names). ``sanji.sync.driver`` answers with the store and the
transport (awaiting each), the simulation's replica (``devtools.replica.ChildSession``) with dicts
and a simulated network, so the real node and the simulation take the same steps in the same order:

1. cursors: report what this node holds of its ancestors' streams; learn what the answering
   ancestor holds of this subtree's streams (and ``above``: what its parent held of this node's);
2. reclaim: if an ancestor holds more of this node's *own* streams, it was restored from an old
   backup: pull its own batches back first (and never reissue a number the lost copy issued);
3. give back: if the parent asks (``reclaim``), push it the parent's own batches it lost;
4. seal: only when nothing of its own is still on its way down, and its own streams only once its
   own parent has spoken in this process (a fallback ancestor cannot know what the dark parent
   holds) — unless the node has numbered nothing of its own yet;
5. push what the parent lacks, page by page within the byte budget;
6. pull whatever the ancestor holds for this subtree that this node lacks.

A session can stop after any message: cursors are the only session state.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.errors import RouteError
from protocol.ledger import (
    EVERY_STREAM,
    StreamFilter,
    acknowledged,
    ancestor_streams,
    for_subtree,
    own_streams,
    own_streams_behind,
    pushable,
    wanted,
)
from protocol.session import (
    Cursor,
    CursorsRequest,
    CursorsResponse,
    FrameResult,
    PullRequest,
    PullResponse,
    PushRequest,
    PushResponse,
    cursor_map,
    cursors_from,
)
from protocol.stream import StreamKey
from protocol.topology import Directory

Request = CursorsRequest | PushRequest | PullRequest
Response = CursorsResponse | PushResponse | PullResponse


@dataclass(frozen=True)
class Send:
    """Send ``request`` to the ancestor; answer with its response (or raise: the session is over)."""

    request: Request


@dataclass(frozen=True)
class Now:
    """Answer with this node's hybrid clock reading."""


@dataclass(frozen=True)
class Cursors:
    """Answer with this node's cursors of the streams in ``which``."""

    which: StreamFilter


@dataclass(frozen=True)
class Absorb:
    """The ancestor's cursors answer arrived and names a real ancestor: observe its clock (and whatever
    else the host carries with it: catalogue, trust documents). Answer None."""

    reply: CursorsResponse


@dataclass(frozen=True)
class PeerHolds:
    """``peer`` holds exactly ``cursors`` of the streams written in this node's subtree now (a peer
    restored from a backup may hold less than it once acknowledged). Answer None."""

    peer: str
    cursors: Mapping[StreamKey, int]


@dataclass(frozen=True)
class PeerRecord:
    """Answer with what this node last recorded ``peer`` holding (``PeerHolds``, ``PeerAcked``), kept on disk."""

    peer: str


@dataclass(frozen=True)
class PeerAcked:
    """``peer`` stored (or already held) these batches. Answer None."""

    peer: str
    cursors: Mapping[StreamKey, int]


@dataclass(frozen=True)
class FramesAfter:
    """Answer with (frames, more): the held batches after each cursor of ``after``, in stream order,
    within ``budget`` bytes (``protocol.ledger.PageBudget``)."""

    after: Mapping[StreamKey, int]
    budget: int


@dataclass(frozen=True)
class Take:
    """Receive ``frames`` from ``peer`` (``protocol.ledger``); answer with one FrameResult per frame."""

    frames: tuple[bytes, ...]
    peer: str


@dataclass(frozen=True)
class Recovered:
    """This node took its own batches back: raise its counters past every number the lost copy
    issued. Answer None."""

    streams: tuple[str, ...]


@dataclass(frozen=True)
class ConfirmPositions:
    """An ancestor confirmed where this node's streams stand, in this process (``by_parent``: its own
    parent; otherwise a fallback, which counts only as ``protocol.ledger.confirms_positions`` says). Answer None."""

    by_parent: bool = True


@dataclass(frozen=True)
class SealOutbox:
    """Seal the outbox into batches where ``protocol.ledger.may_seal`` allows. Answer None."""


Command = (
    Send
    | PeerRecord
    | Now
    | Cursors
    | Absorb
    | PeerHolds
    | PeerAcked
    | FramesAfter
    | Take
    | Recovered
    | ConfirmPositions
    | SealOutbox
)
Steps = Generator[Command, Any, None]


@dataclass
class Tally:
    """What a session did so far, for the host's report."""

    peer: str = ""
    phase: str = "cursors"  # cursors, reclaim, give_back, push, pull, done
    requests: int = 0
    pushed: int = 0
    pulled: int = 0
    refused: int = 0
    stored_here: int = 0  # frames this node stored while pulling
    behind: list[str] = field(default_factory=list)  # own streams an ancestor held more of
    still_behind: list[str] = field(default_factory=list)  # ... and still did after pulling them back
    refusals: list[FrameResult] = field(default_factory=list)  # what the ancestor refused of a push


def expected(request: Request) -> type[Response]:
    """The response type that answers ``request``."""
    if isinstance(request, CursorsRequest):
        return CursorsResponse
    if isinstance(request, PushRequest):
        return PushResponse
    return PullResponse


def child_session(node: str, directory: Directory, *, budget: int, tally: Tally) -> Steps:
    """The steps of one session of ``node`` with its parent or a fallback ancestor (see the module)."""
    held_of_ancestors = yield Cursors(ancestor_streams(directory, node))
    tally.requests += 1
    reply = yield Send(CursorsRequest(sender=node, ancestor_streams=cursors_from(held_of_ancestors)))
    peer = reply.node
    if peer == node or peer not in directory.path(node):
        raise RouteError(f"{peer!r} answered, but it is not an ancestor of {node}")
    tally.peer = peer
    yield Absorb(reply)
    parent_has = cursor_map(reply.cursors)
    yield PeerHolds(peer, dict(parent_has))
    # Where this node's own streams stand above it: at the ancestor, (``above``) at its parent, and at its
    # own parent as last heard (a fallback session: the dark parent may hold batches a restored node lost).
    parent = directory.parent(node)
    recorded = (yield PeerRecord(parent)) if parent is not None and peer != parent else {}
    known = dict(parent_has)
    for key, seq in [*cursor_map(reply.above).items(), *recorded.items()]:
        known[key] = max(known.get(key, 0), seq)
    mine = yield Cursors(own_streams(node))
    tally.behind = own_streams_behind(node, known, mine)
    if tally.behind:
        tally.phase = "reclaim"
        yield from _pull(node, budget, tally)
        yield Recovered(tuple(tally.behind))
        mine = yield Cursors(own_streams(node))
        tally.still_behind = own_streams_behind(node, known, mine)
    give_back = cursor_map(reply.reclaim)
    if give_back:
        tally.phase = "give_back"
        yield from _give_back(node, give_back, budget, tally)
    # Still behind: an ancestor holds batches of this node not brought down yet; numbering anything
    # now would fork its own stream. Pushing and pulling what it has is still safe.
    if not tally.still_behind:
        # Only its own parent can vouch for where this node's streams stand: a fallback ancestor cannot know
        # what the dark parent holds (a node restored from a backup would renumber batches only the parent
        # has). A node that has numbered nothing of its own yet has nothing to renumber: the fallback will do,
        # unless its disk came from a backup (``protocol.ledger.confirms_positions``).
        if peer == directory.parent(node) or not any(mine.values()):
            yield ConfirmPositions(by_parent=peer == directory.parent(node))
        yield SealOutbox()
    tally.phase = "push"
    # A parent of an earlier release (no ``down``) does not report the ancestors' streams it holds: pushing
    # them would send every such batch again on every exchange.
    yield from _push(node, directory, parent_has, budget, tally, ancestors=reply.down is not None)
    tally.phase = "pull"
    if reply.down is not None and not tally.behind:
        held = yield Cursors(for_subtree(directory, node))
        if not wanted(cursor_map(reply.down), held):
            tally.phase = "done"  # the parent said it holds nothing this node lacks: no pull request
            return
    yield from _pull(node, budget, tally)
    tally.phase = "done"


def _push(
    node: str, directory: Directory, parent_has: dict[StreamKey, int], budget: int, tally: Tally, *, ancestors: bool
) -> Steps:
    while True:
        ours = yield Cursors(pushable(directory, node))
        # Ancestors' batches about this subtree go up too when the parent lacks them: one taken from a
        # fallback ancestor past a dark parent would otherwise live only here, out of reach of a
        # restored ancestor's reclaim (simulation seed 303).
        if ancestors:
            ours = dict(sorted({**ours, **(yield Cursors(ancestor_streams(directory, node)))}.items()))
        frames, more = yield FramesAfter(wanted(ours, parent_has), budget)
        if not frames:
            return
        now = yield Now()
        tally.requests += 1
        response = yield Send(PushRequest(sender=node, at=now, frames=tuple(frames)))
        yield PeerAcked(tally.peer, acknowledged(response.results))
        progressed = False
        for result in response.results:
            if result.status in ("stored", "duplicate", "held"):
                if result.status != "held":
                    key = StreamKey(result.origin, result.scope)
                    parent_has[key] = max(parent_has.get(key, 0), result.seq)
                    progressed = True
                tally.pushed += 1
            else:
                tally.refused += 1
                tally.refusals.append(result)
        if not more or not progressed:
            return


def _give_back(node: str, want: dict[StreamKey, int], budget: int, tally: Tally) -> Steps:
    """The parent was restored from a backup and lost batches of its own it had sent down here: push
    them back before it numbers anything new, or this branch would keep a lineage the parent lost."""
    while want:
        frames, more = yield FramesAfter(dict(want), budget)
        if not frames:
            return
        now = yield Now()
        tally.requests += 1
        response = yield Send(PushRequest(sender=node, at=now, frames=tuple(frames)))
        taken = [r for r in response.results if r.status in ("stored", "duplicate")]
        tally.pushed += len(taken)
        for r in taken:
            key = StreamKey(r.origin, r.scope)
            if key in want:
                want[key] = max(want[key], r.seq)
        if not more or not taken:
            return


def _pull(node: str, budget: int, tally: Tally) -> Steps:
    """Pull pages until the ancestor has nothing more for this subtree."""
    while True:
        known = yield Cursors(EVERY_STREAM)
        now = yield Now()
        tally.requests += 1
        reply = yield Send(PullRequest(sender=node, at=now, cursors=cursors_from(known), max_bytes=budget))
        if reply.frames:
            results: list[FrameResult] = yield Take(tuple(reply.frames), tally.peer)
            tally.pulled += len(reply.frames)
            tally.refused += sum(1 for r in results if r.status == "refused")
            stored = sum(1 for r in results if r.status == "stored")
            tally.stored_here += stored
            if not stored:
                return  # the page moved nothing forward (a fork, a gap): asking again would spin
        if not reply.more:
            return


# -- the parent's side: its answers to a child's cursors and pull requests ------------------------
#
# ``parent_cursors`` and ``parent_pull`` are generators too, sent the host's answers like
# ``child_session``, and they *return* the answer's core. ``sanji.sync.server.SyncServer`` answers
# with the store (and adds what travels beside: trust, catalogue, reports), the simulation's replica
# (``devtools.replica.serve``) with dicts, so the simulation runs the parent's rule the nodes run.

MAX_PULL_BYTES = 4 * 1024 * 1024  # the most a parent sends in one pull answer, whatever the child asks


@dataclass(frozen=True)
class HeldForChild:
    """Answer with this node's cursors of the streams ``child`` may push up (its subtree's, and its
    ancestors' about its subtree)."""

    child: str


@dataclass(frozen=True)
class ConfirmChild:
    """``child`` reported holding ``reported`` of its ancestors' streams: record it. Answer with the
    streams of this node's own that the child holds more of (this node lost them: ``reclaim``)."""

    child: str
    reported: Mapping[StreamKey, int]


@dataclass(frozen=True)
class PositionsConfirmed:
    """Answer whether this node's own streams' positions were confirmed in this process
    (``protocol.ledger.confirms_positions``)."""


@dataclass(frozen=True)
class OutboxSize:
    """Answer with how many of this node's own actions wait to be sealed."""


@dataclass(frozen=True)
class HeldAbove:
    """Answer with ``child``'s own streams of which this node's parent held more than ``held``."""

    child: str
    held: Mapping[StreamKey, int]


@dataclass(frozen=True)
class FramesForChild:
    """Answer with (frames, more): the batches for ``child``'s subtree after each cursor of ``after``,
    within ``budget`` bytes."""

    child: str
    after: Mapping[StreamKey, int]
    budget: int


ParentCommand = HeldForChild | ConfirmChild | PositionsConfirmed | OutboxSize | SealOutbox | Cursors | HeldAbove


@dataclass(frozen=True)
class CursorsAnswer:
    """The core of a parent's ``CursorsResponse``: what it holds of the child's streams, what it takes
    back, what its own parent held more of, and (unless it takes something back) what it holds of the
    child's subtree now, so an idle child that holds all of it needs no pull request."""

    cursors: tuple[Cursor, ...]
    reclaim: tuple[Cursor, ...]
    above: tuple[Cursor, ...]
    down: tuple[Cursor, ...] | None


def _seal_fresh() -> Generator[ParentCommand, Any, None]:
    """This node's own fresh actions are sealed first, so they go down in this very answer — once its
    positions are confirmed (a parent that lost batches of its own waits for them instead)."""
    if (yield PositionsConfirmed()) and (yield OutboxSize()):
        yield SealOutbox()


def parent_cursors(directory: Directory, request: CursorsRequest) -> Generator[ParentCommand, Any, CursorsAnswer]:
    """The parent's answer to a child's opening cursors request (the caller checked the sender)."""
    child = request.sender
    held: Mapping[StreamKey, int] = yield HeldForChild(child)
    reclaim: Mapping[StreamKey, int] = yield ConfirmChild(child, cursor_map(request.ancestor_streams))
    down = None
    if not reclaim:
        yield from _seal_fresh()
        down = cursors_from((yield Cursors(for_subtree(directory, child))))
    above: Mapping[StreamKey, int] = yield HeldAbove(child, held)
    return CursorsAnswer(
        cursors=cursors_from(held), reclaim=cursors_from(reclaim), above=cursors_from(above), down=down
    )


def parent_pull(request: PullRequest) -> Generator[ParentCommand | FramesForChild, Any, tuple[list[bytes], bool]]:
    """The parent's answer to a pull: its own fresh actions sealed, then a page within the budget."""
    yield from _seal_fresh()
    budget = max(1, min(request.max_bytes, MAX_PULL_BYTES))
    page: tuple[list[bytes], bool] = yield FramesForChild(request.sender, cursor_map(request.cursors), budget)
    return page
