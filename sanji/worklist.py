"""The order of a desk's worklist: 特办件 (urgent and special, seed 000's 七件管理) first.

Within each group the store's order (oldest registration first) is kept; sorting is stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

URGENT = "特办件"


def prioritised(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: row.get("errand_kind") != URGENT)
