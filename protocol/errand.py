"""The errand state machine: an errand is the set of its actions; its state is derived.

Main-line actions each name the version they were based on. Replaying them from
version 0, at each version the valid candidate with the smallest id wins; every
other candidate is rejected with a reason and kept for audit. Notes commute. The
result depends only on the *set* of actions, never on arrival order, so every
replica that holds the same actions computes the same state and digest.

Which rival wins follows from how ids are made. Ids minted since 0.4.0 begin with
the time they were minted (``sanji.service.new_action_id``), so of two rivals
minted in different milliseconds the earlier one wins; older releases minted
random ids, where the winner was as good as a coin toss. Either way the order is
the ids' and the same on every replica; nothing here depends on ids being
time-ordered, and a set mixing both kinds projects alike everywhere.

Custody: one node (the holder) may advance the main line. A hand-off names the
next holder, and nothing but that node's ``receive`` may follow it.
"""

from __future__ import annotations

import hashlib
import operator
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any, NamedTuple

import msgspec

from protocol.actions import (
    Accept,
    Action,
    AnswerUrging,
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
    Rate,
    Receive,
    Register,
    RequestSupplement,
    ReturnErrand,
    Review,
    SubtaskDone,
    Supervise,
    Supply,
    Terminate,
    Withdraw,
    is_annotation,
    is_main_line,
    kind_of,
)
from protocol.binding import (
    business_date,
    deemed_refusal,
    escalation_refusal,
    extension_refusal,
    level_refusal,
    registration_refusal,
)
from protocol.bounds import action_problem
from protocol.catalogue import normalise_material
from protocol.encoding import encode
from protocol.kept_bytes import KeptBytes
from protocol.matter import Matter
from protocol.refusals import Refusal, refuse
from protocol.stages import (  # the one list of stages; re-exported for older imports
    ACCEPTED as ACCEPTED,
)
from protocol.stages import ANSWERED, SUBTASK_OPEN
from protocol.stages import (
    AT_DEPARTMENT as AT_DEPARTMENT,
)
from protocol.stages import (
    CLOSED as CLOSED,
)
from protocol.stages import (
    DECIDED as DECIDED,
)
from protocol.stages import (
    DELIVERED as DELIVERED,
)
from protocol.stages import (
    ESCALATED as ESCALATED,
)
from protocol.stages import (
    HANDLING as HANDLING,
)
from protocol.stages import (
    LIVE as LIVE,
)
from protocol.stages import (
    RECEIVED as RECEIVED,
)
from protocol.stages import (
    REGISTERED as REGISTERED,
)
from protocol.stages import (
    RESULT_DOWN as RESULT_DOWN,
)
from protocol.stages import (
    RESULT_READY as RESULT_READY,
)
from protocol.stages import (
    STAGE_LABELS as STAGE_LABELS,
)
from protocol.stages import (
    STAGES as STAGES,
)
from protocol.stages import (
    SUBMITTED as SUBMITTED,
)
from protocol.stages import (
    SUPPLEMENT as SUPPLEMENT,
)
from protocol.topology import COUNTY, TOWN, VILLAGE, Directory, regional
from protocol.urging import Urging, answer_refusal, urge_refusal

OUTCOMES = {
    "approved": "准予 approved",
    "refused": "不予许可 refused",
    "not_accepted": "不予受理 not accepted",
    "returned": "退回 returned",
    "terminated": "终止办理 terminated",
    "withdrawn": "申请人撤回 withdrawn",
}


def is_licence(category: str) -> bool:
    """Whether a matter's decision is a licence's (行政许可): '' (a category not known) reads as one, as before
    categories were told apart. Its refusal is 不予许可 and its decision document 准予/不予许可决定书."""
    return category in ("许可", "")


def outcome_label(outcome: str, category: str = "") -> str:
    """The words for an outcome: a refusal is 不予许可 for a licence (行政许可, or a category not known) and
    不予办理 for any other matter (给付, 确认, 公共服务 …): a 临时救助 is refused, never "not licensed"."""
    if outcome == "refused" and not is_licence(category):
        return "不予办理 refused"
    return OUTCOMES.get(outcome, outcome)


def errand_entry(bound: Matter | None, held: Matter | None) -> Matter | None:
    """The catalogue entry an errand is said by (None when neither is known).

    ``bound``: the entry the errand was registered under (``ErrandState.matter_entry``, which travels with
    it); ``held``: this node's catalogue's entry for its matter code, asked only for an errand bound to none
    (registered before entries were bound). The bound entry comes first because the catalogue held may since
    have dropped the matter or renamed it or changed its category, and an errand is answered as the matter it
    was applied for: the lookup, the desks, the SMS, the ledger and the printed decision then say the same words.
    """
    return bound if bound is not None else held


def errand_category(bound: Matter | None, held: Matter | None) -> str:
    """The category an errand's outcome is said by ('' when neither entry is known; ``errand_entry``'s)."""
    entry = errand_entry(bound, held)
    return entry.category if entry is not None else ""


def outcome_words(outcome: str, bound: Matter | None, held: Matter | None) -> str:
    """``outcome_label`` of the errand's category (``errand_category``): what every surface shows."""
    return outcome_label(outcome, errand_category(bound, held))


# 七件管理's 代办件: an errand the village agent carries for the villager. Not a handling kind
# (``Accept.errand_kind`` says how the errand is handled: 即办 承诺 上报 联办 特办) but how it came in,
# so an errand is both, e.g. a 代办 承诺件. Derived from the registration, never written by anyone.
PROXIED = "代办件"
# 电子监察 five stages (DOMAIN.md, seed 000): 受理 accept, 承办 handle, 审核 review, 批准 approve, 办结 complete.
FIVE_STEPS = ("受理", "承办", "审核", "批准", "办结")


def skipped_steps(reached: Sequence[str], *, before: str = "") -> tuple[str, ...]:
    """The five stages not reached: all of them (an answered errand, as supervision flags it as 环节缺失), or
    only those ahead of ``before`` (a step about to be taken, as the errand page warns of it). One place, so
    the warning given at the step and the flag supervision and the assessment raise later are the same."""
    upto = FIVE_STEPS.index(before) if before in FIVE_STEPS else len(FIVE_STEPS)
    return tuple(s for s in FIVE_STEPS[:upto] if s not in reached)


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
    # The catalogue binds (protocol.binding): the entry and version the errand is judged by,
    # and what the registration said about the applicant's presence and mandate.
    catalogue_version: int = 0
    matter_entry: Matter | None = None
    in_person: bool = False
    mandate: bool = True
    deemed: bool = False  # decided by 超时默许; the responsible window answers for it
    urgings: tuple[Urging, ...] = ()  # 督办 with an answer due, and their answers (protocol.urging)
    rated: bool = False  # the applicant rated the errand (rules 1 and later: once; ``rating_rules``); not digested


class Projection(msgspec.Struct, kw_only=True):
    """Everything a replica derives from the actions it holds for one errand."""

    errand: str
    state: ErrandState | None
    main: tuple[str, ...]
    notes: tuple[str, ...]
    rejected: dict[str, str]
    waiting: tuple[str, ...]
    digest: str


def service_kind(scope_role: str, *, in_person: bool, mandate: bool) -> str:
    """``PROXIED`` when a village station registered the errand for an absent villager on the villager's
    mandate (委托); "" otherwise (in person, or at a township window). ``judge`` holds a proxied
    registration to the mandate and to a matter open to proxy service (``protocol.binding``)."""
    return PROXIED if scope_role == VILLAGE and not in_person and mandate else ""


def proxied(state: ErrandState, directory: Directory) -> bool:
    role = directory.role(state.scope) if state.scope in directory else ""
    return service_kind(role, in_person=state.in_person, mandate=state.mandate) == PROXIED


def judge(state: ErrandState | None, action: Action, directory: Directory, *, bounded: bool = False) -> Refusal | None:
    """Return why ``action`` may not follow ``state`` (a coded ``Refusal``), or None if it may.

    Bound errands (``state.matter_entry``) are also judged by their catalogue entry
    (``protocol.binding``); the entry travels in the errand's own actions, so every replica
    reaches the same verdict. ``bounded``: this very action already passed the bounds here (it was
    allowed before), so they are not walked again; every other verdict is reached anew.
    """
    if not bounded and (out_of_bounds := action_problem(action)) is not None:  # same limits on every replica
        return refuse("out_of_bounds", detail=out_of_bounds)
    if isinstance(action, Register):
        if state is not None:
            return refuse("already_registered")
        if action.node != action.scope:
            return refuse("wrong_registering_node", scope=action.scope)
        if action.node not in directory:
            return refuse("node_not_in_directory", node=action.node)
        if directory.role(action.node) not in (VILLAGE, TOWN):
            return refuse("register_level")
        return registration_refusal(
            action.matter_entry,
            matter=action.matter,
            in_person=action.in_person,
            mandate=action.mandate,
            materials=action.materials,
            missing_confirmed=action.missing_confirmed or action.matter_entry is None,
        )
    if state is None:
        return refuse("not_registered")
    if action.scope != state.scope:
        return refuse("scope_mismatch", scope=action.scope, errand_scope=state.scope)
    if action.node not in directory.path(state.scope):
        return refuse("off_path", node=action.node)
    if regional(directory.role(action.node)):
        # A city (or province) holds its counties' errands to supervise them; the counties answer for them.
        return refuse("regional_reads_only", node=action.node)
    problem = _judge_kind(state, action, directory)
    if problem is not None:
        return problem
    # Rules 2 ask only of a step its kind's own rule allows: a wrong stage or level is said first.
    entry = _judging_entry(state, action)
    return _judge_documents(state, action, entry) if entry is not None and entry.rules >= 2 else None


def _judging_entry(state: ErrandState, action: Action) -> Matter | None:
    """The catalogue entry that judges ``action``: the errand's, or the one an acceptance binds it to.

    An acceptance may bind an errand registered unbound (``matter_mismatch`` refuses it for a bound one)."""
    if state.matter_entry is None and isinstance(action, Accept):
        return action.matter_entry
    return state.matter_entry


def _judge_kind(state: ErrandState, action: Action, directory: Directory) -> Refusal | None:
    """The verdict of ``action``'s own kind on a registered errand, on the path, before rules 2 are asked."""
    if is_annotation(action):
        return _judge_annotation(state, action, directory)
    if isinstance(action, SubtaskDone):
        return _judge_subtask(state, action, directory)
    if isinstance(action, Receive):
        if state.pending_to != action.node:
            note = f" (the errand is on its way to {state.pending_to})" if state.pending_to else ""
            return refuse("nothing_handed", node=action.node, pending_to=state.pending_to, pending_note=note)
        return None
    if state.pending_to is not None:
        return refuse("in_transit", pending_to=state.pending_to)
    if action.node != state.holder:
        return refuse("not_custodian", node=action.node, holder=state.holder)
    return _judge_main(state, action, directory)


def _judge_subtask(state: ErrandState, action: SubtaskDone, directory: Directory) -> Refusal | None:
    """联办: a co-handling department closes its own sub-task, at its own desk at the county.

    The county departments sit at the county hub (as an escalated errand's department does), so
    the department's desk is a county node; the lead window (the township holding the errand)
    only sees the answers. Custody is not asked: the department answers beside the holder
    (``beside_holder``), so the lead window keeps working while the departments answer.
    """
    if state.pending_to is not None or state.stage not in SUBTASK_OPEN:
        return refuse("subtask_stage")
    if state.subtasks.get(action.department) != "pending":
        return refuse("no_open_subtask", department=action.department)
    if not answered_by_departments(state):
        # Bound to an entry from before departments answered (or to none): the lead window, holding the
        # errand, ticks its sub-tasks off, as every node judged it when the errand began.
        return refuse("not_custodian", node=action.node, holder=state.holder) if action.node != state.holder else None
    if directory.role(action.node) != COUNTY:
        return refuse("subtask_department_only", department=action.department)
    return None


def answered_by_departments(state: ErrandState) -> bool:
    """Whether the errand's bound catalogue entry has its 联办 departments answer at their own desks."""
    return state.matter_entry is not None and state.matter_entry.joint_answers_at_departments


def beside_holder(state: ErrandState | None, action: Action) -> bool:
    """A department's sub-task answer written while another node holds the errand.

    It takes no version of the main line: replaying, it is applied before the holder's candidates
    for the version it was based on are weighed, so it never competes with the holder's own steps
    (a department and the lead window writing at once both stand). Written by the holder itself
    (an escalated errand at the county), it is an ordinary main-line step.
    """
    return (
        isinstance(action, SubtaskDone)
        and state is not None
        and action.node != state.holder
        and answered_by_departments(state)
    )


def _judge_annotation(state: ErrandState, action: Action, directory: Directory) -> Refusal | None:
    if isinstance(action, Supervise) and action.answer_by:
        return urge_refusal(
            node=action.node,
            kind=action.kind_of_supervision,
            to=action.to,
            answer_by=action.answer_by,
            at=action.at,
            path=directory.path(state.scope),
            directory=directory,
        )
    if isinstance(action, AnswerUrging):
        return answer_refusal(state.urgings, urging=action.urging, node=action.node, text=action.text)
    if isinstance(action, Supply) and not action.items:
        return refuse("supply_items_missing")
    if isinstance(action, CallBack) and state.stage not in (DELIVERED, CLOSED):
        return refuse("callback_too_early")
    if isinstance(action, Complain) and not action.text.strip():
        return refuse("complaint_text_missing")
    if isinstance(action, Rate) and rating_rules(state):
        # The applicant rates once, at the desk that delivers the result (the registering node), after
        # delivery. Notes are judged over the main line's end, so a rating written early is applied once
        # the errand is delivered. Errands bound to an older entry (or to none) keep the old verdicts.
        if action.node != state.scope:
            return refuse("rate_elsewhere", scope=state.scope)
        if state.stage not in ANSWERED:
            return refuse("rate_too_early")
        if state.rated:
            return refuse("rate_once")
    return None


def rating_rules(state: ErrandState) -> bool:
    """Whether the errand's bound catalogue entry has it judged by the rating rules of 0.4.0 (``Matter.rules``)."""
    return rules_of(state) >= 1


ACCEPTANCE_DAY_TOLERANCE = 7  # days a desk's clock may run ahead of the day it counts a deadline from


def rules_of(state: ErrandState) -> int:
    """The generation of errand rules the errand is judged by: its bound entry's ``Matter.rules`` (0 unbound).

    1 (0.4.0): one rating, by the applicant at the registering desk, after delivery.
    2 (later 0.4.0 builds): each step carries what its document states (``_judge_documents``), and the catalogue binds
    the refusal (不予许可) to the approving level, 容缺 to secondary materials, 联办 to every co-department.
    3 (later still): the desk a walk-in was registered at, where it may accept the matter, gives the one-time notice
    (一次性告知) before acceptance (``_walk_in_desk``), as a township does for an errand received from a village.
    """
    return state.matter_entry.rules if state.matter_entry is not None else 0


def _judge_documents(state: ErrandState, action: Action, entry: Matter) -> Refusal | None:
    """Rules 2: what a step's document states must be in the step (DOMAIN.md, "The life of an errand").

    The acceptance notice names the deadline (never before the day of acceptance), an extension moves it
    later, a refusal states its reasons, a delivery carries the applicant's signature (签名核对), 容缺 leaves
    only secondary materials owed (主件 must be complete, seed 001), promised by the deadline, a 联办件 goes
    to every co-department the catalogue names, and a 督办 names when its answer is due. ``judge`` asks it
    once, of an action its kind's own rule (``_judge_kind``) has allowed.
    """
    if isinstance(action, Accept):
        if action.errand_kind != "即办件" and not action.due:
            return refuse("due_missing", kind=action.errand_kind)
        # The desk counts from its own day, corrected for its clock's measured offset; the rule knows only the
        # signed time. A clock that runs days off is tolerated, a deadline set before the acceptance is not.
        accepted = business_date(action.at)
        earliest = (accepted - timedelta(days=ACCEPTANCE_DAY_TOLERANCE)).isoformat()
        if action.due and action.due < earliest:
            return refuse("due_before_acceptance", due=action.due, accepted=accepted.isoformat())
        mains = {normalise_material(m) for m in entry.main_materials}
        owed_mains = [m for m in action.provisional if normalise_material(m) in mains]
        if owed_mains:
            return refuse("provisional_main", items="、".join(owed_mains))
        # Seed 001: the window decides once the promised materials are in, within the limit the notice states.
        if action.provisional and action.due and action.promise_by > action.due:
            return refuse("promise_after_due", promise_by=action.promise_by, due=action.due)
        if action.errand_kind == "联办件":
            missing = [d for d in entry.joint_departments if d not in action.co_departments]
            if missing:
                return refuse("co_departments_incomplete", missing="、".join(missing))
    elif isinstance(action, Extend):
        if state.due and action.due and action.due < state.due:
            return refuse("extend_backwards", due=action.due, was=state.due)
    elif isinstance(action, Decide):
        if action.outcome == "refused" and not action.reasons.strip():
            return refuse("decision_reasons_missing")
    elif isinstance(action, Deliver):
        if not action.signature.strip():
            return refuse("signature_missing")
    elif isinstance(action, Supervise):
        # DOMAIN.md: urging (督办) comes from the county, and an urging names when its answer is due.
        if action.kind_of_supervision == "督办" and not action.answer_by:
            return refuse("urging_answer_missing")
    return None


def _desk(state: ErrandState, role: str) -> bool:
    """Whether a node of ``role`` holding the errand is the desk handling it now."""
    stage = state.stage
    if stage == AT_DEPARTMENT:
        return role == COUNTY
    if stage == RECEIVED:
        return role == TOWN
    if stage == ACCEPTED:
        return role == TOWN or (role == VILLAGE and state.responsible == state.holder)
    return False


def _walk_in_desk(state: ErrandState, action: Action, role: str) -> bool:
    """Rules 3: the desk an applicant walked in to (the errand registered at this very node, not accepted yet) is
    a handling desk for the one-time notice (一次性告知) where it may accept the matter, as for the acceptance
    itself; so a walk-in missing a main material is told what to bring instead of only refused or returned.
    Earlier generations keep their verdict (the notice only once the errand was received from a village)."""
    entry = state.matter_entry
    return (
        entry is not None
        and rules_of(state) >= 3
        and state.stage == REGISTERED
        and action.node == state.scope
        and level_refusal(entry, "accept", role) is None
    )


def walk_in_notice(errand_id: str, actions: Iterable[Action], notice: Action, directory: Directory) -> bool:
    """Whether ``notice`` is the walk-in desk's one-time notice (一次性告知) given before acceptance (rules 3,
    ``_walk_in_desk``): no time limit runs until 受理, so its paper says the errand is accepted once every item is
    in and that the applicant brings them back to this desk, rather than that a running clock stopped.

    ``actions``: the errand's applied actions; the main line before the notice is replayed to the state the notice
    was judged over, and the rule that allowed it is asked again, so the printed notice and the rule agree.
    """
    if not isinstance(notice, RequestSupplement):
        return False
    before = [a for a in actions if a.errand == errand_id and is_main_line(a) and a.base < notice.base]
    state = project(errand_id, before, directory, bounded={a.id for a in before}).state
    return state is not None and _walk_in_desk(state, notice, directory.role(notice.node))


def _judge_main(state: ErrandState, action: Action, directory: Directory) -> Refusal | None:
    role = directory.role(action.node)
    stage = state.stage
    entry = state.matter_entry
    town_or_county_desk = _desk(state, role)
    if isinstance(action, HandOff):
        return _judge_handoff(state, action, directory, role)
    if isinstance(action, (Accept, NotAccept)):
        if isinstance(action, Accept) and action.matter_entry is not None:
            if entry is not None:
                return refuse("matter_mismatch", matter=state.matter)
            entry = action.matter_entry
            problem = registration_refusal(entry, matter=state.matter, in_person=state.in_person, mandate=state.mandate)
            if problem is not None:
                return problem
        if entry is not None:
            problem = level_refusal(entry, "accept", role)
            if problem is not None:
                return problem
        elif role != TOWN:
            return refuse("accept_level", where_zh="乡镇便民服务中心", where="township")
        walk_in = stage == REGISTERED and action.node == state.scope
        if stage != RECEIVED and not walk_in:
            return refuse("accept_stage", stage=stage)
        if isinstance(action, NotAccept):
            return None if action.reasons.strip() else refuse("reasons_missing", notice="non-acceptance")
        if action.provisional and action.errand_kind == "即办件":
            return refuse("provisional_immediate")
        if action.provisional and not action.promise_by:
            return refuse("promise_date_missing")
        if action.errand_kind == "联办件" and not action.co_departments:
            return refuse("co_departments_missing")
        if entry is not None and action.errand_kind == "联办件":
            strangers = [d for d in action.co_departments if d not in entry.joint_departments]
            if strangers:
                return refuse(
                    "wrong_department",
                    department="、".join(strangers),
                    expected="、".join(entry.joint_departments) or "—",
                )
        return None
    if isinstance(action, ReturnErrand):
        if not town_or_county_desk:
            return refuse("handling_desk_only", step="return an errand", step_zh="退回", stage=stage)
        return None if action.reasons.strip() else refuse("reasons_missing", notice="return")
    if isinstance(action, RequestSupplement):
        if not town_or_county_desk and not _walk_in_desk(state, action, role):
            return refuse("handling_desk_only", step="request supplements", step_zh="一次性告知", stage=stage)
        if not action.items:
            return refuse("notice_items_missing")
        if action.node in state.notices_by:
            return refuse("notice_already_issued")
        return None
    if isinstance(action, MaterialsReceived):
        if stage == SUPPLEMENT:
            missing = [m for m in state.supplement_items if m not in action.items]
            return refuse("supplement_incomplete", missing=missing) if missing else None
        if stage in (ACCEPTED, AT_DEPARTMENT) and state.provisional:
            if not action.items:
                return refuse("provisional_items_missing")
            unknown = [m for m in action.items if m not in state.provisional]
            return refuse("not_promised", items=unknown) if unknown else None
        return refuse("nothing_owed")
    if isinstance(action, Assign):
        if stage not in HANDLING:
            return refuse("assign_stage", stage=stage)
        if entry is not None and stage != RECEIVED:
            problem = level_refusal(entry, "handle", role)
            if problem is not None:
                return problem
        return None if action.window.strip() and action.handler.strip() else refuse("window_handler_missing")
    if isinstance(action, Extend):
        if stage not in (ACCEPTED, AT_DEPARTMENT, SUPPLEMENT):
            return refuse("extend_stage", stage=stage)
        if stage == SUPPLEMENT and state.resume_stage not in (ACCEPTED, AT_DEPARTMENT) and rules_of(state) >= 3:
            # Rules 3: a one-time notice before acceptance stops no clock (none runs until 受理), so there is no
            # deadline to extend; earlier generations allowed it and keep that verdict.
            return refuse("extend_stage", stage=f"{SUPPLEMENT}/{state.resume_stage}")
        if action.days <= 0 or not action.reason.strip() or (state.due and not action.due):
            return refuse("extension_incomplete")
        if entry is not None:
            return extension_refusal(entry, role=action.role, used=state.extended_days, days=action.days)
        return None
    if isinstance(action, Review):
        if stage not in (ACCEPTED, AT_DEPARTMENT):
            return refuse("review_stage", stage=stage)
        if entry is not None:
            return level_refusal(entry, "handle", role)
        return None
    if isinstance(action, Decide):
        if action.deemed and entry is not None:  # unbound errands (from before binding) keep the old rules
            problem = deemed_refusal(
                entry, actor=action.actor, outcome=action.outcome, due=state.due, at=action.at, matter=state.matter
            )
            if problem is not None:
                return problem
        if stage not in (ACCEPTED, AT_DEPARTMENT) or not _desk(state, role):
            return refuse("decide_here", stage=stage)
        if action.outcome == "approved":
            if state.provisional:
                return refuse("provisional_owed", items=state.provisional)
            open_tasks = [d for d, status in state.subtasks.items() if status == "pending"]
            if open_tasks:
                return refuse("subtasks_open", departments=open_tasks)
            if any(status == "objected" for status in state.subtasks.values()):
                return refuse("subtask_objected")
        if entry is not None:
            # Who approves is the catalogue's approve_levels. Before rules 2 a refusal (不予许可) was the
            # handling desk's; from rules 2 only the level that may grant may refuse (a township that may not
            # approve hands the errand up, or does not accept it).
            deciding = action.outcome == "approved" or entry.rules >= 2
            return level_refusal(entry, "decide" if deciding else "handle", role)
        return None
    if isinstance(action, Terminate):
        if stage not in LIVE:
            return refuse("terminate_stage", stage=stage)
        return None if action.reason.strip() else refuse("termination_reason_missing")
    if isinstance(action, Withdraw):
        if stage not in (REGISTERED, *LIVE):
            return refuse("withdraw_stage", stage=stage)
        return None
    if isinstance(action, Deliver):
        if stage not in (DECIDED, RESULT_READY):
            return refuse("deliver_stage", stage=stage)
        if action.node != state.scope:
            return refuse("deliver_elsewhere", scope=state.scope)
        return None if action.confirmed_by.strip() else refuse("confirmation_missing")
    if isinstance(action, Close):
        return None if stage == DELIVERED else refuse("close_stage", stage=stage)
    if isinstance(action, CorrectDeadline):
        return _judge_correction(state, action)
    return refuse("unknown_action", kind=kind_of(action))


def _is_day(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _judge_correction(state: ErrandState, action: CorrectDeadline) -> Refusal | None:
    """Only provisional (暂定) deadlines are corrected, from what the errand holds, and only forward in version."""
    if state.stage not in LIVE:
        return refuse("correction_stage", stage=state.stage)
    if not (state.due_provisional or state.stage_due_provisional):
        return refuse("correction_not_provisional")
    if action.calendar_version < state.calendar_version:
        return refuse("correction_version", version=state.calendar_version)
    if action.previous_due != state.due or action.previous_stage_due != state.stage_due:
        return refuse("correction_mismatch")
    if bool(action.due) != bool(state.due) or bool(action.stage_due) != bool(state.stage_due):
        return refuse("correction_adds")
    if (action.due and not _is_day(action.due)) or (action.stage_due and not _is_day(action.stage_due)):
        return refuse("correction_date")
    before = (state.due, state.stage_due, state.due_provisional, state.stage_due_provisional)
    after = (action.due, action.stage_due, action.due_provisional, action.stage_due_provisional)
    return refuse("correction_noop") if before == after else None


def _judge_handoff(state: ErrandState, action: HandOff, directory: Directory, role: str) -> Refusal | None:
    stage = state.stage
    if action.purpose == "submit":
        village_accepted = stage == ACCEPTED and role == VILLAGE and state.responsible == action.node
        if stage != REGISTERED and not village_accepted:
            return refuse("submit_stage", stage=stage)
        if role != VILLAGE:
            return refuse("submit_level")
        if action.to != directory.parent(action.node):
            return refuse("submit_target", parent=directory.parent(action.node))
        return None
    if action.purpose == "escalate":
        if stage != ACCEPTED or role != TOWN:
            return refuse("escalate_stage")
        if action.to != directory.parent(action.node):
            return refuse("escalate_target")
        if not action.department.strip():
            return refuse("escalate_department_missing")
        if state.matter_entry is not None:
            problem = escalation_refusal(state.matter_entry, action.department)
            if problem is not None:
                return problem
        if state.provisional:
            return refuse("escalate_provisional")
        return None
    if stage not in (DECIDED, RESULT_READY):
        return refuse("result_stage", stage=stage)
    hop = directory.next_hop_down(action.node, state.scope)
    if hop is None or action.to != hop:
        return refuse("result_direction", scope=state.scope, hop=hop)
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
            catalogue_version=action.catalogue_version if action.matter_entry is not None else 0,
            matter_entry=action.matter_entry,
            in_person=action.in_person,
            mandate=action.mandate,
        )
    assert state is not None
    new = msgspec.structs.replace(state, updated_at=max(state.updated_at, action.at))
    if action.acting_for and action.acting_for not in new.acted_for:
        new.acted_for = (*new.acted_for, action.acting_for)
    if is_annotation(action):  # urgings are annotations: a main-line step asks neither kind
        if isinstance(action, Supervise) and action.answer_by:
            urging = Urging(
                id=action.id,
                by=action.node,
                to=action.to,
                window=action.window,
                answer_by=action.answer_by,
                at=action.at,
            )
            new.urgings = (*state.urgings, urging)
        elif isinstance(action, AnswerUrging):
            new.urgings = tuple(
                msgspec.structs.replace(u, answer=action.id, answered_at=action.at) if u.id == action.urging else u
                for u in state.urgings
            )
        elif isinstance(action, Rate) and rating_rules(state):
            new.rated = True  # only under the new rules: an older errand's state (and digest) stays as 0.3.0's
        return new
    if beside_holder(state, action):
        assert isinstance(action, SubtaskDone)
        new.subtasks = {**state.subtasks, action.department: action.outcome}
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
        if state.stage == SUBMITTED and state.responsible:  # accepted at the village (小事不出村), handled above
            new.stage = ACCEPTED
        new.stage_due = action.stage_due
        new.stage_due_provisional = action.stage_due_provisional
        new.stage_since = action.at
        if new.stage != RESULT_READY:
            new.window = new.handler = ""  # a new desk: its own window and handler
    elif isinstance(action, Accept):
        new.stage = ACCEPTED
        if action.matter_entry is not None and state.matter_entry is None:
            new.matter_entry = action.matter_entry
            new.catalogue_version = action.catalogue_version
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
        if action.stage_due:  # the pause stops the stage clock too (two clocks, one pause)
            new.stage_due = action.stage_due
            new.stage_due_provisional = action.stage_due_provisional
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
        new.deemed = action.deemed
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


_by_id = operator.attrgetter("id")


def _advance(
    state: ErrandState | None,
    version: int,
    by_base: Mapping[int, list[Action]],
    directory: Directory,
    *,
    main: list[str],
    rejected: dict[str, str],
    beside: list[str],
    bounded: Container[str],
    contested: Container[str],
) -> tuple[ErrandState | None, int]:
    """The main line from ``version`` on (``state`` at it): at each version the departments' answers beside
    the holder, then the first candidate by id that is allowed; the others at it are rejected. Stops at the
    first version nothing is allowed at. Appends to ``main``, ``rejected`` and ``beside``."""
    while by_base.get(version):
        winner: Action | None = None
        group = by_base[version]
        if len(group) > 1:  # most versions have one candidate: nothing to order
            group = sorted(group, key=_by_id)
        for candidate in group:  # departments' answers first: they take no version (``beside_holder``)
            if beside_holder(state, candidate):
                refusal = judge(state, candidate, directory)
                if refusal is None:
                    state = step(state, candidate)
                    beside.append(candidate.id)
                else:
                    rejected[candidate.id] = str(refusal)
        for candidate in group:
            if candidate.id in rejected or candidate.id in beside:
                continue
            if winner is not None:
                rejected[candidate.id] = f"conflicts with {winner.id}, applied first at version {version}"
                continue
            refusal = judge(
                state, candidate, directory, bounded=candidate.id in bounded and candidate.id not in contested
            )
            if refusal is None:
                winner = candidate
            else:
                rejected[candidate.id] = str(refusal)
        if winner is None:
            break
        state = step(state, winner)
        main.append(winner.id)
        version += 1
    return state, version


def _unplaced(
    by_base: Mapping[int, list[Action]], version: int, *, main: list[str], rejected: dict[str, str], beside: list[str]
) -> list[str]:
    """What ``_advance`` left of ``by_base``: waiting when based past the line's end, else rejected (its version
    was taken). Returns the waiting ids; adds the rejected to ``rejected``."""
    waiting: list[str] = []
    for base, group in by_base.items():
        for action in group:
            if action.id in rejected or action.id in main or action.id in beside:
                continue
            if base > version:
                waiting.append(action.id)
            else:
                rejected[action.id] = f"based on version {base}, but version {base} was already taken"
    return waiting


class Replayed(NamedTuple):
    """A projection and the state its main line reached before the notes were applied to it.

    ``fold`` judges every note again over a main line it lengthens (a note's verdict follows the stage, and
    the notes are taken after the main line, in (at, id) order), so it starts from the main line's own state;
    the notes a projection applied changed its state (the time of the last change, the urgings, who acted
    for whom), which cannot be taken back out of it. Held in memory beside a projection made in this process,
    never stored nor digested: a projection read back from a store has no ``line`` and is not folded past an
    applied note.
    """

    projection: Projection
    line: ErrandState | None


def project(
    errand_id: str, actions: Iterable[Action], directory: Directory, *, bounded: Container[str] = frozenset()
) -> Projection:
    """Replay ``actions`` (see the module's docstring). ``bounded``: ids of actions the caller knows passed
    ``judge`` before (the store's applied ones, one body per id), whose bounds need no second walk."""
    return project_with_line(errand_id, actions, directory, bounded=bounded).projection


def project_with_line(
    errand_id: str, actions: Iterable[Action], directory: Directory, *, bounded: Container[str] = frozenset()
) -> Replayed:
    """``project``, with the state its main line reached before the notes (``Replayed``)."""
    unique: dict[str, Action] = {}
    contested: set[str] = set()  # ids under two bodies: which one passed the bounds is not known
    for action in actions:
        if action.errand != errand_id:
            raise ValueError(f"action {action.id} belongs to errand {action.errand}, not {errand_id}")
        held = unique.get(action.id)
        # Two different actions under one id (a node restored from a backup): keep the one whose
        # encoding sorts first, so the choice depends on the set, never on arrival order.
        if held is not None and held != action:
            contested.add(action.id)
        if held is None or (held != action and encode(action) < encode(held)):
            unique[action.id] = action
    by_base: dict[int, list[Action]] = defaultdict(list)
    notes: list[Action] = []
    for action in unique.values():
        if is_annotation(action):
            notes.append(action)
        else:
            by_base[action.base].append(action)
    main: list[str] = []
    rejected: dict[str, str] = {}
    beside: list[str] = []
    line, version = _advance(
        None, 0, by_base, directory, main=main, rejected=rejected, beside=beside, bounded=bounded, contested=contested
    )
    waiting = _unplaced(by_base, version, main=main, rejected=rejected, beside=beside)
    state, applied_notes = _take_notes(
        line, notes, directory, waiting=waiting, rejected=rejected, bounded=bounded, contested=contested
    )
    projection = Projection(
        errand=errand_id,
        state=state,
        main=tuple(main),
        notes=(*beside, *applied_notes),
        rejected=rejected,
        waiting=tuple(sorted(waiting)),
        digest=digest_of(errand_id, state, main, [*beside, *applied_notes], rejected),
    )
    return Replayed(projection, line)


_at_then_id = operator.attrgetter("at", "id")


def _take_notes(
    state: ErrandState | None,
    notes: Iterable[Action],
    directory: Directory,
    *,
    waiting: list[str],
    rejected: dict[str, str],
    bounded: Container[str],
    contested: Container[str],
) -> tuple[ErrandState | None, list[str]]:
    """The notes judged in (at, id) order over ``state``, the main line's end, each over what the ones before
    it left: the state they leave and the ids applied. Adds the refused to ``rejected``; before a registration
    every note waits (added to ``waiting``)."""
    applied: list[str] = []
    for note in sorted(notes, key=_at_then_id):
        if state is None:
            waiting.append(note.id)
            continue
        refusal = judge(state, note, directory, bounded=note.id in bounded and note.id not in contested)
        if refusal is None:
            applied.append(note.id)
            state = step(state, note)
        else:
            rejected[note.id] = str(refusal)
    return state, applied


def fold(
    before: Projection,
    held: Mapping[str, int | None],
    actions: Sequence[Action],
    directory: Directory,
    *,
    made_here: bool = False,
    waiting: Sequence[Action] = (),
    notes: Sequence[Action] = (),
    line: ErrandState | None = None,
) -> Projection | None:
    """``fold_with_line``'s projection (None when it declines)."""
    continued = fold_with_line(
        before, held, actions, directory, made_here=made_here, waiting=waiting, notes=notes, line=line
    )
    return None if continued is None else continued.projection


def fold_with_line(
    before: Projection,
    held: Mapping[str, int | None],
    actions: Sequence[Action],
    directory: Directory,
    *,
    made_here: bool = False,
    waiting: Sequence[Action] = (),
    notes: Sequence[Action] = (),
    line: ErrandState | None = None,
) -> Replayed | None:
    """``before`` continued by ``actions`` without replaying its main line: equal to ``project`` over
    everything whenever it answers, None when the order is not that simple (the caller projects it all).

    ``held`` maps each action ``before`` was projected from to its base (None for a note); ``waiting`` are
    the bodies of ``before.waiting``, ``notes`` those of every note held (applied, refused or waiting), and
    ``line`` the state ``before``'s main line reached (``Replayed.line``), needed when ``before`` applied a
    note. The case taken, the common one, is a main line whose every held action below its version is
    decided, and ``actions`` are new main-line actions based at or past that version, and notes. Then
    ``project`` would replay ``before``'s versions unchanged (every candidate at each of them is the same,
    and notes take no part in the main line), and from there on its candidates are exactly the waiting ones
    and ``actions``: the same steps (``_advance``) are taken from ``line`` instead of from the start. The
    notes, held and new, are then all judged again in order over the new main line's end, as ``project``
    judges them: a note refused before may be allowed now (a call-back once the errand is delivered).

    ``made_here``: ``before`` is what ``project`` or ``fold`` returned in this process (not read back from
    a store), so its digest is its own and is not computed again to check it, and the notes it applied
    passed the bounds as they are (``judge``'s ``bounded``).
    """
    state = before.state
    version = len(before.main)
    if (state.version if state else 0) != version:
        return None
    waits = set(before.waiting)
    if len(waiting) != len(waits) or (waits and {a.id for a in waiting} != waits):
        return None  # the bodies of what waits are needed to take it up
    for a in waiting:
        if is_annotation(a):
            if state is not None or held.get(a.id, version) is not None:
                return None  # project leaves a note waiting only before a registration: replay it all
        elif a.base <= version or held.get(a.id) is None:
            return None  # not what project leaves waiting (a row whose statuses were changed by hand): replay it all
    if not made_here and digest_of(before.errand, state, list(before.main), list(before.notes), before.rejected) != (
        before.digest
    ):
        return None  # not a projection of what is held (a stale or foreign row): re-project
    # One set of what ``before`` decided, compared with ``held``'s keys as a set (no copy of them): called
    # once per errand a batch continues, so the sets built here were a tenth of the fold.
    covered = set(before.main)
    covered.update(before.notes, before.rejected, waits)
    if held.keys() != covered:
        return None
    held_notes = 0
    for aid, base in held.items():
        if base is None:
            held_notes += 1
        elif base >= version and aid not in waits:
            return None  # a competitor at the frontier
    if len(notes) != held_notes:
        return None  # every held note is judged again: its body is needed
    for note in notes:
        if held.get(note.id, version) is not None or not is_annotation(note) or note.errand != before.errand:
            return None
    if held_notes and len({note.id for note in notes}) != held_notes:
        return None  # one note twice, another missing
    # The departments' answers are main-line steps; every other note applied is judged again below.
    beside = [aid for aid in before.notes if held[aid] is not None] if before.notes else []
    if len(beside) != len(before.notes):  # a note was applied: the state past the notes is not the main line's
        if line is None or line.version != version:
            return None
    else:
        line = state
    fresh: set[str] = set()
    fresh_notes: list[Action] = []
    by_base: dict[int, list[Action]] = defaultdict(list)
    for action in waiting:
        if not is_annotation(action):
            by_base[action.base].append(action)
    for action in actions:
        if action.errand != before.errand or action.id in held or action.id in fresh:
            return None  # held already, or one id twice (a restored node's rewrite): project keeps one
        fresh.add(action.id)
        if is_annotation(action):
            fresh_notes.append(action)
        elif action.base < version:
            return None  # a rival of a version taken: project decides among them
        else:
            by_base[action.base].append(action)
    main = list(before.main)
    rejected = dict(before.rejected)
    for note in notes:
        rejected.pop(note.id, None)  # judged again below
    line, version = _advance(
        line,
        version,
        by_base,
        directory,
        main=main,
        rejected=rejected,
        beside=beside,
        bounded=frozenset(),  # none of them was allowed before: every one is walked
        contested=frozenset(),
    )
    still = _unplaced(by_base, version, main=main, rejected=rejected, beside=beside)
    state = line
    applied_notes: list[str] = []
    if notes or fresh_notes:  # most errands hold none: no call
        # A note applied by ``before`` passed the bounds as it is; one refused or waiting may not have.
        allowed = {aid for aid in before.notes if held[aid] is None} if made_here else frozenset()
        state, applied_notes = _take_notes(
            line, (*notes, *fresh_notes), directory, waiting=still, rejected=rejected, bounded=allowed, contested=()
        )
    projection = Projection(
        errand=before.errand,
        state=state,
        main=tuple(main),
        notes=(*beside, *applied_notes),
        rejected=rejected,
        waiting=tuple(sorted(still)),
        digest=digest_of(before.errand, state, main, [*beside, *applied_notes], rejected),
    )
    return Replayed(projection, line)


def basis_scope(projection: Projection) -> str | None:
    """The scope whose path is all ``judge`` read of the directory in making ``projection``, or None when it
    may have read more (then its basis is the whole tree, ``basis(directory)``).

    When the projection is registered and every action it holds was allowed (nothing refused, nothing
    waiting), ``judge`` asked the directory only about the errand's path: whether the registering node is
    in it and its role (a registration names its own node as its scope), whether each later writer is on
    the path, its role, its parent and the next hop down towards the scope, and whether an urging's
    target is on the path and its role. A node added to the tree changes none of those answers (it is on
    no existing node's path); a node removed from the path, or a role or parent changed on it, changes
    the path's basis. A refused action may have been refused for naming a node the directory did not
    hold (a rival registration from a node not enrolled yet: once enrolled it may win version 0), so a
    projection holding one is kept under the whole tree, as is one not registered. One holding a waiting
    action is too: the store projects it in full at its next batch anyway.
    """
    state = projection.state
    if state is None or projection.rejected or projection.waiting:
        return None
    return state.scope


def basis(directory: Directory, scope: str | None = None) -> str:
    """What ``judge`` read of ``directory`` for a projection (``basis_scope``), as a digest: a projection
    kept under another basis may have judged its actions otherwise, so it is not continued.

    ``scope`` None: the whole tree (each node's id, role and parent, not its keys), the formula of
    earlier releases. Otherwise the id, role and parent of each node on ``scope``'s path, root first, or
    that ``scope`` is not in the tree: what a projection that ``basis_scope`` names ``scope`` for read.
    """
    if scope is None:
        tree = sorted((n.id, n.role, n.parent or "") for n in directory.nodes())
        return hashlib.sha256(encode(tree)).hexdigest()
    path = None
    if scope in directory:
        path = [(n, directory.role(n), directory.parent(n) or "") for n in directory.path(scope)]
    # A 3-item array led by a string: never the encoding of a tree (an array of 3-item arrays).
    return hashlib.sha256(encode(["path", scope, path])).hexdigest()


def digest_of(
    errand_id: str, state: ErrandState | None, main: list[str], notes: list[str], rejected: dict[str, str]
) -> str:
    material = encode([errand_id, _digested(state), main, notes, sorted(rejected)])
    return hashlib.sha256(material).hexdigest()


# The digest is what replicas compare, across releases too (a tree runs mixed releases while it is
# upgraded, and `sanji verify` recomputes digests stored by an earlier release). Fields added to the
# state after 0.3.0 are left out of it while they hold their defaults (``LATER_DEFAULTS``), so the same
# errand has the same digest on a node that cannot hold them; ``joint_answers_at_departments`` and
# ``rules`` are inputs of ``judge`` whose outcome the digest already covers (main line, notes,
# rejections), so they are always left out (``NEVER_DIGESTED``). ``rated`` is derived from what the digest
# covers (the entry's ``rules`` and the notes applied), so it is left out too (``DERIVED``): a 0.3.0 replica,
# which cannot hold it, digests an errand rated once at its registering desk as a 0.4.0 one does, and the
# two disagree only where their verdicts do (a rating 0.4.0 refuses is in the other's notes).
#
# The state is encoded once, through mirror structs of the same fields in the same order: in
# ``_DigestState`` only the later fields have a default and ``omit_defaults`` leaves them out while
# they hold it; ``_DigestMatter`` lacks the fields never digested. The bytes are those of the
# canonical encoding (``protocol.encoding``) with those fields dropped, with no decode on the way
# (tests/protocol/test_digest_encoding.py checks it against decode-and-re-encode).
LATER_DEFAULTS: tuple[str, ...] = ("urgings",)
NEVER_DIGESTED: tuple[str, ...] = ("joint_answers_at_departments", "rules")
DERIVED: tuple[str, ...] = ("rated",)  # state fields derived from what is digested: never digested themselves


def _mirror(
    name: str, source: type[msgspec.Struct], *, drop: tuple[str, ...], later: tuple[str, ...]
) -> tuple[type[msgspec.Struct], Callable[[tuple[object, ...]], tuple[object, ...]]]:
    """A struct of ``source``'s fields in order but ``drop``; only ``later`` ones default (and are omitted
    at it). Built positionally from ``source``'s values, kept by the picker returned beside it."""
    every = msgspec.structs.fields(source)
    names = [f.name for f in every if f.name not in drop]
    if tuple(names[len(names) - len(later) :]) != later:
        raise TypeError(f"{name}: {later} must be the last fields of {source.__name__} (VERSIONING.md rule 1)")
    fields: list[tuple[str, type] | tuple[str, type, object]] = []
    for f in every:
        if f.name in later:
            fields.append((f.name, object, f.default if f.default is not msgspec.NODEFAULT else f.default_factory()))
        elif f.name not in drop:
            fields.append((f.name, object))
    kept = [i for i, f in enumerate(every) if f.name not in drop]
    pick = operator.itemgetter(*kept)
    return msgspec.defstruct(name, fields, omit_defaults=True), pick


_DigestMatter, _matter_values = _mirror("_DigestMatter", Matter, drop=NEVER_DIGESTED, later=())
_DigestState, _state_values = _mirror("_DigestState", ErrandState, drop=DERIVED, later=LATER_DEFAULTS)


# The digested bytes of each catalogue entry lately digested, by identity (``protocol.kept_bytes``): the entry
# is about half of what a digest encodes, and every state stepped from one registration shares it.
_digested_matter: KeptBytes[Matter] = KeptBytes(
    lambda entry: encode(_DigestMatter(*_matter_values(msgspec.structs.astuple(entry))))
)


def _digested(state: ErrandState | None) -> object:
    if state is None:
        return None
    digested: Any = _DigestState(*_state_values(msgspec.structs.astuple(state)))  # a made struct: no attributes typed
    entry = state.matter_entry
    if entry is not None:
        digested.matter_entry = _digested_matter(entry)  # not spliced into the values: one tuple fewer
    return digested
