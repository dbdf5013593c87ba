"""Which node reports a link has already carried, so an idle exchange does not carry them again.

Every opening request used to carry the sender's own report and the latest of each node below it,
business reports included: most of an idle exchange's bytes, and a write at the parent each time. A
report now goes up when it says something new (anything but its time, the day's byte counter, the age
of waiting work within the same minute and the clock offset within the same second) or, as a
heartbeat, when the link last carried it ``HEARTBEAT_S`` ago, so "last heard" at the county stays
within minutes (its warnings are in hours). The memo lives in the process: after a restart everything
is sent once more.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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

    def news(self, recipient: str, reports: Sequence[NodeReport], now: float | None = None) -> tuple[NodeReport, ...]:
        """The reports ``recipient`` has not had, or not for a heartbeat."""
        now = time.monotonic() if now is None else now
        out = []
        for report in reports:
            held = self._carried.get((recipient, report.node))
            if held is None or held[0] != fingerprint(report) or now - held[1] >= HEARTBEAT_S:
                out.append(report)
        return tuple(out)

    def carried(self, recipient: str, reports: Sequence[NodeReport], now: float | None = None) -> None:
        """``recipient`` answered the request that carried ``reports``."""
        now = time.monotonic() if now is None else now
        for report in reports:
            self._carried[(recipient, report.node)] = (fingerprint(report), now)


_memos: WeakKeyDictionary[object, ReportMemo] = WeakKeyDictionary()


def memo_for(store: object) -> ReportMemo:
    """One memo per store (per node) in this process."""
    memo = _memos.get(store)
    if memo is None:
        memo = _memos[store] = ReportMemo()
    return memo
