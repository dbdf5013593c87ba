"""Archived attachments fetched back from an ancestor when someone opens them (issue 16).

A village archives an attachment's bytes once an ancestor acknowledged holding them
(``sanji.store.archive``). Opening it (the errand page's link, ``GET /api/attachments/{hash}``,
``sanji archive --restore``) asks the parent for it over the node's own signed sync requests
(``/sync/v1/blob/get``, chunk by chunk), or, while the parent is dark, the ancestors the node goes
round it with, in the sync driver's order: the parent, ``[parent] fallback_urls``, then the
ancestors the parent told of (``sanji.sync.addresses``), nearest first.

Nothing is kept until the whole answer is the recorded size and hashes to the attachment's name
(``protocol.archive.fetched_back``); a short, long or altered answer is refused, logged, and the
next ancestor asked. Bounded: one fetch per attachment at a time (opens meanwhile wait for the same
one), ``MAX_FETCHES`` attachments at once, nothing larger than the node's attachment limit, and
its chunks counted against the day's attachment budget (``driver.BlobBudget``, with the sync
session's). An open waits ``timeout`` seconds (the wait for a slot included); the fetch goes on up to
``limit`` (a large file on a slow link), the open answering ``ArchivedElsewhere`` with a short
Retry-After meanwhile, and the next open waits for the same fetch. When no ancestor answers,
``ArchivedElsewhere`` says so (a 503 with Retry-After; the page says it in Chinese and English; the
nodes asked are named, their addresses and errors only logged), and the attachment stays archived,
its mark intact.

A running node restores on request too (``queue``: ``POST /api/archive/restore``, what ``sanji archive
--restore`` points to while the node runs, since the command cannot sign beside it): the attachments asked
for are fetched back one after another in the background, by the same fetches, so a page opening one meanwhile
waits for that fetch and the other slot stays free for pages.

Requests are signed with the node's one ``RequestSigner``, the sync driver's: each holds its turn from
signing until the answer, so the parent sees this node's counters in order. ``close`` stops the
fetches in flight, and the queue, when the node shuts down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from protocol.archive import fetched_back
from protocol.errors import SanjiError
from protocol.session import BlobGet
from sanji.config import NodeSettings
from sanji.context import NodeContext
from sanji.periodic import cancel
from sanji.store import Store
from sanji.store.archive import Archived, AttachmentArchived
from sanji.store.engine import ReadOnlyReplica
from sanji.sync import addresses
from sanji.sync.driver import BlobBudget, ready
from sanji.sync.requests_auth import RequestSigner
from sanji.sync.transport import HttpTransport, Transport

log = logging.getLogger("sanji.archive")
FETCH_TIMEOUT_S = 60.0  # a page's wait for a whole attachment; the fetch goes on after it (FETCH_LIMIT_S)
FETCH_LIMIT_S = 1800.0  # one fetch, all of it: 4 MiB at 64 kbit/s is about 9 minutes
RESTORE_TIMEOUT_S = 1800.0  # ``sanji archive --restore``: someone is waiting at a desk for the laptop
STILL_FETCHING_S = 30  # Retry-After while a fetch goes on after the page stopped waiting
MAX_FETCHES = 2  # attachments fetched back at once (each up to the size limit, held in memory until checked)
RETRY_AFTER_S = 300  # when no ancestor answers: links come back in minutes, not seconds
Links = Callable[[], Awaitable[Sequence[Transport]]]


SHUTTING_DOWN = "this node is shutting down; the attachment is fetched back once it is up"


class ArchivedElsewhere(SanjiError):
    """The attachment was archived here and no ancestor could give it back just now."""

    code = "attachment_archived_unreachable"
    retryable = True
    default_hint = "It is fetched back when the link to the township or county is back; try again later."
    retry_after = RETRY_AFTER_S


class OverBudget(SanjiError):
    """Today's attachment bytes (``[sync] daily_attachment_bytes``) are spent: no ancestor is asked."""

    code = "attachment_budget_spent"


class Refused(SanjiError):
    """An ancestor's answer was not the attachment (short, long, altered): nothing of it is kept."""

    code = "attachment_refused"


def links_for(settings: NodeSettings, store: Store, *, timeout: float = 10.0) -> Links:
    """The links a fetch tries, in the sync driver's order, opened afresh for each fetch."""

    async def links() -> Sequence[Transport]:
        if settings.parent is None or store.directory.parent(store.node_id) is None:
            return []
        urls: list[str] = []
        for url in (
            settings.parent.url,
            *settings.parent.fallback_urls,
            *(u for _, u in await addresses.learned(store)),
        ):
            if url.rstrip("/") not in urls:
                urls.append(url.rstrip("/"))
        return [HttpTransport(url, timeout=timeout) for url in urls]

    return links


class FetchBack:
    """Fetches archived attachments back: one fetch per attachment at a time, within ``timeout``."""

    def __init__(
        self,
        store: Store,
        links: Links,
        *,
        max_bytes: int,
        timeout: float = FETCH_TIMEOUT_S,
        limit: float | None = None,
        signer: RequestSigner | None = None,
        context: NodeContext | None = None,
    ) -> None:
        self.store = store
        self.links = links
        self.max_bytes = max_bytes
        self.timeout = timeout  # how long one open waits for the fetch
        self.limit = max(timeout, FETCH_LIMIT_S) if limit is None else limit  # how long the fetch goes on
        self.context = context  # today's attachment budget, shared with the sync session (BlobBudget)
        # The node's one signer (``RequestSigner.turn``): its requests take turns with the sync driver's.
        self.signer = signer or RequestSigner(store.node_id, store)
        self._inflight: dict[str, asyncio.Task[bytes | None]] = {}
        self._slots = asyncio.Semaphore(MAX_FETCHES)  # different attachments: a few at a time, each in memory
        self._queued: dict[str, None] = {}  # restores asked for, in order (a dict: each attachment once)
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    async def close(self) -> None:
        """Stop every fetch in flight and wait until each has stopped (the node is shutting down: before
        its database closes). Nothing half-fetched is kept; the marks stay, also of restores still queued."""
        self._closed = True
        self._queued.clear()
        # Every one is stopped even when one ended on an error (a fetch refused or out of time as it was
        # stopped): a fetch's outcome belongs to the pages waiting on it, not to the shutdown.
        for task in [self._worker, *self._inflight.values()]:
            try:
                await cancel(task)
            except Exception:
                log.debug("a fetch back ended on an error as the node stopped", exc_info=True)

    def queue(self, digests: Sequence[str]) -> int:
        """Fetch ``digests`` back in the background, one after another; how many restores wait now (these too).

        One at a time, so a page's open still finds a slot; an attachment already waiting is not queued twice.
        Raises ``ArchivedElsewhere`` while the node shuts down."""
        if self._closed:
            raise ArchivedElsewhere(SHUTTING_DOWN)
        for digest in digests:
            self._queued.setdefault(digest)
        if self._queued and (self._worker is None or self._worker.done()):
            self._worker = asyncio.create_task(self._restore_queued(), name="fetch-back-restore")
        return len(self._queued)

    @property
    def waiting(self) -> int:
        """Restores asked for and not yet done (the one being fetched included)."""
        return len(self._queued)

    async def _restore_queued(self) -> None:
        while self._queued:
            digest = next(iter(self._queued))
            try:
                task = await self._task(digest)
                if task is not None:  # None: held here already (opened meanwhile, or never archived)
                    await task
            except SanjiError as exc:  # the mark stays; asking again queues it again
                log.warning("attachment %s not restored: %s", digest[:12], exc.message)
            except Exception:  # one attachment's fault must not leave the rest waiting for a restart
                log.exception("attachment %s not restored", digest[:12])
            finally:
                self._queued.pop(digest, None)

    async def _task(self, digest: str) -> asyncio.Task[bytes | None] | None:
        """The fetch of ``digest``, started or joined; None when it is not archived here."""
        if digest not in self._inflight and await self.store.archived_blob(digest) is None:
            return None  # held here (the usual case): no task, no link
        task = self._inflight.get(digest)  # read after the await: another open may have started it meanwhile
        if task is None:
            if self.store.db.read_only:  # it would be fetched whole and then not stored: ask the primary
                raise ReadOnlyReplica(f"attachment {digest[:12]} is archived; a read replica cannot take it back")
            if self._closed:
                raise ArchivedElsewhere(SHUTTING_DOWN)
            task = asyncio.create_task(self._fetch(digest), name=f"fetch-back-{digest[:12]}")
            self._inflight[digest] = task
            task.add_done_callback(lambda done: self._done(digest, done))
        return task

    async def open(self, digest: str) -> bytes | None:
        """The bytes of ``digest``, fetched back and held here again; None when it is not archived here.

        Raises ``ArchivedElsewhere`` when no ancestor gave it back whole in time, ``AttachmentArchived``
        when it is larger than this node takes.
        """
        task = await self._task(digest)
        if task is None:
            return None
        # A caller that gives up (a closed page, the timeout) does not cancel the fetch: it goes on, and the
        # next open waits for the same one (or finds the attachment held again).
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled() or _cancelling():
                raise  # this caller itself was cancelled: let it go
            raise ArchivedElsewhere(SHUTTING_DOWN) from None
        except TimeoutError:
            if task.done() and not task.cancelled() and task.exception() is None:
                return task.result()  # finished as the time ran out
            if task.done():  # the fetch itself timed out (a link's own limit): as any failed fetch
                raise ArchivedElsewhere(
                    f"attachment {digest[:12]} could not be fetched back from an ancestor in time; try again shortly"
                ) from None
            away = ArchivedElsewhere(
                f"attachment {digest[:12]} is being fetched back from an ancestor and was not whole within "
                f"{self.timeout:g} s; it goes on, try again shortly"
            )
            away.retry_after = STILL_FETCHING_S
            raise away from None

    def _done(self, digest: str, task: asyncio.Task[bytes | None]) -> None:
        if self._inflight.get(digest) is task:
            del self._inflight[digest]
        if not task.cancelled():
            task.exception()  # every waiter may have gone: the outcome is still taken

    async def _fetch(self, digest: str) -> bytes | None:
        mark = await self.store.archived_blob(digest)
        if mark is None:
            return None
        if mark.size > self.max_bytes:
            raise AttachmentArchived(
                f"{mark.where()}; it is larger than this node takes ({self.max_bytes} bytes)",
                hint=f"Open the errand at {mark.held_at}, which holds the attachment.",
            )
        tried: list[str] = []  # the nodes asked (their errors are logged, not shown: they name hosts)
        links: Sequence[Transport] = ()
        data: bytes | None = None
        try:
            # All of it within the limit: the wait for a slot, the links, every ancestor asked.
            async with asyncio.timeout(self.limit):
                async with self._slots:
                    budget = await BlobBudget(self.store, self.context).load()
                    links = await self.links()
                    data = await self._ask_each(links, mark, tried, budget)
        except TimeoutError:
            tried.append(f"no whole answer within {self.limit:g} s")
        except OverBudget:
            tried.append("today's attachment budget ([sync] daily_attachment_bytes) is spent")
        finally:
            for link in links:
                await link.close()
        if data is None:
            said = "; ".join(tried) or "this node has no parent to ask"
            raise ArchivedElsewhere(f"{mark.where()}, and could not be fetched back now ({said})"[:1000])
        await self.store.restore_archived(digest, data)  # checked again there, under the write lock
        log.info("attachment %s (%d bytes) fetched back from an ancestor", digest[:12], len(data))
        return data

    async def _ask_each(
        self, links: Sequence[Transport], mark: Archived, tried: list[str], budget: BlobBudget
    ) -> bytes | None:
        for link in links:
            ready(self.store, link, self.signer)
            try:
                return await self._ask(link, mark, budget)
            except OverBudget:
                raise  # no other link is asked either
            except Refused as exc:
                tried.append(f"{link.recipient}: refused its answer")
                log.warning("attachment %s from %s refused: %s", mark.hash[:12], link.recipient, exc.message)
                await self.store.log_event(
                    "attachment_refused", link.recipient, {"hash": mark.hash, "message": exc.message}
                )
            except SanjiError as exc:  # down, refused, or it does not hold the bytes
                tried.append(f"{link.recipient}: no answer")
                log.info("attachment %s not fetched back from %s: %s", mark.hash[:12], link.recipient, exc.message)
        return None

    async def _ask(self, link: Transport, mark: Archived, budget: BlobBudget) -> bytes:
        parts: list[bytes] = []
        offset = 0
        while offset < mark.size:
            if not budget.allowed():
                raise OverBudget(f"today's {budget.limit} bytes of attachments are spent")
            got = await link.blob_get(BlobGet(sender=self.store.node_id, hash=mark.hash, offset=offset))
            await budget.spend(len(got.data))  # as the sync session counts what it fetches
            if got.size == 0 and not got.data:
                raise SanjiError(f"does not hold attachment {mark.hash[:12]}")
            if got.size != mark.size or got.offset != offset or len(got.data) > mark.size - offset:
                raise Refused(f"answered {len(got.data)} bytes at {got.offset} of {got.size}; wanted {mark.size}")
            if not got.data:
                raise SanjiError(f"holds only {got.available} bytes of attachment {mark.hash[:12]}")
            parts.append(got.data)
            offset += len(got.data)
        data = b"".join(parts)
        refused = fetched_back(mark.hash, mark.size, data)
        if refused is not None:
            raise Refused(refused)
        return data


def _cancelling() -> bool:
    """Whether the running task has been asked to stop (not merely woken by a task it waited on)."""
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0
