"""The attachments applied attach actions name, kept as rows (``schema.attachments``, migration 0030).

``Blobs.attachments`` and ``Blobs.attachment_errands`` (every sync exchange, every download) used to read the
body of every applied attach action held and decode each to learn the hash it names: work growing with the
whole store. The row of an attach action is here exactly while its status is ``applied``: every place that
writes an action's status (``Store._recompute`` for a local step, ``Intake.flush`` at the end of a push, or a
frame at a time) hands this module the attach actions whose status turned ``applied`` and those whose status
turned from it, in the same transaction. An action's row in `actions` is never deleted, and its other
columns change only when the author's copy replaces a foreign one, which is never applied; archiving an
attachment (``sanji.store.archive``) drops bytes, not actions, so it changes nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.actions import Action
from sanji.store import bulk
from sanji.store import schema as t

KIND = "attach"
_CHUNK = 4000  # values in one IN list (SQLite's limit on bound values is far above it)


def row(action: Action) -> dict[str, Any]:
    """The row of ``attachments`` an applied attach ``action`` stands for."""
    return {
        "action": action.id,
        "blob": str(getattr(action, "blob", "")),
        "size": int(getattr(action, "size", 0)),
        "errand": action.errand,
        "scope": action.scope,
    }


async def write(conn: AsyncConnection, applied: Iterable[Action], unapplied: Iterable[str]) -> None:
    """Attach actions whose status turned ``applied`` get their rows, those (by id) whose status turned from
    it lose theirs; nothing is sent when neither has any (a push without attachments costs no statement)."""
    rows = {r["action"]: r for r in map(row, applied)}  # one row an id: PostgreSQL updates a row once a statement
    gone = sorted(set(unapplied) - rows.keys())
    for part in _chunks(gone):
        await conn.execute(delete(t.attachments).where(t.attachments.c.action.in_(part)))
    if rows:
        await bulk.upsert_many(conn, t.attachments, [rows[k] for k in sorted(rows)], keys=("action",))


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]
