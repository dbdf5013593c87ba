"""Errand actions: the only things that ever change an errand.

Actions are append-only; an errand's state is derived from them (see
``protocol.errand``). Every action names the errand, the scope (the node the
errand belongs to), the node that wrote it, the person and role acting, a hybrid
logical timestamp, and — for main-line actions — the errand version it was
based on. Annotations (notes) commute and carry no base version.

Evolution follows msgspec's rules (see VERSIONING.md): new fields get defaults,
nothing is retyped, reordered or removed, and tags are never reused.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from protocol.matter import Matter

DecisionOutcome = Literal["approved", "refused"]


class Applicant(msgspec.Struct, frozen=True, kw_only=True):
    """Who asked. ``name`` always travels in clear (receipts, lists, the projection use it).

    When the registering node seals (``Register.sealed``, see ``protocol.sealing``), ``id_number``
    and ``phone`` stay empty here and travel only inside the sealed blob.
    """

    name: str
    id_number: str = ""
    phone: str = ""


class _Action(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", omit_defaults=True):
    id: str
    errand: str
    scope: str
    node: str
    actor: str
    role: str
    at: int
    base: int = 0
    acting_for: str = ""  # B post acting for an absent A post (A/B岗): whose rights are used


class Register(_Action, tag="register", frozen=True, kw_only=True):
    """Village agent (or township window) records an errand with the villager's mandate (委托)."""

    matter: str
    applicant: Applicant
    mandate: bool = True
    materials: tuple[str, ...] = ()
    summary: str = ""
    receipt: str = ""  # the number printed on the villager's receipt
    in_person: bool = False  # the applicant came in person (no proxy)
    # The applicant's ID number, phone, income and health details, sealed to the nodes on the
    # errand's path (protocol.sealing); b"" for registrations written in clear, as before sealing.
    sealed: bytes = b""
    # The catalogue entry the errand is bound to, copied from the catalogue version the registering
    # node held (protocol.binding): every replica judges the errand by these same facts.
    catalogue_version: int = 0
    matter_entry: Matter | None = None
    missing_confirmed: bool = False  # the agent saw the pre-check's missing main materials and went on


class HandOff(_Action, tag="handoff", frozen=True, kw_only=True):
    """The custodian gives the errand to a neighbour (签名交接); the receiver must acknowledge."""

    to: str
    purpose: Literal["submit", "escalate", "result"]
    department: str = ""
    note: str = ""


class Receive(_Action, tag="receive", frozen=True, kw_only=True):
    """The receiver acknowledges a hand-off and becomes the custodian."""

    stage_due: str = ""  # per-stage deadline (ISO date) the receiver computed on its own calendar
    stage_due_provisional: bool = False  # ... counted over a year not yet published (暂定)


class Accept(_Action, tag="accept", frozen=True, kw_only=True):
    """The township accepts the errand (受理)."""

    errand_kind: Literal["即办件", "承诺件", "上报件", "联办件", "特办件"] = "承诺件"
    note: str = ""
    due: str = ""  # whole-errand deadline (ISO date), computed by the accepting node; never reset
    limit_days: int = 0
    limit_unit: Literal["working", "calendar"] = "working"
    catalogue_version: int = 0
    window: str = ""
    provisional: tuple[str, ...] = ()  # 容缺受理: secondary materials still owed
    promise_by: str = ""  # ... by this date (ISO), per the signed commitment letter
    co_departments: tuple[str, ...] = ()  # 联办件: who else handles a sub-task
    calendar_version: int = 0  # the county calendar the deadline was computed on (0: the built-in notices)
    due_provisional: bool = False  # the deadline counts days of a year not yet published (暂定)
    matter_entry: Matter | None = None  # binds an errand registered before its node held a catalogue


class Decide(_Action, tag="decide", frozen=True, kw_only=True):
    """The handling window or county department completes the errand (办结): approve or refuse."""

    outcome: DecisionOutcome
    document: str = ""
    department: str = ""
    deemed: bool = False  # 超时默许: not decided by the deadline, taken as granted (per-matter rule)
    reasons: str = ""  # 不予许可: why, as the decision document states them (required from rules 2)


class Deliver(_Action, tag="deliver", frozen=True, kw_only=True):
    """The result is handed to the applicant, who confirms with a signature (签名核对)."""

    confirmed_by: str
    signature: str = ""


class NotAccept(_Action, tag="not_accept", frozen=True, kw_only=True):
    """不予受理: a written notice with the reasons; the notice goes back down to the applicant."""

    reasons: str


class ReturnErrand(_Action, tag="return", frozen=True, kw_only=True):
    """退回件: the materials go back to the applicant with a return notice."""

    reasons: str


class RequestSupplement(_Action, tag="request_supplement", frozen=True, kw_only=True):
    """补正: ONE notice listing ALL missing materials (一次性告知); the clock stops until they arrive."""

    items: tuple[str, ...]
    note: str = ""


class MaterialsReceived(_Action, tag="materials_received", frozen=True, kw_only=True):
    """The custodian has the supplemented or promised (容缺) materials; a stopped clock restarts."""

    items: tuple[str, ...]
    due: str = ""  # the whole-errand deadline pushed by the paused working days
    due_provisional: bool = False
    stage_due: str = ""  # the per-stage deadline at this desk, pushed by the same pause
    stage_due_provisional: bool = False


class Assign(_Action, tag="assign", frozen=True, kw_only=True):
    """承办: the errand goes to a window and a handler; a first-inquiry referral names who referred it."""

    window: str
    handler: str
    referred_by: str = ""  # 首问负责: the first person asked, who named the right window


class SubtaskDone(_Action, tag="subtask_done", frozen=True, kw_only=True):
    """联办件: one co-handling department finishes its sub-task."""

    department: str
    outcome: Literal["agreed", "objected"] = "agreed"
    note: str = ""


class Extend(_Action, tag="extend", frozen=True, kw_only=True):
    """延期: more time, with a reason; the applicant must be told."""

    days: int
    reason: str
    due: str  # the new whole-errand deadline
    applicant_informed: bool = False
    due_provisional: bool = False


class Review(_Action, tag="review", frozen=True, kw_only=True):
    """审核/复核: a second person checks the handling before approval."""

    passed: bool
    note: str = ""


class Terminate(_Action, tag="terminate", frozen=True, kw_only=True):
    """终止办理: e.g. 容缺 materials not supplied by the promised date; goes down like a result."""

    reason: str


class Withdraw(_Action, tag="withdraw", frozen=True, kw_only=True):
    """The applicant withdraws (撤回); the materials go back down like a result."""

    reason: str = ""


class Close(_Action, tag="close", frozen=True, kw_only=True):
    """办结销号/建档: filed in the ledger after delivery."""

    archive_no: str = ""


class CorrectDeadline(_Action, tag="deadline_corrected", frozen=True, kw_only=True):
    """暂定期限核定: deadlines computed on a provisional calendar, recomputed on the official one.

    Written by the custodian (its system duty) once the county's calendar publishes the year; the
    provisional dates stay in the history, in the actions that set them.
    """

    due: str
    previous_due: str
    stage_due: str = ""
    previous_stage_due: str = ""
    due_provisional: bool = False  # still counting days of a year not yet published
    stage_due_provisional: bool = False
    calendar_version: int = 0
    reason: str = ""


class Note(_Action, tag="note", frozen=True, kw_only=True):
    """A commuting annotation by any node on the path: progress notes, supervision remarks."""

    text: str


class Supply(_Action, tag="supply", frozen=True, kw_only=True):
    """Annotation: the village agent collected these materials and is carrying them up."""

    items: tuple[str, ...]
    note: str = ""


class Rate(_Action, tag="rate", frozen=True, kw_only=True):
    """Annotation: the applicant's satisfaction rating (评价器)."""

    level: Literal["满意", "基本满意", "不满意"]
    window: str = ""
    staff: str = ""
    comment: str = ""


class Complain(_Action, tag="complain", frozen=True, kw_only=True):
    """Annotation: a complaint — shown only to supervisors and discipline inspectors.

    ``complainant``: who complained through the public form (``protocol.sealing.Personal`` with
    ``name`` and ``phone``), sealed to the county hub's supervision desk alone with the context
    ``protocol.sealing.complaint_binding(errand)``, so no township or village on the path can read it. Empty for
    an anonymous complaint or one a desk wrote down. ``channel`` is "public" for the public form.
    """

    text: str
    against: str = ""
    complainant: bytes = b""
    channel: str = ""


class CallBack(_Action, tag="callback", frozen=True, kw_only=True):
    """Annotation: 回访 — a supervisor's call-back to the applicant after closing."""

    reached: bool
    satisfied: Literal["满意", "基本满意", "不满意", ""] = ""
    note: str = ""


class Supervise(_Action, tag="supervise", frozen=True, kw_only=True):
    """Annotation: 督办 urging or 纠错 correction from a supervising level."""

    kind_of_supervision: Literal["督办", "纠错", "预警"] = "督办"
    text: str = ""
    # 督办 with an answer due (protocol.urging): the desk addressed — the errand's handling node
    # and window when urged — must answer (``AnswerUrging``) by ``answer_by`` (ISO date, CST).
    answer_by: str = ""
    to: str = ""
    window: str = ""


class AnswerUrging(_Action, tag="answer_urging", frozen=True, kw_only=True):
    """Annotation: 督办回复 — the urged desk's answer to one 督办 (``urging`` is its action id)."""

    urging: str
    text: str


class Attach(_Action, tag="attach", frozen=True, kw_only=True):
    """Annotation: a scan or photo of a material, named by the SHA-256 of its bytes.

    The bytes travel apart from the batch, in chunks, after every batch and within the
    node's daily byte budget; the signed action pins exactly which bytes are meant.
    """

    blob: str  # hex SHA-256 of the content
    size: int
    name: str
    mime: str = "application/octet-stream"


Action = (
    Register
    | HandOff
    | Receive
    | Accept
    | Decide
    | Deliver
    | NotAccept
    | ReturnErrand
    | RequestSupplement
    | MaterialsReceived
    | Assign
    | SubtaskDone
    | Extend
    | Review
    | Terminate
    | Withdraw
    | Close
    | CorrectDeadline
    | Note
    | Supply
    | Rate
    | Complain
    | CallBack
    | Supervise
    | Attach
    | AnswerUrging
)

ANNOTATIONS = (Note, Supply, Rate, Complain, CallBack, Supervise, Attach, AnswerUrging)


def kind_of(action: Action) -> str:
    return type(action).__struct_config__.tag  # type: ignore[return-value]


# Whether each type met is an annotation's: ``isinstance`` against the eight classes of ``ANNOTATIONS``
# costs a microsecond and more for a main-line action (each class missed in turn), and replaying an
# errand asks it of every action several times. ``issubclass`` of the type is the same answer: no action
# class overrides ``__class__`` or the instance check.
_ANNOTATION_TYPES: dict[type, bool] = {}


def is_annotation(action: object) -> bool:
    """``isinstance(action, ANNOTATIONS)``, answered from the action's type once that type is known."""
    kind = type(action)
    known = _ANNOTATION_TYPES.get(kind)
    if known is None:
        known = _ANNOTATION_TYPES[kind] = issubclass(kind, ANNOTATIONS)
    return known


def is_main_line(action: Action) -> bool:
    return not is_annotation(action)
