"""What people submit at a desk: typed, validated request bodies (wire types for the JSON API)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from protocol.bounds import DAY_PATTERN, MAX_ATTACHMENT_BYTES, MAX_INT, fields_problem, whole
from protocol.steps import STEP_KINDS, StepKind
from protocol.urging import MAX_ANSWER_WORKING_DAYS

Text = Annotated[str, msgspec.Meta(max_length=4000)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Item = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Items = Annotated[list[Item], msgspec.Meta(max_length=100)]
IsoDate = Annotated[str, msgspec.Meta(pattern=DAY_PATTERN)]

# The one list of steps lives in protocol.steps; the form only names it.
ActionKind = StepKind
ACTION_KINDS: tuple[str, ...] = STEP_KINDS


class BoundedForm(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A form whose every text field is held to ``protocol.bounds`` as it is decoded (a 400, not a 409)."""

    def __post_init__(self) -> None:
        if (problem := fields_problem(self, days=False)) is not None:
            raise ValueError(problem)


class RegisterForm(BoundedForm, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """代办登记: the village agent registers an errand on the villager's behalf."""

    matter: Short
    applicant_name: Name
    applicant_id_number: Annotated[str, msgspec.Meta(max_length=18, pattern=whole("([0-9]{17}[0-9X])?"))] = ""
    applicant_phone: Annotated[str, msgspec.Meta(max_length=20, pattern=whole("[0-9+\\- ]*"))] = ""
    mandate: bool = True
    in_person: bool = False
    materials: Items = []
    summary: Text = ""
    actor: Name
    role: Short = "代办员"
    acting_for: Annotated[str, msgspec.Meta(max_length=64)] = ""
    # The pre-check found main materials missing and the agent registers anyway (the form's
    # "仍然登记" box). A program that wants the pre-check's refusal sends false.
    confirm_missing: bool = True


class ActionForm(BoundedForm, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One step on an errand. Which fields matter depends on ``kind``."""

    kind: ActionKind
    actor: Name
    role: Short = "工作人员"
    acting_for: Annotated[str, msgspec.Meta(max_length=64)] = ""
    errand_kind: Literal["即办件", "承诺件", "上报件", "联办件", "特办件", ""] = ""
    department: Annotated[str, msgspec.Meta(max_length=64)] = ""
    co_departments: Items = []
    window: Annotated[str, msgspec.Meta(max_length=64)] = ""
    handler: Annotated[str, msgspec.Meta(max_length=64)] = ""
    referred_by: Annotated[str, msgspec.Meta(max_length=64)] = ""
    outcome: Literal["approved", "refused", "agreed", "objected", ""] = ""
    document: Text = ""
    reasons: Text = ""
    items: Items = []
    provisional: Items = []
    promise_by: IsoDate = ""
    days: Annotated[int, msgspec.Meta(ge=0, le=365)] = 0
    passed: bool = True
    applicant_informed: bool = False
    confirmed_by: Annotated[str, msgspec.Meta(max_length=64)] = ""
    signature: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    archive_no: Annotated[str, msgspec.Meta(max_length=64)] = ""
    level: Literal["满意", "基本满意", "不满意", ""] = ""
    staff: Annotated[str, msgspec.Meta(max_length=64)] = ""
    against: Annotated[str, msgspec.Meta(max_length=64)] = ""
    reached: bool = True
    supervision: Literal["督办", "纠错", "预警"] = "督办"
    # 督办 with an answer due: a date, or working days on the node's calendar (one of the two)
    answer_by: IsoDate = ""
    answer_days: Annotated[int, msgspec.Meta(ge=0, le=MAX_ANSWER_WORKING_DAYS)] = 0
    urging: Annotated[str, msgspec.Meta(max_length=64)] = ""  # which urging an answer answers ('' = the oldest)
    deemed: bool = False
    blob: Annotated[str, msgspec.Meta(pattern=whole("([0-9a-f]{64})?"))] = ""
    size: Annotated[int, msgspec.Meta(ge=0, le=MAX_ATTACHMENT_BYTES)] = 0
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    mime: Annotated[str, msgspec.Meta(max_length=100)] = ""
    text: Text = ""
    expected_version: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)] | None = None
