"""How errands are shown: stage and outcome labels and deadline lights, the same on every tier."""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec

from protocol.binding import HeldMaterials, held_materials
from protocol.deadlines import CalendarUnknown, deadline_status
from protocol.errand import errand_category, outcome_words, service_kind
from protocol.matter import Matter
from protocol.stages import FINISHED, stage_label, stage_says_outcome
from sanji.calendar_duty import marks_of
from sanji.context import NodeContext, bound_entry


class Deadline(msgspec.Struct, kw_only=True):
    due: str
    level: str  # normal / yellow / red / paused / unknown
    days_left: int = 0
    days_over: int = 0
    provisional: bool = False  # 暂定: counted over a year whose official holidays are not published yet


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
    subtasks: dict[str, str] = msgspec.field(default_factory=dict)  # 联办: department -> pending/agreed/objected
    service_kind: str = ""  # 代办件 (protocol.errand.service_kind) or ""


class _Facts(msgspec.Struct, kw_only=True):
    """The parts of the stored projected state a view adds (the rest of it is in the row's columns)."""

    subtasks: dict[str, str] = msgspec.field(default_factory=dict)
    in_person: bool = False
    mandate: bool = True
    matter_entry: Matter | None = None  # the catalogue entry the errand was registered under (protocol.binding)


_facts = msgspec.msgpack.Decoder(_Facts)


# 黄灯: a deadline this many working days away or nearer (the due day counted) is due soon (seed 000 warns
# "提前3天"); the supervision page's legend says the same number.
WARN_DAYS = 3


def deadline_of(
    due: str, stage: str, paused: bool, context: NodeContext, today: date, *, provisional: bool = False
) -> Deadline | None:
    """The light of one deadline, on the node's calendar (provisional years included, never "unknown" for them).

    ``provisional``: the errand says the date was counted over a year not yet published (暂定); a due
    date lying in such a year at this node is 暂定 too.
    """
    if not due or stage in FINISHED:
        return None
    marked = provisional or context.is_provisional(due)
    if paused:
        return Deadline(due=due, level="paused", provisional=marked)
    calendar = context.provisional_calendar
    if calendar is None:
        return Deadline(due=due, level="unknown", provisional=marked)
    try:
        status = deadline_status(date.fromisoformat(due), today, calendar, warn_days=WARN_DAYS)
    except CalendarUnknown:
        return Deadline(due=due, level="unknown", provisional=marked)
    return Deadline(
        due=due,
        level=status.level,
        days_left=status.working_days_left,
        days_over=status.working_days_over,
        provisional=marked,
    )


def materials_of(row: dict[str, Any], history: list[dict[str, Any]], context: NodeContext) -> HeldMaterials:
    """The errand's materials now (``protocol.binding.held_materials``): what it holds, from the applied steps of
    its history (``Views.errand``'s rows), and what its entry still asks for: the one it is bound to, else the one
    this node's catalogue holds for its matter (said on the page; only a bound errand's acceptance waits on it)."""
    entry = bound_entry(row.get("state")) or context.matter(row["matter"])
    steps = [
        (str(h["kind"]), tuple(h.get("materials") or h.get("items") or ()))
        for h in history
        if h.get("status", "applied") == "applied"
    ]
    return held_materials(entry, steps)


def summarise(row: dict[str, Any], context: NodeContext, today: date | None = None) -> dict[str, Any]:
    today = today or context.today()
    marks = marks_of(row.get("state"))
    paused = bool(row.get("paused"))
    blob = row.get("state")
    facts = _facts.decode(blob) if blob else None
    held = context.matter(row["matter"])
    bound = facts.matter_entry if facts else None
    matter = held or bound
    directory = context.store.directory
    scope_role = directory.role(row["scope"]) if row["scope"] in directory else ""
    return {
        **row,
        "subtasks": facts.subtasks if facts else {},
        "service_kind": service_kind(scope_role, in_person=facts.in_person, mandate=facts.mandate) if facts else "",
        "matter_name": matter.name if matter else row["matter"],
        "bound_matter": matter,  # the entry named (held here, or the errand's own): screens only, never JSON
        "stage_label": stage_label(row["stage"], row["outcome"]),
        "stage_says_outcome": stage_says_outcome(row["stage"], row["outcome"]),  # screens only: 不予受理 said once
        # said by the entry the errand was registered under first, as every surface says it (protocol.errand)
        "outcome_label": outcome_words(row["outcome"], bound, held),
        "outcome_category": errand_category(bound, held),  # screens only: the history's 结果 says the same
        "deadline": deadline_of(
            row.get("due", ""), row["stage"], paused, context, today, provisional=marks.due_provisional
        ),
        "stage_deadline": deadline_of(
            row.get("stage_due", ""), row["stage"], paused, context, today, provisional=marks.stage_due_provisional
        ),
    }
