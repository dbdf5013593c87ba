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
# said as what happened to it: 已办结 would tell a villager the matter was decided.
ENDED_LABELS = {
    "not_accepted": "不予受理 not accepted",
    "returned": "已退回 returned",
    "terminated": "已终止 terminated",
    "withdrawn": "已撤回 withdrawn",
}


def stage_label(stage: str, outcome: str = "") -> str:
    """The words a screen shows for an errand at ``stage`` with ``outcome``."""
    if stage == DECIDED and outcome in ENDED_LABELS:
        return ENDED_LABELS[outcome]
    return STAGE_LABELS.get(stage, stage)


HANDLING = (RECEIVED, ACCEPTED, AT_DEPARTMENT)  # stages at a desk that can still decide
LIVE = (RECEIVED, ACCEPTED, AT_DEPARTMENT, SUPPLEMENT)  # being handled (clock running or stopped)
IN_TRANSIT = (SUBMITTED, ESCALATED, RESULT_DOWN)  # handed off, waiting for the receiver
FINISHED = (DECIDED, RESULT_DOWN, RESULT_READY, DELIVERED, CLOSED)  # a result exists
ANSWERED = (DELIVERED, CLOSED)  # the applicant has the result
SUBTASK_OPEN = (ACCEPTED, AT_DEPARTMENT)  # 联办: where a co-handling department may answer its sub-task
