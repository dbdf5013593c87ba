"""Whether a desk is told its link to the parent is down: one reading for the home page and the errand page.

A single failed exchange is a blip the next one mends; three in a row with work waiting is what a clerk must
hear about, so that she knows her work is kept here and goes up by itself, and where to carry it if it stays down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protocol.ledger import DELIVERED, QUEUED
from protocol.stages import ESCALATED, SUBMITTED
from protocol.topology import CITY, COUNTY, TOWN, VILLAGE, Directory

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


# Where a hand-off in transit stands (``Store.handoffs``), in the words of a desk: kept here and going by itself,
# lest the clerk do it again, or already with the receiver, which has not signed for it (接收) yet.
_RECEIVER_LEVEL = {
    TOWN: ("乡镇", "the township"),
    COUNTY: ("县级", "the county"),
    CITY: ("市级", "the city"),
    VILLAGE: ("村代办点", "the village"),
}
_GOES = {SUBMITTED: ("报送", "up"), ESCALATED: ("上报", "up")}


def handoff_words(handoff: str, stage: str, receiver_role: str, *, short: bool = False) -> tuple[str, str] | None:
    """What a page says of an errand in transit whose hand-off is ``queued`` here or ``delivered`` to a receiver of
    ``receiver_role`` (``None`` for ``""``: another node wrote it, or the errand is not in transit). ``short``:
    the marker a list row shows beside the stage."""
    if handoff == QUEUED:
        if short:
            return ("待发送", "not sent yet")
        if stage in _GOES:
            verb, way = _GOES[stage]
            return (f"待发送（网络恢复后自动{verb}）", f"not sent yet: it goes {way} by itself when the link is back")
        return ("待发送（下级同步时自动下送）", "not sent yet: it goes down by itself when the node below syncs")
    if handoff == DELIVERED:
        if short:
            return ("已送达", "delivered")
        zh, en = _RECEIVER_LEVEL.get(receiver_role, ("对方", "the receiver"))
        return (f"已送达{zh}，待接收", f"delivered to {en}, not received there yet")
    return None


def handoff_view(
    directory: Directory, row: Mapping[str, Any], handoff: str, *, short: bool = False
) -> dict[str, str] | None:
    """Where an errand's hand-off stands (``Store.handoffs``), as a page shows it: its state and its words."""
    to = row.get("pending_to") or ""
    words = handoff_words(handoff, row.get("stage", ""), directory.role(to) if to in directory else "", short=short)
    return {"state": handoff, "zh": words[0], "en": words[1]} if words is not None else None
