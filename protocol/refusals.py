"""Why a step is refused: a stable code with its parameters, and the one table that words it.

``judge()`` and every other rule in ``protocol/`` return a ``Refusal``: a code from
``RefusalCode`` plus the facts it names (the stage, the missing materials, the node...).
Codes never change meaning once shipped: screens, the JSON API (``error_code`` in the error
body), the staff log and tests compare codes, never English sentences. ``TEXTS`` is the only
place a refusal is put into words, Chinese first and English second.
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

RefusalCode = Literal[
    # who and where
    "already_registered",
    "wrong_registering_node",
    "node_not_in_directory",
    "register_level",
    "not_registered",
    "scope_mismatch",
    "off_path",
    "regional_reads_only",
    "nothing_handed",
    "in_transit",
    "not_custodian",
    "errand_unknown",
    "changed_meanwhile",
    "system_only",
    # annotations
    "supply_items_missing",
    "callback_too_early",
    "complaint_text_missing",
    "note_text_missing",
    "rating_missing",
    "rate_elsewhere",
    "rate_too_early",
    "rate_once",
    "attachment_incomplete",
    "attachment_not_held",
    "attachment_type",
    "id_number_check",
    "name_blank",
    "name_invisible",
    # 督办 with an answer due, and its answer (protocol.urging)
    "urging_kind",
    "urging_level",
    "urging_target",
    "urging_answer_by",
    "no_open_urging",
    "urging_answered",
    "urging_not_addressed",
    "answer_text_missing",
    # intake
    "accept_level",
    "accept_stage",
    "reasons_missing",
    "provisional_immediate",
    "promise_date_missing",
    "co_departments_missing",
    "handling_desk_only",
    "notice_items_missing",
    "notice_already_issued",
    "supplement_incomplete",
    "provisional_items_missing",
    "not_promised",
    "nothing_owed",
    # handling
    "assign_stage",
    "window_handler_missing",
    "subtask_stage",
    "no_open_subtask",
    "subtask_department_only",
    "extend_stage",
    "extension_incomplete",
    "extension_over_limit",
    "extension_not_leader",
    "review_stage",
    "decide_here",
    "outcome_invalid",
    "provisional_owed",
    "subtasks_open",
    "subtask_objected",
    "terminate_stage",
    "termination_reason_missing",
    "withdraw_stage",
    "deliver_stage",
    "deliver_elsewhere",
    "confirmation_missing",
    "close_stage",
    "unknown_action",
    "out_of_bounds",
    # deadlines recomputed on the official calendar (暂定期限核定)
    "correction_stage",
    "correction_not_provisional",
    "correction_version",
    "correction_mismatch",
    "correction_adds",
    "correction_date",
    "correction_noop",
    # hand-offs
    "submit_stage",
    "submit_level",
    "submit_target",
    "escalate_stage",
    "escalate_target",
    "escalate_department_missing",
    "escalate_provisional",
    "result_stage",
    "result_direction",
    # the catalogue binds
    "no_catalogue",
    "matter_unknown",
    "matter_mismatch",
    "in_person_only",
    "proxy_not_allowed",
    "mandate_missing",
    "materials_missing",
    "accept_mains_missing",
    "level_not_allowed",
    "wrong_department",
    "not_reported_upward",
    "deemed_not_system",
    "deemed_not_allowed",
    "deemed_too_early",
    "deemed_refusal",
    "binding_mismatch",
    # rules 2 (later 0.4.0 builds): each step carries what its document states (protocol.errand, ``rules_of``)
    "due_missing",
    "due_before_acceptance",
    "deadline_uncounted",
    "extend_backwards",
    "provisional_main",
    "promise_after_due",
    "co_departments_incomplete",
    "decision_reasons_missing",
    "signature_missing",
    "urging_answer_missing",
    # anything without a code of its own (old messages, other layers)
    "other",
]
REFUSAL_CODES: tuple[str, ...] = get_args(RefusalCode)


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """A refused step: ``code`` says which rule, ``params`` the facts the texts name."""

    code: RefusalCode
    params: dict[str, str] = msgspec.field(default_factory=dict)

    def __str__(self) -> str:
        return english(self)


def refuse(code: RefusalCode, **params: object) -> Refusal:
    """A refusal; list parameters are joined with 、 as the texts show them."""
    out: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, list | tuple):
            out[name] = "、".join(str(v) for v in value)
        else:
            out[name] = "" if value is None else str(value)
    return Refusal(code=code, params=out)


# code -> (Chinese, English). Placeholders name ``Refusal.params``; a missing one shows empty.
TEXTS: dict[str, tuple[str, str]] = {
    "already_registered": ("该办件已登记", "errand is already registered"),
    "wrong_registering_node": (
        "办件只能由其所属节点 {scope} 登记",
        "an errand of {scope} can only be registered by {scope}",
    ),
    "node_not_in_directory": ("节点 {node} 不在节点目录中", "node {node} is not in the directory"),
    "register_level": (
        "办件只能在村代办点或乡镇窗口登记",
        "errands are registered at a village station or a township window",
    ),
    "not_registered": ("该办件尚未登记", "errand is not registered yet"),
    "scope_mismatch": (
        "操作所属节点 {scope} 与办件所属 {errand_scope} 不符",
        "action names scope {scope} but the errand belongs to {errand_scope}",
    ),
    "off_path": ("本节点不在该办件的办理路径上", "node {node} is not on the path of this errand"),
    "regional_reads_only": (
        "县级以上中心只查看和监督，不办理办件",
        "node {node} is above the counties: it reads and supervises errands, it does not act on them",
    ),
    "nothing_handed": ("没有向本节点移交的办件", "nothing is being handed to {node}{pending_note}"),
    "in_transit": (
        "办件正在移交途中，只能由接收方签收",
        "errand is on its way to {pending_to}; only its receipt may follow",
    ),
    "not_custodian": (
        "本节点不是该办件的当前经办节点",
        "node {node} is not the custodian (the errand is held by {holder})",
    ),
    "errand_unknown": ("本节点没有该办件", "errand {errand} is not known at {node}"),
    "changed_meanwhile": (
        "办件已被更新，请刷新页面后重试",
        "the errand changed meanwhile (version {version}, you saw {seen})",
    ),
    "system_only": ("该操作只能由系统自动作出", "only the system (电子监察) takes this step"),
    "supply_items_missing": ("请列明补交的材料", "name the materials supplied"),
    "callback_too_early": ("回访须在结果送达之后进行", "call-backs (回访) are made after the result was delivered"),
    "complaint_text_missing": ("投诉须写明内容", "a complaint needs its text"),
    "note_text_missing": ("备注不能为空", "a note needs text"),
    "urging_kind": (
        "只有督办可以要求限期答复（当前为{kind}）",
        "only a 督办 urging asks for an answer by a date (this is {kind})",
    ),
    "urging_level": (
        "限期答复的督办只能由县级监督岗位发出",
        "only the county's supervision desk urges with an answer due",
    ),
    "urging_target": (
        "督办对象 {to} 不在该办件的办理路径上，或不办理办件",
        "the desk urged ({to}) is not on the errand's path, or handles no errands",
    ),
    "urging_answer_by": (
        "答复期限 {answer_by} 无效：应在 {earliest} 至 {latest} 之间",
        "the answer date {answer_by} is invalid: it must lie from {earliest} to {latest}",
    ),
    "no_open_urging": ("该办件没有待答复的督办", "there is no unanswered urging on this errand"),
    "urging_answered": ("该督办已答复", "this urging has already been answered"),
    "urging_not_addressed": (
        "督办是发给 {to} 的，{node} 不能答复",
        "the urging is addressed to {to}; {node} may not answer it",
    ),
    "answer_text_missing": ("督办回复不能为空", "an answer to an urging needs text"),
    "rating_missing": ("请选择评价等级", "choose 满意, 基本满意 or 不满意"),
    "rate_elsewhere": (
        "满意度评价由申请人在受理登记的窗口 {scope} 作出",
        "the applicant rates the errand at {scope}, the desk where it was registered and the result is delivered",
    ),
    "rate_too_early": ("满意度评价须在结果送达之后作出", "an errand is rated after its result was delivered"),
    "rate_once": ("该办件已评价，每件只评价一次", "this errand was already rated; each errand is rated once"),
    "attachment_incomplete": ("附件须有内容摘要和名称", "an attachment needs its content hash and a name"),
    "id_number_check": (
        "身份证号码校验位不符，请核对后重新填写",
        "the ID number's check character does not match (GB 11643): check the number",
    ),
    "attachment_type": (
        "只能附照片（JPEG、PNG、WebP、HEIC、TIFF）或 PDF 扫描件，不能附 {mime}",
        "only photos (JPEG, PNG, WebP, HEIC, TIFF) or PDF scans are attached, not {mime}",
    ),
    "name_blank": ("请填写申请人姓名", "the applicant's name is blank"),
    "name_invisible": (
        "申请人姓名含不可见字符 {char}（零宽空格、零宽连接符、方向标记等），请删去后重新输入",
        "the applicant's name holds a character that shows as nothing, {char} (a zero-width space or joiner, a "
        "direction mark): type it again without it",
    ),
    "attachment_not_held": (
        "本节点没有该附件的完整文件（{blob}…），请直接上传文件",
        "this node holds no whole file {blob}…: send the bytes with the attachment (POST …/attachments)",
    ),
    "accept_level": (
        "受理或不予受理只能由{where_zh}作出",
        "errands are accepted or not accepted (受理/不予受理) at the {where}",
    ),
    "accept_stage": (
        "只有已接收的办件才能受理或不予受理",
        "only a received errand can be accepted or not accepted (stage is {stage})",
    ),
    "reasons_missing": ("须写明理由", "a {notice} notice must give its reasons"),
    "provisional_immediate": ("即办件不适用容缺受理", "容缺受理 does not apply to 即办件 (seed 001: 即办件除外)"),
    "promise_date_missing": (
        "容缺受理须填写承诺补齐日期",
        "容缺受理 needs the date the applicant promised the missing materials by",
    ),
    "co_departments_missing": ("联办件须列明联办部门", "a 联办件 names the co-handling departments"),
    "handling_desk_only": ("只有经办窗口才能{step_zh}", "only the handling desk can {step} (stage is {stage})"),
    "notice_items_missing": ("一次性告知须列明所缺材料", "the one-time notice must list the missing materials"),
    "notice_already_issued": (
        "本窗口已出具过一次性告知书，不得再次告知",
        "一次性告知: this desk already issued its one-time notice listing all missing materials",
    ),
    "supplement_incomplete": (
        "一次性告知所列材料尚未补齐：{missing}",
        "still missing from the one-time notice: {missing}",
    ),
    "provisional_items_missing": ("请列明已收到的容缺材料", "name the promised materials that arrived"),
    "not_promised": ("所列材料不在容缺承诺之内：{items}", "not among the promised 容缺 materials: {items}"),
    "nothing_owed": ("该办件目前没有待补材料", "no materials are owed on this errand now"),
    "assign_stage": (
        "只有办理中的办件才能分派",
        "an errand is assigned to a window while it is handled (stage is {stage})",
    ),
    "window_handler_missing": ("请填写承办窗口和承办人", "name the window and the handler"),
    "subtask_stage": ("联办子任务须在办理中完成", "sub-tasks are completed while the errand is handled"),
    "no_open_subtask": ("{department} 没有未完成的联办子任务", "{department} has no open sub-task on this errand"),
    "subtask_department_only": (
        "联办子任务由 {department} 在县级部门自行办结，牵头窗口不能代为办结",
        "{department} closes its own sub-task at its desk at the county; the lead window cannot close it",
    ),
    "extend_stage": ("只有办理中的办件才能延期", "only an errand being handled can be extended (stage is {stage})"),
    "extension_incomplete": (
        "延期须填写天数和理由",
        "an extension needs a positive number of days, a reason and the new deadline",
    ),
    "extension_over_limit": (
        "延期累计不得超过{limit}个工作日（已延{used}日）",
        "extensions may add at most {limit} working days in all ({used} used)",
    ),
    "extension_not_leader": (
        "延期须由窗口以上岗位（中心主任、部门负责人）批准",
        "an extension is granted by a post above the window (centre director or department head), not by {role}",
    ),
    "review_stage": ("该办件在此环节不能审核", "nothing to review at stage {stage}"),
    "decide_here": ("该办件在此环节不能办结", "the errand cannot be decided here at stage {stage}"),
    "outcome_invalid": ("办理结果须为准予或不予许可", "a decision is either approved or refused"),
    "provisional_owed": (
        "容缺材料尚未补齐，不能准予：{items}",
        "容缺 materials still owed: {items}; approve after they arrive",
    ),
    "subtasks_open": ("联办子任务尚未全部完成：{departments}", "联办 sub-tasks still open: {departments}"),
    "subtask_objected": (
        "联办部门有不同意见，不能准予",
        "a co-handling department objected; the errand cannot be approved",
    ),
    "terminate_stage": (
        "只有办理中的办件才能终止",
        "only an errand being handled can be terminated (stage is {stage})",
    ),
    "termination_reason_missing": ("终止办理须写明理由", "termination needs a reason"),
    "withdraw_stage": ("办件已不能撤回", "the errand can no longer be withdrawn (stage is {stage})"),
    "deliver_stage": ("尚无结果可送达", "there is no result to deliver (stage is {stage})"),
    "deliver_elsewhere": ("结果应由申请地的代办点送达", "results are delivered by {scope}, where the applicant asked"),
    "confirmation_missing": ("送达须申请人签收确认", "delivery needs the applicant's confirmation"),
    "due_missing": (
        "{kind}须在受理时写明办结期限",
        "accepting a {kind} must state its deadline (the acceptance notice names it)",
    ),
    "deadline_uncounted": (
        "本节点无法计算该{kind}的办结期限（未持有工作日历），暂不能受理，请联系县级管理员",
        "this desk cannot count the {kind}'s deadline (it holds no working calendar), so it cannot accept it yet: "
        "ask the county's administrator",
    ),
    "due_before_acceptance": (
        "办结期限 {due} 早于受理日 {accepted}",
        "the deadline {due} falls before the day of acceptance {accepted}",
    ),
    "extend_backwards": (
        "延期后的期限 {due} 早于原期限 {was}，延期只能延后",
        "an extension moves the deadline later: {due} is before the deadline held, {was}",
    ),
    "provisional_main": (
        "主件不适用容缺受理：{items}须齐全才能受理",
        "容缺 applies to secondary materials only: the main ones ({items}) must be there to accept",
    ),
    "promise_after_due": (
        "承诺补齐日期{promise_by}晚于办结期限{due}：副件须在期限内补齐",
        "the secondary materials are promised by {promise_by}, after the deadline {due}: they must come within it",
    ),
    "co_departments_incomplete": (
        "联办件须由事项目录所列全部联办部门办理，缺少：{missing}",
        "a 联办件 is handled by every co-department the catalogue names; missing: {missing}",
    ),
    "decision_reasons_missing": (
        "不予许可（不予办理）决定须写明理由",
        "a refusal (不予许可) must state its reasons in the decision",
    ),
    "signature_missing": (
        "送达须有申请人签名（签名板签名或纸质送达回证）",
        "delivery needs the applicant's signature (on the pad, or on the paper delivery receipt)",
    ),
    "urging_answer_missing": (
        "督办须写明答复期限",
        "a 督办 urging must name the date its answer is due",
    ),
    "close_stage": ("只有已送达的办件才能归档", "only a delivered errand is closed and filed (stage is {stage})"),
    "unknown_action": ("未知的操作", "unknown action {kind}"),
    "out_of_bounds": ("内容不符合长度、数量、字符或日期格式的限制：{detail}", "{detail}"),
    "correction_stage": (
        "只有办理中的办件才能核定期限",
        "only the deadlines of an errand being handled are corrected (stage is {stage})",
    ),
    "correction_not_provisional": (
        "该办件期限按正式日历计算，无需核定",
        "the deadlines of this errand were computed on the official calendar; nothing to correct",
    ),
    "correction_version": ("期限已按第{version}版日历核定", "the deadlines are already on calendar version {version}"),
    "correction_mismatch": ("核定所列原期限与办件不符", "the correction names other deadlines than the errand has"),
    "correction_adds": (
        "核定只能替换办件已有的期限，不能新增",
        "a correction replaces each deadline the errand has, and adds none",
    ),
    "correction_date": ("核定后的期限须为日期（YYYY-MM-DD）", "a corrected deadline is an ISO date (YYYY-MM-DD)"),
    "correction_noop": ("核定未改变任何期限", "the correction changes nothing"),
    "submit_stage": ("只有已登记的办件才能报送", "only a registered errand can be submitted (stage is {stage})"),
    "submit_level": (
        "只有村代办点报送办件；乡镇自行受理窗口件",
        "only a village station submits errands; a township accepts its walk-ins itself",
    ),
    "submit_target": ("办件须报送上级节点 {parent}", "an errand is submitted to the parent node {parent}"),
    "escalate_stage": (
        "只有已受理的乡镇才能上报该办件",
        "only a township that accepted the errand can escalate it (上报)",
    ),
    "escalate_target": ("上报须交上级节点", "escalation goes to the parent node"),
    "escalate_department_missing": ("上报须写明县级部门", "escalation must name the county department"),
    "escalate_provisional": (
        "容缺材料尚未补齐，补齐后再上报",
        "容缺 materials are still owed; escalate once they are complete",
    ),
    "result_stage": ("尚无结果可下送", "there is no result to send down yet (stage is {stage})"),
    "result_direction": ("结果须向申请地方向下送，下一站 {hop}", "a result goes down towards {scope}, next to {hop}"),
    "no_catalogue": (
        "本节点尚未收到事项目录，不能受理",
        "this node holds no matter catalogue yet; nothing can be accepted until it arrives",
    ),
    "matter_unknown": (
        "事项 {matter} 不在目录中（第{version}版）",
        "matter {matter} is not in catalogue version {version}",
    ),
    "matter_mismatch": ("办件所附事项与其编码 {matter} 不符", "the matter entry bound to the errand is not {matter}"),
    "in_person_only": (
        "{name} 须本人亲自办理，不能代办",
        "{name} must be handled by the applicant in person (本人亲自办理); it cannot be proxied",
    ),
    "proxy_not_allowed": (
        "{name} 不在代办范围内，须到窗口办理",
        "{name} is not open to proxy service (代办); the applicant must apply at the window",
    ),
    "mandate_missing": ("代办须有申请人委托", "a proxy errand needs the applicant's mandate (委托)"),
    "materials_missing": (
        "预审发现缺少主件：{items}；请核对后确认仍然登记",
        "main materials missing: {items}; confirm to register anyway",
    ),
    "accept_mains_missing": (
        "主件不齐，不能受理：缺少{items}；请出具一次性告知书（补正），列明全部缺少材料，材料补齐后再受理",
        "the main materials are not all here ({items} missing), so the errand cannot be accepted: issue the "
        "one-time notice (一次性告知) listing every missing material, and accept once they have arrived",
    ),
    "level_not_allowed": (
        "按事项目录，{step_zh}须由{levels_zh}作出",
        "by the catalogue, {step} of this matter is done at {levels}, not at a {level} node",
    ),
    "wrong_department": (
        "按事项目录，该事项由{expected}审批，不是{department}",
        "by the catalogue this matter is decided by {expected}, not {department}",
    ),
    "not_reported_upward": (
        "该事项不需上报县级部门",
        "this matter is not decided by a county department; nothing to escalate",
    ),
    "deemed_not_system": (
        "超时默许只能由系统（电子监察）自动作出",
        "a deemed approval (超时默许) is written by the system only, not by {actor}",
    ),
    "deemed_not_allowed": (
        "事项 {matter} 不适用超时默许",
        "the catalogue does not allow deemed approval (超时默许) for {matter}",
    ),
    "deemed_too_early": (
        "办结期限 {due} 尚未届满，不能超时默许",
        "the deadline {due} has not passed on {day}; no deemed approval yet",
    ),
    "deemed_refusal": ("超时默许只能是准予", "a deemed decision can only be an approval"),
    "binding_mismatch": (
        "登记所附事项条目（{matter}）与县级目录第{version}版不一致（{fields_zh}），可能被篡改；"
        "请核实登记节点，不得按此条目受理或办理",
        "the entry this errand was registered under ({matter}) differs from the county's catalogue v{version} "
        "({fields}); it may have been tampered with: check the registering node before acting on it",
    ),
    "other": ("办件规则不允许此操作", "{message}"),
}

LEVEL_ZH = {"village": "村代办点", "town": "乡镇便民服务中心", "county": "县级部门"}
LEVEL_EN = {"village": "village station", "town": "township", "county": "county department"}


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def chinese(refusal: Refusal) -> str:
    return TEXTS[refusal.code][0].format_map(_Blank(refusal.params))


def english(refusal: Refusal) -> str:
    return TEXTS[refusal.code][1].format_map(_Blank(refusal.params))


def bilingual(refusal: Refusal) -> tuple[str, str]:
    return chinese(refusal), english(refusal)
