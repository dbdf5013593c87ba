"""The archiving rule's two newer clauses (issue 16): bytes fetched back stay ``after_days`` again, and an
ancestor's answer is kept only if it is exactly the attachment."""

from __future__ import annotations

import hashlib

from protocol.archive import DAY_S, Archivable, archive_verdict, fetched_back
from protocol.stages import ANSWERED

CLOSED = sorted(ANSWERED)[0]


def verdict(*, held_since: float, now: float) -> Archivable | str:
    return archive_verdict(
        has_children=False,
        errands={"E1"},
        closed={"E1": (CLOSED, 0.0)},
        acknowledged_by={"T01"},
        ancestors=["T01", "C"],
        after_days=90,
        now=now,
        held_since=held_since,
    )


def test_bytes_fetched_back_stay_after_days_again() -> None:
    assert verdict(held_since=0.0, now=91 * DAY_S) == Archivable("T01", 0.0)
    # Opened (fetched back) on day 80: kept until day 170, whatever the errand's age.
    assert verdict(held_since=80 * DAY_S, now=91 * DAY_S) == "held_recently"
    assert verdict(held_since=80 * DAY_S, now=169 * DAY_S) == "held_recently"
    assert verdict(held_since=80 * DAY_S, now=171 * DAY_S) == Archivable("T01", 0.0)


def test_only_the_exact_bytes_are_kept() -> None:
    scan = bytes(range(256)) * 10
    digest = hashlib.sha256(scan).hexdigest()
    assert fetched_back(digest, len(scan), scan) is None
    assert "bytes" in (fetched_back(digest, len(scan), scan[:-1]) or "")
    assert "bytes" in (fetched_back(digest, len(scan), scan + b"x") or "")
    altered = bytes([scan[0] ^ 1]) + scan[1:]
    assert "does not hash" in (fetched_back(digest, len(scan), altered) or "")
    assert fetched_back(digest, 0, b"") is not None  # the empty file is not every attachment
