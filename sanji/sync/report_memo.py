"""Which node reports a link has already carried, so an idle exchange does not carry them again.

Every opening request used to carry the sender's own report and the latest of each node below it,
business reports included: most of an idle exchange's bytes, and a write at the parent each time. A
report now goes up when it says something new (anything but its time, the day's byte counter, the age
of waiting work within the same minute and the clock offset within the same second) or, as a
heartbeat, when the link last carried it ``HEARTBEAT_S`` ago, so "last heard" at the county stays
within minutes (its warnings are in hours). The memo lives in the process: after a restart everything
is sent once more.

Building the reports costs a dozen reads, so the driver asks ``due`` first with what it can know
without reading: the store's count of writes to the report's tables (``sanji.store.report_inputs``),
the context's versions and the clock offset. While those are what they were when the link last
carried the reports, no heartbeat is due and the own report's waiting age has not reached its next
minute, nothing in them can be news and nothing is built.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from weakref import WeakKeyDictionary

import msgspec

from protocol.encoding import encode
from protocol.session import NodeReport

HEARTBEAT_S = 300.0


def fingerprint(report: NodeReport) -> bytes:
    """What a report says, leaving out what changes on every exchange without news."""
    quiet = msgspec.structs.replace(
        report,
        at=0,
        bytes_sent_today=0,
        oldest_unacked_s=float(int(report.oldest_unacked_s // 60)),
        clock_offset_ms=round(report.clock_offset_ms / 1000),  # milliseconds of jitter either way are not news
    )
    return encode(quiet)


class ReportMemo:
    def __init__(self) -> None:
        self._carried: dict[tuple[str, str], tuple[bytes, float]] = {}
        # Per recipient: the inputs the reports were last built from, and when the own report's waiting
        # age (counted in minutes by the fingerprint) reaches its next minute.
        self._built: dict[str, tuple[Hashable, float]] = {}

    def due(self, recipient: str, inputs: Hashable, now: float | None = None) -> bool:
        """Whether the reports may hold news for ``recipient``: asked before building them.

        ``inputs`` is everything they are built from that can be known without reading them (the store's
        write count, the context's versions). False only when ``recipient`` answered a request whose
        reports were built from the same inputs, no report it was given is due as a heartbeat and the
        waiting age has not moved to another minute.
        """
        now = time.monotonic() if now is None else now
        built = self._built.get(recipient)
        if built is None or built[0] != inputs or now >= built[1]:
            return True
        heard = [at for (to, _), (_, at) in self._carried.items() if to == recipient]
        return not heard or any(now - at >= HEARTBEAT_S for at in heard)

    def news(self, recipient: str, reports: Sequence[NodeReport], now: float | None = None) -> tuple[NodeReport, ...]:
        """The reports ``recipient`` has not had, or not for a heartbeat."""
        now = time.monotonic() if now is None else now
        out = []
        for report in reports:
            held = self._carried.get((recipient, report.node))
            if held is None or held[0] != fingerprint(report) or now - held[1] >= HEARTBEAT_S:
                out.append(report)
        return tuple(out)

    def carried(
        self,
        recipient: str,
        reports: Sequence[NodeReport],
        now: float | None = None,
        *,
        inputs: Hashable = None,
        built: Sequence[NodeReport] = (),
    ) -> None:
        """``recipient`` answered the request that carried ``reports``, the news among ``built`` (the node's
        own report first), which were built from ``inputs`` (see ``due``; nothing built: nothing to
        remember about inputs)."""
        now = time.monotonic() if now is None else now
        for report in reports:
            self._carried[(recipient, report.node)] = (fingerprint(report), now)
        if built:
            # Only the own report's age grows by itself; the others are stored copies.
            waiting = built[0].oldest_unacked_s
            minute = now + (60.0 - waiting % 60.0) if waiting > 0 else float("inf")
            self._built[recipient] = (inputs, minute)


_memos: WeakKeyDictionary[object, ReportMemo] = WeakKeyDictionary()


def memo_for(store: object) -> ReportMemo:
    """One memo per store (per node) in this process."""
    memo = _memos.get(store)
    if memo is None:
        memo = _memos[store] = ReportMemo()
    return memo
