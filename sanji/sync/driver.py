"""The child's side: push what the parent lacks, then pull what is ours, again and again.

Runs on a jittered timer, at once after a local change while the link is healthy,
and with jittered exponential backoff while the parent refuses or cannot be
reached (a timeout, itself a long wait, does not lengthen it). A session is
resumable at any batch: after a drop the next one starts from the parent's cursors.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from protocol.deadlines import business_today
from protocol.errors import SanjiError
from protocol.hlc import wall_ms
from protocol.session import (
    BLOB_CHUNK_BYTES,
    DEFAULT_BUDGET_BYTES,
    BlobGet,
    BlobPut,
    CursorsRequest,
    NodeReport,
    PullRequest,
    PushRequest,
    cursor_map,
    cursors_from,
)
from protocol.stream import StreamKey
from sanji.context import NodeContext
from sanji.observe.logs import EXCHANGE
from sanji.store import Store
from sanji.sync.addresses import remember
from sanji.sync.requests_auth import RequestSigner
from sanji.sync.transport import Transport, TransportError
from sanji.sync.trust_step import ChildTrust

log = logging.getLogger("sanji.sync")
WARN_AFTER_FAILURES = 3  # one failure and its retry may be a blip; the third in a row is worth a warning
SYNC_TRAFFIC = "sync"  # the traffic kind of cursors, push and pull request bodies ("blob": attachments)


@dataclass
class SessionReport:
    pushed: int = 0
    pulled: int = 0
    refused: int = 0
    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    skew_ms: int = 0
    peer: str = ""
    blobs_sent: int = 0
    blobs_received: int = 0
    deferred_blobs: int = 0
    addresses: tuple[tuple[str, str], ...] = ()  # the parent's ancestors and their URLs, as the parent told


# Told of every session: its report, or the error that ended it (sanji.observe counts them).
SessionObserver = Callable[[SessionReport | None, BaseException | None], None]


async def sync_once(
    store: Store,
    transport: Transport,
    *,
    budget: int = DEFAULT_BUDGET_BYTES,
    context: NodeContext | None = None,
    trust: ChildTrust | None = None,
) -> SessionReport:
    """One full exchange with the parent (or the ancestor ``transport`` reaches). Raises SanjiError on failure."""
    if store.directory.parent(store.node_id) is None:
        return SessionReport()
    if getattr(transport, "signer", None) is None:
        transport.signer = RequestSigner(store.node_id, store)  # every request carries this node's signature
    ancestors = [n for n in store.directory.path(store.node_id) if n != store.node_id]
    transport.ancestors = frozenset(ancestors)
    if not transport.recipient:  # addressed to the parent; a fallback link says which ancestor it is
        transport.recipient = store.directory.parent(store.node_id) or ""
    report = SessionReport()
    sent0, recv0 = transport.bytes_sent, transport.bytes_received
    day = _today(context)
    try:
        parent = await _exchange(store, transport, budget, context, report, day, trust)
    finally:
        # Counted even when the exchange broke off: what went before the break crossed the link.
        if transport.bytes_sent > sent0:
            await _quietly(store.add_traffic(SYNC_TRAFFIC, transport.bytes_sent - sent0, day=day))
    # Attachments last: every batch (results down, escalations up) has gone before them.
    await _attachments(store, transport, parent, report, context)
    report.bytes_sent = transport.bytes_sent - sent0
    report.bytes_received = transport.bytes_received - recv0
    return report


def _today(context: NodeContext | None) -> str:
    """The business day traffic is counted against: China Standard Time, on the county's clock when known."""
    return (context.today() if context is not None else business_today(datetime.now(UTC))).isoformat()


async def _exchange(
    store: Store,
    transport: Transport,
    budget: int,
    context: NodeContext | None,
    report: SessionReport,
    day: str,
    trust: ChildTrust | None,
) -> str:
    """Cursors, push and pull; returns the node that answered."""
    reports: tuple[NodeReport, ...] = ()
    version = 0
    if context is not None:
        version = context.catalogue_version
        own = await store.own_report(catalogue_version=version, clock_offset_ms=context.clock_offset_ms, day=day)
        own = msgspec.structs.replace(own, calendar_version=context.calendar_version)
        reports = (own, *await store.reports())
    request = CursorsRequest(
        sender=store.node_id,
        catalogue_version=version,
        calendar_version=context.calendar_version if context is not None else 0,
        reports=reports,
        instance=store.instance_id,
        ancestor_streams=cursors_from(await store.ancestor_cursors()),
    )
    if trust is not None:
        request = await trust.extend(request, transport)
    try:
        reply = await transport.cursors(request)
    except BaseException:
        store.sealing_paused = False  # a rotation asked for and not answered: the old key signs on, retried later
        raise
    report.requests += 1
    parent = reply.node  # the parent, or the ancestor a fallback link reached
    if parent not in store.directory.path(store.node_id) or parent == store.node_id:
        raise SanjiError(f"{parent!r} answered, but it is not an ancestor of {store.node_id}")
    report.peer = parent
    if parent == store.directory.parent(store.node_id):
        report.addresses = reply.addresses
    report.skew_ms = wall_ms(reply.at) - int(time.time() * 1000)
    store.clock.observe(reply.at)
    if context is not None:
        await context.observe_offset(report.skew_ms + reply.clock_offset_ms)
        if reply.catalogue:
            try:
                await context.offer(reply.catalogue)
            except SanjiError as exc:
                log.warning("the parent's catalogue was refused: %s", exc.message)
        if reply.calendar:
            try:
                await context.offer_calendar(reply.calendar)
            except SanjiError as exc:
                log.warning("the parent's working-day calendar was refused: %s", exc.message)
    if trust is not None:
        await trust.absorb(request, reply, transport)  # before sealing: a rotated key signs what follows
    parent_has = cursor_map(reply.cursors)
    await store.record_peer_cursors(parent, parent_has)
    # Where this node's own streams stand above it: at the parent, or (``above``) at the parent's parent.
    known = dict(parent_has)
    for key, seq in cursor_map(reply.above).items():
        known[key] = max(known.get(key, 0), seq)
    behind = await store.own_streams_behind(known)
    still_behind: list[str] = []
    if behind:
        # The parent holds more of this node's own streams than this node does: it was restored
        # from an old backup. Take its own batches back before numbering anything new.
        log.warning("restored from an older copy: the parent holds newer batches of %s", behind)
        report.pulled += await _pull(store, transport, parent, budget, report)
        await store.note_recovery(behind)
        still_behind = await store.own_streams_behind(known)
    if reply.reclaim:
        await _give_back(store, transport, parent, cursor_map(reply.reclaim), budget, report)
    if still_behind:
        # Its parent's parent holds batches of this node the parent has not brought down yet: number
        # nothing new until they have come (a later session), or this node would fork its own stream.
        log.warning("own batches of %s are still on their way down; not sealing yet", still_behind)
    else:
        await store.confirm_positions()
        await store.seal_outbox()
    while True:
        frames, more = await store.frames_for_parent(parent_has, budget)
        if not frames:
            break
        pushed = await transport.push(PushRequest(sender=store.node_id, at=store.clock.now(), frames=tuple(frames)))
        report.requests += 1
        await store.record_acks(parent, pushed.results)
        progressed = False
        for result in pushed.results:
            if result.status in ("stored", "duplicate", "held"):
                key = StreamKey(result.origin, result.scope)
                if result.status != "held":
                    parent_has[key] = max(parent_has.get(key, 0), result.seq)
                    progressed = True
                report.pushed += 1
            else:
                report.refused += 1
                log.warning("parent refused a batch: %s %s", result.error, result.message)
        if not more or not progressed:
            break
    report.pulled += await _pull(store, transport, parent, budget, report)
    return parent


async def _give_back(
    store: Store, transport: Transport, parent: str, wanted: dict[StreamKey, int], budget: int, report: SessionReport
) -> None:
    """The parent was restored from a backup and lost batches of its own it had sent down here: push
    them back before it numbers anything new, or this branch would keep a lineage the parent lost."""
    log.warning("parent %s lost its own batches %s; giving them back", parent, sorted(str(k) for k in wanted))
    while wanted:
        frames, more = await store.frames_given_back(wanted, budget)
        if not frames:
            return
        back = await transport.push(PushRequest(sender=store.node_id, at=store.clock.now(), frames=tuple(frames)))
        report.requests += 1
        taken = [r for r in back.results if r.status in ("stored", "duplicate")]
        for r in taken:
            key = StreamKey(r.origin, r.scope)
            if key in wanted:
                wanted[key] = max(wanted[key], r.seq)
        if not more or not taken:
            return


async def _pull(store: Store, transport: Transport, parent: str, budget: int, report: SessionReport) -> int:
    """Pull pages until the parent has nothing more for this subtree; returns frames received."""
    pulled = 0
    while True:
        known = await store.pull_cursors()
        reply = await transport.pull(
            PullRequest(sender=store.node_id, at=store.clock.now(), cursors=cursors_from(known), max_bytes=budget)
        )
        report.requests += 1
        if reply.frames:
            outcome = await store.receive(reply.frames, peer=parent)
            pulled += len(reply.frames)
            report.refused += sum(1 for r in outcome.results if r.status == "refused")
            if not any(r.status == "stored" for r in outcome.results):
                break  # the page moved nothing forward (a fork, a gap): asking again would spin
        if not reply.more:
            break
    return pulled


async def _attachments(
    store: Store, transport: Transport, parent: str, report: SessionReport, context: NodeContext | None
) -> None:
    """Move whole attachments both ways in chunks, resuming where a dropped transfer stopped.

    Stops for the day when the node's daily byte budget for attachments is spent; what is
    left waits (and is shown as deferred) until tomorrow or a better link.
    """
    limit = context.daily_blob_budget if context is not None else 0
    day = _today(context)
    spent = (await store.traffic(day)).get("blob", 0)

    def allowed() -> bool:
        return limit <= 0 or spent < limit

    for digest, size in sorted((await store.blobs_to_send(parent)).items()):
        reply = await transport.blob_put(BlobPut(sender=store.node_id, hash=digest, size=size, offset=0))
        report.requests += 1
        while not reply.complete:
            if not allowed():
                report.deferred_blobs += 1
                break
            _, _, chunk = await store.blob_read(digest, reply.received, BLOB_CHUNK_BYTES)
            if not chunk:
                break
            reply = await transport.blob_put(
                BlobPut(sender=store.node_id, hash=digest, size=size, offset=reply.received, data=chunk)
            )
            report.requests += 1
            spent = await store.add_traffic("blob", len(chunk), day=day)
        if reply.complete:
            await store.ack_blob(parent, digest)
            report.blobs_sent += 1
    for digest, size in sorted((await store.blobs_wanted()).items()):
        state = await store.blob_state(digest)
        offset = state[1] if state else 0
        while offset < size:
            if not allowed():
                report.deferred_blobs += 1
                break
            got = await transport.blob_get(BlobGet(sender=store.node_id, hash=digest, offset=offset))
            report.requests += 1
            if not got.data:
                break  # the parent does not have it (yet)
            offset, complete = await store.blob_append(digest, got.size, offset, got.data)
            spent = await store.add_traffic("blob", len(got.data), day=day)
            if complete:
                report.blobs_received += 1


class SyncDriver:
    """Keeps one node in step with its parent until stopped."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        *,
        interval: float = 5.0,
        max_backoff: float = 60.0,
        budget: int = DEFAULT_BUDGET_BYTES,
        context: NodeContext | None = None,
        fallbacks: Sequence[Transport] = (),
        trust: ChildTrust | None = None,
        link_for: Callable[[str], Transport] | None = None,
        skip_urls: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.trust = trust
        self.transport = transport
        self.fallbacks = list(fallbacks)
        self._fixed = list(fallbacks)  # configured by hand: always tried first
        # Links to ancestors the parent told about (sanji.sync.addresses), by URL; ``skip_urls``: the
        # parent's and the configured fallbacks' own URLs, never opened twice.
        self.link_for = link_for
        self.skip_urls = {u.rstrip("/") for u in skip_urls}
        self.learned: dict[str, Transport] = {}
        self.interval = interval
        self.max_backoff = max_backoff
        self.budget = budget
        self.context = context
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0  # sessions failed in a row, whatever the cause
        self.backoff_steps = 0  # of those, the ones that lengthen the wait: not timeouts
        self.last_error = ""
        self.sessions = 0
        self.down_since: float | None = None  # wall time of the first failure in the current run of failures
        self.warned = False  # the operator was told the parent is unreachable (once per outage)
        self.going_round = ""  # the ancestor synced with while the parent is dark
        self.observers: list[SessionObserver] = []
        store.on_change(self.poke)

    def _suspect(self, value: bool) -> None:
        for link in (self.transport, *self.fallbacks):
            link.suspect = value

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None and self.store.directory.parent(self.store.node_id) is not None:
            self._task = asyncio.create_task(self._run(), name=f"sync-{self.store.node_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.transport.close()
        for fallback in self.fallbacks:
            await fallback.close()

    async def adopt(self, addresses: Sequence[tuple[str, str]]) -> None:
        """Sync with these ancestors (nearest first) while the parent is dark, after the configured fallbacks."""
        if self.link_for is None:
            return
        wanted = [u.rstrip("/") for _, u in addresses if u.rstrip("/") not in self.skip_urls]
        for url in list(self.learned):
            if url not in wanted:
                await self.learned.pop(url).close()
        for url in wanted:
            if url not in self.learned:
                self.learned[url] = self.link_for(url)
        self.fallbacks = self._fixed + [self.learned[u] for u in wanted]

    async def _learn(self, report: SessionReport) -> None:
        if not report.addresses:
            return
        fresh = await remember(self.store, report.addresses)
        if fresh is not None:
            log.info("ancestors to go round a dark parent: %s", ", ".join(f"{n} at {u}" for n, u in fresh))
            await self.adopt(fresh)

    def _delay(self) -> float:
        if self.backoff_steps:
            base = min(self.max_backoff, self.interval * (2 ** min(self.backoff_steps, 10)))
        else:
            base = self.interval
        return float(base * random.uniform(0.5, 1.0))

    async def _session(self) -> SessionReport:
        """Sync with the parent; while it cannot be reached, with the first fallback ancestor that can."""
        EXCHANGE.set(uuid.uuid4().hex[:12])  # names this session in every log line written during it
        try:
            return await sync_once(
                self.store, self.transport, budget=self.budget, context=self.context, trust=self.trust
            )
        except TransportError as down:
            if not self.fallbacks or self.failures < 1:
                raise  # one failure may be a blip: retry the parent once before going round it
            parent = self.store.directory.parent(self.store.node_id) or ""
            await _quietly(self.store.record_exchange(parent, ok=False, error=down.message))
            for fallback in self.fallbacks:
                try:
                    report = await sync_once(
                        self.store, fallback, budget=self.budget, context=self.context, trust=self.trust
                    )
                except TransportError:
                    continue
                log.info("parent %s unreachable; synced with %s instead", parent, report.peer)
                return report
            raise

    def _failed(self, parent: str, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.time()
        if not self.warned and self.failures >= WARN_AFTER_FAILURES:
            self.warned = True
            log.warning(
                "cannot sync with %s: %d attempts in %.0f s failed (last: %s); work waits here and goes up when "
                "the link returns",
                parent,
                self.failures,
                time.time() - self.down_since,
                self.last_error,
            )
        self._tell(None, exc)

    def _succeeded(self, parent: str, report: SessionReport) -> None:
        if report.peer in ("", parent):
            if self.warned and self.down_since is not None:
                log.warning("synced with %s again after %.0f s", parent, time.time() - self.down_since)
            self.warned = False
            self.going_round = ""
            self.down_since = None
        elif self.going_round != report.peer:
            # Work moves again, but the parent is still dark: said once, and the outage warning stands.
            self.going_round = report.peer
            log.warning("%s cannot be reached; syncing with %s instead until it returns", parent, report.peer)
        self._tell(report, None)

    def _tell(self, report: SessionReport | None, exc: BaseException | None) -> None:
        for observer in self.observers:
            try:
                observer(report, exc)
            except Exception:
                log.exception("a session observer failed")

    async def _run(self) -> None:
        parent = self.store.directory.parent(self.store.node_id)
        assert parent is not None
        while True:
            self._wake.clear()
            started = time.monotonic()
            timed_out = False
            try:
                report = await self._session()
            except SanjiError as exc:
                # A timeout paces itself (nothing came back for the whole idle limit, and the transport has
                # already tried a fresh connection): growing the backoff on top would only add to the time
                # a returned link waits. Refusals come back at once and do back off.
                timed_out = isinstance(exc, TransportError) and exc.timed_out
                self._suspect(True)
                self.failures += 1
                self.backoff_steps += 0 if timed_out else 1
                self.last_error = exc.message
                log.info(
                    "sync with %s failed (%s); retrying%s", parent, exc.message, "" if timed_out else " with backoff"
                )
                await _quietly(self.store.record_exchange(parent, ok=False, error=exc.message))
                self._failed(parent, exc)
            except Exception as exc:  # a bug must not stop the node from retrying
                self.failures += 1
                self.backoff_steps += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("sync with %s crashed", parent)
                await _quietly(self.store.record_exchange(parent, ok=False, error=self.last_error))
                self._failed(parent, exc)
            else:
                self._succeeded(parent, report)
                self._suspect(False)
                self.failures = 0
                self.backoff_steps = 0
                self.last_error = ""
                self.sessions += 1
                await self.store.record_exchange(
                    report.peer or parent,
                    ok=True,
                    sent=report.bytes_sent,
                    received=report.bytes_received,
                    skew_ms=report.skew_ms,
                )
                await _quietly(self._learn(report))
                if report.pulled or report.pushed:
                    continue  # more may be waiting; go again at once
            delay = self._delay()
            if self.failures:
                if timed_out:
                    delay -= time.monotonic() - started  # the wait for the timeout was part of the pause
                # Local changes do not cut it short: a busy desk on a dead link would otherwise never back off.
                await asyncio.sleep(max(0.0, delay))
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                pass


async def _quietly(coro: object) -> None:
    try:
        await coro  # type: ignore[misc]
    except Exception:
        log.exception("could not record what an exchange did")
