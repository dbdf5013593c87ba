"""The one list of steps a desk can take on an errand, and the wire action each one writes.

Forms (``sanji.forms.ActionForm.kind``), screen labels, the history's wording, the service's
builders and the desk menus are all derived from ``STEPS``; a test checks that every wire
action tag is named here. A step is what a person chooses; its ``tag`` is the action it
writes (three steps write a hand-off, told apart by ``purpose``).
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

StepKind = Literal[
    "submit",
    "receive",
    "accept",
    "not_accept",
    "return",
    "request_supplement",
    "materials_received",
    "assign",
    "subtask_done",
    "extend",
    "review",
    "escalate",
    "decide",
    "terminate",
    "withdraw",
    "send_result",
    "deliver",
    "close",
    "supply",  # before the note: an agent asked for materials looks for this one first
    "note",
    "rate",
    "complain",
    "callback",
    "supervise",
    "answer_urging",
    "attach",
]
STEP_KINDS: tuple[str, ...] = get_args(StepKind)
REGISTER = "register"  # not a step on an errand: it creates one


class Step(NamedTuple):
    zh: str  # the button
    en: str
    done: str  # how the history shows it once taken
    tag: str  # the wire action's tag (protocol.actions)
    purpose: str = ""  # for hand-offs: submit / escalate / result
    annotation: bool = False  # commutes; no custody needed
    five: str = ""  # which of the five supervision stages (电子监察) it records


STEPS: dict[str, Step] = {
    "submit": Step("报送乡镇", "Submit to the township", "报送 submitted", "handoff", "submit"),
    "receive": Step("签收", "Receive (acknowledge the hand-over)", "签收 received", "receive"),
    "accept": Step("受理", "Accept", "受理 accepted", "accept", five="受理"),
    "not_accept": Step("不予受理", "Do not accept", "不予受理 not accepted", "not_accept"),
    "return": Step("退回", "Return", "退回 returned", "return"),
    "request_supplement": Step(
        "一次性告知补正", "One-time notice of missing materials", "一次性告知 one-time notice", "request_supplement"
    ),
    "materials_received": Step("材料已补齐", "Materials received", "材料补齐 materials received", "materials_received"),
    "assign": Step("分派承办", "Assign to a window", "分派承办 assigned", "assign", five="承办"),
    "subtask_done": Step("联办子任务完成", "Joint sub-task done", "联办子任务 sub-task done", "subtask_done"),
    "extend": Step("延期", "Extend the deadline", "延期 extended", "extend"),
    "review": Step("审核", "Review", "审核 reviewed", "review", five="审核"),
    "escalate": Step("上报县级部门", "Escalate to the county department", "上报 escalated", "handoff", "escalate"),
    "decide": Step("办结", "Decide (approve or refuse)", "办结 decided", "decide", five="批准"),
    "terminate": Step("终止办理", "Terminate", "终止办理 terminated", "terminate"),
    "withdraw": Step("申请人撤回", "Applicant withdraws", "撤回 withdrawn", "withdraw"),
    "send_result": Step("结果下送", "Send the result down", "结果下送 result sent down", "handoff", "result"),
    "deliver": Step("送达签收", "Deliver to the applicant", "送达 delivered", "deliver", five="办结"),
    "close": Step("归档销号", "Close and file", "归档 closed", "close"),
    "supply": Step(
        "代办员补交材料", "Agent brings materials", "补交材料 materials carried up", "supply", annotation=True
    ),
    "note": Step("备注", "Progress note", "备注 note", "note", annotation=True),
    "rate": Step("满意度评价", "Satisfaction rating", "评价 rated", "rate", annotation=True),
    "complain": Step("投诉", "Complaint", "投诉 complaint", "complain", annotation=True),
    "callback": Step("回访", "Call-back", "回访 call-back", "callback", annotation=True),
    "supervise": Step("督办", "Supervise", "督办 supervision", "supervise", annotation=True),
    "answer_urging": Step(
        "督办回复", "Answer the urging", "督办回复 urging answered", "answer_urging", annotation=True
    ),
    "attach": Step("附件", "Attach a scan", "附件 attachment", "attach", annotation=True),
}
assert tuple(STEPS) == STEP_KINDS

# Actions no desk chooses: the system's duties write them (the tag, and how the history shows it).
DUTY_DONE: dict[str, str] = {"deadline_corrected": "期限核定 deadline corrected on the official calendar"}

# The history's wording for every wire action tag (hand-offs are worded by purpose).
ACTION_DONE: dict[str, str] = (
    {"register": "登记 registered"} | {s.tag: s.done for s in STEPS.values() if s.tag != "handoff"} | DUTY_DONE
)
HANDOFF_DONE: dict[str, str] = {s.purpose: s.done for s in STEPS.values() if s.purpose}
STEP_OF_PURPOSE: dict[str, str] = {s.purpose: k for k, s in STEPS.items() if s.purpose}


def step_of(tag: str, purpose: str = "") -> str:
    """The step a wire action is (``handoff`` by its purpose); ``register`` for a registration."""
    if tag == "handoff":
        return STEP_OF_PURPOSE[purpose]
    return next((k for k, s in STEPS.items() if s.tag == tag), tag)
