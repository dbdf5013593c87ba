"""台账: one row per errand, derived from its projected state and its applied actions.

"件件有记录，事事有答复" (seed 001): every errand a node holds is a row, and every row says
whether and how it was answered. Pure: no I/O. The caller hands in the errand's state, its
applied actions, the catalogue, the directory and the working-day calendar; the same inputs
give the same row on every node, so a township's ledger and the county's agree on the
errands they share.

Dates are business days in China Standard Time (``protocol.deadlines.business_today``).
On time: decided (any answer: approved, refused, not accepted, returned, terminated,
withdrawn) no later than the whole-errand deadline; an errand still open is counted late once
its deadline has passed on ``as_of``. Working days: from acceptance to the answer on the
official calendar, less the working days the clock stood still for supplements.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

import msgspec

from protocol.actions import (
    Accept,
    Action,
    Assign,
    CallBack,
    Complain,
    Decide,
    Deliver,
    Extend,
    NotAccept,
    Rate,
    Register,
    ReturnErrand,
    Terminate,
    Withdraw,
)
from protocol.catalogue import Catalogue
from protocol.deadlines import CalendarUnknown, WorkCalendar, business_today, paused_days
from protocol.errand import PROXIED, ErrandState, errand_entry, outcome_label, service_kind, skipped_steps
from protocol.hlc import wall_seconds
from protocol.stages import shown_stage, stage_label
from protocol.topology import COUNTY, TOWN, VILLAGE, Directory

LEVEL_LABELS = {VILLAGE: "村级", TOWN: "乡镇级", COUNTY: "县级"}
ANSWERS = (Decide, NotAccept, ReturnErrand, Terminate, Withdraw)


class LedgerRow(msgspec.Struct, kw_only=True):
    """One errand in the ledger (台账). Empty strings where a step has not happened."""

    errand: str
    receipt: str
    scope: str  # 登记节点: where the applicant asked
    township: str  # 所属乡镇
    level: str  # 办理层级: village / town / county, where it was answered or is held now
    matter: str
    matter_name: str
    category: str
    kind: str  # 办件类型, how it is handled (即办件 承诺件 上报件 联办件 特办件)
    applicant_name: str
    stage: str
    outcome: str
    department: str
    window: str
    handler: str
    registered_on: str
    accepted_on: str
    answered_on: str
    delivered_on: str
    due: str
    answered: bool  # 事事有答复: the errand has an outcome
    on_time: bool | None  # None: not answered and not yet late, or no deadline
    overdue_days: int  # working days past the deadline (answered late, or open and late on as_of)
    working_days: int | None  # acceptance to answer, pauses taken out; None when not answered or unknown
    extensions: int
    extended_days: int
    deemed: bool  # 超时默许
    rating: str  # the latest rating: 满意 / 基本满意 / 不满意
    complaints: int
    callbacks_dissatisfied: int = 0  # 回访 that found the applicant dissatisfied
    skipped_steps: tuple[str, ...] = ()  # of the five supervision steps, for an approved and delivered errand
    service_kind: str = ""  # 代办件 when a village agent carried it on the villager's mandate (protocol.errand)
    county: str = ""  # 所属县: the county on the scope's path (``Directory.county_of``); a city's ledger groups by it
    handler_node: str = ""  # the node whose step made ``handler`` answer for the errand (where the person works)

    @property
    def stage_label(self) -> str:
        return stage_label(self.stage, self.outcome)

    @property
    def outcome_label(self) -> str:
        return outcome_label(self.outcome, self.category)


def day_of(hlc: int) -> date:
    """The business day (China Standard Time) of a hybrid-clock timestamp."""
    return business_today(datetime.fromtimestamp(wall_seconds(hlc), UTC))


def township_of(node: str, directory: Directory) -> str:
    """The township a node belongs to ('' for the county itself or a node not in the directory)."""
    if node not in directory:
        return ""
    for hop in reversed(directory.path(node)):
        if directory.role(hop) == TOWN:
            return hop
    return ""


def ledger_row(
    state: ErrandState,
    actions: Iterable[Action],
    *,
    directory: Directory,
    catalogue: Catalogue | None,
    calendar: WorkCalendar | None,
    as_of: date,
    applied: frozenset[str] | None = None,
) -> LedgerRow:
    """The ledger row of one errand. ``actions`` are its applied actions (``applied`` filters them by id)."""
    acts = sorted(
        (a for a in actions if applied is None or a.id in applied),
        key=lambda a: (a.at, a.id),
    )
    accepted = next((a for a in acts if isinstance(a, Accept)), None)
    answer = next((a for a in acts if isinstance(a, ANSWERS)), None)
    delivered = next((a for a in acts if isinstance(a, Deliver)), None)
    ratings = [a for a in acts if isinstance(a, Rate)]
    # The entry the errand was registered under (it travels with the errand: a city holds no catalogue, yet
    # names every matter), else the catalogue held here: the name and the category (and so the outcome's
    # words) from the same entry, as every surface says them (``protocol.errand.errand_entry``).
    held = catalogue.get(state.matter) if catalogue else None
    matter = errand_entry(state.matter_entry, held)
    accepted_on = day_of(accepted.at) if accepted else None
    answered_on = day_of(answer.at) if answer else None
    on_time: bool | None = None
    overdue = 0
    working: int | None = None
    if state.due and calendar is not None:
        due = date.fromisoformat(state.due)
        end = answered_on or as_of
        try:
            if end > due:
                on_time = False
                overdue = calendar.working_days_between(due, end)
            elif answered_on is not None:
                on_time = True
        except CalendarUnknown:
            on_time = None if answered_on is None else answered_on <= due
    if accepted_on is not None and answered_on is not None and calendar is not None:
        pauses = [(day_of(a), day_of(b)) for a, b in state.pauses]
        try:
            pauses = [(max(a, accepted_on), max(b, accepted_on)) for a, b in pauses]
            working = calendar.working_days_between(accepted_on, answered_on) - paused_days(
                pauses, "working", calendar=calendar, anchor=accepted_on
            )
            working = max(0, working)
        except (CalendarUnknown, ValueError):
            working = None
    level = directory.role(answer.node) if answer and answer.node in directory else ""
    if not level:
        level = directory.role(state.holder) if state.holder in directory else ""
    register = next((a for a in acts if isinstance(a, Register)), None)
    registered_on = day_of(register.at if register else state.registered_at)
    handler, handler_node = _answers_for(state, accepted, answer, acts)
    skipped: tuple[str, ...] = ()
    if state.outcome == "approved" and state.stage in ("delivered", "closed"):
        skipped = skipped_steps(state.steps)
    return LedgerRow(
        errand=state.id,
        receipt=state.receipt,
        scope=state.scope,
        township=township_of(state.scope, directory),
        level=level,
        matter=state.matter,
        matter_name=matter.name if matter else state.matter,
        category=matter.category if matter else "",
        kind=state.errand_kind,
        applicant_name=state.applicant_name,
        stage=state.stage,
        outcome=state.outcome,
        department=state.department,
        window=state.window,
        handler=handler,
        handler_node=handler_node,
        registered_on=registered_on.isoformat(),
        accepted_on=accepted_on.isoformat() if accepted_on else "",
        answered_on=answered_on.isoformat() if answered_on else "",
        delivered_on=day_of(delivered.at).isoformat() if delivered else "",
        due=state.due,
        answered=bool(state.outcome),
        on_time=on_time,
        overdue_days=overdue,
        working_days=working,
        extensions=sum(1 for a in acts if isinstance(a, Extend)),
        extended_days=state.extended_days,
        deemed=any(isinstance(a, Decide) and a.deemed for a in acts),
        rating=ratings[0].level if ratings else "",  # the applicant's first: a later one never replaces it
        complaints=sum(1 for a in acts if isinstance(a, Complain)),
        callbacks_dissatisfied=sum(1 for a in acts if isinstance(a, CallBack) and a.satisfied == "不满意"),
        skipped_steps=skipped,
        county=(directory.county_of(state.scope) or "") if state.scope in directory else "",
        service_kind=service_kind(
            directory.role(state.scope) if state.scope in directory else "",
            in_person=state.in_person,
            mandate=state.mandate,
        ),
    )


def _answers_for(
    state: ErrandState, accepted: Accept | None, answer: Action | None, acts: list[Action]
) -> tuple[str, str]:
    """Who the errand is counted against: its handler, else who answered it. A deemed approval (超时默许) was
    written by the system, but the accepting window answers for its consequences (seeds 000 and 003): the
    handler last assigned there, else the one who accepted it (an errand escalated and deemed approved at
    the county has no handler left at the county). With the name, the node whose step named them: the person
    is scored where they work (``protocol.assessment.ErrandRecord.handler_centre``)."""
    if accepted is not None and any(isinstance(a, Decide) and a.deemed for a in acts):
        at_window = [a.handler for a in acts if isinstance(a, Assign) and a.node == accepted.node and a.handler]
        return (at_window[-1], accepted.node) if at_window else (accepted.actor, accepted.node)
    if state.handler:
        named = [a.node for a in acts if isinstance(a, Assign) and a.handler == state.handler]
        return state.handler, named[-1] if named else ""
    return (answer.actor, answer.node) if answer else ("", "")


# -- filters -------------------------------------------------------------------------------------


class LedgerFilter(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Which rows a ledger shows. Empty means any. ``node`` keeps the errands registered in its subtree."""

    date_from: str = ""  # registration day, inclusive (ISO)
    date_to: str = ""
    matter: str = ""
    kind: str = ""
    stage: str = ""
    node: str = ""
    county: str = ""  # 所属县 (``LedgerRow.county``): at a city, one county's errands
    township: str = ""
    window: str = ""
    handler: str = ""
    department: str = ""
    level: str = ""

    def keeps(self, row: LedgerRow, directory: Directory) -> bool:
        if self.date_from and row.registered_on < self.date_from:
            return False
        if self.date_to and row.registered_on > self.date_to:
            return False
        # 代办件 is how an errand came in, not how it is handled: asking for it asks the row's service kind.
        kind = row.service_kind if self.kind == PROXIED else row.kind
        pairs = (
            (self.matter, row.matter),
            (self.kind, kind),
            (self.stage, shown_stage(row.stage, row.outcome)),  # 不予受理 is its own, never 已办结
            (self.county, row.county),
            (self.township, row.township),
            (self.window, row.window),
            (self.handler, row.handler),
            (self.department, row.department),
            (self.level, row.level),
        )
        if any(wanted and wanted != value for wanted, value in pairs):
            return False
        if self.node and self.node != row.scope:
            if row.scope not in directory or self.node not in directory.path(row.scope):
                return False
        return True


def apply_filter(rows: Sequence[LedgerRow], flt: LedgerFilter, directory: Directory) -> list[LedgerRow]:
    return [r for r in rows if flt.keeps(r, directory)]
