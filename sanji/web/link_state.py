"""Whether a desk is told its link to the parent is down: one reading for the home page and the errand page.

A single failed exchange is a blip the next one mends; three in a row with work waiting is what a clerk must
hear about, so that she knows her work is kept here and goes up by itself, and where to carry it if it stays down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LINK_DOWN_AFTER = 3  # failed exchanges in a row before the screens say the link is down


def parent_link_down(status: Mapping[str, Any]) -> bool:
    """``Store.status()``'s reading: a parent, ``LINK_DOWN_AFTER`` failures in a row, and work waiting to go up."""
    parent = status.get("parent")
    if not parent:
        return False
    failures = int((status.get("exchanges") or {}).get(parent, {}).get("failures", 0) or 0)
    return failures >= LINK_DOWN_AFTER and bool(status.get("queue_length"))


# The transport's words for "no answer", as ``SyncDriver`` records them (``TypeName: message``), read for a clerk.
_UNREACHABLE = ("ConnectError", "ConnectTimeout", "Connection refused", "All connection attempts failed")
_SLOW = ("ReadTimeout", "WriteTimeout", "PoolTimeout", "timed out")


def plain_link_error(last_error: str) -> tuple[str, str] | None:
    """A failed exchange's error in words a clerk reads (``None``: no plain reading; the raw text alone is shown)."""
    if any(word in last_error for word in _UNREACHABLE):
        return (
            "连不上对方：网络不通，或对方的电脑没有开",
            "Cannot reach it: the network is down or its computer is off",
        )
    if any(word in last_error for word in _SLOW):
        return ("对方没有及时应答：网络太慢或对方正忙", "No answer in time: the network is slow or it is busy")
    return None
