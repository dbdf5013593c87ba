"""The one list of an errand's stages, with the words screens show for them.

Everything outside ``protocol/`` names a stage by these constants (or iterates ``STAGES``),
never by a bare string, so a new stage is added here and nowhere else.
"""

from __future__ import annotations

from typing import Literal, get_args

Stage = Literal[
    "registered",
    "submitted",
    "received",
    "accepted",
    "supplement",
    "escalated",
    "at_department",
    "decided",
    "result_down",
    "result_ready",
    "delivered",
    "closed",
]
STAGES: tuple[str, ...] = get_args(Stage)  # in the order an errand usually passes them

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
assert set(STAGE_LABELS) == set(STAGES)
# An errand ended without a decision on what was asked (not accepted, returned, terminated, withdrawn) is
# said and counted as what happened to it: 已办结 would tell a villager the matter was decided, and 在办分布 or the
# ledger's 状态 filter would count a refusal to accept among the matters decided. Its stage stays ``DECIDED``
# in the state (the steps that follow are a decided errand's); only how it is shown and counted differs.
ENDED_LABELS = {
    "not_accepted": "不予受理 not accepted",
    "returned": "已退回 returned",
    "terminated": "已终止 terminated",
    "withdrawn": "已撤回 withdrawn",
}
# The stages as shown and counted (``shown_stage``): each ended outcome its own, right after 已办结.
SHOWN_STAGES: tuple[str, ...] = tuple(
    shown for stage in STAGES for shown in ((stage, *ENDED_LABELS) if stage == DECIDED else (stage,))
)
SHOWN_LABELS = {**STAGE_LABELS, **ENDED_LABELS}
assert set(SHOWN_LABELS) == set(SHOWN_STAGES)


def shown_stage(stage: str, outcome: str = "") -> str:
    """The stage an errand at ``stage`` with ``outcome`` is shown and counted as: one of ``SHOWN_STAGES``.

    The one place screens, 电子监察's 在办分布, the ledger's filter and its exports ask."""
    if stage == DECIDED and outcome in ENDED_LABELS:
        return outcome
    return stage


def stored_stage(shown: str) -> str:
    """The stage kept in the state for a ``SHOWN_STAGES`` entry (不予受理 … are kept as ``DECIDED``): what a
    query by stage asks the database for, before ``shown_stage`` tells the ended ones apart."""
    return DECIDED if shown in ENDED_LABELS else shown


def stage_label(stage: str, outcome: str = "") -> str:
    """The words a screen shows for an errand at ``stage`` with ``outcome``."""
    shown = shown_stage(stage, outcome)
    return SHOWN_LABELS.get(shown, shown)


def stage_says_outcome(stage: str, outcome: str = "") -> bool:
    """Whether ``stage_label`` already says the outcome (不予受理 …): a page then says it once, not twice."""
    return shown_stage(stage, outcome) != stage


HANDLING = (RECEIVED, ACCEPTED, AT_DEPARTMENT)  # stages at a desk that can still decide
LIVE = (RECEIVED, ACCEPTED, AT_DEPARTMENT, SUPPLEMENT)  # being handled (clock running or stopped)
IN_TRANSIT = (SUBMITTED, ESCALATED, RESULT_DOWN)  # handed off, waiting for the receiver
FINISHED = (DECIDED, RESULT_DOWN, RESULT_READY, DELIVERED, CLOSED)  # a result exists
ANSWERED = (DELIVERED, CLOSED)  # the applicant has the result
SUBTASK_OPEN = (ACCEPTED, AT_DEPARTMENT)  # 联办: where a co-handling department may answer its sub-task
