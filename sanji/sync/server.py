"""The parent's side of a sync session: answer cursors, take pushes, serve pulls."""

from __future__ import annotations

import msgspec

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
from sanji.context import NodeContext
from sanji.store import Store

MAX_PULL_BYTES = 4 * 1024 * 1024


class SyncServer:
    def __init__(self, store: Store, context: NodeContext | None = None) -> None:
        self.store = store
        self.context = context

    def _known_child(self, sender: str) -> None:
        directory = self.store.directory
        if sender not in directory or sender == self.store.node_id or self.store.node_id not in directory.path(sender):
            raise RouteError(
                f"{sender!r} is not a child (or other descendant) of {self.store.node_id}",
                hint="Sync with your own parent, or an ancestor configured as a fallback.",
            )

    async def cursors(self, request: CursorsRequest) -> CursorsResponse:
        self._known_child(request.sender)
        held = await self.store.cursors_for_child(request.sender)
        await self.store.record_reports(request.reports, via=request.sender)
        catalogue = b""
        offset = 0
        if self.context is not None:
            offset = self.context.clock_offset_ms
            if request.catalogue_version < self.context.catalogue_version:
                catalogue = await self.context.catalogue_blob() or b""
        return CursorsResponse(
            node=self.store.node_id,
            at=self.store.clock.now(),
            cursors=cursors_from(held),
            catalogue=catalogue,
            clock_offset_ms=offset,
        )

    async def push(self, request: PushRequest) -> PushResponse:
        self._known_child(request.sender)
        self.store.clock.observe(request.at)
        outcome = await self.store.receive(request.frames, peer=request.sender)
        results: list[FrameResult] = outcome.results
        return PushResponse(node=self.store.node_id, at=self.store.clock.now(), results=tuple(results))

    async def pull(self, request: PullRequest) -> PullResponse:
        self._known_child(request.sender)
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

    async def blob_put(self, request: BlobPut) -> BlobPutReply:
        self._known_child(request.sender)
        await self._named_for(request.sender, request.hash)
        held, complete = await self.store.blob_append(request.hash, request.size, request.offset, request.data)
        return BlobPutReply(received=held, complete=complete)

    async def blob_get(self, request: BlobGet) -> BlobGetReply:
        self._known_child(request.sender)
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
