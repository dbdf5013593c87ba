"""联办 sub-tasks waiting for a county department: its inbox, read from the projected errands.

A co-handling department answers at its own desk at the county (``protocol.errand`` allows
``subtask_done`` there only), whoever holds the errand — usually the township window that
accepted it and leads it. So the department's inbox cannot be the custodian's worklist: it is
every live 联办件 the county holds whose sub-task for that department is still pending.
Read-only; the state it reads is the projection every replica computes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.stages import SUBTASK_OPEN
from sanji.store import schema as t
from sanji.store.engine import Database

JOINT = "联办件"


class OpenSubtask(msgspec.Struct, kw_only=True):
    """One sub-task a department still owes an answer on."""

    errand: str
    receipt: str
    matter: str
    applicant_name: str
    department: str  # whose sub-task
    lead: str  # the node leading the errand (the accepting township), whose window waits for the answer
    lead_window: str
    holder: str
    stage: str
    since: int  # hybrid-clock time of the acceptance that opened the sub-task
    due: str  # the whole errand's deadline: the department answers within it


READ_AT_MOST = 2000  # live 联办件 read for one look at the sub-tasks; the page says when more were left unread


async def open_subtasks(
    db: Database, department: str = "", *, read_at_most: int = READ_AT_MOST
) -> tuple[list[OpenSubtask], bool]:
    """Pending sub-tasks of the ``read_at_most`` oldest live 联办件, oldest first; only ``department``'s when it is
    named; and whether more 联办件 were left unread."""
    query = select(
        t.errands.c.id,
        t.errands.c.receipt,
        t.errands.c.matter,
        t.errands.c.applicant_name,
        t.errands.c.responsible,
        t.errands.c.window,
        t.errands.c.holder,
        t.errands.c.stage,
        t.errands.c.due,
        t.errands.c.state,
    ).where(
        t.errands.c.errand_kind == JOINT,
        t.errands.c.stage.in_(SUBTASK_OPEN),
        t.errands.c.pending_to.is_(None),
    )
    query = query.order_by(t.errands.c.registered_at, t.errands.c.id).limit(read_at_most + 1)
    async with db.reader.connect() as conn:
        found = (await conn.execute(query)).all()
        rows, more = found[:read_at_most], len(found) > read_at_most
        since = await _accepted_at(conn, [r.id for r in rows])
    out: list[OpenSubtask] = []
    for row in rows:
        if row.state is None:
            continue
        subtasks: dict[str, str] = msgspec.msgpack.decode(row.state).get("subtasks", {})
        for name, status in sorted(subtasks.items()):
            if status != "pending" or (department and name != department):
                continue
            out.append(
                OpenSubtask(
                    errand=row.id,
                    receipt=row.receipt,
                    matter=row.matter,
                    applicant_name=row.applicant_name,
                    department=name,
                    lead=row.responsible,
                    lead_window=row.window,
                    holder=row.holder,
                    stage=row.stage,
                    since=since.get(row.id, 0),
                    due=row.due,
                )
            )
    out.sort(key=lambda s: (s.since, s.errand, s.department))
    return out, more


async def open_subtask_count(db: Database, department: str, *, read_at_most: int = READ_AT_MOST) -> tuple[int, bool]:
    """How many sub-tasks ``department`` (every department, if '') still owes, reading at most
    ``read_at_most`` live 联办件 (the state of each is read to know); and whether more were left unread,
    so the count is a lower bound."""
    states = await _live_joint_states(db, read_at_most + 1)
    count = 0
    for state in states[:read_at_most]:
        if state:
            owed = _subtasks.decode(state).subtasks.items()
            count += sum(status == "pending" and (not department or name == department) for name, status in owed)
    return count, len(states) > read_at_most


async def subtask_departments(db: Database, *, read_at_most: int = READ_AT_MOST) -> list[str]:
    """The departments still owing a sub-task on the ``read_at_most`` oldest live 联办件 (those the 联办 inbox
    lists), by name: a name kept from the entry the errand was bound under, though a later catalogue renamed or
    dropped the department (``sanji.auth.places.known_places`` seats a clerk there to answer it)."""
    states = await _live_joint_states(db, read_at_most)
    owed = {
        name
        for state in states
        if state
        for name, status in _subtasks.decode(state).subtasks.items()
        if status == "pending"
    }
    return sorted(owed)


async def _live_joint_states(db: Database, limit: int) -> Sequence[bytes | None]:
    """The stored states of the ``limit`` oldest live 联办件 here (held, not on their way to another node)."""
    query = (
        select(t.errands.c.state)
        .where(
            t.errands.c.errand_kind == JOINT,
            t.errands.c.stage.in_(SUBTASK_OPEN),
            t.errands.c.pending_to.is_(None),
        )
        .order_by(t.errands.c.registered_at, t.errands.c.id)
        .limit(limit)
    )
    async with db.reader.connect() as conn:
        return (await conn.execute(query)).scalars().all()


class _Subtasks(msgspec.Struct):
    subtasks: dict[str, str] = msgspec.field(default_factory=dict)


_subtasks = msgspec.msgpack.Decoder(_Subtasks)


async def _accepted_at(conn: AsyncConnection, errand_ids: Iterable[str]) -> dict[str, int]:
    ids = list(errand_ids)
    out: dict[str, int] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = (
            await conn.execute(
                select(t.actions.c.errand, t.actions.c.at).where(
                    t.actions.c.errand.in_(chunk), t.actions.c.kind == "accept", t.actions.c.status == "applied"
                )
            )
        ).all()
        out.update({errand: at for errand, at in rows})
    return out
