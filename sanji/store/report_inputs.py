"""Whether what a node report is made of may have changed: a counter the report memo asks first.

Building the reports of an exchange (``Views.own_report``, ``Documents.reports``, the business
reports) reads a dozen tables, and on most exchanges the memo (``sanji.sync.report_memo``) then drops
everything as "no news". So the writer engine counts, in this process, every INSERT, UPDATE or DELETE
on a table a report is read from; while the count, the context's versions and the clock offset are
what they were when the link last carried the reports, and no heartbeat or minute of waiting age is
due, nothing is built. Writes that happen on every exchange without changing a report stay out of the
count: the exchange record (only a changed ``last_error`` counts, ``touch``), the day's traffic
counter (not news), the parent's cursors when they are what is held (``Store.record_peer_cursors``
then writes nothing).

The count lives in the process, like the memo: a write by another process (a command run beside the
node) is seen at the next heartbeat at the latest. A rolled-back write may count; that only builds
the reports once for nothing.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, event

from sanji.store.engine import Database

# The tables Views.own_report, Documents.reports and BusinessBook.own_latest read.
WATCHED = frozenset(
    {
        "outbox",
        "actions",
        "streams",
        "peer_acks",
        "held",
        "quarantine",
        "errands",
        "batches",
        "business_reports",
        "node_reports",
    }
)


class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


_counts: WeakKeyDictionary[Engine, _Count] = WeakKeyDictionary()


def _watch(engine: Engine) -> _Count:
    count = _Count()

    def after(_conn: Any, _cursor: Any, _sql: str, _params: Any, context: Any, _many: bool) -> None:
        if context is None or not (context.isinsert or context.isupdate or context.isdelete):
            return
        table = getattr(getattr(context.compiled, "statement", None), "table", None)
        if getattr(table, "name", None) in WATCHED or table is None:
            count.value += 1

    event.listen(engine, "after_cursor_execute", after)
    _counts[engine] = count
    return count


def epoch(db: Database) -> int:
    """How many writes to the report's tables this process has seen (watching starts at the first call)."""
    engine = db.writer.sync_engine
    count = _counts.get(engine)
    if count is None:
        count = _watch(engine)
    return count.value


def touch(db: Database) -> None:
    """Something a report says changed outside the watched tables (the parent's ``last_error``)."""
    count = _counts.get(db.writer.sync_engine)
    if count is not None:
        count.value += 1


def wrote(engine: Engine, table: str) -> None:
    """A write to ``table`` the listener cannot tell apart: SQL handed to the driver as it is
    (``sanji.store.rows.upsert``) has no compiled statement to name its table."""
    if table in WATCHED and (count := _counts.get(engine)) is not None:
        count.value += 1
