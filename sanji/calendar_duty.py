"""暂定期限核定: the custodian corrects deadlines computed on a provisional year once it is published.

A deadline that counts days of a year the county has not published is computed on the statutory
holidays alone and marked 暂定 (``Accept.due_provisional`` and friends). When the county's signed
calendar publishing that year reaches the node holding the errand, this duty recomputes the
deadlines from what the errand recorded — the acceptance day and limit, the closed pauses, the
extensions, the stage's start — on the node's calendar, and writes one ``deadline_corrected``
action by the system. The provisional dates stay in the history, in the actions that set them;
``protocol.errand`` refuses a correction of a deadline that was not provisional, one that names
other dates than the errand has, or one that changes nothing, so the duty cannot loop.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import msgspec

from protocol.actions import Accept, CorrectDeadline
from protocol.calendar_doc import BoundCalendar
from protocol.deadlines import CalendarUnknown, compute_due
from protocol.errand import LIVE, ErrandState, Projection
from protocol.errors import SanjiError
from protocol.topology import COUNTY
from sanji.context import NodeContext, due_from_acceptance, pauses_since
from sanji.service import accept_of, new_action_id
from sanji.store import Store

log = logging.getLogger("sanji.calendar_duty")
CALENDAR_ACTOR = "系统(工作日历核定)"
CALENDAR_ROLE = "工作日历核定"


class _Marks(msgspec.Struct, kw_only=True):
    """The part of a stored errand state this duty looks at first (the rest is skipped undecoded)."""

    due_provisional: bool = False
    stage_due_provisional: bool = False


_marks = msgspec.msgpack.Decoder(_Marks)


def marks_of(state_blob: bytes | None) -> _Marks:
    return _marks.decode(state_blob) if state_blob else _Marks()


def corrected(
    state: ErrandState, accept: Accept | None, context: NodeContext, bound: BoundCalendar
) -> tuple[str, str, bool, bool]:
    """The errand's (due, stage_due, due 暂定, stage_due 暂定) recomputed on ``bound``'s calendar.

    Everything comes from ``bound``, one snapshot: a calendar arriving meanwhile (the sync driver
    offers it while this duty runs) must not mix two versions in one correction.
    """
    calendar = bound.effective
    due, stage_due = state.due, state.stage_due
    due_marked, stage_marked = state.due_provisional, state.stage_due_provisional
    if state.due and accept is not None:
        # As the desk's own steps counted it (``due_from_acceptance``), now on the published year.
        accepted_on = context.date_of(accept.at)
        due = due_from_acceptance(accept, state.pauses, state.extended_days, calendar=calendar, date_of=context.date_of)
        due_marked = bound.span_provisional(accepted_on, date.fromisoformat(due))
    matter = context.matter(state.matter)
    if state.stage_due and matter is not None:
        start = context.date_of(state.stage_since)
        limit = matter.county_limit if context.store.directory.role(state.holder) == COUNTY else matter.township_limit
        if limit > 0:
            pauses = pauses_since(state.pauses, state.stage_since, context.date_of)
            new = compute_due(start, limit, matter.limit_unit, pauses, calendar=calendar)
            stage_due, stage_marked = new.isoformat(), bound.span_provisional(start, new)
    return due, stage_due, due_marked, stage_marked


async def correct_provisional_deadlines(store: Store, context: NodeContext) -> list[str]:
    """Correct every provisional deadline of the errands held here that the calendar now answers."""
    bound = context.bound
    if bound is None:
        return []
    done: list[str] = []
    for row in await store.worklist():
        if row["holder"] != store.node_id or row["pending_to"] or row["stage"] not in LIVE:
            continue
        flags = marks_of(row.get("state"))
        if not (flags.due_provisional or flags.stage_due_provisional):
            continue
        try:
            if await _correct_one(store, context, bound, row):
                done.append(row["id"])
        except (SanjiError, CalendarUnknown, ValueError) as exc:
            log.info("deadlines of %s not corrected: %s", row["id"], getattr(exc, "message", exc))
    return done


async def _correct_one(store: Store, context: NodeContext, bound: BoundCalendar, row: dict[str, Any]) -> bool:
    accept = await accept_of(store, row["id"])
    wrote = False

    def build(before: Projection, at: int) -> CorrectDeadline:
        nonlocal wrote
        state = before.state
        if state is None:
            raise SanjiError(f"errand {row['id']} is not known here")
        due, stage_due, due_marked, stage_marked = corrected(state, accept, context, bound)
        if (due, stage_due, due_marked, stage_marked) == (
            state.due,
            state.stage_due,
            state.due_provisional,
            state.stage_due_provisional,
        ):
            raise _Nothing
        wrote = True
        notes = []
        if due != state.due:
            notes.append(f"办结期限 {state.due} → {due}")
        if stage_due != state.stage_due:
            notes.append(f"环节期限 {state.stage_due} → {stage_due}")
        still = "，仍含未公布年份（暂定）" if due_marked or stage_marked else ""
        return CorrectDeadline(
            id=new_action_id(at),
            errand=state.id,
            scope=state.scope,
            node=store.node_id,
            actor=CALENDAR_ACTOR,
            role=CALENDAR_ROLE,
            at=at,
            base=state.version,
            due=due,
            previous_due=state.due,
            stage_due=stage_due,
            previous_stage_due=state.stage_due,
            due_provisional=due_marked,
            stage_due_provisional=stage_marked,
            calendar_version=max(bound.version, state.calendar_version),
            reason=f"按县级工作日历第{bound.version}版核定暂定期限：{'；'.join(notes) or '日期不变'}{still}",
        )

    try:
        await store.act(row["id"], build)
    except _Nothing:
        return False
    return wrote


class _Nothing(Exception):
    """The recomputed deadlines equal the held ones: no action."""
