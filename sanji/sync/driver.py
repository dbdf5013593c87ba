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
from typing import Any

import msgspec

from protocol.deadlines import business_today
from protocol.errors import SanjiError
from protocol.exchange import (
    Absorb,
    Command,
    ConfirmPositions,
    Cursors,
    FramesAfter,
    Now,
    PeerAcked,
    PeerHolds,
    PeerRecord,
    Recovered,
    Send,
    Take,
    Tally,
    child_session,
)
from protocol.hlc import wall_ms
from protocol.session import (
    BLOB_CHUNK_BYTES,
    DEFAULT_BUDGET_BYTES,
    BlobGet,
    BlobPut,
    CursorsRequest,
    CursorsResponse,
    NodeReport,
    PushRequest,
    cursor_map,
)
from sanji.context import NodeContext
from sanji.observe.logs import EXCHANGE
from sanji.periodic import cancel, woken_or_timed_out
from sanji.store import Store, report_inputs
from sanji.store.business import BusinessBook
from sanji.sync.addresses import remember
from sanji.sync.report_memo import memo_for
from sanji.sync.requests_auth import RequestSigner
from sanji.sync.transport import Transport, TransportError
from sanji.sync.trust_step import ChildTrust

log = logging.getLogger("sanji.sync")
# Its own generator: jitter never draws from (or disturbs) the global one other code may seed.
_JITTER = random.Random()
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
    signer: RequestSigner | None = None,
) -> SessionReport:
    """One full exchange with the parent (or the ancestor ``transport`` reaches). Raises SanjiError on failure."""
    if store.directory.parent(store.node_id) is None:
        return SessionReport()
    ready(store, transport, signer)
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


def ready(store: Store, transport: Transport, signer: RequestSigner | None = None) -> None:
    """Make ``transport`` a link of this node: every request signed, addressed to the parent first.

    ``signer``: the node's one signer, whose turn every link takes (``RequestSigner.turn``); a link of
    its own otherwise (a test's single link)."""
    if getattr(transport, "signer", None) is None:
        transport.signer = signer or RequestSigner(store.node_id, store)  # every request carries the signature
    ancestors = [n for n in store.directory.path(store.node_id) if n != store.node_id]
    transport.ancestors = frozenset(ancestors)
    if not transport.recipient:  # addressed to the parent; a fallback link says which ancestor it is
        transport.recipient = store.directory.parent(store.node_id) or ""


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
    """The steps of ``protocol.exchange.child_session``, answered with the store and the transport;
    returns the node that answered."""
    host = _Host(store, transport, context, report, day, trust)
    steps = child_session(store.node_id, store.directory, budget=budget, tally=host.tally)
    answer: Any = None
    try:
        while True:
            try:
                command = steps.send(answer)
            except StopIteration:
                break
            answer = await host.perform(command)
    finally:
        report.requests += host.tally.requests
        report.pushed += host.tally.pushed
        report.pulled += host.tally.pulled
        report.refused += host.tally.refused
    if host.tally.still_behind:
        log.warning("own batches of %s are still on their way down; not sealing yet", host.tally.still_behind)
    return host.tally.peer


class _Host:
    """Answers the commands of one session (see ``protocol.exchange`` for what each expects)."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        context: NodeContext | None,
        report: SessionReport,
        day: str,
        trust: ChildTrust | None,
    ) -> None:
        self.store, self.transport, self.context, self.report = store, transport, context, report
        self.day, self.trust = day, trust
        self.tally = Tally()
        self.sent: CursorsRequest | None = None  # the opening request as sent (trust documents added)

    async def perform(self, command: Command) -> Any:
        store = self.store
        if isinstance(command, Send):
            request = command.request
            if isinstance(request, CursorsRequest):
                return await self._cursors(request)
            if isinstance(request, PushRequest):
                pushed = await self.transport.push(request)
                for result in pushed.results:
                    if result.status == "refused":
                        log.warning("parent refused a batch: %s %s", result.error, result.message)
                return pushed
            return await self.transport.pull(request)
        if isinstance(command, Now):
            return store.clock.now()
        if isinstance(command, Cursors):
            return await store.cursors_in(command.which)
        if isinstance(command, Absorb):
            await self._absorb(command.reply)
            return None
        if isinstance(command, PeerHolds):
            await store.record_peer_cursors(command.peer, dict(command.cursors), exact=True)
            return None
        if isinstance(command, PeerRecord):
            return await store.peer_cursors(command.peer)
        if isinstance(command, PeerAcked):
            await store.record_peer_cursors(command.peer, dict(command.cursors))
            return None
        if isinstance(command, FramesAfter):
            return await store.frames_after(dict(command.after), command.budget)
        if isinstance(command, Take):
            outcome = await store.receive(command.frames, peer=command.peer)
            return outcome.results
        if isinstance(command, Recovered):
            # An ancestor held more of this node's own streams than this node does: it was restored from
            # an old backup and took its own batches back; never reissue a number the lost copy issued.
            log.warning("restored from an older copy: the parent held newer batches of %s", list(command.streams))
            await store.note_recovery(list(command.streams))
            return None
        if isinstance(command, ConfirmPositions):
            await store.confirm_positions(by_parent=command.by_parent)
            return None
        await store.seal_outbox()
        return None

    async def _cursors(self, request: CursorsRequest) -> CursorsResponse:
        """The opening request, with what travels beside the cursors: reports, catalogue and calendar
        versions, trust."""
        store, context, memo, recipient = self.store, self.context, memo_for(self.store), self.transport.recipient
        reports: tuple[NodeReport, ...] = ()
        built: tuple[NodeReport, ...] = ()
        inputs: tuple[int, ...] = ()
        version = calendar_version = rules_version = 0
        if context is not None:
            version, calendar_version = context.catalogue_version, context.calendar_version
            rules_version = context.rules_version
            # Asked first, from what is known without reading: an idle exchange builds no report at all.
            inputs = (
                report_inputs.epoch(store.db),
                version,
                calendar_version,
                rules_version,
                round(context.clock_offset_ms / 1000),
            )
            if memo.due(recipient, inputs):
                own = await store.own_report(
                    catalogue_version=version, clock_offset_ms=context.clock_offset_ms, day=self.day
                )
                own = msgspec.structs.replace(
                    own,
                    calendar_version=calendar_version,
                    rules_version=rules_version,
                    business=await BusinessBook(store).own_latest(),
                )
                built = (own, *await store.reports())
                reports = memo.news(recipient, built)
        request = msgspec.structs.replace(
            request,
            catalogue_version=version,
            calendar_version=calendar_version,
            rules_version=rules_version,
            reports=reports,
            instance=store.instance_id,
        )
        if self.trust is not None:
            request = await self.trust.extend(request, self.transport)
        self.sent = request
        try:
            reply = await self.transport.cursors(request)
            memo.carried(recipient, reports, inputs=inputs, built=built)
            return reply
        except BaseException:
            store.sealing_paused = False  # a rotation asked for and not answered: the old key signs on, retried later
            raise

    async def _absorb(self, reply: CursorsResponse) -> None:
        store, context, report = self.store, self.context, self.report
        report.peer = reply.node
        if reply.node == store.directory.parent(store.node_id):
            report.addresses = reply.addresses  # where the parent reaches its ancestors (sanji.sync.addresses)
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
            if reply.rules:
                try:
                    await context.offer_rules(reply.rules)
                except SanjiError as exc:  # a forged or altered copy is never kept; the held one stays
                    log.warning("the parent's assessment rules were refused: %s", exc.message)
                    await store.log_event("rules_refused", reply.node, {"message": exc.message})
        if self.trust is not None and self.sent is not None:
            await self.trust.absorb(self.sent, reply, self.transport)  # before sealing: a rotated key signs next
        if reply.reclaim:
            lost = sorted(str(k) for k in cursor_map(reply.reclaim))
            log.warning("parent %s lost its own batches %s; giving them back", reply.node, lost)


class BlobBudget:
    """The node's attachment bytes for today over its links (``[sync] daily_attachment_bytes``, 0: no
    limit), counted as ``blob`` traffic: what the sync session and fetching back move share it."""

    def __init__(self, store: Store, context: NodeContext | None) -> None:
        self.store = store
        self.limit = context.daily_blob_budget if context is not None else 0
        self.day = _today(context)
        self.spent = 0

    async def load(self) -> BlobBudget:
        self.spent = (await self.store.traffic(self.day)).get("blob", 0)
        return self

    def allowed(self) -> bool:
        return self.limit <= 0 or self.spent < self.limit

    async def spend(self, count: int) -> None:
        self.spent = await self.store.add_traffic("blob", count, day=self.day)


async def _attachments(
    store: Store, transport: Transport, parent: str, report: SessionReport, context: NodeContext | None
) -> None:
    """Move whole attachments both ways in chunks, resuming where a dropped transfer stopped.

    Stops for the day when the node's daily byte budget for attachments is spent; what is
    left waits (and is shown as deferred) until tomorrow or a better link.
    """
    budget = await BlobBudget(store, context).load()
    allowed = budget.allowed

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
            await budget.spend(len(chunk))
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
            await budget.spend(len(got.data))
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
        signer: RequestSigner | None = None,
    ) -> None:
        self.store = store
        self.trust = trust
        # One signer for every link, taking turns with whatever else signs for this node (a fetch back).
        self.signer = signer or RequestSigner(store.node_id, store)
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
        try:
            await cancel(self._task)
        finally:  # the links are closed even when the loop had ended on an error ``cancel`` raises
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
        return float(base * _JITTER.uniform(0.5, 1.0))

    async def _session(self) -> SessionReport:
        """Sync with the parent; while it cannot be reached, with the first fallback ancestor that can."""
        EXCHANGE.set(uuid.uuid4().hex[:12])  # names this session in every log line written during it
        try:
            return await sync_once(
                self.store,
                self.transport,
                budget=self.budget,
                context=self.context,
                trust=self.trust,
                signer=self.signer,
            )
        except TransportError as down:
            if not self.fallbacks or self.failures < 1:
                raise  # one failure may be a blip: retry the parent once before going round it
            parent = self.store.directory.parent(self.store.node_id) or ""
            await _quietly(self.store.record_exchange(parent, ok=False, error=down.message))
            for fallback in self.fallbacks:
                try:
                    report = await sync_once(
                        self.store,
                        fallback,
                        budget=self.budget,
                        context=self.context,
                        trust=self.trust,
                        signer=self.signer,
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
                # quietly, as after a failure: a record the database refuses (busy, restarting) must not end the loop
                await _quietly(
                    self.store.record_exchange(
                        report.peer or parent,
                        ok=True,
                        sent=report.bytes_sent,
                        received=report.bytes_received,
                        skew_ms=report.skew_ms,
                    )
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
            await woken_or_timed_out(self._wake, delay)


async def _quietly(coro: object) -> None:
    try:
        await coro  # type: ignore[misc]
    except Exception:
        log.exception("could not record what an exchange did")
