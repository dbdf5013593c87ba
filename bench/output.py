"""How every benchmark hands over its result: one JSON document, written to ``--out`` and printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def publish(result: dict[str, Any], out: Path) -> None:
    """Write ``result`` to ``out`` (folders made as needed) and print the same text."""
    text = json.dumps(result, ensure_ascii=False, indent=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    print(text)
