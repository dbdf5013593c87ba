"""上报件 waiting for a county department: the department's inbox (部门收件箱), read from the projected errands.

A township escalates an errand to a named department (``HandOff(purpose="escalate", department=…)``);
the errand is on its way (``escalated``, ``pending_to`` this node) until the department signs for it, then
at the department (``at_department``, or ``supplement`` while it waits for materials the department asked
for) until it decides, returns or terminates it. The ``department`` column keeps the name the escalation
gave. So the inbox is every errand with a department that is on its way here or held here in one of
those stages — a decided errand has left it.

Bounded: one page (at most ``MAX_PAGE`` rows) and the counts of the whole inbox, never every row; the
counts are SQL counts. Read-only; the state it reads is the projection every replica computes.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, and_, func, or_, select

from protocol.stages import AT_DEPARTMENT, ESCALATED, SUPPLEMENT
from sanji.store import schema as t
from sanji.store.engine import Database
from sanji.store.rows import plain

AT_THE_DEPARTMENT = (AT_DEPARTMENT, SUPPLEMENT)  # signed for: the department's clock runs (or is stopped)
MAX_PAGE = 500
MAX_DEPARTMENTS = 200  # the names a select offers; a county has a few dozen departments


class InboxCounts(msgspec.Struct, kw_only=True):
    """The whole inbox (of one department, if named), not only the page shown."""

    total: int
    to_receive: int  # escalated here, not yet signed for
    overdue: int  # the whole errand's deadline has passed (the clock not stopped)
    stage_overdue: int  # the department's own stage deadline has passed


class _Since(msgspec.Struct, kw_only=True):
    stage_since: int = 0  # hybrid-clock time of the receive that began the errand's current stage


_since = msgspec.msgpack.Decoder(_Since)


def _in_inbox(node: str, department: str) -> ColumnElement[bool]:
    e = t.errands.c
    held = (e.holder == node) & e.pending_to.is_(None) & e.stage.in_(AT_THE_DEPARTMENT)
    coming = (e.pending_to == node) & (e.stage == ESCALATED)
    where = and_(e.department != "", or_(held, coming))
    return where & (e.department == department) if department else where


async def department_inbox(
    db: Database, node: str, *, today: date, department: str = "", limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], InboxCounts]:
    """A page of the errands escalated to ``node``'s departments (``department``'s alone when named), the
    earliest whole deadline first (those without one last), and the counts of all of them.

    Each row is the ``errands`` row, with ``received_at``: the hybrid-clock time the department signed
    for it (0 while it is on its way).
    """
    e = t.errands.c
    where = _in_inbox(node, department)
    query = (
        select(t.errands)
        .where(where)
        .order_by(e.due == "", e.due, e.registered_at, e.id)
        .limit(max(1, min(limit, MAX_PAGE)))
        .offset(max(0, offset))
    )
    day = today.isoformat()
    running = e.paused.is_(False)
    counts = select(
        func.count(),
        func.count().filter(e.pending_to == node),
        func.count().filter((e.due != "") & (e.due < day) & running),
        func.count().filter((e.stage_due != "") & (e.stage_due < day) & running),
    ).where(where)
    async with db.reader.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
        total, to_receive, overdue, stage_overdue = (await conn.execute(counts)).one()
    out = []
    for row in rows:
        item = plain(row)
        held = item["pending_to"] is None
        item["received_at"] = _since.decode(item["state"]).stage_since if held and item["state"] else 0
        out.append(item)
    return out, InboxCounts(
        total=int(total), to_receive=int(to_receive), overdue=int(overdue), stage_overdue=int(stage_overdue)
    )


async def inbox_departments(db: Database, node: str) -> list[str]:
    """The departments with an errand in ``node``'s inbox now (at most ``MAX_DEPARTMENTS``), by name."""
    e = t.errands.c
    query = select(e.department).where(_in_inbox(node, "")).distinct().order_by(e.department).limit(MAX_DEPARTMENTS)
    async with db.reader.connect() as conn:
        return [str(d) for d in (await conn.execute(query)).scalars()]
