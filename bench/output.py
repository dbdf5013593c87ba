"""How every benchmark hands over its result: one JSON document, written to ``--out`` and printed, and its chart."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.chart import chart


def publish(result: dict[str, Any], out: Path) -> None:
    """Write ``result`` to ``out`` (folders made as needed), print the same text, and draw it beside ``out`` as PNG.

    The JSON is written first and stands alone: without matplotlib (a dev dependency) the chart is skipped with a
    word on stderr, so a long run's result is never lost to a missing plotting library.
    """
    text = json.dumps(result, ensure_ascii=False, indent=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    print(text)
    try:
        png = chart(result, out)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "matplotlib":
            raise
        print(f"no chart: matplotlib is not installed (`make install` adds it); {out} has the result", file=sys.stderr)
        return
    if png is None:
        print(f"no chart: {out} has no figure with a baseline or a target to draw", file=sys.stderr)
    else:
        print(f"chart: {png}", file=sys.stderr)
