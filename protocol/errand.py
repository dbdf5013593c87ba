"""The errand state machine: an errand is the set of its actions; its state is derived.

Main-line actions each name the version they were based on. Replaying them from
version 0, at each version the valid candidate with the smallest id wins; every
other candidate is rejected with a reason and kept for audit. Notes commute. The
result depends only on the *set* of actions, never on arrival order, so every
replica that holds the same actions computes the same state and digest.

Custody: one node (the holder) may advance the main line. A hand-off names the
next holder, and nothing but that node's ``receive`` may follow it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import date

import msgspec

from protocol.actions import (
    ANNOTATIONS,
    Accept,
    Action,
    Assign,
    CallBack,
    Close,
    Complain,
    CorrectDeadline,
    Decide,
    Deliver,
    Extend,
    HandOff,
    MaterialsReceived,
    NotAccept,
    Receive,
    Register,
    RequestSupplement,
    ReturnErrand,
    Review,
    SubtaskDone,
    Supply,
    Terminate,
    Withdraw,
    kind_of,
)
from protocol.encoding import encode
from protocol.topology import COUNTY, TOWN, VILLAGE, Directory

# Stages, in the order an errand usually passes them.
REGISTERED = "registered"  # 已登记: at the village, with the villager's mandate
SUBMITTED = "submitted"  # 已报送: on its way to the township
RECEIVED = "received"  # 已接收: township holds it, not yet accepted
ACCEPTED = "accepted"  # 已受理
SUPPLEMENT = "supplement"  # 待补正: one-time notice issued, clock stopped
ESCALATED = "escalated"  # 已上报: on its way to a county department
AT_DEPARTMENT = "at_department"  # 部门办理中
DECIDED = "decided"  # 已办结 (or not accepted, returned, terminated, withdrawn): result held where decided
RESULT_DOWN = "result_down"  # 结果下送中
RESULT_READY = "result_ready"  # 结果待送达: result held on the way down
DELIVERED = "delivered"  # 已送达, signed for by the applicant
CLOSED = "closed"  # 已归档: filed in the ledger

STAGES = (
    REGISTERED,
    SUBMITTED,
    RECEIVED,
    ACCEPTED,
    SUPPLEMENT,
    ESCALATED,
    AT_DEPARTMENT,
    DECIDED,
    RESULT_DOWN,
    RESULT_READY,
    DELIVERED,
    CLOSED,
)
STAGE_LABELS = {
    REGISTERED: "已登记 registered",
    SUBMITTED: "已报送 submitted",
    RECEIVED: "已接收 received",
    ACCEPTED: "已受理 accepted",
    SUPPLEMENT: "待补正 awaiting materials",
    ESCALATED: "已上报 escalated",
    AT_DEPARTMENT: "部门办理 at department",
    DECIDED: "已办结 decided",
    RESULT_DOWN: "结果下送 result going down",
    RESULT_READY: "待送达 result ready",
    DELIVERED: "已送达 delivered",
    CLOSED: "已归档 closed",
}
OUTCOMES = {
    "approved": "准予 approved",
    "refused": "不予许可 refused",
    "not_accepted": "不予受理 not accepted",
    "returned": "退回 returned",
    "terminated": "终止办理 terminated",
    "withdrawn": "申请人撤回 withdrawn",
}
# 电子监察 five stages (DOMAIN.md, seed 000): 受理 accept, 承办 handle, 审核 review, 批准 approve, 办结 complete.
FIVE_STEPS = ("受理", "承办", "审核", "批准", "办结")
HANDLING = (RECEIVED, ACCEPTED, AT_DEPARTMENT)  # stages at a desk that can still decide
LIVE = (RECEIVED, ACCEPTED, AT_DEPARTMENT, SUPPLEMENT)


class ErrandState(msgspec.Struct, kw_only=True):
    id: str
    scope: str
    matter: str
    applicant_name: str
    stage: str
    holder: str
    pending_to: str | None = None
    version: int = 0
    errand_kind: str = ""
    department: str = ""
    outcome: str = ""
    registered_at: int = 0
    updated_at: int = 0
    receipt: str = ""
    responsible: str = ""  # the accepting township: it answers for the errand even when escalated
    window: str = ""
    handler: str = ""
    due: str = ""  # whole-errand deadline (ISO date); never reset, pushed by pauses and extensions
    stage_due: str = ""  # per-stage deadline at the current holder
    stage_since: int = 0
    provisional: tuple[str, ...] = ()  # 容缺: secondary materials still owed
    promise_by: str = ""
    subtasks: dict[str, str] = msgspec.field(default_factory=dict)  # 联办: department -> pending/agreed/objected
    supplement_items: tuple[str, ...] = ()
    resume_stage: str = ""
    paused_since: int = 0
    pauses: tuple[tuple[int, int], ...] = ()
    notices_by: tuple[str, ...] = ()  # who already issued a one-time notice (一次性告知: once each)
    extended_days: int = 0
    steps: tuple[str, ...] = ()  # which of FIVE_STEPS happened
    acted_for: tuple[str, ...] = ()  # A posts a B post acted for
    archive_no: str = ""
    calendar_version: int = 0  # the county calendar the deadlines were last computed on
    due_provisional: bool = False  # 暂定: the deadline counts days of a year not yet published
    stage_due_provisional: bool = False


class Projection(msgspec.Struct, kw_only=True):
    """Everything a replica derives from the actions it holds for one errand."""

    errand: str
    state: ErrandState | None
    main: tuple[str, ...]
    notes: tuple[str, ...]
    rejected: dict[str, str]
    waiting: tuple[str, ...]
    digest: str


def judge(state: ErrandState | None, action: Action, directory: Directory) -> str | None:
    """Return why ``action`` may not follow ``state``, or None if it may."""
    if isinstance(action, Register):
        if state is not None:
            return "errand is already registered"
        if action.node != action.scope:
            return f"an errand of {action.scope} can only be registered by {action.scope}"
        if action.node not in directory:
            return f"node {action.node} is not in the directory"
        if directory.role(action.node) not in (VILLAGE, TOWN):
            return "errands are registered at a village station or a township window"
        return None
    if state is None:
        return "errand is not registered yet"
    if action.scope != state.scope:
        return f"action names scope {action.scope} but the errand belongs to {state.scope}"
    if action.node not in directory.path(state.scope):
        return f"node {action.node} is not on the path of this errand"
    if isinstance(action, ANNOTATIONS):
        return _judge_annotation(state, action)
    if isinstance(action, Receive):
        if state.pending_to != action.node:
            return f"nothing is being handed to {action.node}" + (
                f" (the errand is on its way to {state.pending_to})" if state.pending_to else ""
            )
        return None
    if state.pending_to is not None:
        return f"errand is on its way to {state.pending_to}; only its receipt may follow"
    if action.node != state.holder:
        return f"node {action.node} is not the custodian (the errand is held by {state.holder})"
    return _judge_main(state, action, directory)


def _judge_annotation(state: ErrandState, action: Action) -> str | None:
    if isinstance(action, Supply) and not action.items:
        return "name the materials supplied"
    if isinstance(action, CallBack) and state.stage not in (DELIVERED, CLOSED):
        return "call-backs (回访) are made after the result was delivered"
    if isinstance(action, Complain) and not action.text.strip():
        return "a complaint needs its text"
    return None


def _judge_main(state: ErrandState, action: Action, directory: Directory) -> str | None:
    role = directory.role(action.node)
    stage = state.stage
    town_or_county_desk = (stage in (RECEIVED, ACCEPTED) and role == TOWN) or (
        stage == AT_DEPARTMENT and role == COUNTY
    )
    if isinstance(action, HandOff):
        return _judge_handoff(state, action, directory, role)
    if isinstance(action, (Accept, NotAccept)):
        if role != TOWN:
            return "errands are accepted or not accepted (受理/不予受理) at the township"
        walk_in = stage == REGISTERED and action.node == state.scope
        if stage != RECEIVED and not walk_in:
            return f"only a received errand can be accepted or not accepted (stage is {stage})"
        if isinstance(action, NotAccept):
            return None if action.reasons.strip() else "a non-acceptance notice must give its reasons"
        if action.provisional and action.errand_kind == "即办件":
            return "容缺受理 does not apply to 即办件 (seed 001: 即办件除外)"
        if action.provisional and not action.promise_by:
            return "容缺受理 needs the date the applicant promised the missing materials by"
        if action.errand_kind == "联办件" and not action.co_departments:
            return "a 联办件 names the co-handling departments"
        return None
    if isinstance(action, ReturnErrand):
        if not town_or_county_desk:
            return f"only the handling desk can return an errand (stage is {stage})"
        return None if action.reasons.strip() else "a return notice must give its reasons"
    if isinstance(action, RequestSupplement):
        if not town_or_county_desk:
            return f"supplements are requested by the handling desk (stage is {stage})"
        if not action.items:
            return "the one-time notice must list the missing materials"
        if action.node in state.notices_by:
            return "一次性告知: this desk already issued its one-time notice listing all missing materials"
        return None
    if isinstance(action, MaterialsReceived):
        if stage == SUPPLEMENT:
            missing = [m for m in state.supplement_items if m not in action.items]
            return f"still missing from the one-time notice: {'、'.join(missing)}" if missing else None
        if stage in (ACCEPTED, AT_DEPARTMENT) and state.provisional:
            if not action.items:
                return "name the promised materials that arrived"
            unknown = [m for m in action.items if m not in state.provisional]
            return f"not among the promised 容缺 materials: {'、'.join(unknown)}" if unknown else None
        return "no materials are owed on this errand now"
    if isinstance(action, Assign):
        if stage not in HANDLING:
            return f"an errand is assigned to a window while it is handled (stage is {stage})"
        return None if action.window.strip() and action.handler.strip() else "name the window and the handler"
    if isinstance(action, SubtaskDone):
        if stage not in (ACCEPTED, AT_DEPARTMENT):
            return "sub-tasks are completed while the errand is handled"
        if state.subtasks.get(action.department) != "pending":
            return f"{action.department} has no open sub-task on this errand"
        return None
    if isinstance(action, Extend):
        if stage not in (ACCEPTED, AT_DEPARTMENT, SUPPLEMENT):
            return f"only an errand being handled can be extended (stage is {stage})"
        if action.days <= 0 or not action.reason.strip() or (state.due and not action.due):
            return "an extension needs a positive number of days, a reason and the new deadline"
        return None
    if isinstance(action, Review):
        return None if stage in (ACCEPTED, AT_DEPARTMENT) else f"nothing to review at stage {stage}"
    if isinstance(action, Decide):
        if not ((stage == ACCEPTED and role == TOWN) or (stage == AT_DEPARTMENT and role == COUNTY)):
            return f"the errand cannot be decided here at stage {stage}"
        if action.outcome == "approved":
            if state.provisional:
                return f"容缺 materials still owed: {'、'.join(state.provisional)}; approve after they arrive"
            open_tasks = [d for d, status in state.subtasks.items() if status == "pending"]
            if open_tasks:
                return f"联办 sub-tasks still open: {'、'.join(open_tasks)}"
            if any(status == "objected" for status in state.subtasks.values()):
                return "a co-handling department objected; the errand cannot be approved"
        return None
    if isinstance(action, Terminate):
        if stage not in LIVE:
            return f"only an errand being handled can be terminated (stage is {stage})"
        return None if action.reason.strip() else "termination needs a reason"
    if isinstance(action, Withdraw):
        if stage not in (REGISTERED, *LIVE):
            return f"the errand can no longer be withdrawn (stage is {stage})"
        return None
    if isinstance(action, Deliver):
        if stage not in (DECIDED, RESULT_READY):
            return f"there is no result to deliver (stage is {stage})"
        if action.node != state.scope:
            return f"results are delivered by {state.scope}, where the applicant asked"
        if not action.confirmed_by.strip():
            return "delivery needs the applicant's confirmation"
        return None
    if isinstance(action, Close):
        return None if stage == DELIVERED else f"only a delivered errand is closed and filed (stage is {stage})"
    if isinstance(action, CorrectDeadline):
        return _judge_correction(state, action)
    return f"unknown action {kind_of(action)}"


def _is_day(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _judge_correction(state: ErrandState, action: CorrectDeadline) -> str | None:
    """Only provisional (暂定) deadlines are corrected, from what the errand holds, and only forward in version."""
    if state.stage not in LIVE:
        return f"only the deadlines of an errand being handled are corrected (stage is {state.stage})"
    if not (state.due_provisional or state.stage_due_provisional):
        return "the deadlines of this errand were computed on the official calendar; nothing to correct"
    if action.calendar_version < state.calendar_version:
        return f"the deadlines are already on calendar version {state.calendar_version}"
    if action.previous_due != state.due or action.previous_stage_due != state.stage_due:
        return "the correction names other deadlines than the errand has"
    if bool(action.due) != bool(state.due) or bool(action.stage_due) != bool(state.stage_due):
        return "a correction replaces each deadline the errand has, and adds none"
    if (action.due and not _is_day(action.due)) or (action.stage_due and not _is_day(action.stage_due)):
        return "a corrected deadline is an ISO date (YYYY-MM-DD)"
    before = (state.due, state.stage_due, state.due_provisional, state.stage_due_provisional)
    after = (action.due, action.stage_due, action.due_provisional, action.stage_due_provisional)
    return "the correction changes nothing" if before == after else None


def _judge_handoff(state: ErrandState, action: HandOff, directory: Directory, role: str) -> str | None:
    stage = state.stage
    if action.purpose == "submit":
        if stage != REGISTERED:
            return f"only a registered errand can be submitted (stage is {stage})"
        if role != VILLAGE:
            return "only a village station submits errands; a township accepts its walk-ins itself"
        if action.to != directory.parent(action.node):
            return f"an errand is submitted to the parent node {directory.parent(action.node)}"
        return None
    if action.purpose == "escalate":
        if stage != ACCEPTED or role != TOWN:
            return "only a township that accepted the errand can escalate it (上报)"
        if action.to != directory.parent(action.node):
            return "escalation goes to the parent node"
        if not action.department.strip():
            return "escalation must name the county department"
        if state.provisional:
            return "容缺 materials are still owed; escalate once they are complete"
        return None
    if stage not in (DECIDED, RESULT_READY):
        return f"there is no result to send down yet (stage is {stage})"
    hop = directory.next_hop_down(action.node, state.scope)
    if hop is None or action.to != hop:
        return f"a result goes down towards {state.scope}, next to {hop}"
    return None


def _reach(state: ErrandState, step: str) -> tuple[str, ...]:
    return state.steps if step in state.steps else (*state.steps, step)


def _finish(new: ErrandState, outcome: str) -> None:
    new.stage = DECIDED
    new.outcome = outcome
    new.supplement_items = ()
    new.resume_stage = ""
    new.paused_since = 0


def step(state: ErrandState | None, action: Action) -> ErrandState:
    """Apply an action already judged valid."""
    if isinstance(action, Register):
        return ErrandState(
            id=action.errand,
            scope=action.scope,
            matter=action.matter,
            applicant_name=action.applicant.name,
            stage=REGISTERED,
            holder=action.node,
            version=1,
            registered_at=action.at,
            updated_at=action.at,
            receipt=action.receipt,
            stage_since=action.at,
        )
    assert state is not None
    new = msgspec.structs.replace(state, updated_at=max(state.updated_at, action.at))
    if action.acting_for and action.acting_for not in new.acted_for:
        new.acted_for = (*new.acted_for, action.acting_for)
    if isinstance(action, ANNOTATIONS):
        return new
    new.version += 1
    if isinstance(action, HandOff):
        new.pending_to = action.to
        new.stage = {"submit": SUBMITTED, "escalate": ESCALATED, "result": RESULT_DOWN}[action.purpose]
        if action.purpose == "escalate":
            new.department = action.department
    elif isinstance(action, Receive):
        new.holder = action.node
        new.pending_to = None
        new.stage = {SUBMITTED: RECEIVED, ESCALATED: AT_DEPARTMENT, RESULT_DOWN: RESULT_READY}[state.stage]
        new.stage_due = action.stage_due
        new.stage_due_provisional = action.stage_due_provisional
        new.stage_since = action.at
        if new.stage != RESULT_READY:
            new.window = new.handler = ""  # a new desk: its own window and handler
    elif isinstance(action, Accept):
        new.stage = ACCEPTED
        new.errand_kind = action.errand_kind
        new.responsible = action.node
        new.due = action.due
        new.calendar_version = action.calendar_version
        new.due_provisional = action.due_provisional
        new.window = action.window or new.window
        new.provisional = action.provisional
        new.promise_by = action.promise_by
        new.subtasks = {d: "pending" for d in action.co_departments}
        new.steps = _reach(new, "受理")
    elif isinstance(action, NotAccept):
        _finish(new, "not_accepted")
    elif isinstance(action, ReturnErrand):
        _finish(new, "returned")
    elif isinstance(action, RequestSupplement):
        new.resume_stage = state.stage
        new.stage = SUPPLEMENT
        new.supplement_items = action.items
        new.paused_since = action.at
        new.notices_by = (*state.notices_by, action.node)
    elif isinstance(action, MaterialsReceived):
        if state.stage == SUPPLEMENT:
            new.stage = state.resume_stage
            new.pauses = (*state.pauses, (state.paused_since, action.at))
            new.resume_stage = ""
            new.supplement_items = ()
            new.paused_since = 0
        else:
            new.provisional = tuple(m for m in state.provisional if m not in action.items)
        if action.due:
            new.due = action.due
            new.due_provisional = action.due_provisional
    elif isinstance(action, Assign):
        new.window = action.window
        new.handler = action.handler
        new.steps = _reach(new, "承办")
    elif isinstance(action, SubtaskDone):
        new.subtasks = {**state.subtasks, action.department: action.outcome}
    elif isinstance(action, Extend):
        new.due = action.due
        new.due_provisional = action.due_provisional
        new.extended_days = state.extended_days + action.days
    elif isinstance(action, Review):
        if action.passed:
            new.steps = _reach(new, "审核")
    elif isinstance(action, Decide):
        _finish(new, action.outcome)
        new.steps = _reach(new, "批准")
    elif isinstance(action, Terminate):
        _finish(new, "terminated")
    elif isinstance(action, Withdraw):
        _finish(new, "withdrawn")
    elif isinstance(action, Deliver):
        new.stage = DELIVERED
        new.steps = _reach(new, "办结")
    elif isinstance(action, Close):
        new.stage = CLOSED
        new.archive_no = action.archive_no
    elif isinstance(action, CorrectDeadline):
        new.due, new.stage_due = action.due, action.stage_due
        new.due_provisional = action.due_provisional
        new.stage_due_provisional = action.stage_due_provisional
        new.calendar_version = action.calendar_version
    return new


def project(errand_id: str, actions: Iterable[Action], directory: Directory) -> Projection:
    unique: dict[str, Action] = {}
    for action in actions:
        if action.errand != errand_id:
            raise ValueError(f"action {action.id} belongs to errand {action.errand}, not {errand_id}")
        held = unique.get(action.id)
        # Two different actions under one id (a node restored from a backup): keep the one whose
        # encoding sorts first, so the choice depends on the set, never on arrival order.
        if held is None or (held != action and encode(action) < encode(held)):
            unique[action.id] = action
    by_base: dict[int, list[Action]] = defaultdict(list)
    notes: list[Action] = []
    for action in unique.values():
        if isinstance(action, ANNOTATIONS):
            notes.append(action)
        else:
            by_base[action.base].append(action)
    state: ErrandState | None = None
    main: list[str] = []
    rejected: dict[str, str] = {}
    version = 0
    while by_base.get(version):
        winner: Action | None = None
        for candidate in sorted(by_base[version], key=lambda a: a.id):
            if winner is not None:
                rejected[candidate.id] = f"conflicts with {winner.id}, applied first at version {version}"
                continue
            reason = judge(state, candidate, directory)
            if reason is None:
                winner = candidate
            else:
                rejected[candidate.id] = reason
        if winner is None:
            break
        state = step(state, winner)
        main.append(winner.id)
        version += 1
    waiting: list[str] = []
    for base, group in by_base.items():
        for action in group:
            if action.id in rejected or action.id in main:
                continue
            if base > version:
                waiting.append(action.id)
            else:
                rejected[action.id] = f"based on version {base}, but version {base} was already taken"
    applied_notes: list[str] = []
    for note in sorted(notes, key=lambda n: (n.at, n.id)):
        if state is None:
            waiting.append(note.id)
            continue
        reason = judge(state, note, directory)
        if reason is None:
            applied_notes.append(note.id)
            state = step(state, note)
        else:
            rejected[note.id] = reason
    return Projection(
        errand=errand_id,
        state=state,
        main=tuple(main),
        notes=tuple(applied_notes),
        rejected=rejected,
        waiting=tuple(sorted(waiting)),
        digest=digest_of(errand_id, state, main, applied_notes, rejected),
    )


def digest_of(
    errand_id: str, state: ErrandState | None, main: list[str], notes: list[str], rejected: dict[str, str]
) -> str:
    material = encode([errand_id, state, main, notes, sorted(rejected)])
    return hashlib.sha256(material).hexdigest()
