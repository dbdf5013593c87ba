"""Messages of a sync session between a child and its parent.

The child always starts: it asks the parent what it holds of the streams the
child can send (``CursorsRequest``), pushes what is missing in order under a byte
budget (``PushRequest``), then pulls what the parent holds for the child's subtree
(``PullRequest``), passing its own cursors so the parent sends only what is new.
Every step is resumable at any batch: cursors are the only session state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import msgspec

from protocol.signing import KeyRecord
from protocol.stream import StreamKey

DEFAULT_BUDGET_BYTES = 64 * 1024  # per request: a drop mid-transfer redoes at most this much


class Cursor(msgspec.Struct, frozen=True, array_like=True):
    origin: str
    scope: str
    seq: int


ALARM_PREFIX = "alarm:"  # a report whose last_error starts so is a security alarm (a clone), shown apart


class NodeReport(msgspec.Struct, frozen=True, kw_only=True):
    """A node's health, sent up with every exchange so the county sees every level (node health)."""

    node: str
    at: int  # the reporting node's hybrid clock when it wrote the report
    catalogue_version: int = 0
    queue_length: int = 0
    oldest_unacked_s: float = 0.0
    last_error: str = ""
    bytes_sent_today: int = 0
    clock_offset_ms: int = 0
    open_errands: int = 0
    overdue: int = 0
    quarantined: int = 0
    calendar_version: int = 0  # the county working-day calendar held (0: the built-in notices alone)
    rules_version: int = 0  # the county's assessment rules held (0: none yet)
    # The node's signed business reports of its last complete business days (protocol.business); an
    # ancestor forwards them with the report, so the county gets every node's.
    business: tuple[bytes, ...] = ()
    # The latest generation of errand rules (``Matter.rules``) the node judges by; 0 from a build before this
    # field, which knows at most generation 1. The county signs a catalogue of a later generation only when
    # no node reports less (``sanji.context.rules_refusal``).
    errand_rules: int = 0


class RotateKeys(msgspec.Struct, frozen=True, kw_only=True):
    """A child's new public keys (protocol.trust rotation), inside a request signed with its current key."""

    keys: tuple[KeyRecord, ...]
    points: tuple[tuple[str, str, int], ...]  # the child's own stream positions: its old key signs nothing later
    possession: bytes = b""  # the new signing key's signature over keys and points

    def signed_part(self) -> bytes:
        return msgspec.msgpack.encode(msgspec.structs.replace(self, possession=b""))


class CursorsRequest(msgspec.Struct, frozen=True, kw_only=True):
    sender: str
    catalogue_version: int = 0
    reports: tuple[NodeReport, ...] = ()  # the sender's own and the latest of each node below it
    instance: str = ""  # the sender's database instance (a certificate may bind the node to it)
    lease: str = ""  # the token the parent handed out in the last exchange (a stale one: restored or cloned)
    trust: tuple[bytes, ...] = ()  # certificates and revocations about the sender's subtree, going up
    trust_cursor: int = 0  # the last of the parent's trust documents the sender has seen ...
    trust_epoch: str = ""  # ... counted in this parent database
    rotate: RotateKeys | None = None
    # What the sender holds of streams its ancestors wrote about its subtree: a parent restored from a
    # backup learns here that it had sent batches down that it no longer holds (see ``reclaim``).
    ancestor_streams: tuple[Cursor, ...] = ()
    calendar_version: int = 0  # the county working-day calendar the sender holds
    rules_version: int = 0  # the county's assessment rules the sender holds


class CursorsResponse(msgspec.Struct, frozen=True, kw_only=True):
    node: str
    at: int
    cursors: tuple[Cursor, ...]
    catalogue: bytes = b""  # the signed catalogue, when the sender holds an older version
    clock_offset_ms: int = 0  # the parent's own clock offset to the county's clock
    lease: str = ""
    trust: tuple[bytes, ...] = ()  # roots, certificates and revocations the sender lacks
    trust_cursor: int = 0
    trust_epoch: str = ""
    trust_taken: tuple[str, ...] = ()  # ids of the documents from the request the parent now holds
    rotated: bytes = b""  # the sender's new certificate, when it asked to rotate
    # The parent's own streams the sender holds more of than the parent: "push me mine after these".
    reclaim: tuple[Cursor, ...] = ()
    # The sender's own streams as the parent's own parent held them at their last exchange, where that
    # is more than the parent holds: a sender restored from a backup must not renumber those either.
    above: tuple[Cursor, ...] = ()
    calendar: bytes = b""  # the signed working-day calendar, when the sender holds an older version
    rules: bytes = b""  # the signed assessment rules (考核细则), when the sender holds an older version
    # Where the parent reaches its own ancestors, nearest first: (node id, base URL). A child keeps
    # them and goes round a dark parent to the nearest that answers, with nothing configured by hand.
    addresses: tuple[tuple[str, str], ...] = ()
    # What the parent holds of every stream about the sender's subtree, its own fresh actions sealed first.
    # A sender that holds as much of each needs no pull: an idle exchange is this one request. None (a
    # parent before 0.4): the sender pulls as it always did.
    down: tuple[Cursor, ...] | None = None


SYNC_SIGNATURE_CONTEXT = b"sanji sync request v2\x00"


def request_signing_bytes(path: str, body: bytes, *, recipient: str, counter: int) -> bytes:
    """What a child signs for every sync request (headers X-Sanji-*): the node it is addressed to, a
    counter the recipient requires to grow with every request from this child, the endpoint and the
    body. So a captured request is refused anywhere else (recipient) and ever again (counter)."""
    head = f"{recipient}\x00{counter}\x00{path}\x00".encode()
    return SYNC_SIGNATURE_CONTEXT + head + body


class PushRequest(msgspec.Struct, frozen=True, kw_only=True):
    sender: str
    at: int
    frames: tuple[bytes, ...]


class FrameResult(msgspec.Struct, frozen=True, kw_only=True):
    origin: str = ""
    scope: str = ""
    seq: int = 0
    status: Literal["stored", "duplicate", "held", "refused"]
    error: str = ""
    message: str = ""


class PushResponse(msgspec.Struct, frozen=True, kw_only=True):
    node: str
    at: int
    results: tuple[FrameResult, ...]


class PullRequest(msgspec.Struct, frozen=True, kw_only=True):
    sender: str
    at: int
    cursors: tuple[Cursor, ...]
    max_bytes: int = DEFAULT_BUDGET_BYTES


class PullResponse(msgspec.Struct, frozen=True, kw_only=True):
    node: str
    at: int
    frames: tuple[bytes, ...]
    more: bool


def cursor_map(cursors: Iterable[Cursor]) -> dict[StreamKey, int]:
    return {StreamKey(c.origin, c.scope): c.seq for c in cursors}


def cursors_from(mapping: Mapping[StreamKey, int]) -> tuple[Cursor, ...]:
    return tuple(Cursor(k.origin, k.scope, v) for k, v in sorted(mapping.items()))


def take_within_budget(sizes: Iterable[int], budget: int) -> int:
    """How many items (in order) fit in ``budget`` bytes; always at least one so progress is made."""
    total = 0
    count = 0
    for size in sizes:
        if count and total + size > budget:
            break
        total += size
        count += 1
    return count


BLOB_CHUNK_BYTES = 48 * 1024  # a dropped chunk on a poor link costs at most this much again


class BlobPut(msgspec.Struct, frozen=True, kw_only=True):
    """A chunk of an attachment, pushed up. An empty chunk asks where to resume."""

    sender: str
    hash: str
    size: int
    offset: int
    data: bytes = b""


class BlobPutReply(msgspec.Struct, frozen=True, kw_only=True):
    received: int  # contiguous bytes the parent holds: resume from here
    complete: bool


class BlobGet(msgspec.Struct, frozen=True, kw_only=True):
    sender: str
    hash: str
    offset: int
    max_bytes: int = BLOB_CHUNK_BYTES


class BlobGetReply(msgspec.Struct, frozen=True, kw_only=True):
    size: int
    offset: int
    data: bytes
    available: int  # how many contiguous bytes the parent itself holds
