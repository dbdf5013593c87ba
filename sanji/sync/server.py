"""The parent's side of a sync session: answer cursors, take pushes, serve pulls.

Nothing in a request body is decoded before the request is admitted (``admit``): addressed to
this node, signed by the current key of a node below it, with a counter never used before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from protocol.enrollment import EnrollRequest, EnrollResponse
from protocol.errors import RouteError
from protocol.exchange import (
    MAX_PULL_BYTES as MAX_PULL_BYTES,  # re-exported: the pull rule lives in protocol.exchange
)
from protocol.exchange import (
    ConfirmChild,
    Cursors,
    FramesForChild,
    HeldAbove,
    HeldForChild,
    OutboxSize,
    ParentCommand,
    PositionsConfirmed,
    SealOutbox,
    parent_cursors,
    parent_pull,
)
from protocol.ledger import ancestor_streams, check_descendant, for_subtree, pushable
from protocol.limits import MAX_REQUEST_BYTES
from protocol.session import (
    ALARM_PREFIX,
    BLOB_CHUNK_BYTES,
    BlobGet,
    BlobGetReply,
    BlobPut,
    BlobPutReply,
    CursorsRequest,
    CursorsResponse,
    FrameResult,
    NodeReport,
    PullRequest,
    PullResponse,
    PushRequest,
    PushResponse,
    cursor_map,
)
from protocol.stream import StreamKey
from protocol.trust import TrustError
from protocol.wire import decode
from sanji.context import NodeContext
from sanji.store import Store
from sanji.store.business import BusinessBook
from sanji.store.clones import CloneFrozen
from sanji.store.trustbook import TrustBook
from sanji.sync.freshness import RequestCounters
from sanji.sync.glance import Glance, glance
from sanji.sync.requests_auth import SignedRequest, Unauthenticated, check_signed

T = TypeVar("T", bound=msgspec.Struct)
R = TypeVar("R")

log = logging.getLogger("sanji.sync")
_alarms_logged: dict[str, int] = {}  # node -> the report time of the alarm last logged here


def _log_alarms(here: str, reports: tuple[NodeReport, ...]) -> None:
    """Security alarms from below (a clone frozen by a township) into this node's log, once each."""
    for report in reports:
        if report.last_error.startswith(ALARM_PREFIX) and _alarms_logged.get(report.node) != report.at:
            _alarms_logged[report.node] = report.at
            log.warning("%s: alarm about %s: %s", here, report.node, report.last_error.removeprefix(ALARM_PREFIX))


# Sync requests a parent serves at once; the rest wait their turn, first come first served. Served all at
# once, hundreds of children back from an outage share the event loop: every database round trip waits
# behind every other request's, the single writer's transactions stretch over as many turns of the loop,
# and each request takes as long as all of them together, past the child's idle limit for the opening
# request (``sanji.sync.transport.OPENING_IDLE_S``). A few at a time, each is answered in its own time.
SERVING_AT_ONCE = 16


class SyncServer:
    """Every method takes the request's signature (``SignedRequest``) and refuses unsigned or foreign ones."""

    def __init__(
        self,
        store: Store,
        context: NodeContext | None = None,
        trust: TrustBook | None = None,
        *,
        addresses: tuple[tuple[str, str], ...] = (),
        turns: asyncio.Semaphore | None = None,
    ) -> None:
        self.store = store
        self.context = context
        self.trust = trust
        self.addresses = addresses  # this node's ancestors and where it reaches them (sanji.sync.addresses)
        # See SERVING_AT_ONCE; asyncio's waiters are FIFO. A running node passes its one semaphore: a server is
        # made for each request, and turns of its own would limit nothing.
        self.turns = turns if turns is not None else asyncio.Semaphore(SERVING_AT_ONCE)

    def _known_child(self, sender: str) -> None:
        directory = self.store.directory
        check_descendant(directory, self.store.node_id, sender)  # raises RouteError

    async def admit(self, signed: SignedRequest | None, sender: str | None = None) -> None:
        """Refuse ``signed`` unless it is addressed here, signed by a current key of a node below this
        one and fresh (its counter is spent here). Runs before the body is decoded; once per request."""
        if signed is None:
            raise Unauthenticated(f"the request from {sender or 'an unnamed node'!r} is not signed")
        if sender is not None and signed.node != sender:
            raise Unauthenticated(f"the request names sender {sender!r} but is signed as {signed.node!r}")
        if signed.admitted:
            return
        seen = await glance(self.store, signed.node)  # what follows asks the database, in one statement
        if self.trust is not None:
            # A revocation written by another process counts from this request on.
            await self.trust.refresh(seen.trust_mark)
        self._known_child(signed.node)
        check_signed(self.store.directory, signed, signed.node, recipient=self.store.node_id)
        await RequestCounters(self.store).admit(signed.node, signed.counter, path=signed.path)
        if seen.frozen:  # a node seen running twice: neither copy is heard (``sanji.store.clones``)
            raise CloneFrozen(f"{signed.node} is frozen here: two running copies of it were seen")
        signed.seen = seen
        signed.admitted = True

    async def _admitted(self, sender: str, signed: SignedRequest | None) -> None:
        self._known_child(sender)
        await self.admit(signed, sender)

    async def cursors(self, request: CursorsRequest, signed: SignedRequest | None = None) -> CursorsResponse:
        await self._admitted(request.sender, signed)
        lease = ""
        trust_docs: tuple[bytes, ...] = ()
        trust_cursor, trust_epoch = 0, ""
        taken: tuple[str, ...] = ()
        rotated = b""
        if self.trust is not None and self.trust.enabled:
            lease = await self.trust.check_child(request.sender, instance=request.instance, lease=request.lease)
            # Up first: a new village's certificate must be known before its first batch is judged.
            taken = await self.trust.from_child(request.sender, request.trust)
            if request.rotate is not None:
                try:
                    rotated = await self.trust.rotate_child(request.sender, request.rotate)
                except TrustError as exc:
                    await self.store.log_event("rotation_refused", request.sender, {"message": exc.message})
            trust_docs, trust_cursor, trust_epoch = await self.trust.for_child(
                request.sender, request.trust_cursor, request.trust_epoch
            )
        async with self.store.db.reading():  # its reads on one connection (``Database.reading``)
            answer = await self._run(parent_cursors(self.store.directory, request), _ChildStreams(request.sender))
        # how far what this node sent down has reached the child: the errand pages' 已送达 / 待发送 of results
        await self.store.record_child_holds(request.sender, cursor_map(request.ancestor_streams))
        await self.store.record_reports(request.reports, via=request.sender)
        await BusinessBook(self.store).receive(request.reports, via=request.sender)
        _log_alarms(self.store.node_id, request.reports)
        catalogue = calendar = rules = b""
        offset = 0
        if self.context is not None:
            offset = self.context.clock_offset_ms
            # Published meanwhile by another process (`sanji calendar publish`, `sanji rules publish`, a hub
            # sibling): the versions held were read as the request was admitted, a document only if newer.
            seen = signed.seen if signed is not None and isinstance(signed.seen, Glance) else None
            if seen is not None:
                await self.context.refresh_documents(seen.versions)
            else:
                await self.context.refresh_catalogue()
                await self.context.refresh_calendar()
                await self.context.refresh_rules()
            if request.catalogue_version < self.context.catalogue_version:
                catalogue = await self.context.catalogue_blob() or b""
            if request.calendar_version < self.context.calendar_version:
                calendar = await self.context.calendar_blob() or b""
            if request.rules_version < self.context.rules_version:
                rules = await self.context.rules_blob() or b""
        return CursorsResponse(
            node=self.store.node_id,
            at=self.store.clock.now(),
            cursors=answer.cursors,
            catalogue=catalogue,
            calendar=calendar,
            rules=rules,
            clock_offset_ms=offset,
            lease=lease,
            trust=trust_docs,
            trust_cursor=trust_cursor,
            trust_epoch=trust_epoch,
            trust_taken=taken,
            rotated=rotated,
            reclaim=answer.reclaim,
            above=answer.above,
            addresses=self.addresses,
            down=answer.down,
        )

    async def enroll(self, request: EnrollRequest) -> EnrollResponse:
        """Unsigned by design: the node has no certificate yet; the token's HMAC proves the request."""
        if self.trust is None:
            raise TrustError(f"{self.store.node_id} does not enroll nodes (it holds no root of trust)")
        return await self.trust.enroll(request)

    async def push(self, request: PushRequest, signed: SignedRequest | None = None) -> PushResponse:
        await self._admitted(request.sender, signed)
        self.store.clock.observe(request.at)
        outcome = await self.store.receive(request.frames, peer=request.sender)
        results: list[FrameResult] = outcome.results
        return PushResponse(node=self.store.node_id, at=self.store.clock.now(), results=tuple(results))

    async def pull(self, request: PullRequest, signed: SignedRequest | None = None) -> PullResponse:
        await self._admitted(request.sender, signed)
        self.store.clock.observe(request.at)
        frames, more = await self._run(parent_pull(request))
        return PullResponse(node=self.store.node_id, at=self.store.clock.now(), frames=tuple(frames), more=more)

    async def _run(
        self, steps: Generator[ParentCommand | FramesForChild, Any, R], streams: _ChildStreams | None = None
    ) -> R:
        """Answer the parent's steps (``protocol.exchange.parent_cursors``/``parent_pull``) with the store."""
        answer: Any = None
        while True:
            try:
                command = steps.send(answer)
            except StopIteration as done:
                result: R = done.value
                return result
            answer = await self._perform(command, streams)

    async def _perform(self, command: ParentCommand | FramesForChild, streams: _ChildStreams | None = None) -> Any:
        store = self.store
        if isinstance(command, HeldForChild) and streams is not None and command.child == streams.child:
            check_descendant(store.directory, store.node_id, command.child)
            every = await streams.read(store)
            directory = store.directory
            below, about = pushable(directory, command.child), ancestor_streams(directory, command.child)
            return dict(sorted({**below.select(every), **about.select(every)}.items()))
        if isinstance(command, HeldForChild):
            return await store.cursors_for_child(command.child)
        if isinstance(command, ConfirmChild):
            held: dict[StreamKey, int] | None = None
            if streams is not None and command.child == streams.child:
                held = await streams.read(store)
            return await store.confirm_child(command.child, dict(command.reported), held=held)
        if isinstance(command, PositionsConfirmed):
            return store.positions_confirmed
        if isinstance(command, OutboxSize):
            return await store.outbox_size()
        if isinstance(command, SealOutbox):
            await store.seal_outbox()
            if streams is not None:
                streams.held = None  # new batches of this node's own: read again
            return None
        if isinstance(command, Cursors):
            if streams is not None and command.which == for_subtree(store.directory, streams.child):
                return command.which.select(await streams.read(store))
            return await store.cursors_in(command.which)
        if isinstance(command, HeldAbove):
            return await store.held_above(command.child, dict(command.held))
        return await store.frames_for_child(command.child, dict(command.after), command.budget)

    async def _named_for(self, sender: str, digest: str) -> None:
        if not await self.store.attachment_named(digest, scopes=self.store.directory.subtree(sender)):
            raise RouteError(
                f"no attach action on an errand of {sender}'s subtree names attachment {digest[:12]}",
                hint="Push the batch with the attach action first; attachments follow their actions.",
            )

    async def blob_put(self, request: BlobPut, signed: SignedRequest | None = None) -> BlobPutReply:
        await self._admitted(request.sender, signed)
        await self._named_for(request.sender, request.hash)
        held, complete = await self.store.blob_append(request.hash, request.size, request.offset, request.data)
        return BlobPutReply(received=held, complete=complete)

    async def blob_get(self, request: BlobGet, signed: SignedRequest | None = None) -> BlobGetReply:
        await self._admitted(request.sender, signed)
        await self._named_for(request.sender, request.hash)
        size, held, data = await self.store.blob_read(
            request.hash, request.offset, min(request.max_bytes, BLOB_CHUNK_BYTES)
        )
        return BlobGetReply(size=size, offset=request.offset, data=data, available=held)


@dataclass
class _ChildStreams:
    """What a parent holds of the streams one child's opening request asks about, read once for the request.

    The answer's steps ask three times (``protocol.exchange.parent_cursors``): what the child may push up
    (its subtree's streams and its ancestors' about it), this node's own streams about it (``confirm_child``)
    and every stream about its subtree (``down``). Every one of them is written by the child's subtree or is
    about it: one statement reads them all, each step takes its part. Sealing this node's outbox meanwhile
    makes it read again."""

    child: str
    held: dict[StreamKey, int] | None = None

    async def read(self, store: Store) -> dict[StreamKey, int]:
        if self.held is None:
            directory = store.directory
            self.held = await store.cursors_in(pushable(directory, self.child), for_subtree(directory, self.child))
        return self.held


def decode_request(data: bytes, kind: type[T]) -> T:
    """Decode a request body already admitted (or the unsigned enrollment): bounded size and nesting."""
    return decode(data, kind, what=f"sync request ({kind.__name__})", max_bytes=MAX_REQUEST_BYTES)
