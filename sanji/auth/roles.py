"""Who may do what: the one table of staff roles, their places, their capabilities and their steps.

Nothing else in the code base decides a permission: the route guard asks ``route_requirement``
and ``may``; the errand service asks ``action_refusal``. The seeds' posts:

| role | label | works at | may |
|---|---|---|---|
| ``village_agent`` | 代办员 | village | register, submit, carry materials, deliver, rate |
| ``window_a`` | 窗口A岗 | township, county | every window step (decide at the township only) |
| ``window_b`` | 窗口B岗 | township, county | receive and notes; acting for an A post (``acting_for``), all A steps |
| ``director`` | 中心主任 | township, county | every window step (decide at township only); supervision; enrollment |
| ``approver`` | 部门审批 | county | the county department's steps; decides at the county; answers 联办 sub-tasks |
| ``supervisor`` | 监察/督查 | any | supervision (督办/纠错), call-backs, notes; complaints |
| ``inspector`` | 纪检 | any | supervision remarks and notes; complaints; numbers stay masked |
| ``admin`` | 管理员 | any | accounts, node health, enrollment (节点接入), catalogue, calendar; no personal data |

The posts that keep a node in step (the village agent, window staff, the director) hold ``CARRY``: the
sync panel (``/carry``) and its hand-carried files (导出/导入带送文件); approvers, supervisors, inspectors and
the administrator do not (a carried file holds applicants' names, matters and decisions in plain text).

ID numbers and phones are masked everywhere; ``REVEAL`` (查看完整号码, audited) shows them in full,
and an attachment's bytes (ID-card scans), to the handling chain and supervisors: a window's or an
approver's account only on an errand that reached its node's desk, and one bound to a department or window
only where its place is on the path (escalated to the department, named the window: ``reveal_refusal``). Complaints
(投诉) are seen only by supervisors and inspectors, and never one made against the person looking
(``complaint_visible``).

Every logged-in account may change its own password (``OWN_ACCOUNT``, ``/account/password``). A password
the administrator's desk generates (a new account, a reset) must be changed at the holder's first login
(``sanji.auth.guard``), so "no personal data" holds: the admin post never keeps a working password of
another post.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from protocol.actions import ANNOTATIONS
from protocol.bounds import line_problem
from protocol.errand import ErrandState, answered_by_departments
from protocol.errors import SanjiError
from protocol.steps import STEPS as STEP_TABLE  # the buttons' words, as a desk shows a step
from protocol.topology import CITY, COUNTY, PROVINCE, REGIONAL, TOWN, VILLAGE
from protocol.urging import open_for

VILLAGE_AGENT = "village_agent"
WINDOW_A = "window_a"
WINDOW_B = "window_b"
DIRECTOR = "director"
APPROVER = "approver"
SUPERVISOR = "supervisor"
INSPECTOR = "inspector"
ADMIN = "admin"
STAFF_ROLES = (VILLAGE_AGENT, WINDOW_A, WINDOW_B, DIRECTOR, APPROVER, SUPERVISOR, INSPECTOR, ADMIN)

ROLE_LABELS: Mapping[str, str] = {
    VILLAGE_AGENT: "代办员",
    WINDOW_A: "窗口A岗",
    WINDOW_B: "窗口B岗",
    DIRECTOR: "中心主任",
    APPROVER: "部门审批",
    SUPERVISOR: "监察督查",
    INSPECTOR: "纪检",
    ADMIN: "管理员",
}
ROLE_LABELS_EN: Mapping[str, str] = {
    VILLAGE_AGENT: "village agent",
    WINDOW_A: "window, A post",
    WINDOW_B: "window, B post",
    DIRECTOR: "centre director",
    APPROVER: "department approver",
    SUPERVISOR: "supervisor",
    INSPECTOR: "discipline inspector",
    ADMIN: "administrator",
}
NODE_LABELS = {
    VILLAGE: "村代办点 village station",
    TOWN: "乡镇中心 township centre",
    COUNTY: "县级中心 county hub",
    CITY: "市级中心 city hub",
    PROVINCE: "省级中心 province hub",
}

# Above the counties (REGIONAL) a centre supervises and reads: its director enrolls the counties, its
# supervisors and inspectors read; no window or approver works there (``judge`` refuses them anyway).
ANY_LEVEL = frozenset({VILLAGE, TOWN, COUNTY}) | REGIONAL
WORKS_AT: Mapping[str, frozenset[str]] = {
    VILLAGE_AGENT: frozenset({VILLAGE}),
    WINDOW_A: frozenset({TOWN, COUNTY}),
    WINDOW_B: frozenset({TOWN, COUNTY}),
    DIRECTOR: frozenset({TOWN, COUNTY}) | REGIONAL,
    APPROVER: frozenset({COUNTY}),
    SUPERVISOR: ANY_LEVEL,
    INSPECTOR: ANY_LEVEL,
    ADMIN: ANY_LEVEL,
}

# -- capabilities (what a route needs) ---------------------------------------------------------

PUBLIC = "public"  # anyone, logged in or not
OWN_ACCOUNT = "own_account"  # any logged-in account: change one's own password (/account/password)
ERRANDS = "errands"  # lists, worklist, catalogue, pre-check (names and stages)
PERSONAL = "personal"  # one errand's detail, printed documents (ID numbers, phones masked)
REVEAL = "reveal"  # 查看完整号码 and attachments' bytes: audited, on the place's path too (sanji.privacy)
ACT = "act"  # register and take steps (which steps: ``action_refusal``)
STATUS = "status"  # node health, digests, reports below
SUPERVISION = "supervision"  # 电子监察 tables
COMPLAINTS = "complaints"  # 投诉
ACCOUNTS = "accounts"
ENROLL = "enroll"  # 节点接入: issue enrollment tokens for nodes below, see the certificates held
# The sync panel (/carry): export and import hand-carried files (带送文件) when the link is down. Not under
# /sync/: those are the nodes' signed endpoints, which never use accounts.
CARRY = "carry"
# The administrator's catalogue and calendar pages (the county publishes both there); restoring archived attachments.
CONFIGURE = "configure"

# The chain that handles an errand, and the supervisors (DOMAIN.md "Privacy"), may ask to see full numbers.
_DESK = frozenset({ERRANDS, PERSONAL, REVEAL, ACT, STATUS})
CAPABILITIES: Mapping[str, frozenset[str]] = {
    VILLAGE_AGENT: _DESK | {CARRY},  # the agent carries the village's file to the township
    WINDOW_A: _DESK | {CARRY},
    WINDOW_B: _DESK | {CARRY},
    DIRECTOR: _DESK | {SUPERVISION, ENROLL, CARRY},
    APPROVER: _DESK | {SUPERVISION},
    SUPERVISOR: _DESK | {SUPERVISION, COMPLAINTS},
    INSPECTOR: (_DESK - {REVEAL}) | {SUPERVISION, COMPLAINTS},  # numbers stay masked for discipline checks
    ADMIN: frozenset({STATUS, ACCOUNTS, ENROLL, CONFIGURE}),
}

# -- steps on errands --------------------------------------------------------------------------

REGISTER = "register"
WINDOW_STEPS = frozenset(
    {
        REGISTER,
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
        "note",
        "attach",
        "rate",
        "callback",
        "complain",
        "answer_urging",
    }
)
STEPS: Mapping[str, frozenset[str]] = {
    VILLAGE_AGENT: frozenset(
        {
            REGISTER,
            "submit",
            "receive",
            "withdraw",
            "supply",
            "deliver",
            "close",
            "note",
            "attach",
            "rate",
            "complain",
            "answer_urging",
        }
    ),
    WINDOW_A: WINDOW_STEPS,
    WINDOW_B: frozenset({"receive", "note", "attach", "complain"}),  # the rest only acting for an A post
    DIRECTOR: WINDOW_STEPS,
    APPROVER: frozenset(
        {
            "receive",
            "assign",
            "review",
            "subtask_done",
            "extend",
            "request_supplement",
            "materials_received",
            "decide",
            "return",
            "terminate",
            "send_result",
            "note",
            "attach",
            "callback",
            "answer_urging",
        }
    ),
    SUPERVISOR: frozenset({"supervise", "callback", "note"}),
    INSPECTOR: frozenset({"supervise", "note"}),
    ADMIN: frozenset(),
}
# Steps that only some roles take at some levels, whatever else they may do.
ONLY: Mapping[tuple[str, str], frozenset[str]] = {
    ("decide", COUNTY): frozenset({APPROVER}),
    # A 联办 sub-task is the department's own answer (protocol.errand refuses it anywhere but the county).
    ("subtask_done", COUNTY): frozenset({APPROVER}),
}


def label(role: str) -> str:
    return ROLE_LABELS.get(role, role)


def works_at(role: str, node_role: str) -> bool:
    return node_role in WORKS_AT.get(role, frozenset())


def posts_at(node_role: str) -> tuple[str, ...]:
    """The posts (roles) an account of a node of ``node_role`` may hold, in the table's order."""
    return tuple(r for r in STAFF_ROLES if works_at(r, node_role))


def may(role: str, capability: str) -> bool:
    if capability in (PUBLIC, OWN_ACCOUNT):
        return True
    return capability in CAPABILITIES.get(role, frozenset())


def action_refusal(role: str, kind: str, node_role: str, *, acting_for: str = "", acting_for_role: str = "") -> str:
    """Why an account of ``role`` may not take step ``kind`` at a node of ``node_role`` ('' if it may), in English;
    ``action_refusal_texts`` says it in Chinese and English.

    ``acting_for`` names the A post a B post stands in for (A/B岗); ``acting_for_role`` is that
    account's role at this node ('' if there is no such account).
    """
    return action_refusal_texts(role, kind, node_role, acting_for=acting_for, acting_for_role=acting_for_role)[1]


def node_label_zh(node_role: str) -> str:
    return NODE_LABELS.get(node_role, node_role).split(" ")[0]


def _step_zh(kind: str) -> str:
    return "登记" if kind == REGISTER else STEP_TABLE[kind].zh if kind in STEP_TABLE else kind


def action_refusal_texts(
    role: str, kind: str, node_role: str, *, acting_for: str = "", acting_for_role: str = ""
) -> tuple[str, str]:
    """``action_refusal`` as (Chinese, English); ('', '') if the step may be taken."""
    step = _step_zh(kind)
    if not works_at(role, node_role):
        return (
            f"{label(role)}账号不在{node_label_zh(node_role)}办理业务",
            f"a {ROLE_LABELS_EN.get(role, role)} account does not work at a {node_role} node",
        )
    effective = role
    if acting_for:
        if role != WINDOW_B:
            return (
                "只有窗口B岗可以代其他岗位办理，请将“代岗”留空",
                "only a B post (窗口B岗) acts for another post; leave 'acting for' empty",
            )
        if acting_for_role != WINDOW_A:
            return f"{acting_for}不是本节点的窗口A岗", f"{acting_for} is not an A post (窗口A岗) at this node"
        effective = WINDOW_A
    if kind not in STEPS.get(effective, frozenset()):
        if role == WINDOW_B and kind in STEPS[WINDOW_A]:
            return (
                f"窗口B岗只有代窗口A岗时才能办理“{step}”，请在“代岗”中填写A岗姓名",
                f"a B post takes '{kind}' only acting for an A post: name the A post in 'acting for'",
            )
        return f"{label(role)}无权办理“{step}”", f"a {ROLE_LABELS_EN.get(role, role)} may not take the step '{kind}'"
    only = ONLY.get((kind, node_role))
    if only is not None and effective not in only:
        who = " or ".join(ROLE_LABELS_EN[r] for r in sorted(only))
        who_zh = "或".join(ROLE_LABELS[r] for r in sorted(only))
        return (
            f"{node_label_zh(node_role)}只有{who_zh}可以办理“{step}”",
            f"at a {node_role} node only a {who} may take the step '{kind}'",
        )
    return "", ""


def holders(capability: str, node_role: str) -> tuple[str, ...]:
    """The posts of a node of ``node_role`` that hold ``capability``, in the table's order."""
    return tuple(r for r in posts_at(node_role) if may(r, capability))


def route_refusal_texts(role: str, method: str, path: str, capability: str, node_role: str) -> tuple[str, str]:
    """Why an account of ``role`` may not use ``method path`` (which needs ``capability``), as (Chinese, English),
    naming the posts of this node that may."""
    zh = f"本岗位（{label(role)}）无权进行此操作（{method} {path}）"
    en = f"a {ROLE_LABELS_EN.get(role, role)} may not use {method} {path}"
    posts = holders(capability, node_role)
    if posts:
        zh += f"，需要{'、'.join(label(r) for r in posts)}的账号"
        en += f"; it needs an account of the post {' or '.join(ROLE_LABELS_EN[r] for r in posts)}"
    return zh, en


def offered(role: str, kind: str, node_role: str) -> bool:
    """Whether a desk offers step ``kind`` to an account of ``role`` here (a B post is offered A's steps,
    which it takes acting for an A post); ``sanji.web.screens.offered_steps`` asks this for the errand page
    and ``sanji errand show``."""
    if role == WINDOW_B and kind in STEPS[WINDOW_A]:
        return action_refusal(role, kind, node_role, acting_for="A", acting_for_role=WINDOW_A) == ""
    return action_refusal(role, kind, node_role) == ""


# -- where an account sits at its node: its county department, its window ------------------------
#
# The role says which steps a post takes; the place says for whom. An account may carry a county
# department (as the catalogue names departments: 县民政局) and a window (as an urging names windows:
# 综合窗口). With a department it answers a 联办 sub-task only for that department, and takes steps on an
# errand escalated to a county department only when it is that department (its decision names no other);
# with a window it answers an urging only when the urging names that window (an urging naming no window
# is the whole centre's: an account without a window answers it), and takes an errand's handling steps (一次性告知,
# 材料补齐, 审核, 办结, 延期, notes …) only once this node named no window for it or named its own (受理 or 承办 at
# that window: ``window_step_refusal``; 承办 itself: ``assign_refusal``). An account with neither acts for the
# whole node, as every account did before 0.4.0. ``place_refusal`` is the rule; the desk's builder asks it
# inside the write (``sanji.auth.guard.GuardedService``) and the errand page's menu asks ``place_offers``
# (``sanji.web.screens.offered_steps``), so the API, the screens and ``sanji errand`` cannot disagree.
# Who at a node may sign is the node's own business, not a replica rule: ``protocol`` never sees it.

PLACE_LIMIT = 64  # the characters of a department or window name (the desk's form fields' bound)
PLACED_POSTS = frozenset({WINDOW_A, WINDOW_B, DIRECTOR, APPROVER})  # posts taking a department's or window's steps
DEPARTMENT_LEVELS = frozenset({COUNTY})  # the county departments sit at the county hub
WINDOW_LEVELS = frozenset({TOWN, COUNTY})  # windows: a township's centre and the county's

PLACE_TEXTS: Mapping[str, tuple[str, str]] = {
    "other_department_subtask": (
        "本账号属于{mine}，只能答复{mine}的联办子任务，不能代{theirs}答复",
        "this account answers for {mine}: it may not answer {theirs}'s 联办 sub-task",
    ),
    "other_department_errand": (
        "该办件已上报{theirs}，本账号属于{mine}，不能办理",
        "this errand is escalated to {theirs}; an account of {mine} may not take its steps",
    ),
    "other_department_matter": (
        "该事项由{theirs}审批，本账号属于{mine}，不能办理",
        "this matter is {theirs}'s to approve; an account of {mine} may not take its steps",
    ),
    "other_department_decision": (
        "本账号属于{mine}，不能以{theirs}的名义作出决定",
        "an account of {mine} may not decide in the name of {theirs}",
    ),
    "other_window_urging": (
        "该督办督促的是{theirs}，本账号属于{mine}，不能答复",
        "this urging names {theirs}; an account of the window {mine} may not answer it",
    ),
    "no_urging_for_window": (
        "没有督促{mine}的待答复督办",
        "no open urging on this errand names the window {mine}",
    ),
    "other_window_assign": (
        "该办件在本中心由{theirs}经办，本账号属于{mine}，不能承办或转办，请由{theirs}或中心主任办理",
        "this errand is handled here at {theirs}; an account of the window {mine} may not assign it: ask {theirs} "
        "or the director",
    ),
    "other_window_step": (
        "该办件在本中心由{theirs}经办，本账号属于{mine}，不能办理“{step}”；请交{theirs}（A岗或B岗）办理，"
        "或请中心主任分派（承办）",
        "this errand is handled here at {theirs}; an account of the window {mine} may not take its steps ({step}): "
        "hand it to {theirs} (its A or B post), or ask the director to assign it (分派)",
    ),
}


class PlaceRefused(SanjiError):
    """403: the account sits at another department or window than the step is for (``place_refusal``).

    The body is the guard's 403 (``error`` = forbidden) with what an ``ActionRefused`` adds: ``error_code``
    (a key of ``PLACE_TEXTS``), ``params`` and ``message_zh``; and the step refused: its ``kind`` and the
    ``errand`` (the id; '' when none is known). It is raised before the step's action is built, so
    it carries what the audit row of the refusal names in its stead (``sanji.auth.book.AuditedStore``): the step
    ``kind``, the ``errand``, and who asked (``signed_by``)."""

    code = "forbidden"
    default_hint = "Ask an account of that department or window (or one without either: the whole node)."

    def __init__(self, refusal: str, *, kind: str, errand: str = "", **params: str) -> None:
        zh, en = PLACE_TEXTS[refusal]
        super().__init__(en.format(**params))
        self.refusal = refusal
        self.kind = kind
        self.errand = errand
        self.params = dict(params)
        self.message_zh = zh.format(**params)
        self.actor = self.role = self.acting_for = ""  # who asked: the rule does not know (``signed_by``)

    def signed_by(self, actor: str, role: str, acting_for: str = "") -> PlaceRefused:
        """This refusal, naming who asked for the step as the desk's form signs it (the account's name and role
        label): the rule judges the place only, the caller knows the person."""
        self.actor, self.role, self.acting_for = actor, role, acting_for
        return self

    def as_dict(self) -> dict[str, object]:
        out = super().as_dict()
        out["error_code"] = self.refusal
        out["params"] = dict(self.params)
        out["message_zh"] = self.message_zh
        out["kind"] = self.kind
        out["errand"] = self.errand
        return out


class KnownPlaces(NamedTuple):
    """The departments and windows a node can name an account's place by: the held catalogue's departments (each
    matter's approving department and its 联办 co-departments) and those its live errands still name (escalated
    there, or owing a 联办 sub-task: an errand keeps the entry it was bound under), and windows (each matter's,
    those the node's settings give a duty phone, ``[sms.windows]``, and those the errands held here were assigned
    to: a township may name its windows its own way at 承办)."""

    departments: frozenset[str]
    windows: frozenset[str]


def unknown_place(department: str, window: str, known: KnownPlaces | None) -> tuple[str, tuple[str, str]] | None:
    """(field, (Chinese, English)) when ``department`` or ``window`` is one ``known`` does not name; None if both
    are named, empty, or ``known`` is None (the node holds no catalogue yet: a fresh township before its first
    exchange cannot tell a typo from a real name, so it takes what the administrator typed, as before).

    ``place_refusal`` compares names only, so a misspelt place binds an account to a department or window no
    errand or urging will ever name: its holder would be offered nothing and refused everything."""
    if known is None:
        return None
    for field, name, names in (("department", department, known.departments), ("window", window, known.windows)):
        if name and name not in names:
            zh, en = UNKNOWN_PLACE_TEXTS[field]
            some_zh, some_en = _some_of(names)
            return field, (zh.format(name=name, some=some_zh), en.format(name=name, some=some_en))
    return None


# Each refusal says where the node looked for the place, so the administrator knows which list to mend
# (``unknown_place``).
UNKNOWN_PLACE_TEXTS: Mapping[str, tuple[str, str]] = {
    "department": (
        "本节点持有的事项目录和在办事项中没有“{name}”这个部门，请按事项目录的写法填写（{some}）",
        "Neither the catalogue held here nor the errands held here name a department “{name}”; "
        "spell it as the catalogue does ({some})",
    ),
    "window": (
        "本节点的事项目录、短信设置 [sms.windows] 和办件中没有“{name}”这个窗口（{some}）",
        "Neither the catalogue held here, the node's [sms.windows] nor the errands held here name a "
        "window “{name}” ({some})",
    ),
}


KNOWN_NAMES_SHOWN = 10  # a refusal names this many of the known places (the command line shows no list)


def _some_of(names: frozenset[str]) -> tuple[str, str]:
    """Up to ``KNOWN_NAMES_SHOWN`` of ``names``, by name, to say in a refusal: (Chinese, English)."""
    if not names:
        return "本节点尚无可选的名称", "none is known here yet"
    shown = sorted(names)[:KNOWN_NAMES_SHOWN]
    more = len(names) - len(shown)
    zh = "可选：" + "、".join(shown) + (f" 等 {len(names)} 个" if more else "")
    en = "known: " + ", ".join(shown) + (f" and {more} more" if more else "")
    return zh, en


def place_problem(role: str, node_role: str, department: str, window: str) -> str:
    """Why an account of ``role`` at a node of ``node_role`` may not sit at ``department`` / ``window`` ('' if it
    may), in English (``place_problem_texts``: in Chinese too)."""
    return place_problem_texts(role, node_role, department, window)[1]


PLACE_FIELDS_ZH = {"department": "所属部门", "window": "所在窗口"}


def place_problem_texts(role: str, node_role: str, department: str, window: str) -> tuple[str, str]:
    """Why an account of ``role`` at a node of ``node_role`` may not sit at ``department`` / ``window``, in Chinese
    and English (('', '') if it may). A department: a post taking steps at the county; a window: one at a
    township's or the county's centre."""
    for what, value in (("department", department), ("window", window)):
        if value != value.strip():
            return f"{PLACE_FIELDS_ZH[what]}的首尾不能有空格", f"a {what} has no spaces at either end"
        problem = line_problem(what, value, limit=PLACE_LIMIT)
        if problem:
            if len(value) > PLACE_LIMIT:
                return f"{PLACE_FIELDS_ZH[what]}最多{PLACE_LIMIT}个字符（现有{len(value)}个）", problem
            return f"{PLACE_FIELDS_ZH[what]}含有名称中不允许的字符", problem
    who = f"not a {ROLE_LABELS_EN.get(role, role)} at a {node_role} node"
    who_zh = f"该账号是{NODE_LABELS.get(node_role, node_role).split(' ')[0]}的{label(role)}"
    posts = "only a window post, director or department approver"
    posts_zh = "只有窗口人员、中心主任或部门审批人员"
    if department and (role not in PLACED_POSTS or node_role not in DEPARTMENT_LEVELS):
        return (
            f"{posts_zh}在县级才能设置所属部门（{who_zh}）",
            f"{posts} at the county carries a department ({who})",
        )
    if window and (role not in PLACED_POSTS or node_role not in WINDOW_LEVELS):
        return (
            f"{posts_zh}在乡镇或县级中心才能设置所在窗口（{who_zh}）",
            f"{posts} at a township or the county carries a window ({who})",
        )
    return "", ""


def window_answers(window: str, urging_window: str) -> bool:
    """Whether an account sitting at ``window`` ('' : the whole node's) answers an urging naming ``urging_window``
    at the node it is addressed to (``protocol.urging.answer_refusal`` asks that of the node). One rule for
    ``place_refusal`` and the screens that list urgings (``sanji.urgings.answerable``), so a desk never offers or
    counts an answer the write would refuse: an urging naming no window is the whole centre's."""
    return not window or urging_window == window


def urging_for(state: ErrandState, node: str, window: str) -> str:
    """The urging an account of ``window`` ('' : of the whole node) at ``node`` answers when it names none: the
    oldest open one addressed to ``node`` that names ``window`` ('' when there is none)."""
    waiting = open_for(state.urgings, node)
    if window:
        waiting = [u for u in waiting if u.window == window]
    return waiting[0].id if waiting else ""


def place_refusal(
    kind: str,
    state: ErrandState,
    *,
    department: str,
    window: str,
    named_department: str = "",
    urging: str = "",
) -> PlaceRefused | None:
    """Why an account sitting at ``department`` / ``window`` may not take step ``kind`` on the errand (None if it
    may). ``named_department``: the department the step names (a sub-task's, a decision's); ``urging``: the
    urging an answer answers. An account with neither department nor window is never refused here."""

    def refused(refusal: str, **params: str) -> PlaceRefused:  # naming the step: no action is built to name it
        return PlaceRefused(refusal, kind=kind, errand=state.id, **params)

    if department:
        if kind == "subtask_done":  # the sub-task's department, whoever the errand was escalated to
            if named_department != department:
                return refused("other_department_subtask", mine=department, theirs=named_department or "—")
        elif state.department and state.department != department:
            return refused("other_department_errand", mine=department, theirs=state.department)
        elif not state.department and (theirs := _approving_department(state)) and theirs != department:
            # Not escalated (yet): the matter's own department approves it, whoever holds it now.
            return refused("other_department_matter", mine=department, theirs=theirs)
        elif kind == "decide" and named_department and named_department != department:
            return refused("other_department_decision", mine=department, theirs=named_department)
    if window and kind == "answer_urging":
        held = next((u for u in state.urgings if u.id == urging), None)
        if held is None:
            return refused("no_urging_for_window", mine=window)
        if not window_answers(window, held.window):
            return refused("other_window_urging", mine=window, theirs=held.window or "—")
    return None


def assign_refusal(
    state: ErrandState, node: str, node_role: str, *, window: str, history: Iterable[Mapping[str, object]]
) -> PlaceRefused | None:
    """Why an account sitting at ``window`` at ``node`` may not assign (承办) the errand (None if it may). An
    assignment names a window on the errand's path here (``windows_named_here``), which opens the applicant's full
    numbers and scans to that window: so only a window already on the path (``reveal_refusal``) assigns, or one
    bound to no window (the director), else a clerk would take another window's errand to see it. ``history``: the
    errand's actions as the node holds them."""
    if not window:
        return None
    hidden = reveal_refusal(state, node, node_role, department="", window=window, history=history)
    if hidden is None:
        return None
    theirs = hidden.params.get("theirs") or state.holder
    return PlaceRefused("other_window_assign", kind="assign", errand=state.id, mine=window, theirs=theirs)


# Steps any window of the centre takes whichever window holds the errand: 签收 (the centre signs for a hand-over),
# the applicant's voice (a rating, a complaint: never the rated window's to gate), the centre's call-back, and those
# with a rule of their own (承办: ``assign_refusal``; an urging's answer: ``place_refusal``) or no window post.
ANY_WINDOW_STEPS = frozenset(
    {REGISTER, "submit", "receive", "assign", "answer_urging", "rate", "complain", "callback", "supervise"}
    | {"subtask_done", "supply"}
)


def windows_holding(state: ErrandState, node: str, history: Iterable[Mapping[str, object]]) -> frozenset[str]:
    """The windows whose errand it is at ``node``: those ``node`` named for it (its 受理 and 承办,
    ``windows_named_here``, kept after it moved on: the accepting window delivers the result and answers for it);
    accepted here naming none, its matter's catalogue window; none while no window is named (received, not yet
    accepted: 一窗受理, any window takes it in)."""
    history = list(history)
    named = windows_named_here(history, node)
    if named:
        return named
    accepted_here = any(
        h.get("kind") == "accept" and h.get("node") == node and h.get("status", "applied") == "applied" for h in history
    )
    catalogued = state.matter_entry.window if state.matter_entry is not None else ""
    return frozenset({catalogued}) if accepted_here and catalogued else frozenset()


def window_step_refusal(
    kind: str, state: ErrandState, node: str, *, window: str, history: Iterable[Mapping[str, object]]
) -> PlaceRefused | None:
    """Why an account sitting at ``window`` at ``node`` may not take handling step ``kind`` on the errand (None if
    it may): once ``node`` named a window for it (``windows_holding``), its steps here are that window's — any
    account of it (the A and B posts sit at the same window, seed 001 AB岗) — or an account bound to no window
    (the director, a whole-node account). Before a window is named, any window takes the intake steps; the steps in
    ``ANY_WINDOW_STEPS`` are every window's. ``history``: the errand's actions as the node holds them."""
    if not window or kind in ANY_WINDOW_STEPS:
        return None
    holding = windows_holding(state, node, history)
    if not holding or window in holding:
        return None
    theirs, step = "、".join(sorted(holding)), _step_zh(kind)
    return PlaceRefused("other_window_step", kind=kind, errand=state.id, mine=window, theirs=theirs, step=step)


def _approving_department(state: ErrandState) -> str:
    """The county department the errand's bound catalogue entry names as approving it ('' for none)."""
    entry = state.matter_entry
    return entry.department if entry is not None else ""


def place_offers(
    kind: str,
    state: ErrandState,
    node: str,
    *,
    department: str,
    window: str,
    node_role: str = "",
    history: Iterable[Mapping[str, object]] | None = None,
) -> bool:
    """Whether a desk offers step ``kind`` to an account sitting at ``department`` / ``window``: the step it would
    take (its own department's sub-task while it is open; the oldest open urging naming its window) is one
    ``place_refusal`` lets it take, and, given the errand's ``history``, an assignment one ``assign_refusal`` lets
    it take, and any other step one ``window_step_refusal`` lets it take."""
    if not department and not window:
        return True
    if history is not None and window:
        history = list(history)
        if kind == "assign":
            if assign_refusal(state, node, node_role, window=window, history=history) is not None:
                return False
        elif window_step_refusal(kind, state, node, window=window, history=history) is not None:
            return False
    named = ""
    if kind == "subtask_done" and department:
        if state.subtasks.get(department) != "pending":
            return False
        named = department
    urging = urging_for(state, node, window) if kind == "answer_urging" else ""
    refused = place_refusal(kind, state, department=department, window=window, named_department=named, urging=urging)
    return refused is None


# -- who sees an applicant in full (查看完整号码) and an attachment's bytes: the role, then the place ------------
#
# ``REVEAL`` is the role's right; the place then says on which errands. Every node on an errand's path holds it
# and can open it (the county holds every township's, for supervision), but the desk of a node is on its path
# only once the errand has come to it (``reached_desk``: held or awaited here, or a main-line step of this node's
# in its history; supervision's remarks, notes, ratings, attachments and a 联办 department's answer beside the
# holder do not bring it). A department: the errand is escalated (上报) to it, or it has reached this desk (the
# county registered or received it) and ``place_refusal`` lets the department take its steps (a matter it
# approves, or one naming none), or its 联办 sub-task is answered at its own desk here; before a township
# escalates, the department is not on the path, whoever approves the matter. A window: this node named the
# window for the errand (its 受理 or 承办, the history's applied accept and assign, kept after the errand moved
# on: the township's window delivers the result and answers for it), or an urging to this node names the window
# (``place_refusal`` lets it answer); an errand this node named no window for is, at the county once escalated,
# its department's, else, once it reached this desk, its matter's catalogue window's (any window's until
# accepted). A desk post bound to neither (a window's or an approver's account for the whole node) reveals what
# reached this node's desk, and an approver also an errand owing a county department's 联办 sub-task. The posts
# no place binds (village agents, directors, supervisors) reveal as the role allows. Attachments (ID-card scans)
# follow the same rule (``sanji.privacy``).

REVEAL_KIND = "reveal"  # the "step" a reveal refusal names: no step is taken, the audit row names this
NO_REVEAL_TEXTS = (  # a post without ``REVEAL`` (the inspector): ``GET /api/errands/{id}?reveal=true``
    "本岗位不能查看完整证件号码、电话和附件（查看完整号码），打开办件仍可查看遮挡后的信息",
    "this post may not see full ID numbers, phones or attachments (查看完整号码); the masked view stays open",
)
REVEAL_TEXTS: Mapping[str, tuple[str, str]] = {
    "other_department_errand": (
        "该办件已上报{theirs}，本账号属于{mine}，不能查看申请人的完整证件号码、电话和附件",
        "this errand is escalated to {theirs}; an account of {mine} may not see the applicant's full ID number, "
        "phone or attachments",
    ),
    "other_department_matter": (
        "该事项由{theirs}审批，本账号属于{mine}，不能查看申请人的完整证件号码、电话和附件",
        "this matter is {theirs}'s to approve; an account of {mine} may not see the applicant's full ID number, "
        "phone or attachments",
    ),
    "errand_elsewhere": (
        "该办件由{theirs}办理，未到过本中心，本账号属于{mine}，不能查看申请人的完整证件号码、电话和附件",
        "this errand is handled at {theirs} and never came to this centre; an account of the window {mine} may not "
        "see the applicant's full ID number, phone or attachments",
    ),
    "other_window_errand": (
        "该办件在本中心由{theirs}经办，本账号属于{mine}，不能查看申请人的完整证件号码、电话和附件",
        "this errand is handled here at {theirs}; an account of the window {mine} may not see the applicant's "
        "full ID number, phone or attachments",
    ),
    "not_escalated_to_department": (
        "该办件由{theirs}办理，尚未上报{mine}，本账号不能查看申请人的完整证件号码、电话和附件",
        "this errand is handled at {theirs} and has not been escalated to {mine}; an account of {mine} may not see "
        "the applicant's full ID number, phone or attachments",
    ),
    "post_elsewhere": (
        "该办件由{theirs}办理，未到过本中心，{mine}账号不能查看申请人的完整证件号码、电话和附件",
        "this errand is handled at {theirs} and never came to this centre's desk; a {mine} account may not see "
        "the applicant's full ID number, phone or attachments",
    ),
}


class RevealRefused(PlaceRefused):
    """403: the account's department or window is not on the errand's path here (``reveal_refusal``). As a
    ``PlaceRefused``: ``error_code``, ``params``, ``message_zh`` (Chinese), ``message`` (English), ``kind`` =
    reveal and the ``errand``."""

    default_hint = (
        "打开办件仍可查看遮挡后的信息；请由办件已到达的部门、窗口或中心的账号查看，或由监察督查岗查看。 The masked "
        "view stays open; ask an account of the department, window or centre the errand has reached, or a supervisor."
    )

    def __init__(self, refusal: str, *, errand: str, **params: str) -> None:
        zh, en = REVEAL_TEXTS[refusal]
        SanjiError.__init__(self, en.format(**params))
        self.refusal = refusal
        self.kind = REVEAL_KIND
        self.errand = errand
        self.params = dict(params)
        self.message_zh = zh.format(**params)
        self.actor = self.role = self.acting_for = ""


# Written about an errand by a node it need not have come to: the annotations (supervision's urgings and
# call-backs, notes, complaints, ratings, attachments, supplies, urging answers) and a 联办 department's
# sub-task answer beside the holder (``protocol.errand.beside_holder``). The county's 督办, or a department's
# answer to its sub-task, does not bring a township's errand to the county's desk.
_BESIDE_THE_PATH = frozenset(cls.__struct_config__.tag for cls in ANNOTATIONS) | {"subtask_done"}
DESK_POSTS = frozenset({WINDOW_A, WINDOW_B, APPROVER})  # the posts that handle errands at a centre's desk


def windows_named_here(history: Iterable[Mapping[str, object]], node: str) -> frozenset[str]:
    """The windows ``node`` named for the errand: its applied 受理 (accept) and 承办 (assign) that name one."""
    return frozenset(
        str(h.get("window"))
        for h in history
        if h.get("kind") in ("accept", "assign")
        and h.get("node") == node
        and h.get("status", "applied") == "applied"
        and h.get("window")
    )


def reached_desk(state: ErrandState, node: str, history: Iterable[Mapping[str, object]]) -> bool:
    """Whether the errand has come to ``node``'s desk: held or awaited (handed off to it) there, or a main-line
    step of ``node``'s applied in its history (registered, received, handled there, and kept so after it moved
    on). A node's copy of an errand it only supervises, notes, or answers a 联办 sub-task on has not."""
    return node in (state.holder, state.pending_to) or any(
        h.get("node") == node and h.get("kind") not in _BESIDE_THE_PATH and h.get("status", "applied") == "applied"
        for h in history
    )


def _subtask_here(state: ErrandState, node_role: str, department: str = "") -> bool:
    """Whether a county department answers a 联办 sub-task of the errand at its own desk here (``department``'s
    own, or any department's when '')."""
    return (
        node_role in DEPARTMENT_LEVELS
        and answered_by_departments(state)
        and (department in state.subtasks if department else bool(state.subtasks))
    )


def reveal_refusal(
    state: ErrandState,
    node: str,
    node_role: str,
    *,
    department: str,
    window: str,
    history: Iterable[Mapping[str, object]] = (),
    role: str = "",
) -> RevealRefused | None:
    """Why an account of ``role`` sitting at ``department`` / ``window`` at ``node`` (of ``node_role``) may not see
    the errand's applicant in full or its attachments (None if it may); ``history``: the errand's actions as the
    node holds them (``windows_named_here``, ``reached_desk``). The role's right (``REVEAL``) is asked apart; a
    post no place binds is never refused here, nor a desk post of neither place on an errand at this desk."""
    history = list(history)
    reached = reached_desk(state, node, history)
    if department:
        if not _subtask_here(state, node_role, department):  # its 联办 sub-task: answered here, held anywhere
            held = place_refusal(REVEAL_KIND, state, department=department, window="")
            if held is not None:
                return RevealRefused(held.refusal, errand=state.id, **held.params)
            if state.department != department and not reached:  # the matter is its own, the errand not yet
                return RevealRefused(
                    "not_escalated_to_department", errand=state.id, mine=department, theirs=state.holder
                )
    if window:
        windows_here = windows_named_here(history, node)
        urged = any(
            place_refusal("answer_urging", state, department="", window=window, urging=u.id) is None
            for u in state.urgings
            if u.to == node
        )
        if urged or window in windows_here:
            return None
        if windows_here:
            return RevealRefused(
                "other_window_errand", errand=state.id, mine=window, theirs="、".join(sorted(windows_here))
            )
        if state.department and node_role in DEPARTMENT_LEVELS:
            return RevealRefused("other_department_errand", errand=state.id, mine=window, theirs=state.department)
        if not reached:  # a replica of another centre's errand (the county holds its townships')
            return RevealRefused("errand_elsewhere", errand=state.id, mine=window, theirs=state.holder)
        # Until this centre accepts it, any of its windows may take the errand (the steps allow it), and so
        # check its scans and numbers first; accepted naming no window, it is the catalogue's window's.
        holding = windows_holding(state, node, history)
        if holding and window not in holding:
            return RevealRefused("other_window_errand", errand=state.id, mine=window, theirs="、".join(sorted(holding)))
    if not department and not window and role in DESK_POSTS and not reached:
        if not (role == APPROVER and _subtask_here(state, node_role)):
            return RevealRefused("post_elsewhere", errand=state.id, mine=label(role), theirs=state.holder)
    return None


def complaint_visible(role: str | None, name: str, complaint: Mapping[str, object]) -> bool:
    """A supervisor or inspector sees a complaint, unless it is made against them."""
    if role is None or not may(role, COMPLAINTS):
        return False
    return str(complaint.get("against", "")) != name


# -- routes ------------------------------------------------------------------------------------

PUBLIC_PATHS = frozenset(
    {
        "/lookup",
        "/login",
        "/logout",
        "/public",
        "/complain",
        "/lang",
        "/healthz",
        "/readyz",
        "/api/catalogue/search",  # the published catalogue, searched (issue 13)
    }
)
PUBLIC_PREFIXES = ("/api/lookup/", "/print/guide/", "/schema", "/sync/")
ROUTES: Mapping[tuple[str, str], str] = {
    ("GET", "/"): ERRANDS,
    ("POST", "/notices/read"): ERRANDS,
    ("GET", "/api/errands"): ERRANDS,
    ("GET", "/api/worklist"): ERRANDS,
    ("GET", "/api/catalogue"): ERRANDS,
    ("POST", "/api/precheck"): ERRANDS,
    ("GET", "/register"): ERRANDS,
    ("GET", "/api/errands/{errand_id:str}"): PERSONAL,
    ("GET", "/errands/{errand_id:str}"): PERSONAL,
    ("GET", "/print/{errand_id:str}/{doc:str}"): PERSONAL,
    # the bytes of a scan (ID cards): as 查看完整号码, the role, then the place (sanji.privacy.reveal_check)
    ("GET", "/api/attachments/{digest:str}"): REVEAL,
    ("POST", "/api/errands"): ACT,
    ("POST", "/register"): ACT,
    ("POST", "/api/errands/{errand_id:str}/actions"): ACT,
    ("POST", "/errands/{errand_id:str}/act"): ACT,
    ("POST", "/errands/{errand_id:str}/attach"): ACT,  # a scan or photo from the errand page
    ("POST", "/api/errands/{errand_id:str}/attachments"): ACT,
    ("POST", "/errands/{errand_id:str}/reveal"): REVEAL,
    ("GET", "/api/node"): STATUS,
    ("GET", "/api/digests"): STATUS,
    ("GET", "/api/reports"): STATUS,
    ("GET", "/api/nodes/health"): STATUS,
    ("GET", "/metrics"): STATUS,
    ("GET", "/inbox"): ERRANDS,  # a county department's 部门收件箱: the 上报件 escalated to it (names and stages)
    ("GET", "/api/inbox"): ERRANDS,
    ("GET", "/subtasks"): ERRANDS,  # a county department's 联办 inbox (names and stages)
    ("GET", "/api/subtasks"): ERRANDS,
    ("GET", "/supervision"): SUPERVISION,
    ("GET", "/api/supervision"): SUPERVISION,
    ("GET", "/api/urgings"): ERRANDS,  # 督办 and their answers: the urged desk's and the supervisor's list
    ("GET", "/carry"): CARRY,  # the sync panel: last exchange, what waits, hand-carried files
    ("POST", "/carry/export"): CARRY,
    ("POST", "/carry/export/file"): CARRY,
    ("POST", "/carry/import"): CARRY,
    ("GET", "/enroll"): ENROLL,
    ("POST", "/enroll"): ENROLL,
    # ledgers (sanji/office): every desk keeps its own 台账 (names and stages, no ID numbers)
    ("GET", "/office/ledger"): ERRANDS,
    ("GET", "/api/office/ledger"): ERRANDS,
    ("GET", "/api/office/stats"): ERRANDS,
    ("GET", "/api/office/ledger/export"): ERRANDS,
    # 季度考核: the office (directors, supervisors, inspectors) scores, records and decides appeals
    # what staff are scored by (考核细则) is theirs to read at every desk; only the county publishes
    ("GET", "/office/rules"): ERRANDS,
    ("GET", "/api/office/rules"): ERRANDS,
    ("POST", "/api/office/rules"): SUPERVISION,
    ("POST", "/office/rules/publish"): SUPERVISION,
    ("GET", "/office/business"): SUPERVISION,  # 业务报表: the nodes' reported counts, for audit
    ("GET", "/api/office/business"): SUPERVISION,
    ("GET", "/office/assessment"): SUPERVISION,
    ("POST", "/office/assessment/entries"): SUPERVISION,
    ("POST", "/office/assessment/appeals"): SUPERVISION,
    ("POST", "/office/assessment/appeals/{appeal_id:str}/decision"): SUPERVISION,
    ("GET", "/api/office/assessment"): SUPERVISION,
    ("GET", "/api/office/assessment/appeals"): SUPERVISION,
    ("POST", "/api/office/assessment/entries"): SUPERVISION,
    ("POST", "/api/office/assessment/appeals"): SUPERVISION,
    ("POST", "/api/office/assessment/appeals/{appeal_id:str}/decision"): SUPERVISION,
    # the SMS outbox and its dead letters (sanji/notify)
    ("GET", "/office/sms"): SUPERVISION,
    ("POST", "/office/sms/{row_id:int}/retry"): SUPERVISION,
    ("GET", "/api/office/sms"): SUPERVISION,
    ("POST", "/api/office/sms/{row_id:int}/retry"): SUPERVISION,
    ("GET", "/api/office/platform/export"): SUPERVISION,  # the provincial collector's account
    ("GET", "/office/platform"): SUPERVISION,  # 省平台交换: the office exports and downloads the national tables
    ("POST", "/office/platform/export"): SUPERVISION,  # audited as a read: applicants' names leave in the ZIP
    # the administrator's desk (sanji/web/admin_screens.py; the county's publishing in county_node/admin_publishing.py)
    # every account changes its own password; the only page a must-change session reaches (sanji.auth.guard)
    ("GET", "/account/password"): OWN_ACCOUNT,
    ("POST", "/account/password"): OWN_ACCOUNT,
    ("GET", "/admin/accounts"): ACCOUNTS,
    ("POST", "/admin/accounts"): ACCOUNTS,
    ("POST", "/admin/accounts/active"): ACCOUNTS,
    ("POST", "/admin/accounts/place"): ACCOUNTS,  # an account's county department and window
    ("POST", "/admin/accounts/rename"): ACCOUNTS,  # the name an account's holder goes by (its display name)
    ("POST", "/admin/accounts/password"): ACCOUNTS,
    ("POST", "/admin/accounts/tokens/{token_id:int}/revoke"): ACCOUNTS,
    ("POST", "/api/archive/restore"): CONFIGURE,  # a running node fetches archived attachments back
    ("GET", "/admin/catalogue"): CONFIGURE,
    ("GET", "/admin/catalogue/{code:str}"): CONFIGURE,
    ("POST", "/admin/catalogue/check"): CONFIGURE,
    ("POST", "/admin/catalogue/publish"): CONFIGURE,
    ("GET", "/admin/calendar"): CONFIGURE,
    ("POST", "/admin/calendar/check"): CONFIGURE,
    ("POST", "/admin/calendar/publish"): CONFIGURE,
}


_PARAM_TYPE = re.compile(r"\{(\w+):[^}]*\}")


def _untyped(path_template: str) -> str:
    """``/errands/{errand_id:str}/act`` as Litestar's path format has it: ``/errands/{errand_id}/act``.

    The guard sees the request's path format (no parameter types); routes and this table write the types.
    """
    return _PARAM_TYPE.sub(r"{\1}", path_template)


_ROUTES_UNTYPED: Mapping[tuple[str, str], str] = {(m, _untyped(p)): need for (m, p), need in ROUTES.items()}


def route_requirement(method: str, path_template: str) -> str:
    """The capability a route needs. A route not listed here needs a login and ``ERRANDS``."""
    if method == "OPTIONS" or path_template in PUBLIC_PATHS or path_template.startswith(PUBLIC_PREFIXES):
        return PUBLIC
    if method == "HEAD":
        method = "GET"
    return _ROUTES_UNTYPED.get((method, _untyped(path_template).rstrip("/") or "/"), ERRANDS)
