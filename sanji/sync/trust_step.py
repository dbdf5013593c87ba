"""The child's part of trust in every exchange: certificates up and down, leases, key rotation.

Rides on the cursors request that opens each session (``protocol.session``): the child sends
the certificates and revocations about its subtree the parent has not taken, its database
instance and the lease it was handed last time, and — when ``sanji keys rotate`` left a new
key beside the current one — its new public keys. The reply carries the trust documents the
child lacks and, for a rotation, the new certificate: the child switches keys before it seals
its next batch, so a rotation completes within one sync cycle.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from protocol.session import CursorsRequest, CursorsResponse, RotateKeys
from protocol.signing import ED25519
from protocol.trust import parse_document
from sanji.keys import NodeKey, key_passphrase, read_key
from sanji.store.trustbook import TrustBook

log = logging.getLogger("sanji.sync")
NEXT_SUFFIX = ".next"


def next_key_path(key_path: Path) -> Path:
    """Where ``sanji keys rotate`` leaves the new signing key until the parent certifies it."""
    return key_path.with_name(key_path.name + NEXT_SUFFIX)


class ChildTrust:
    def __init__(self, book: TrustBook, *, key_path: Path | None = None) -> None:
        self.book = book
        self.store = book.store
        self.key_path = key_path
        self._next: NodeKey | None = None
        self._peer_of: dict[int, str] = {}  # transport -> the node that answered on it last

    async def extend(self, request: CursorsRequest, link: object) -> CursorsRequest:
        """``request`` with this node's trust fields for whoever answers on ``link`` (parent or fallback)."""
        await self.book.refresh()  # documents written by another process (the CLI) go up in this exchange
        if not self.book.enabled:
            return msgspec.structs.replace(request, instance=self.store.instance_id)
        peer = self._peer_of.get(id(link)) or self.store.directory.parent(self.store.node_id) or ""
        epoch, cursor, lease = await self.book.peer_position(peer)
        up = await self.book.for_parent(peer)
        rotate = await self._rotation_request()
        return msgspec.structs.replace(
            request,
            instance=self.store.instance_id,
            lease=lease,
            trust=tuple(raw for _, raw in up),
            trust_cursor=cursor,
            trust_epoch=epoch,
            rotate=rotate,
        )

    async def absorb(self, request: CursorsRequest, reply: CursorsResponse, link: object) -> None:
        """Keep what the parent sent; finish a rotation the parent certified."""
        if not self.book.enabled:
            return
        self._peer_of[id(link)] = reply.node
        try:
            if reply.trust:
                await self.book.add(reply.trust, peer=reply.node)
            if reply.trust_taken:
                await self.book.taken_by(reply.node, reply.trust_taken)
            await self.book.set_peer_position(
                reply.node, epoch=reply.trust_epoch, cursor=reply.trust_cursor, lease=reply.lease
            )
            if request.rotate is not None:
                await self._finish_rotation(reply)
        finally:
            self.store.sealing_paused = False

    async def _rotation_request(self) -> RotateKeys | None:
        if self.key_path is None:
            return None
        path = next_key_path(self.key_path)
        if not path.exists():
            return None
        new = read_key(path, passphrase=key_passphrase(self.store.key), protect_plain=True)  # as the node's own
        current = self.book.state.current(self.store.node_id) if self.book.state else None
        sealing = [k for k in (current.keys if current else ()) if k.algorithm != ED25519]
        keys = (new.record(self.store.node_id), *sealing)  # the sealing key stays: old sealed details must open
        # Nothing may be signed between asking and switching: the old key's last batches are these.
        self.store.sealing_paused = True
        held = await self.store.cursors_where(origin_in=[self.store.node_id])
        points = tuple(sorted((k.origin, k.scope, seq) for k, seq in held.items()))
        unsigned = RotateKeys(keys=keys, points=points)
        self._next = new
        return RotateKeys(keys=keys, points=points, possession=new.sign(unsigned.signed_part()))

    async def _finish_rotation(self, reply: CursorsResponse) -> None:
        new = self._next
        if new is None or not reply.rotated or self.key_path is None:
            return
        cert = parse_document(reply.rotated).value
        if new.key_id not in {k.key_id for k in getattr(cert, "keys", ())}:
            log.warning("%s: the parent's rotated certificate does not list the new key", self.store.node_id)
            return
        results = await self.book.add([reply.rotated], peer=reply.node)
        if not results or results[0].status == "pending":
            log.warning("%s: the rotated certificate does not verify here yet", self.store.node_id)
            return
        old = self.store.key
        retired = self.key_path.with_name(f"{self.key_path.name}.retired-{old.key_id}")
        self.key_path.replace(retired)  # kept: audit and a rollback need it, nothing signs with it
        next_key_path(self.key_path).replace(self.key_path)
        sealing = old.sealing if isinstance(old, NodeKey) else None
        self.store.use_key(new.with_sealing(sealing))
        self._next = None
        await self.store.log_event("key_rotated", reply.node, {"old": old.key_id, "new": new.key_id})
        log.info("%s: signing key rotated %s -> %s", self.store.node_id, old.key_id, new.key_id)
