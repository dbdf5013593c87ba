"""How errands are shown: stage and outcome labels and deadline lights, the same on every tier."""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec

from protocol.deadlines import CalendarUnknown, deadline_status
from protocol.errand import OUTCOMES, STAGE_LABELS
from sanji.context import NodeContext

FINISHED = ("decided", "result_down", "result_ready", "delivered", "closed")


class Deadline(msgspec.Struct, kw_only=True):
    due: str
    level: str  # normal / yellow / red / paused / unknown
    days_left: int = 0
    days_over: int = 0
    provisional: bool = False  # falls in a year whose official holidays are not published yet


class ErrandSummary(msgspec.Struct, kw_only=True):
    id: str
    receipt: str
    scope: str
    matter: str
    matter_name: str
    applicant_name: str
    stage: str
    stage_label: str
    holder: str
    pending_to: str | None
    responsible: str
    window: str
    handler: str
    version: int
    errand_kind: str
    department: str
    outcome: str
    outcome_label: str
    registered_at: int
    updated_at: int
    digest: str
    waiting: int
    deadline: Deadline | None
    stage_deadline: Deadline | None


def deadline_of(due: str, stage: str, paused: bool, context: NodeContext, today: date) -> Deadline | None:
    if not due or stage in FINISHED:
        return None
    if paused:
        return Deadline(due=due, level="paused")
    if context.calendar is None:
        return Deadline(due=due, level="unknown")
    try:
        status = deadline_status(date.fromisoformat(due), today, context.calendar, warn_days=3)
    except CalendarUnknown:
        return Deadline(due=due, level="unknown")
    return Deadline(due=due, level=status.level, days_left=status.working_days_left, days_over=status.working_days_over)


def summarise(row: dict[str, Any], context: NodeContext, today: date | None = None) -> dict[str, Any]:
    today = today or context.today()
    matter = context.matter(row["matter"])
    return {
        **row,
        "matter_name": matter.name if matter else row["matter"],
        "stage_label": STAGE_LABELS.get(row["stage"], row["stage"]),
        "outcome_label": OUTCOMES.get(row["outcome"], row["outcome"]),
        "deadline": deadline_of(row.get("due", ""), row["stage"], bool(row.get("paused")), context, today),
        "stage_deadline": deadline_of(row.get("stage_due", ""), row["stage"], bool(row.get("paused")), context, today),
    }
