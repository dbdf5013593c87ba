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
