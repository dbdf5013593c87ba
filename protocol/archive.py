"""When a node may drop an attachment's bytes: the one archiving rule (``sanji archive``, its duty).

An attachment may be archived at a node when

- the node has no children: a township or the county is where villages below fetch what they miss
  (a replaced laptop re-syncs from its parent, never from further up), so only leaves archive;
- every errand naming it (any attach action held, whatever its status) is delivered or filed
  (``ANSWERED``) and has been for ``after_days`` days; an errand named but not held counts as open;
- an ancestor on the node's own path acknowledged holding the bytes whole; an acknowledgement from
  any other node counts for nothing;
- the bytes have been held here for ``after_days`` too: one fetched back (someone opened it, or
  ``sanji archive --restore`` before a laptop goes offline) stays that long again.

Pure: the store gathers the facts and asks here both when it plans a run and again, under the write
lock, before it drops anything.

An archived attachment is fetched back from an ancestor when someone opens it (``fetched_back``):
the answer is kept only if it is exactly the recorded size and hashes to the attachment's name.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from protocol.stages import ANSWERED

DAY_S = 86_400.0

# Why an attachment is kept, in the order they are checked.
KEPT_REASONS = {
    "has_children": "nodes below fetch attachments from here: only a node with no children archives",
    "not_named": "no attach action held here names it",
    "errand_open": "an errand naming it is not delivered or closed",
    "too_recent": "an errand naming it closed less than after_days ago",
    "unacknowledged": "no ancestor has acknowledged holding it",
    "held_recently": "its bytes came (back) here less than after_days ago",
}
# The same reasons in Chinese, for a command's report (``sanji archive``).
KEPT_REASONS_ZH = {
    "has_children": "下级节点从这里取附件：只有没有下级的节点才归档",
    "not_named": "本节点没有提及它的附件操作",
    "errand_open": "提及它的办件尚未送达或办结",
    "too_recent": "提及它的办件办结未满 after_days 天",
    "unacknowledged": "尚无上级节点确认持有它",
    "held_recently": "它的内容来到（或取回到）这里未满 after_days 天",
}


@dataclass(frozen=True)
class Archivable:
    held_at: str  # the nearest ancestor that acknowledged it
    closed_at: float  # the latest close among its errands (wall-clock seconds)


def check_after_days(after_days: float) -> float:
    """``after_days`` if it is a finite, non-negative number of days (``nan`` would let everything go)."""
    if not math.isfinite(after_days) or after_days < 0:
        raise ValueError(f"after_days must be a finite number of days, not negative: {after_days!r}")
    return after_days


def archive_verdict(
    *,
    has_children: bool,
    errands: Collection[str],
    closed: Mapping[str, tuple[str, float]],
    acknowledged_by: Collection[str],
    ancestors: Sequence[str],
    after_days: float,
    now: float,
    held_since: float = 0.0,
) -> Archivable | str:
    """May the attachment go? ``Archivable``, or the reason it is kept (a key of ``KEPT_REASONS``).

    ``errands``: those naming it; ``closed``: errand -> (stage, wall-clock seconds of its last action);
    ``ancestors``: nearest first; ``held_since``: wall-clock seconds the bytes were last written here.
    """
    check_after_days(after_days)
    if has_children:
        return "has_children"
    if not errands:
        return "not_named"
    closed_at = 0.0
    for errand in errands:
        stage, at = closed.get(errand, ("", 0.0))
        if stage not in ANSWERED:
            return "errand_open"
        closed_at = max(closed_at, at)
    if now - closed_at < after_days * DAY_S:
        return "too_recent"
    holder = next((n for n in ancestors if n in acknowledged_by), None)
    if holder is None:
        return "unacknowledged"
    if now - held_since < after_days * DAY_S:
        return "held_recently"
    return Archivable(holder, closed_at)


def fetched_back(digest: str, size: int, data: bytes) -> str | None:
    """Why bytes an ancestor answered for an archived attachment are refused, or None when they are it.

    ``digest`` and ``size``: what the archive mark recorded (the attach action's own). Nothing short,
    long or altered is ever kept in its place.
    """
    if len(data) != size:
        return f"the answer is {len(data)} bytes; attachment {digest[:12]} is {size}"
    if hashlib.sha256(data).hexdigest() != digest:
        return f"the answer does not hash to attachment {digest[:12]}: altered on the way or at the sender"
    return None
