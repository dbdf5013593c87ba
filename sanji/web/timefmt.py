"""Times as a person at a desk reads them: China Standard Time, and "3 分钟前" where that reads better.

Stores keep seconds since the epoch (UTC); screens never show those numbers. Every node shows the
same wall time whatever its machine's time zone, because the county works on Beijing time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

from sanji.bilingual import Pair
from sanji.web.language import bi

if TYPE_CHECKING:
    from jinja2.runtime import Context

CST = timezone(timedelta(hours=8), "CST")


def cst(seconds: Any) -> str:
    """``2026-12-05 11:03`` (China Standard Time); "—" for nothing or nonsense."""
    try:
        moment = datetime.fromtimestamp(float(seconds), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return "—"
    return moment.astimezone(CST).strftime("%Y-%m-%d %H:%M")


def ago_pair(seconds: Any, now: float | None = None) -> Pair | str:
    """How long ago, as a pair (``Pair("3 分钟前", "3 min ago")``); the date itself once it is over a week old."""
    try:
        then = float(seconds)
    except (TypeError, ValueError):
        return "—"
    if then <= 0:
        return "—"
    delta = (time.time() if now is None else now) - then
    if delta < 0:  # a clock ahead of ours: say when, not "in the future"
        return cst(then)
    if delta < 60:
        return Pair("刚刚", "just now")
    if delta < 3600:
        minutes = int(delta // 60)
        return Pair(f"{minutes} 分钟前", f"{minutes} min ago")
    if delta < 86400:
        hours = int(delta // 3600)
        return Pair(f"{hours} 小时前", f"{hours} h ago")
    if delta < 7 * 86400:
        days = int(delta // 86400)
        return Pair(f"{days} 天前", f"{days} d ago")
    return cst(then)


def ago(seconds: Any, now: float | None = None) -> str:
    """How long ago, Chinese first: ``3 分钟前 3 min ago`` (a page puts it in the reader's order: ``ago_in_order``)."""
    said = ago_pair(seconds, now)
    return f"{said.zh} {said.en}" if isinstance(said, Pair) else said


def ago_in_order(ctx: Context, seconds: Any) -> Markup:
    """``{{ t | ago }}`` on a page: ``ago`` in the reader's language first, the other in its ``<span lang>``."""
    said = ago_pair(seconds)
    return bi(ctx, said) if isinstance(said, Pair) else Markup(escape(said))


def register(engine: Any) -> None:
    """Litestar's ``engine_callback``: the filters every template may use."""
    from jinja2 import pass_context

    engine.engine.filters["cst"] = cst
    engine.engine.filters["ago"] = pass_context(ago_in_order)
