"""``POST /api/archive/restore``: a running node fetches its archived attachments back itself (issue 16).

``sanji archive --restore`` cannot run beside a running node (two processes signing for one node would reach
the parent out of order), so it points here: an administrator asks the node, and its own fetch-back
(``sanji.sync.fetch_back.FetchBack.queue``) fetches the attachments back one after another in the background,
with the node's one signer. The answer is 202 at once: what was queued and how many restores wait; asking
again queues nothing twice and says how many still wait. What came back shows in ``/api/node``
(``attachments.archived_here``); one that could not come back stays archived and is named in the log.
"""

from __future__ import annotations

import msgspec
from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody

from sanji.auth.guard import Caller
from sanji.forms import BoundedForm, Short
from sanji.store import Store
from sanji.sync.fetch_back import FetchBack


class RestoreRequest(BoundedForm, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # An errand id or its receipt number: that errand's archived attachments; none: every archived attachment.
    errand: Short | None = None


class RestoreQueued(msgspec.Struct, kw_only=True):
    queued: list[str]  # the archived attachments asked for (hashes), now waiting or being fetched back
    bytes: int  # their size in all
    waiting: int  # restores this node has not finished, these included


async def errand_of(store: Store, ref: str) -> str | None:
    """The errand ``ref`` names (an id or a receipt number) if it is held here."""
    if await store.errand(ref) is not None:
        return ref
    rows, _ = await store.errands(receipt=ref, limit=1)
    return str(rows[0]["id"]) if rows else None


class ArchiveRestoreController(Controller):
    path = "/api/archive"
    tags = ["attachments"]

    @post(
        "/restore",
        status_code=202,
        summary="Fetch archived attachments back from an ancestor, in the background (administrator)",
        description=(
            'Body `{"errand": "<id or receipt>"}` for one errand\'s, `{}` for every archived attachment. '
            "Answers at once with what was queued; the attachments come back one after another over this "
            "node's own signed requests, as opening one does. `sanji archive --restore` while the node runs "
            "points here."
        ),
    )
    async def restore(
        self,
        store: NamedDependency[Store],
        fetch_back: NamedDependency[FetchBack],
        caller: NamedDependency[Caller],
        data: JSONBody[RestoreRequest],
    ) -> RestoreQueued:
        errand = None
        if data.errand is not None:
            errand = await errand_of(store, data.errand)
            if errand is None:
                raise NotFoundException(f"no errand {data.errand!r} is held at {store.node_id}")
        marks = await store.archived_blobs(errand=errand)
        waiting = fetch_back.queue([m.hash for m in marks])
        detail = {"errand": errand or "all", "attachments": len(marks), "by": caller.who.account}
        await store.log_event("archive_restore_queued", store.node_id, detail)
        return RestoreQueued(queued=[m.hash for m in marks], bytes=sum(m.size for m in marks), waiting=waiting)
