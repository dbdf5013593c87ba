"""The parent's side of a sync session: answer cursors, take pushes, serve pulls."""

from __future__ import annotations

import msgspec

from protocol.enrollment import EnrollRequest, EnrollResponse
from protocol.errors import FrameError, FrameTooLarge, RouteError
from protocol.limits import MAX_REQUEST_BYTES
from protocol.session import (
    BLOB_CHUNK_BYTES,
    BlobGet,
    BlobGetReply,
    BlobPut,
    BlobPutReply,
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
from protocol.trust import TrustError
from sanji.context import NodeContext
from sanji.store import Store
from sanji.store.trustbook import TrustBook
from sanji.sync.requests_auth import SignedRequest, check_signed

MAX_PULL_BYTES = 4 * 1024 * 1024


class SyncServer:
    """Every method takes the request's signature (``SignedRequest``) and refuses unsigned or foreign ones."""

    def __init__(self, store: Store, context: NodeContext | None = None, trust: TrustBook | None = None) -> None:
        self.store = store
        self.context = context
        self.trust = trust

    def _known_child(self, sender: str, signed: SignedRequest | None = None, *, check: bool = True) -> None:
        directory = self.store.directory
        if sender not in directory or sender == self.store.node_id or self.store.node_id not in directory.path(sender):
            raise RouteError(
                f"{sender!r} is not a child (or other descendant) of {self.store.node_id}",
                hint="Sync with your own parent, or an ancestor configured as a fallback.",
            )
        if check:
            check_signed(directory, signed, sender)

    async def cursors(self, request: CursorsRequest, signed: SignedRequest | None = None) -> CursorsResponse:
        self._known_child(request.sender, signed)
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
        held = await self.store.cursors_for_child(request.sender)
        reclaim = await self.store.confirm_child(request.sender, cursor_map(request.ancestor_streams))
        await self.store.record_reports(request.reports, via=request.sender)
        catalogue = calendar = b""
        offset = 0
        if self.context is not None:
            offset = self.context.clock_offset_ms
            if request.catalogue_version < self.context.catalogue_version:
                catalogue = await self.context.catalogue_blob() or b""
            await self.context.refresh_calendar()  # published by `sanji calendar publish` meanwhile
            if request.calendar_version < self.context.calendar_version:
                calendar = await self.context.calendar_blob() or b""
        return CursorsResponse(
            node=self.store.node_id,
            at=self.store.clock.now(),
            cursors=cursors_from(held),
            catalogue=catalogue,
            calendar=calendar,
            clock_offset_ms=offset,
            lease=lease,
            trust=trust_docs,
            trust_cursor=trust_cursor,
            trust_epoch=trust_epoch,
            trust_taken=taken,
            rotated=rotated,
            reclaim=cursors_from(reclaim),
            above=cursors_from(await self.store.held_above(request.sender, held)),
        )

    async def enroll(self, request: EnrollRequest) -> EnrollResponse:
        """Unsigned by design: the node has no certificate yet; the token's HMAC proves the request."""
        if self.trust is None:
            raise TrustError(f"{self.store.node_id} does not enroll nodes (it holds no root of trust)")
        return await self.trust.enroll(request)

    async def push(self, request: PushRequest, signed: SignedRequest | None = None) -> PushResponse:
        self._known_child(request.sender, signed)
        self.store.clock.observe(request.at)
        outcome = await self.store.receive(request.frames, peer=request.sender)
        results: list[FrameResult] = outcome.results
        return PushResponse(node=self.store.node_id, at=self.store.clock.now(), results=tuple(results))

    async def pull(self, request: PullRequest, signed: SignedRequest | None = None) -> PullResponse:
        self._known_child(request.sender, signed)
        self.store.clock.observe(request.at)
        budget = max(1, min(request.max_bytes, MAX_PULL_BYTES))
        if self.store.positions_confirmed and await self.store.outbox_size():
            await self.store.seal_outbox()  # our own fresh actions go down in this very pull
        frames, more = await self.store.frames_for_child(request.sender, cursor_map(request.cursors), budget)
        return PullResponse(node=self.store.node_id, at=self.store.clock.now(), frames=tuple(frames), more=more)

    async def _named_for(self, sender: str, digest: str) -> None:
        named = await self.store.attachments(scopes=self.store.directory.subtree(sender))
        if digest not in named:
            raise RouteError(
                f"no attach action on an errand of {sender}'s subtree names attachment {digest[:12]}",
                hint="Push the batch with the attach action first; attachments follow their actions.",
            )

    async def blob_put(self, request: BlobPut, signed: SignedRequest | None = None) -> BlobPutReply:
        self._known_child(request.sender, signed)
        await self._named_for(request.sender, request.hash)
        held, complete = await self.store.blob_append(request.hash, request.size, request.offset, request.data)
        return BlobPutReply(received=held, complete=complete)

    async def blob_get(self, request: BlobGet, signed: SignedRequest | None = None) -> BlobGetReply:
        self._known_child(request.sender, signed)
        await self._named_for(request.sender, request.hash)
        size, held, data = await self.store.blob_read(
            request.hash, request.offset, min(request.max_bytes, BLOB_CHUNK_BYTES)
        )
        return BlobGetReply(size=size, offset=request.offset, data=data, available=held)


def decode_request(data: bytes, kind: type[msgspec.Struct]) -> msgspec.Struct:
    if len(data) > MAX_REQUEST_BYTES:
        raise FrameTooLarge(f"request of {len(data)} bytes exceeds {MAX_REQUEST_BYTES}")
    try:
        return msgspec.msgpack.decode(data, type=kind)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise FrameError(f"sync request does not decode as {kind.__name__}: {exc}") from None
