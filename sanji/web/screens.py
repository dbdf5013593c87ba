"""Screens for the person at the desk: Chinese first, English second.

Plain server-rendered HTML: every form posts as an ordinary HTML form and works
with JavaScript switched off. A successful post redirects (303) back to a page
that says what was done; a refused or mistyped one is shown again with the reason
in Chinese and English and with everything the person typed still in place.

Routes: ``/`` (home: worklist with deadline lights), ``/errands/{id}`` (detail,
history, documents and the steps this node may take now), ``/register``
(代办登记 with the catalogue's materials checklist and the pre-check; a review page — 核对登记信息 —
before 确认登记 signs; ``RegisterController``, mounted by the desks that register) and ``/supervision``
(电子监察 tables, the call-back sample). The public pages (``/lookup``, ``/public``, ``/complain``) are in
``sanji.web.public``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlencode

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from protocol.binding import BOUND_STEPS, HeldMaterials, acceptance_refusal, bind
from protocol.catalogue import MAX_RULES, Matter, normalise_material, precheck
from protocol.errand import FIVE_STEPS, ErrandState, outcome_label, skipped_steps
from protocol.errors import ActionRefused, SanjiError
from protocol.hlc import MAX_SKEW_MS
from protocol.idnumber import valid_id_number
from protocol.menu import allowed_outcomes, allowed_steps, registration_refused
from protocol.refusals import Refusal, bilingual
from protocol.stages import AT_DEPARTMENT, SHOWN_LABELS, SHOWN_STAGES, STAGE_LABELS
from protocol.steps import ACTION_DONE, HANDOFF_DONE, STEPS
from protocol.topology import Directory
from protocol.urging import MAX_ANSWER_WORKING_DAYS, Urging
from protocol.urging import STATUS_LABELS as URGING_STATUS_LABELS
from protocol.urging import status as urging_status
from sanji.auth import roles
from sanji.auth.guard import Caller, principal_of
from sanji.bilingual import split_pair
from sanji.catalogue.search import MAX_QUERY
from sanji.complaints import present
from sanji.context import NodeContext, bound_of
from sanji.forms import ActionForm, RegisterForm
from sanji.observe.fleet import fleet_health
from sanji.observe.id_conflicts import id_conflicts
from sanji.office import choices
from sanji.office.query import MAX_SPAN_DAYS
from sanji.privacy import mask_applicant, may_reveal_here
from sanji.service import ErrandService
from sanji.store import Store
from sanji.store.notice_reads import NoticeReads
from sanji.store.submissions import FIELD as ONCE_FIELD
from sanji.store.submissions import AlreadySent, new_key, once, said
from sanji.urgings import CENTRE_ANSWERS, answerable, seen_at_window, urging_rows
from sanji.urgings import counts as urging_counts
from sanji.web.badge import desk_notices
from sanji.web.bounded_form import bounded_form
from sanji.web.catalogue_search import found
from sanji.web.desk import desk_of
from sanji.web.desk_api import Supervision, department_of, supervision_report, township_of, unchecked_texts
from sanji.web.documents import (
    DOCUMENTS,
    SIGNATURE_PREFIX,
    applied,
    at_text,
    document_links,
    document_url,
    guide_url,
    paper_signature,
    screen_name,
    signature_path,
)
from sanji.web.errand_search import ErrandSearch
from sanji.web.link_state import handoff_view, parent_link_down
from sanji.web.views import WARN_DAYS, Deadline, ErrandSummary, materials_of, summarise

ROLE_LABELS = {
    "county": "县级政务服务中心 County hub",
    "town": "乡镇便民服务中心 Township centre",
    "village": "村代办点 Village station",
    "city": "市级政务服务中心 City centre",
    "province": "省级政务服务中心 Province centre",
}
ANY_POST = "工作人员"  # the post a form starts with when neither the person nor the desk says one
LIVE = ("received", "accepted", "at_department", "supplement")

# -- deadline lights -------------------------------------------------------------------------------


def light(deadline: Deadline | None) -> dict[str, str]:
    """黄灯 as the deadline nears, 红灯 with the working days over once it has passed; 暂定 on a provisional year."""
    shown = _light(deadline)
    if deadline is not None and deadline.provisional:
        shown = {**shown, "zh": f"{shown['zh']}（暂定）", "en": f"{shown['en']} (provisional)".strip()}
    return shown


def working_days(n: int) -> str:
    """``n`` working days in English: the Chinese says 个工作日, and a plain "d" would read as calendar days."""
    return f"{n} working day" if n == 1 else f"{n} working days"


def _light(deadline: Deadline | None) -> dict[str, str]:
    if deadline is None:
        return {"cls": "none", "zh": "—", "en": ""}
    if deadline.level == "red":
        over = working_days(deadline.days_over)
        return {"cls": "red", "zh": f"红灯 超期{deadline.days_over}个工作日", "en": f"overdue by {over}"}
    left = f"{working_days(deadline.days_left)} left"
    if deadline.level == "yellow":
        return {"cls": "yellow", "zh": f"黄灯 剩{deadline.days_left}个工作日", "en": left}
    if deadline.level == "normal":
        return {"cls": "green", "zh": f"正常 剩{deadline.days_left}个工作日", "en": left}
    if deadline.level == "paused":
        return {"cls": "paused", "zh": "停表 待补正", "en": "clock stopped"}
    return {"cls": "unknown", "zh": "日历未覆盖", "en": "calendar unknown"}


def errand_url(errand_id: str) -> str:
    return "/errands/" + quote(errand_id, safe="")


DESK_COOKIE = "sanji_desk"


def desk_person(request: Request[Any, Any, Any]) -> dict[str, str]:
    """Who acts at this browser: the logged-in account, else who last acted here (remembered, not a login).

    Nobody has said their post yet: the desk's own (a village's 代办员, a township's window).
    """
    principal = principal_of(request)
    if principal is not None:
        return {"actor": principal.name, "role": principal.label}
    raw = request.cookies.get(DESK_COOKIE, "")
    actor, _, role = raw.partition("~")
    return {"actor": unquote(actor)[:64], "role": unquote(role)[:64] or desk_of(request).post}


def remembered(redirect: Redirect, actor: str, role: str) -> Redirect:
    value = quote(actor, safe="") + "~" + quote(role, safe="")
    redirect.cookies.append(
        Cookie(key=DESK_COOKIE, value=value, path="/", max_age=12 * 3600, httponly=True, samesite="lax")
    )
    return redirect


def row_view(row: dict[str, Any], context: NodeContext, today: date) -> dict[str, Any]:
    view = summarise(row, context, today)
    view["light"] = light(view["deadline"])
    view["stage_light"] = light(view["stage_deadline"])
    view["url"] = errand_url(row["id"])
    due = row.get("due") or ""
    marked = view["deadline"] is not None and view["deadline"].provisional
    view["due_text"] = f"{due}（暂定 provisional）" if due and marked else due
    return view


# -- 全部办件: the errands held here, newest first, a page at a time, searchable -----------------------

LIST_PAGE = 100  # errands a page of 全部办件 shows


@dataclass(frozen=True)
class ErrandListing:
    """One page of 全部办件 and how to move to the others (``errand_listing``)."""

    rows: list[dict[str, Any]]
    total: int  # errands matching the search (all held, when there is none)
    held: int  # errands held here in all
    q: str  # the search as applied (cut to ``MAX_QUERY`` characters)
    cut: bool  # the search typed was longer, and was cut
    page: int
    pages: int

    def link(self, page: int) -> str:
        return "/?" + urlencode({**({"q": self.q} if self.q else {}), "page": page}) + "#errands"


async def errand_listing(store: Store, context: NodeContext, q: str, page: str) -> ErrandListing:
    """全部办件: newest first, ``LIST_PAGE`` at a time, found by receipt number, errand id, matter (code or name)
    or applicant's name. The work is bounded: the search is cut to ``MAX_QUERY`` characters and a page number
    beyond the last shows the last (a number that is not one shows the first). Characters that show as nothing
    (a NUL, a zero-width space: ``protocol.names.visible_text``) are dropped from the search (``ErrandSearch``,
    as ``GET /api/errands?q=`` reads it)."""
    search = ErrandSearch.of(context.catalogue, q)
    text, cut, matters = search.text, search.cut, search.matters
    # isdigit alone takes "²" (a digit int() refuses): ASCII digits only
    number = max(int(page), 1) if page.isascii() and page.isdigit() and len(page) <= 6 else 1

    async def page_of(n: int) -> tuple[list[dict[str, Any]], int]:
        offset = (n - 1) * LIST_PAGE
        return await store.errands(limit=LIST_PAGE, offset=offset, newest_first=True, text=text, text_matters=matters)

    rows, total = await page_of(number)
    pages = max(1, -(-total // LIST_PAGE))
    if number > pages:
        number = pages
        rows, total = await page_of(number)
    held = (await store.errands(limit=0))[1] if text else total
    return ErrandListing(rows=rows, total=total, held=held, q=text, cut=cut, page=number, pages=pages)


# -- the steps a desk can take ---------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    zh: str
    en: str
    widget: str = "text"  # text, textarea, lines, date, number, select, checkbox
    choices: tuple[tuple[str, str], ...] = ()
    required: bool = False
    hint: str = ""


ACTION_LABELS: dict[str, tuple[str, str]] = {k: (step.zh, step.en) for k, step in STEPS.items()}
LEVELS = (("满意", "满意 satisfied"), ("基本满意", "基本满意 fairly satisfied"), ("不满意", "不满意 dissatisfied"))
KIND_FIELDS: dict[str, tuple[Field, ...]] = {
    "submit": (Field("text", "报送说明", "Note", "textarea"),),
    "receive": (),
    "accept": (
        Field(
            "errand_kind",
            "办件类型",
            "Kind",
            "select",
            (
                ("承诺件", "承诺件 committed"),
                ("即办件", "即办件 immediate"),
                ("上报件", "上报件 reported up"),
                ("联办件", "联办件 joint"),
                ("特办件", "特办件 urgent/special"),
            ),
        ),
        Field("window", "受理窗口", "Window"),
        Field(
            "provisional",
            "容缺材料（每行一项）",
            "Secondary materials owed, one per line",
            "lines",
            hint="留空为正常受理 leave empty for a full acceptance",
        ),
        Field("promise_by", "承诺补齐日期", "Promised by", "date"),
        Field("co_departments", "联办部门（每行一个）", "Co-handling departments, one per line", "lines"),
        Field("text", "备注", "Note", "textarea"),
    ),
    "not_accept": (Field("reasons", "不予受理理由", "Reasons", "textarea", required=True),),
    "return": (Field("reasons", "退回理由", "Reasons", "textarea", required=True),),
    "request_supplement": (
        Field("items", "需补正的全部材料（每行一项）", "ALL missing materials, one per line", "lines", required=True),
        Field("text", "说明", "Note", "textarea"),
    ),
    "materials_received": (
        Field("items", "已收到的材料（每行一项）", "Materials received, one per line", "lines", required=True),
    ),
    "assign": (
        Field("window", "承办窗口", "Window", required=True),
        Field("handler", "承办人", "Handler", required=True),
        Field("referred_by", "首问人（转介者）", "Referred by (first person asked)"),
    ),
    "subtask_done": (
        Field("department", "联办部门", "Department", "select", required=True),
        Field("outcome", "结论", "Answer", "select", (("agreed", "同意 agreed"), ("objected", "不同意 objected"))),
        Field("text", "部门意见", "The department's opinion", "textarea"),
    ),
    "extend": (
        Field(
            "days",
            "延长天数（与办理时限同单位：工作日或自然日）",
            "Days (in the limit's own unit: working or calendar days)",
            "number",
            required=True,
        ),
        Field("reasons", "延期理由", "Reason", "textarea", required=True),
        Field("applicant_informed", "已告知申请人", "Applicant informed", "checkbox"),
    ),
    "review": (
        Field("passed", "审核结论", "Result", "select", (("1", "通过 passed"), ("0", "不通过 not passed"))),
        Field("text", "审核意见", "Note", "textarea"),
    ),
    "escalate": (
        Field("department", "县级审批部门", "County department", required=True),
        Field("text", "上报说明", "Note", "textarea"),
    ),
    "decide": (
        Field(
            "outcome",
            "办理结果",
            "Outcome",
            "select",
            (("approved", "准予 approve"), ("refused", "不予（许可或办理） refuse")),
        ),
        Field(
            "document", "结果文书", "Result document", hint="文号或文书名称 a document number or the document's name"
        ),
        Field("department", "决定部门", "Deciding department"),
        Field("reasons", "不予许可（不予办理）的理由（不予时必填）", "Reasons (required to refuse)", "textarea"),
    ),
    "terminate": (Field("reasons", "终止理由", "Reason", "textarea", required=True),),
    "withdraw": (Field("reasons", "撤回原因", "Reason", "textarea"),),
    "send_result": (Field("text", "下送说明", "Note", "textarea"),),
    "deliver": (
        Field("confirmed_by", "签收人", "Signed for by", required=True),
        # 签名核对: drawn on the pad (errand.html) or, with no pointer, the paper 送达回证 signed (paper_signature)
        Field("signature", "申请人签名", "Applicant's signature", "signature", required=True),
    ),
    "close": (Field("archive_no", "档案号", "Archive number"),),
    "note": (Field("text", "备注内容", "Text", "textarea", required=True),),
    "supply": (
        Field("items", "带上的材料（每行一项）", "Materials carried up, one per line", "lines", required=True),
        Field("text", "说明", "Note", "textarea"),
    ),
    "rate": (
        Field("level", "评价", "Rating", "select", LEVELS, required=True),
        Field("window", "窗口", "Window"),
        Field("staff", "工作人员", "Staff"),
        Field("text", "意见", "Comment", "textarea"),
    ),
    "callback": (
        Field("reached", "已联系上申请人", "Applicant reached", "checkbox"),
        Field("level", "满意度", "Satisfaction", "select", (("", "—"), *LEVELS)),
        Field("text", "回访记录", "Note", "textarea"),
    ),
    "supervise": (
        Field(
            "supervision",
            "类型",
            "Kind",
            "select",
            (("督办", "督办 urge"), ("纠错", "纠错 correct"), ("预警", "预警 warn")),
        ),
        Field("text", "督办意见", "Text", "textarea", required=True),
        Field(
            "answer_days",
            "限期答复（工作日）",
            "Answer within (working days)",
            "number",
            hint="督办须限期答复（纠错、预警不需要） a 督办 asks for an answer by a date (not 纠错 or 预警)",
        ),
        Field("answer_by", "或答复截止日期", "or answer by (date)", "date"),
    ),
    "answer_urging": (Field("text", "督办回复", "Answer", "textarea", required=True),),
}
COMMON_FIELDS = (
    Field("actor", "经办人姓名", "Your name", required=True),
    Field("role", "岗位", "Post", required=True),
    Field("acting_for", "代岗（B岗代A岗时填A岗姓名）", "Acting for (A post, when a B post acts)"),
)
FIELD_LABELS = {f.name: f"{f.zh} {f.en}" for fields in (*KIND_FIELDS.values(), COMMON_FIELDS) for f in fields}


def offered_steps(
    state: Mapping[str, Any] | None,
    node_id: str,
    directory: Directory,
    *,
    post: str = "",
    node_role: str = "",
    department: str = "",
    window: str = "",
    materials: HeldMaterials | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
) -> list[str]:
    """The steps a desk offers on the errand now, to a post (``roles.STAFF_ROLES``; '' = any post here).

    Asked of the rule (``protocol.menu.allowed_steps``, with the post's label: who may grant an
    extension), less the steps with no desk form (``KIND_FIELDS``: a complaint, an upload), less the
    steps the post is not offered (``roles.offered``: a B post is offered A's steps), less those the
    account's department or window may not take (``roles.place_offers``: another department's errand or
    sub-task, an urging naming another window, an errand this centre named another window for). The errand page
    and ``sanji errand show`` both ask this,
    so they cannot disagree; the desk's builder asks the same rule of the step it writes. ``materials``: what the
    errand holds (``sanji.web.views.materials_of``): acceptance is not offered while a main material is missing.
    """
    if not state:
        return []
    projected = msgspec.convert(state, ErrandState)
    label = roles.label(post) if post else ""
    return [
        k
        for k in allowed_steps(projected, node_id, directory, role=label, materials=materials)
        if k in KIND_FIELDS
        and (not post or roles.offered(post, k, node_role))
        and roles.place_offers(
            k, projected, node_id, department=department, window=window, node_role=node_role, history=history
        )
    ]


def action_defaults(
    kind: str,
    row: dict[str, Any],
    state: dict[str, Any],
    matter: Matter | None,
    materials: list[str],
    person: dict[str, str] | None = None,
    held: HeldMaterials | None = None,
) -> dict[str, Any]:
    """What each form starts with: the catalogue's window, the materials the errand does not hold ...

    ``materials``: what it holds, registered and received since; ``held``: the same reading with what is still
    missing (``materials_of``), which a one-time notice lists: never what already came with a supplement."""
    have = {normalise_material(m) for m in materials}
    person = person or {}
    values: dict[str, Any] = {
        "actor": person.get("actor", ""),
        "role": person.get("role") or ANY_POST,
    }
    if matter is not None:
        # An optional material (如有, "if any") is neither owed under 容缺 nor asked for in a one-time notice.
        needed = [m for m in matter.materials if not m.optional and normalise_material(m.name) not in have]
        missing_all = [m.name for m in needed]
        missing_secondary = [m.name for m in needed if not m.main]
    else:
        missing_all = missing_secondary = []
    if kind == "accept" and matter is not None:
        if matter.immediate:
            values["errand_kind"] = "即办件"
        elif matter.joint_departments:
            values["errand_kind"] = "联办件"
        elif matter.department:
            values["errand_kind"] = "上报件"
        else:
            values["errand_kind"] = "承诺件"
        values["window"] = matter.window
        values["co_departments"] = list(matter.joint_departments)
        values["provisional"] = [] if matter.immediate else missing_secondary
    elif kind == "request_supplement":
        values["items"] = list(held.missing) if held is not None and matter is not None else missing_all
    elif kind == "materials_received":
        values["items"] = list(state.get("supplement_items") or state.get("provisional") or ())
    elif kind == "supply":
        values["items"] = list(state.get("supplement_items") or state.get("provisional") or ())
    elif kind == "escalate":
        values["department"] = matter.department if matter else ""
    elif kind == "decide":
        values["department"] = row.get("department", "")
        values["outcome"] = "approved"
    elif kind == "assign" and state.get("stage") == AT_DEPARTMENT:
        # at the county the errand is handled in the department it was reported to, not the township's window
        values["window"] = row.get("department") or (matter.department if matter else "")
    elif kind == "assign":
        values["window"] = row.get("window") or (matter.window if matter else "")
    elif kind == "deliver":
        values["confirmed_by"] = row.get("applicant_name", "")
    elif kind == "callback":
        values["reached"] = True
    elif kind == "review":
        values["passed"] = "1"
    return values


def choices_for(
    fld: Field, state: dict[str, Any], outcomes: list[str] | None = None, department: str = ""
) -> tuple[tuple[str, str], ...]:
    """A select's options; a decision offers only the outcomes the rule allows here (``outcomes``); a sub-task
    only the account's own department (``department``) where it carries one."""
    if fld.name == "department" and fld.widget == "select":
        pending = (d for d, v in state.get("subtasks", {}).items() if v == "pending")
        return tuple((d, d) for d in pending if not department or d == department)
    if fld.name == "outcome" and outcomes is not None:
        return tuple((v, label) for v, label in fld.choices if v in outcomes) or fld.choices
    return fld.choices


def decision_outcomes(state: dict[str, Any], node_id: str, directory: Directory, role: str = "") -> list[str]:
    """The outcomes this node may decide the errand with now: asked of the rule (``protocol.menu``)."""
    if not state:
        return []
    return allowed_outcomes(msgspec.convert(state, ErrandState), node_id, directory, role=role)


# -- refusals in Chinese and English: one table, protocol.refusals.TEXTS --------------------------


def refusal_text(exc: SanjiError) -> tuple[str, str, str]:
    """(Chinese, English, code) for an error shown on a screen."""
    if isinstance(exc, ActionRefused):
        zh, en = bilingual(exc.refusal)
        return zh, en, exc.refusal.code
    if isinstance(exc, roles.PlaceRefused):
        return exc.message_zh, exc.message, exc.refusal
    return "办件规则不允许此操作", exc.message, exc.code


# The hints a desk's form shows under a refusal, in Chinese; the English is the error's own ``hint``.
HINTS_ZH = {
    ActionRefused.default_hint: "办件规则此时不允许在本节点进行此操作",
    roles.PlaceRefused.default_hint: "请由该部门或窗口的账号（或不属于任何部门、窗口的账号）办理",
}


def hint_pair(hint: str) -> tuple[str, str]:
    """A refusal's hint Chinese first: from ``HINTS_ZH``, or split where it is "中文 English" already; an English
    hint no table words stays English (after the refusal's own two texts)."""
    if hint in HINTS_ZH:
        return HINTS_ZH[hint], hint
    found = split_pair(hint)
    return (found.zh, found.en) if found is not None else ("", hint)


# -- reading HTML forms ----------------------------------------------------------------------------


async def read_form(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    form = await bounded_form(request)
    out: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            out.setdefault(key, []).append(value)
    return out


def one(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[-1].strip()


def lines(form: dict[str, list[str]], name: str) -> list[str]:
    """Checkbox values and textarea lines alike: one item each, blanks dropped, duplicates once."""
    out: list[str] = []
    for value in form.get(name, ()):
        for line in value.splitlines():
            item = line.strip()
            if item and item not in out:
                out.append(item)
    return out


def five_step_marks(reached: Sequence[str], outcome: str) -> list[tuple[str, str, str, str]]:
    """The five supervision stages as the errand page marks them: (stage, class, Chinese, English). Reached:
    ``done``; passed over (a later stage is reached): ``missed``, as supervision flags it (``skipped_steps``);
    办结 once the errand is decided (已办结) and until its delivery completes the stage: ``decided``."""
    furthest = max((s for s in reached if s in FIVE_STEPS), key=FIVE_STEPS.index, default="")
    missed = set(skipped_steps(reached, before=furthest)) if furthest else set()
    marks = []
    for stage in FIVE_STEPS:
        if stage in reached:
            marks.append((stage, "done", "已完成", "reached"))
        elif stage in missed:
            marks.append((stage, "missed", "缺失", "skipped"))
        elif stage == FIVE_STEPS[-1] and outcome:
            marks.append((stage, "decided", "已办结，送达后完成", "decided; complete once delivered"))
        else:
            marks.append((stage, "", "未到", "not yet"))
    return marks


def _township_choices(store: Store, open_by_township: Mapping[str, object]) -> list[choices.Choice]:
    """The directory's townships below this node, and any other place the open errands are counted under."""
    listed = choices.townships(store.directory, store.node_id)
    seen = {c.value for c in listed}
    extra = [
        choices.Choice(value=n, label=screen_name(store.directory, n))
        for n in sorted(open_by_township)
        if n not in seen
    ]
    return listed + extra


def validation_message(exc: msgspec.ValidationError) -> tuple[str, str]:
    """(field, message) from a msgspec error such as "Expected ... - at `$.applicant_phone`"."""
    text = str(exc)
    match = re.search(r"at `\$\.([a-z_]+)", text)
    field = match.group(1) if match else ""
    return field, text


# -- controller ------------------------------------------------------------------------------------


class ScreenController(Controller):
    path = "/"
    include_in_schema = False

    @get("/")
    async def home(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        caller: NamedDependency[Caller],
        q: FromQuery[str] = "",
        page: FromQuery[str] = "1",
    ) -> Template:
        status = await store.status()
        hours = request.app.state.settings.observe.missing_hours
        health = {h.node: h for h in await fleet_health(store, missing_hours=hours)}
        listing = await errand_listing(store, context, q, page)
        rows, total = listing.rows, listing.total
        handed = await store.handoffs(rows)  # 待发送 / 已送达 beside the stage of an errand this node handed off
        today = context.today()
        window = _window(caller)
        work_views, urged, notices = await desk_notices(store, context, _account(caller), today, window=window)
        # An errand whose bound entry is not the county's is marked, not offered as plain work waiting
        # (``NodeContext.binding_state``; its page says why and offers none of the steps judged by it).
        blobs = await store.errand_state_blobs([v["id"] for v in work_views])
        for view in work_views:
            view["binding_mismatch"] = isinstance(await context.binding_state(blobs.get(view["id"])), Refusal)
        lights = {"red": 0, "yellow": 0}
        for view in work_views:
            if view["light"]["cls"] in lights:
                lights[view["light"]["cls"]] += 1
        reports = await store.reports()
        held = [*rows, *work_views]
        named = {*(r["holder"] for r in held), *(r.get("pending_to") or "" for r in held)}
        named |= {*(r.node for r in reports), *health, status.get("parent") or ""}
        return Template(
            template_name="home.html",
            context={
                **_frame(store, context, "home"),
                "node": status,
                "errands": [
                    {
                        **row_view(r, context, today),
                        "handoff": handoff_view(store.directory, r, handed.get(r["id"], ""), short=True),
                    }
                    for r in rows
                ],
                "total": total,
                "listing": listing,
                "worklist": work_views,
                "lights": lights,
                "urged": urged,
                "urging_window": window,  # the notices' urgings are this window's alone (said above the list)
                "answers_here": {u.id for u in urged if answerable(u, store.node_id, window)},
                "centre_answers": CENTRE_ANSWERS,
                "notices": notices[:50],
                "unread": sum(n.unread for n in notices),
                "newest_notice": max((n.at_ms for n in notices), default=0),
                "reports": reports,
                "node_names": {n: screen_name(store.directory, n) for n in named if n},  # a node by name, not by id
                "errand_rules": MAX_RULES,  # the generation of errand rules this build judges by
                "health": health,
                "id_conflicts": await id_conflicts(store),
                "labels": STAGE_LABELS,
                "today": today.isoformat(),
                "carry_panel": caller.may(roles.CARRY),  # the operator panel links the sync panel (/carry)
                "link_down": parent_link_down(status),
            },
        )

    @post("/notices/read", status_code=303)
    async def notices_read(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], caller: NamedDependency[Caller]
    ) -> Redirect:
        """已读: marks every notice shown up to now read for this account (the newest shown, or now)."""
        form = await read_form(request)
        shown = one(form, "upto")
        now = int(time.time() * 1000)
        # The newest notice shown may carry a peer's clock a little ahead of ours; never further than
        # the skew a hybrid clock accepts, so a forged "upto" cannot silence notices still to come.
        upto = min(max(int(shown) if shown.isdigit() and len(shown) <= 15 else 0, now), now + MAX_SKEW_MS)
        await NoticeReads(store.db).mark_read(_account(caller), upto)
        return Redirect(path="/#notices", status_code=303)

    # -- one errand ------------------------------------------------------------------------------

    @get("/errands/{errand_id:str}")
    async def errand(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        caller: NamedDependency[Caller],
        errand_id: FromPath[str],
        done: FromQuery[str] = "",
        again: FromQuery[str] = "",
    ) -> Template:
        page = await _errand_page(
            store, context, errand_id, done=done, again=again == "1", person=desk_person(request), caller=caller
        )
        if page.status_code == 200:
            await caller.read("errand", errand=errand_id, detail="screen")
        return page

    @post("/errands/{errand_id:str}/act", status_code=303)
    async def act(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        service: NamedDependency[ErrandService],
        caller: NamedDependency[Caller],
        errand_id: FromPath[str],
    ) -> Template | Redirect:
        form = await read_form(request)
        kind = one(form, "kind")
        if kind not in KIND_FIELDS:
            return await _errand_page(
                store,
                context,
                errand_id,
                error=("请选择一个操作", f"unknown step {kind!r}"),
                status=400,
                person=desk_person(request),
                caller=caller,
            )
        values, errors = _parse_action(kind, form, context.today())
        if not errors:
            try:
                data = msgspec.convert(
                    {k: v for k, v in values.items() if k in ActionForm.__struct_fields__}, ActionForm
                )
            except msgspec.ValidationError as exc:
                field, message = validation_message(exc)
                errors[field or "_"] = f"{FIELD_LABELS.get(field, '')} 格式不正确 invalid: {message}"
        if errors:
            return await _errand_page(
                store,
                context,
                errand_id,
                error=("请更正以下内容", "Please correct the fields marked below"),
                values=values,
                open_kind=kind,
                field_errors=errors,
                status=400,
                person=desk_person(request),
                caller=caller,
            )
        try:
            await service.act(errand_id, data, once=once("act", one(form, ONCE_FIELD), said(form)))
        except AlreadySent as sent:  # the same form sent twice (a double click, back and resubmit): taken once
            again = {"done": kind, "again": "1"}
            return remembered(
                Redirect(path=errand_url(sent.errand) + "?" + urlencode(again), status_code=303), data.actor, data.role
            )
        except SanjiError as exc:
            zh, en, code = refusal_text(exc)
            return await _errand_page(
                store,
                context,
                errand_id,
                error=(zh, en),
                refusal=code,
                values=values,
                open_kind=kind,
                status=409 if exc.code == "action_refused" else 403 if isinstance(exc, roles.PlaceRefused) else 400,
                hint=exc.hint,
                person=desk_person(request),
                caller=caller,
            )
        done = Redirect(path=errand_url(errand_id) + "?" + urlencode({"done": kind}), status_code=303)
        return remembered(done, data.actor, data.role)

    # -- supervision -------------------------------------------------------------------------------

    @get("/supervision")
    async def supervision(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        caller: NamedDependency[Caller],
        sample: FromQuery[str] = "5",
        seed: FromQuery[str] = "",
        township: FromQuery[str] = "",
        window: FromQuery[str] = "",
        department: FromQuery[str] = "",
    ) -> Template:
        size = int(sample) if sample.isdigit() and int(sample) <= 50 else 5
        report: Supervision = await supervision_report(store, context, sample=size, seed=seed[:32])
        complaints = present(caller.visible_complaints(report.complaints), store.sealing_key)
        await caller.read_complaints(len(complaints), "/supervision")
        asked = (("township", township), ("window", window), ("department", department))
        wanted = {name: value.strip()[:64] for name, value in asked}

        def shown(summary: ErrandSummary) -> bool:
            """The overdue and warning lists narrowed to one township, window or department, as asked."""
            return (
                (not wanted["township"] or township_of(store.directory, summary.scope) == wanted["township"])
                and (not wanted["window"] or summary.window == wanted["window"])
                and (
                    not wanted["department"]
                    or department_of(store.directory, store.node_id, summary.scope, summary.department)
                    == wanted["department"]
                )
            )

        views = {
            "overdue": [_summary_view(s) for s in report.overdue if shown(s)],
            "warnings": [_summary_view(s) for s in report.warnings if shown(s)],
        }
        callbacks = [c for c in [await _callback_row(store, context, e, caller) for e in report.callback_sample] if c]
        # An account sitting at a window sees the urgings of its own window at this node (and those naming none);
        # the whole node's accounts, supervisors and the open demo desk see every one held.
        urging_window = _window(caller)
        urgings = seen_at_window(await urging_rows(store, context.today()), store.node_id, urging_window)
        tables = (report.by_township, report.by_department)
        counted = {stage for table in tables for row in table.values() for stage in row}
        # the errands the lists name by id, said as a person does: receipt number and matter
        named = {
            *report.missing_steps,
            *(d.errand for d in report.deemed),
            *(str(c.get("errand")) for c in complaints),
            *(m.errand for m in report.binding_mismatches),
        }
        said = {
            errand: {"receipt": state.get("receipt") or errand, "matter": _matter_name(context, state.get("matter"))}
            for errand, state in (await store.errand_states(sorted(named))).items()
        }
        return Template(
            template_name="supervision.html",
            context={
                **_frame(store, context, "supervision"),
                "report": report,
                "wanted": wanted,
                "windows": sorted({s.window for s in (*report.overdue, *report.warnings) if s.window}),
                # every township and department to filter by, not only those with an errand open now (T01 with
                # nothing open is still a township; a department the catalogue names is still a department)
                "township_choices": _township_choices(store, report.by_township),
                "department_choices": choices.departments(context.catalogue, also=list(report.by_department)),
                "deemed_at": {d.errand: at_text(d.decided_at) for d in report.deemed},
                "stage_columns": [(stage, SHOWN_LABELS[stage]) for stage in SHOWN_STAGES if stage in counted],
                # townships, counties and the desks holding the late errands, by name (the id beside it, small)
                "node_names": {
                    n: screen_name(store.directory, n)
                    for n in {
                        *report.by_township,
                        *report.by_county,
                        *(s.holder for s in (*report.overdue, *report.warnings)),
                        *(s.responsible for s in (*report.overdue, *report.warnings)),
                    }
                    if n in store.directory
                },
                "said": said,
                "rating_levels": {level: label for level, label in LEVELS},  # "满意" → "满意 satisfied", for ``bi``
                "warn_days": WARN_DAYS,
                # 在办分布's counts open the ledger of those errands (registered in the three years it spans)
                "drill_from": (context.today() - timedelta(days=MAX_SPAN_DAYS)).isoformat(),
                "drillable": {
                    *(n for n in report.by_township if n in store.directory and store.directory.role(n) == "town"),
                    *report.by_county,
                    *(d for d in report.by_department if " " not in d),  # above the counties: "C1 县民政局"
                },
                "views": views,
                "steps": FIVE_STEPS,
                "urgings": urgings,
                "urging_window": urging_window,
                "answers_here": {u.id for u in urgings if answerable(u, store.node_id, urging_window)},
                "centre_answers": CENTRE_ANSWERS,
                "urged_names": {u.to: screen_name(store.directory, u.to) for u in urgings},  # the urged desk by name
                "urging_counts": urging_counts(urgings),
                "sample": size,
                "seed": seed[:32],
                "callbacks": callbacks,
                "complaints_hidden": caller.principal is not None and not caller.sees_complaints,
                "complaints_at_primary": caller.on_replica,
                "complaint_rows": [
                    {
                        "at": at_text(int(c.get("at", 0))),
                        "errand": c.get("errand", ""),
                        "url": errand_url(str(c.get("errand", ""))),
                        "node": c.get("node", ""),
                        # where it was filed, by name (the id beside it, small), as the tables above say a node
                        "node_name": screen_name(store.directory, str(c.get("node", "")))
                        if c.get("node", "") in store.directory
                        else c.get("node", ""),
                        "against": c.get("against", ""),
                        "text": c.get("text", ""),
                        "complainant": c["complainant"],
                    }
                    for c in complaints
                ],
            },
        )


def _matter_name(context: NodeContext, code: Any) -> str:
    matter = context.matter(str(code)) if code else None
    return matter.name if matter else str(code or "—")


async def _callback_row(store: Store, context: NodeContext, errand_id: str, caller: Caller) -> dict[str, Any] | None:
    """One errand of the call-back sample as the caller needs it: whom to ring, about what, how it ended.

    The phone is masked as on the errand page (sanji.privacy); the full number is the errand
    page's audited 查看完整号码, never this list's, offered where the errand page would show it
    (``may_reveal``: the role, and an account's department or window on the errand's path).
    """
    row = await store.errand(errand_id)
    if row is None:
        return None
    state = (await store.errand_states([errand_id])).get(errand_id, {})
    register = next((h for h in applied(row["history"]) if h["kind"] == "register"), {})
    applicant = mask_applicant(register.get("applicant") or {})
    view = summarise(row, context)
    return {
        "id": errand_id,
        "url": errand_url(errand_id),
        "reveal_url": errand_url(errand_id) + "/reveal",
        "receipt": row.get("receipt") or errand_id,
        "name": applicant.get("name", ""),
        "phone": applicant.get("phone", ""),
        "matter": view["matter_name"],
        "outcome": view["outcome_label"],
        "stage": view["stage_label"],
        "may_reveal": may_reveal_here(caller, state, row["history"]),
    }


def _account(caller: Caller) -> str:
    """Whose notices: the logged-in account; the open demo desk shares one mark ('')."""
    return caller.principal.name if caller.principal is not None else ""


def _window(caller: Caller) -> str:
    """The window whose urgings the account is shown ('' : all, for a whole-node account or the open demo desk)."""
    return caller.principal.window if caller.principal is not None else ""


def _summary_view(summary: Any) -> dict[str, Any]:
    view: dict[str, Any] = msgspec.to_builtins(summary)
    view["light"] = light(summary.deadline)
    view["url"] = errand_url(summary.id)
    return view


class RegisterController(Controller):
    """代办登记: mounted by the desks that register errands (village stations, township windows)."""

    path = "/"
    include_in_schema = False

    @get("/register")
    async def register_form(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        matter: FromQuery[str] = "",
        q: FromQuery[str] = "",
        find: FromQuery[str] = "",
    ) -> Template:
        values = {k: v for k, v in desk_person(request).items() if v}
        if matter and not find:  # 查找 searches again, whatever is chosen in the list
            values["matter"] = matter.strip()
            q = ""  # chosen: the form opens with its 换事项 list whole
        return _register_page(store, context, values, fresh=True, q=q)

    @post("/register", status_code=303)
    async def register(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        service: NamedDependency[ErrandService],
    ) -> Template | Redirect:
        form = await read_form(request)
        values: dict[str, Any] = {
            "matter": one(form, "matter"),
            "applicant_name": one(form, "applicant_name"),
            "applicant_id_number": one(form, "applicant_id_number").upper().replace(" ", ""),
            "applicant_phone": one(form, "applicant_phone"),
            "mandate": bool(form.get("mandate")),
            "in_person": bool(form.get("in_person")),
            "materials": lines(form, "materials"),
            "materials_other": "\n".join(lines(form, "materials_other")),
            "summary": one(form, "summary"),
            "actor": one(form, "actor"),
            "role": one(form, "role"),
            "acting_for": one(form, "acting_for"),
            "confirm": bool(form.get("confirm")),
        }
        # Only "confirm" (确认登记, sent from the review page) signs; the form's own button and any
        # older client's "save" lead to the review, so nothing is registered unseen.
        step, q = one(form, "step"), one(form, "q")
        if step == "enter":  # Enter in any field sends the form's first, unseen button: after a query typed since
            step = "find" if q != one(form, "q_shown") else "check"  # the page was drawn, the agent meant 查找
        if form.get("find"):  # 查找 beside 换事项
            step = "find"
        step = step if step in ("choose", "check", "edit", "confirm", "find") else "review"
        materials = [*values["materials"], *[m for m in lines(form, "materials_other") if m not in values["materials"]]]
        matter = context.matter(values["matter"])
        check = precheck(matter, materials, by_proxy=not values["in_person"]) if matter else None
        if step == "edit":  # 返回修改: the form again, as it was typed, nothing complained about
            return _register_page(store, context, values, check=check)
        if step == "find":  # the 换事项 list filtered, the best match offered; nothing else changes
            return _register_page(store, context, values, check=check, q=q)
        errors = _check_register(values)
        bound = bind(context.catalogue, values["matter"]) if values["matter"] else None
        refusal = ""
        if isinstance(bound, Refusal):  # the same rule and code as the API's (protocol.binding)
            zh, en = bilingual(bound)
            errors["matter"], refusal = f"{zh} {en}", bound.code
        if step == "choose":  # only the matter changed: no complaints about fields not filled in yet
            errors = {k: v for k, v in errors.items() if k == "matter"}
        if step == "choose" or errors or step == "check":
            return _register_page(
                store,
                context,
                values,
                errors=errors,
                check=check,
                status=400 if errors and step in ("review", "confirm") else 200,
                refusal=refusal,
            )
        # Missing main materials are the rule's to refuse (materials_missing) unless "仍然登记" is
        # ticked, exactly as for every other entry point; missing secondary ones go on (容缺).
        try:
            data = msgspec.convert(
                {
                    "matter": values["matter"],
                    "applicant_name": values["applicant_name"],
                    "applicant_id_number": values["applicant_id_number"],
                    "applicant_phone": values["applicant_phone"],
                    "mandate": values["mandate"],
                    "in_person": values["in_person"],
                    "materials": materials,
                    "summary": values["summary"],
                    "actor": values["actor"],
                    "role": values["role"],
                    "acting_for": values["acting_for"],
                    "confirm_missing": values["confirm"],
                },
                RegisterForm,
            )
        except msgspec.ValidationError as exc:
            field, message = validation_message(exc)
            errors[field or "_"] = f"{REGISTER_LABELS.get(field, '')} 格式不正确 invalid: {message}"
            return _register_page(store, context, values, errors=errors, check=check, status=400)
        if step == "review":
            # judge is asked before the review is shown: a page offering 确认登记 promises the rule takes it
            judged = registration_refused(
                store.node_id,
                store.directory,
                bound if isinstance(bound, Matter) else None,
                matter=data.matter,
                applicant_name=data.applicant_name,
                mandate=data.mandate,
                in_person=data.in_person,
                materials=tuple(data.materials),
                missing_confirmed=data.confirm_missing,
                actor=data.actor,
                role=data.role,
            )
            if judged is not None:
                zh, en = bilingual(judged)
                field = REGISTER_REFUSAL_FIELDS.get(judged.code, "_")
                errors[field] = f"{zh} {en}" if field != "_" else f"{zh} · {en}"
                status = 400 if field != "_" else 409
                return _register_page(
                    store, context, values, errors=errors, check=check, status=status, refusal=judged.code
                )
            return _review_page(store, context, values, data, matter, check)
        try:
            projection = await service.register(data, once=once("register", one(form, ONCE_FIELD)))
        except AlreadySent as sent:  # 确认登记 sent twice: the first registered it; its receipt, not a second errand
            receipt = Redirect(path=document_url(sent.errand, "receipt") + "?again=1", status_code=303)
            return remembered(receipt, data.actor, data.role)
        except SanjiError as exc:
            zh, en, code = refusal_text(exc)
            field = REGISTER_REFUSAL_FIELDS.get(code, "_")
            errors[field] = f"{zh} {en}" if field != "_" else f"{zh} · {en}"
            status = 400 if field != "_" else 409
            return _register_page(store, context, values, errors=errors, check=check, status=status, refusal=code)
        receipt = Redirect(path=document_url(projection.errand, "receipt"), status_code=303)
        return remembered(receipt, data.actor, data.role)


def _urgings_of(
    state: dict[str, Any], history: list[dict[str, Any]], today: date, directory: Directory, window: str = ""
) -> list[dict[str, Any]]:
    """The errand's 督办 with an answer due, unanswered first: what the urged desk must see before anything.
    ``window``: the account's ('' : the whole node's); an urging it may not answer says who does instead of
    pointing at a form the menu does not offer it (``roles.place_offers``)."""
    texts = {h["id"]: h.get("text", "") for h in applied(history) if h["kind"] == "supervise"}
    out = []
    for held in state.get("urgings", ()):
        urging = msgspec.convert(held, Urging)
        shown = urging_status(urging, today)
        zh, en = URGING_STATUS_LABELS[shown]
        out.append(
            {
                "text": texts.get(urging.id, ""),
                "by": screen_name(directory, urging.by),
                "to": screen_name(directory, urging.to),
                "to_id": urging.to,
                "window": urging.window,
                "answerable": roles.window_answers(window, urging.window),
                "answer_by": urging.answer_by,
                "status": shown,
                "status_zh": zh,
                "status_en": en,
            }
        )
    out.sort(key=lambda u: (u["status"] == "answered", u["answer_by"]))
    return out


def _frame(store: Store, context: NodeContext, page: str) -> dict[str, Any]:
    entry = store.directory.get(store.node_id)
    return {
        "page": page,
        "name": entry.name or store.node_id,
        "node_id": store.node_id,
        "role": entry.role,
        "role_label": ROLE_LABELS[entry.role],
        # 代岗 is a B post's (窗口B岗), and no B post works at a village station: its forms do not ask for it
        "acting_for_here": roles.works_at(roles.WINDOW_B, entry.role),
        "catalogue_version": context.catalogue_version,
        "calendar_version": context.calendar_version,
        "rules_version": context.rules_version,
        "provisional_years": sorted(context.bound.provisional_years) if context.bound else [],
    }


# -- the errand page -------------------------------------------------------------------------------

DONE_DOCS = {
    "accept": "acceptance",
    "not_accept": "non-acceptance",
    "return": "return",
    "request_supplement": "supplement",
    "extend": "extension",
    "decide": "decision",
    "deliver": "delivery",
}
HISTORY_LABELS = ACTION_DONE
HANDOFF_LABELS = HANDOFF_DONE
STATUS_LABELS = {"applied": "", "rejected": "未生效 refused", "waiting": "等待前序 waiting"}


def _dated(day: Any, provisional: Any) -> str:
    return f"{day}（暂定）" if day and provisional else str(day or "")


def _change(before: Any, after: Any, provisional: Any) -> str:
    if not (before or after):
        return ""
    now = _dated(after, provisional)
    return f"{before}（暂定）→ {now}" if before != after else f"{now}（原暂定，日期不变）"


def history_detail(item: dict[str, Any], directory: Directory, category: str = "") -> str:
    """One history line's details; ``category``: the errand's (``protocol.errand.errand_category``), by which a
    decision's 结果 is said as everywhere else (不予办理 for a benefit)."""
    kind = item["kind"]
    parts: list[str] = []

    def add(label: str, value: Any) -> None:
        if value:
            text = "、".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
            parts.append(f"{label}：{text}")

    if kind == "register":
        add("材料", item.get("materials"))
        parts.append("本人到场" if item.get("in_person") else "委托代办")
    elif kind == "handoff":
        add("交给", screen_name(directory, item.get("to", "")))
        add("部门", item.get("department"))
        add("说明", item.get("note"))
    elif kind == "receive":
        add("环节期限", _dated(item.get("stage_due"), item.get("stage_due_provisional")))
    elif kind == "deadline_corrected":
        add("办结期限", _change(item.get("previous_due"), item.get("due"), item.get("due_provisional")))
        stage = (item.get("previous_stage_due"), item.get("stage_due"), item.get("stage_due_provisional"))
        add("环节期限", _change(*stage))
        add("工作日历", f"第{item.get('calendar_version', 0)}版")
        add("说明", item.get("reason"))
    elif kind == "accept":
        add("类型", item.get("errand_kind", "承诺件"))
        add("办结期限", _dated(item.get("due"), item.get("due_provisional")))
        add("容缺", item.get("provisional"))
        add("承诺补齐", item.get("promise_by"))
        add("联办", item.get("co_departments"))
        add("备注", item.get("note"))
    elif kind in ("not_accept", "return"):
        add("理由", item.get("reasons"))
    elif kind in ("request_supplement", "materials_received", "supply"):
        add("材料", item.get("items"))
        add("说明", item.get("note"))
    elif kind == "assign":
        add("窗口", item.get("window"))
        add("承办人", item.get("handler"))
        add("首问", item.get("referred_by"))
    elif kind == "subtask_done":
        add("部门", item.get("department"))
        parts.append("不同意" if item.get("outcome") == "objected" else "同意")
    elif kind == "extend":
        add("天数", item.get("days"))
        add("理由", item.get("reason"))
        add("新期限", item.get("due"))
    elif kind == "review":
        parts.append("通过" if item.get("passed") else "不通过")
        add("意见", item.get("note"))
    elif kind == "decide":
        add("结果", outcome_label(str(item.get("outcome", "")), category) if item.get("outcome") else "")
        add("文书", item.get("document"))
        add("部门", item.get("department"))
        add("理由", item.get("reasons"))
    elif kind in ("terminate", "withdraw"):
        add("理由", item.get("reason"))
    elif kind == "deliver":
        add("签收人", item.get("confirmed_by"))
        signature = str(item.get("signature") or "")
        add("签名", "已在签名框手写签名 signed on screen" if signature_path(signature) else signature)
    elif kind == "close":
        add("档案号", item.get("archive_no"))
    elif kind in ("note", "supervise", "answer_urging"):
        add("类型", item.get("kind_of_supervision"))
        add("内容", item.get("text"))
        add("限期答复 answer by", item.get("answer_by"))
        add("督办对象", screen_name(directory, str(item.get("to") or "")))  # a desk by its name, never "T02"
    elif kind == "complain":  # shown only to supervisors and inspectors (sanji.auth.guard.Caller.history)
        add("被投诉", item.get("against"))
        add("内容", item.get("text"))
    elif kind == "rate":
        add("评价", item.get("level"))
        add("意见", item.get("comment"))
    elif kind == "callback":
        parts.append("已联系上" if item.get("reached") else "未联系上")
        add("满意度", item.get("satisfied"))
    if item.get("reason") and item.get("status") != "applied":
        parts.append(f"原因 reason: {item['reason']}")
    return "；".join(parts)


async def _errand_page(
    store: Store,
    context: NodeContext,
    errand_id: str,
    *,
    done: str = "",
    again: bool = False,
    error: tuple[str, str] | None = None,
    hint: str = "",
    values: dict[str, Any] | None = None,
    open_kind: str = "",
    field_errors: dict[str, str] | None = None,
    status: int = 200,
    person: dict[str, str] | None = None,
    caller: Caller | None = None,
    refusal: str = "",
    reveal: bool = False,
) -> Template:
    frame = _frame(store, context, "errand")
    row = await store.errand(errand_id, include_complaints=caller is not None and caller.sees_complaints)
    if row is None or row["stage"] == "incomplete":
        return Template(
            template_name="not_found.html",
            status_code=404,
            context={
                **frame,
                "message_zh": f"本节点没有编号为 {errand_id} 的办件",
                "message_en": f"Errand {errand_id} is not held at {store.node_id}",
            },
        )
    directory = store.directory
    state = (await store.errand_states([errand_id])).get(errand_id, {})
    history: list[dict[str, Any]] = caller.history(row["history"]) if caller is not None else row["history"]
    if caller is not None:
        await caller.read_complaints(sum(h["kind"] == "complain" for h in history), "/errands", errand=errand_id)
    register = next((h for h in applied(history) if h["kind"] == "register"), {})
    # registered and received since (补正, 容缺): one reading, for the page, the forms' defaults and the menu
    held = materials_of(row, history, context)
    materials: list[str] = list(held.held)
    today = context.today()
    view = row_view(row, context, today)
    matter = context.matter(row["matter"]) or view.get("bound_matter")
    # A logged-in post is asked about by its label (who may grant an extension); otherwise the
    # menu shows what any post of this desk may do, and the rule answers the one who posts.
    principal = caller.principal if caller is not None else None
    post = principal.label if principal is not None else ""
    as_post = principal.role if principal is not None else ""
    department = principal.department if principal is not None else ""
    node_role = caller.node_role if caller is not None else ""
    kinds = offered_steps(
        state,
        store.node_id,
        directory,
        post=as_post,
        node_role=node_role,
        department=department,
        window=principal.window if principal is not None else "",
        materials=held,
        history=row["history"],
    )
    # A main material missing: acceptance is not offered (the desk refuses it too); where it would have been, the
    # page says why, and the one-time notice's form lists what is missing.
    unacceptable = acceptance_refusal(bound_of(row.get("state")).matter_entry, held)
    if unacceptable is not None and "accept" not in offered_steps(
        state,
        store.node_id,
        directory,
        post=as_post,
        node_role=node_role,
        department=department,
        window=principal.window if principal is not None else "",
        history=row["history"],
    ):
        unacceptable = None
    # An entry that differs from the county's catalogue of its version: said at the top, and no step judged by it
    # is offered (``protocol.binding.binding_refusal``; the desk refuses them too).
    # A version this node lacks and cannot call never published (below the oldest kept, or lost in a restore)
    # cannot be checked (无法核对): said, and let through.
    binding = await context.binding_state(row.get("state"))
    mismatch = binding if isinstance(binding, Refusal) else None
    if mismatch is not None:
        kinds = [k for k in kinds if k not in BOUND_STEPS]
    unchecked = None
    if binding in ("unchecked", "behind"):
        bound = bound_of(row.get("state"))
        code = bound.matter_entry.code if bound.matter_entry else ""
        unchecked = unchecked_texts(code, bound.catalogue_version, behind=binding == "behind")
    offered = set(kinds)
    if open_kind and open_kind not in offered:
        kinds.append(open_kind)  # refused: keep what was typed on screen, even for a step not offered here
    forms = []
    outcomes = decision_outcomes(state, store.node_id, directory, post) if "decide" in kinds else None
    for kind in kinds:
        defaults = action_defaults(kind, row, state, matter, materials, person, held)
        seat = caller.principal.window if caller is not None and caller.principal is not None else ""
        if seat and kind in ("accept", "assign"):
            defaults["window"] = seat  # a clerk at a window takes it at her own, not the catalogue's
        if kind == "decide" and outcomes:
            defaults["outcome"] = outcomes[0]  # approval where this desk may approve, else the refusal
        current = values if (values is not None and kind == open_kind) else defaults
        fields = [
            {
                "f": f,
                "value": current.get(f.name, ""),
                "choices": choices_for(f, state, outcomes, department),
                "paper": bool(current.get(f.name + "_paper")),  # a signature: the paper 送达回证 was signed
            }
            for f in (*KIND_FIELDS[kind], *COMMON_FIELDS)
            if f.name != "acting_for" or frame["acting_for_here"]
        ]
        zh, en = ACTION_LABELS[kind]
        five = STEPS[kind].five if kind in STEPS else ""
        forms.append(
            {
                "kind": kind,
                "zh": zh,
                "en": en,
                "fields": fields,
                "open": kind == open_kind,
                "offered": kind in offered,
                # the stages this step would leave behind unreached: said now, as supervision will flag them later
                # (the step is not refused: an errand may have good reason, and the record shows it either way)
                "skipped": skipped_steps(state.get("steps", ()), before=five) if five else (),
            }
        )
    timeline = [
        {
            "at": at_text(h["at"]),
            "label": HANDOFF_LABELS.get(h.get("purpose", ""), "移交 hand-off")
            if h["kind"] == "handoff"
            else HISTORY_LABELS.get(h["kind"], h["kind"]),
            "actor": h["actor"],
            "role": h["role"],
            "acting_for": h.get("acting_for", ""),
            "node": screen_name(directory, h["node"]),
            "node_id": h["node"],
            "detail": history_detail(h, directory, view["outcome_category"]),
            "status": STATUS_LABELS.get(h.get("status", "applied"), h.get("status", "")),
        }
        for h in history
    ]
    done_label = ACTION_LABELS.get(done)
    done_doc = DONE_DOCS.get(done)
    if done == "accept" and state.get("provisional"):
        done_doc = "commitment"
    answers = {h["department"]: h for h in applied(history) if h["kind"] == "subtask_done"}
    subtasks = [
        {
            "department": d,
            "status": status,
            "note": answers.get(d, {}).get("note", ""),
            "at": at_text(answers[d]["at"]) if d in answers else "",
        }
        for d, status in state.get("subtasks", {}).items()
    ]
    urged = _urgings_of(state, history, context.today(), directory, principal.window if principal is not None else "")
    applicant = register.get("applicant", {}) if register else {}
    if applicant and not reveal:  # sanji.privacy: full numbers only on an explicit, audited show
        applicant = mask_applicant(applicant)
    archived = {m.hash for m in await store.archived_blobs(errand=errand_id)}
    # 查看完整号码 and the attachments' bytes: the role, and a department's or window's place on the path
    shows_full = caller is not None and may_reveal_here(caller, state, history)
    return Template(
        template_name="errand.html",
        status_code=status,
        context={
            **frame,
            "e": view,
            "state": state,
            "matter": matter,
            "guide_url": guide_url(row["matter"]) if context.matter(row["matter"]) else "",  # only where held
            "applicant": applicant,
            "materials": materials,
            "missing_main": held.missing_main,
            "missing_secondary": held.missing_secondary,
            "supplied": held.supplied,
            "unacceptable": bilingual(unacceptable) if unacceptable is not None else None,
            "holder": screen_name(directory, row["holder"]),
            "pending": screen_name(directory, row["pending_to"]) if row["pending_to"] else "",
            "responsible": screen_name(directory, row["responsible"]) if row["responsible"] else "",
            "steps": five_step_marks(state.get("steps", ()), state.get("outcome", "")),
            "subtasks": subtasks,
            "urgings": urged,
            "centre_answers": CENTRE_ANSWERS,
            "documents": document_links(errand_id, history, view["outcome_category"]),
            "attachments": [
                {
                    "name": h.get("name") or h["blob"][:12],
                    "url": "/api/attachments/" + h["blob"] if shows_full or caller is None else "",
                    "size": h.get("size", 0),
                    "archived": h["blob"] in archived,  # fetched back from an ancestor when opened
                }
                for h in applied(history)
                if h["kind"] == "attach" and h.get("blob")
            ],
            "attach_url": errand_url(errand_id) + "/attach",
            "forms": forms,
            "timeline": timeline,
            "done": done_label,
            "again": again and done_label is not None,  # the form was sent twice: said beside what was done
            "once": new_key(),  # the act form's one-time key (sanji.store.submissions)
            "done_doc": {
                "url": document_url(errand_id, done_doc),
                "zh": DOCUMENTS[done_doc].title(history, view["outcome_category"])[0],
                "en": DOCUMENTS[done_doc].title(history, view["outcome_category"])[1],
            }
            if done_doc and DOCUMENTS[done_doc].applies(history)
            else None,
            "binding_warning": bilingual(mismatch) if mismatch is not None else None,
            "binding_unchecked": unchecked,
            "error": error,
            "refusal": refusal,
            "hint": hint_pair(hint) if hint else None,
            "field_errors": field_errors or {},
            "act_url": errand_url(errand_id) + "/act",
            "promise_min": today.isoformat(),
            "revealed": reveal,
            "may_reveal": shows_full,
            "reveal_url": errand_url(errand_id) + "/reveal",
            "offline": await _offline_note(store, row, done=bool(done_label), caller=caller),
            "handoff": handoff_view(directory, row, (await store.handoffs([row])).get(errand_id, "")),
        },
    )


async def _offline_note(
    store: Store, row: dict[str, Any], *, done: bool, caller: Caller | None
) -> dict[str, Any] | None:
    """While the link to the parent is down, an errand on its way up (or a step just taken) is kept here: the page
    says so, and that it goes up by itself, lest the clerk register or submit it again; and where to carry it."""
    status = await store.status()
    parent = status.get("parent") or ""
    if not parent_link_down(status) or not (done or row.get("pending_to") == parent):
        return None
    return {
        "parent": screen_name(store.directory, parent),
        "carry": caller is None or caller.may(roles.CARRY),  # /carry is linked only for a post that may use it
    }


def _parse_action(kind: str, form: dict[str, list[str]], today: date) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed values of one step's form, and a Chinese+English message for each field that is wrong."""
    values: dict[str, Any] = {"kind": kind}
    errors: dict[str, str] = {}
    for fld in (*KIND_FIELDS[kind], *COMMON_FIELDS):
        if fld.widget == "lines":
            values[fld.name] = lines(form, fld.name)
        elif fld.widget == "checkbox":
            values[fld.name] = bool(form.get(fld.name))
        elif fld.widget == "signature":
            values["signature_paper"] = bool(form.get("signature_paper"))
            drawn = one(form, fld.name)
            signer = str(values.get("confirmed_by") or "")
            values[fld.name] = paper_signature(signer) if values["signature_paper"] else drawn
            if drawn.startswith(SIGNATURE_PREFIX) and not values["signature_paper"] and not signature_path(drawn):
                errors[fld.name] = (
                    "签名记录无法识别，请清除后重签 The signature could not be read; clear it and sign again"
                )
            elif not values[fld.name]:
                errors[fld.name] = (
                    "请申请人在签名框内签名，或勾选“已在纸质送达回证上签字” "
                    "The applicant signs in the box, or tick the paper delivery confirmation"
                )
            continue
        else:
            values[fld.name] = one(form, fld.name)
        if fld.required and not values[fld.name]:
            errors[fld.name] = f"请填写{fld.zh} {fld.en} is required"
    raw_days = values.get("days")
    if isinstance(raw_days, str):
        if raw_days.isdigit() and 1 <= int(raw_days) <= 365:
            values["days"] = int(raw_days)
        elif "days" not in errors:
            errors["days"] = "天数应为1到365的整数 Days must be a whole number from 1 to 365"
    raw_answer_days = values.get("answer_days")
    if isinstance(raw_answer_days, str):
        if not raw_answer_days:
            values["answer_days"] = 0
        elif raw_answer_days.isdigit() and 1 <= int(raw_answer_days) <= MAX_ANSWER_WORKING_DAYS:
            values["answer_days"] = int(raw_answer_days)
        else:
            most = MAX_ANSWER_WORKING_DAYS
            errors["answer_days"] = f"答复期限应为1到{most}个工作日 Answer within 1 to {most} working days"
    answer_by = values.get("answer_by")
    if isinstance(answer_by, str) and answer_by:  # whether the date is allowed is protocol.urging's to say
        try:
            date.fromisoformat(answer_by)
        except ValueError:
            errors["answer_by"] = "日期格式应为 2026-12-31 Use a date like 2026-12-31"
    if "passed" in values:
        values["passed"] = values["passed"] != "0"
    promise = values.get("promise_by")
    if isinstance(promise, str) and promise:
        try:
            promised = date.fromisoformat(promise)
        except ValueError:
            errors["promise_by"] = "日期格式应为 2026-12-31 Use a date like 2026-12-31"
        else:
            if promised < today:
                errors["promise_by"] = "承诺日期不能早于今天 The promised date cannot be in the past"
    if kind == "accept" and values.get("provisional") and not promise:
        errors["promise_by"] = (
            "容缺受理须填写承诺补齐日期；材料已齐或不容缺时，请清空“容缺材料”即为正常受理 "
            "Provisional acceptance needs the promised date; clear the owed materials for a full acceptance"
        )
    if kind == "accept" and values.get("errand_kind") == "联办件" and not values.get("co_departments"):
        errors["co_departments"] = "联办件须列明联办部门 A joint errand names its co-handling departments"
    version = one(form, "expected_version")
    if version.isdigit():
        values["expected_version"] = int(version)
    return values, errors


# -- the registration page -------------------------------------------------------------------------

REGISTER_LABELS = {
    "matter": "办理事项 Matter",
    "applicant_name": "申请人姓名 Applicant's name",
    "applicant_id_number": "身份证号码 ID number",
    "applicant_phone": "联系电话 Phone",
    "materials": "材料 Materials",
    "summary": "事由 Summary",
    "actor": "代办员/经办人 Agent",
    "role": "岗位 Post",
    "acting_for": "代岗 Acting for",
    "mandate": "委托书 Mandate",
    "in_person": "本人到场 In person",
    "confirm": "缺件确认 Missing materials",
}


# Registration refusals (protocol.binding) shown beside the field they are about.
REGISTER_REFUSAL_FIELDS = {
    "matter_unknown": "matter",
    "matter_mismatch": "matter",
    "mandate_missing": "mandate",
    "in_person_only": "in_person",
    "proxy_not_allowed": "in_person",
    "materials_missing": "confirm",
    "name_blank": "applicant_name",
    "name_invisible": "applicant_name",
}


def _check_register(values: dict[str, Any]) -> dict[str, str]:
    """The form's own checks: fields present and well formed. The rules are the service's."""
    errors: dict[str, str] = {}
    code = values["matter"]
    if not code:
        errors["matter"] = "请选择办理事项 Choose the matter"
    elif len(code) > 64:
        errors["matter"] = "事项编码过长 Matter code too long"
    name = values["applicant_name"]
    if not name:
        errors["applicant_name"] = "请填写申请人姓名 The applicant's name is required"
    elif len(name) > 64:
        errors["applicant_name"] = "姓名不超过64字 At most 64 characters"
    id_number = values["applicant_id_number"]
    if id_number and not re.fullmatch(r"\d{17}[\dX]", id_number):
        errors["applicant_id_number"] = (
            "身份证号码应为18位，最后一位可为X The ID number has 18 characters, the last may be X"
        )
    elif id_number and not valid_id_number(id_number):
        errors["applicant_id_number"] = "身份证号码校验位不符，请核对 The ID number's check digit does not match"
    phone = values["applicant_phone"]
    if phone and (len(phone) > 20 or not re.fullmatch(r"[\d+\- ]*", phone)):
        errors["applicant_phone"] = "电话只能包含数字、+、- 和空格 Digits, +, - and spaces only"
    if len(values["summary"]) > 4000:
        errors["summary"] = "事由不超过4000字 At most 4000 characters"
    if any(len(m) > 200 for m in values["materials"]) or len(values["materials"]) > 100:
        errors["materials"] = "每项材料名称不超过200字，最多100项 At most 100 materials of 200 characters"
    if not values["actor"]:
        errors["actor"] = "请填写代办员/经办人姓名 Your name is required"
    elif len(values["actor"]) > 64:
        errors["actor"] = "姓名不超过64字 At most 64 characters"
    if not values["role"] or len(values["role"]) > 64:
        errors["role"] = "请填写岗位 The post is required"
    return errors


def _register_page(
    store: Store,
    context: NodeContext,
    values: dict[str, Any],
    *,
    fresh: bool = False,
    errors: dict[str, str] | None = None,
    check: Any = None,
    status: int = 200,
    refusal: str = "",
    refused: bool = False,
    q: str = "",
) -> Template:
    """The register form; ``refused``: the page of a desk that does not register (403, no form).

    ``q`` filters the matter list (``sanji.catalogue.search``): the matches first, best first, the best one
    chosen; the others stay in the list hidden and disabled, for the filter as one types. In the 换事项 list of
    the form the matter the form holds stays shown, and chosen when nothing matches.
    """
    frame = _frame(store, context, "register")
    catalogue = context.catalogue
    code = str(values.get("matter", ""))
    matter = context.matter(code) if code else None
    if fresh:
        values = {
            "matter": code,
            # Nothing consequential comes ticked: the agent ticks the mandate once the villager has signed it.
            "mandate": False,
            "in_person": False,
            "materials": [],
            "role": ANY_POST,
            **values,
        }
    errors = dict(errors or {})
    bound = bind(catalogue, code) if fresh and code else None
    if isinstance(bound, Refusal):
        zh, en = bilingual(bound)
        errors["matter"], refusal = f"{zh} {en}", bound.code
    have = {normalise_material(m) for m in values.get("materials", [])}
    checklist = (
        [
            {"name": m.name, "main": m.main, "note": m.note, "checked": normalise_material(m.name) in have}
            for m in matter.materials
        ]
        if matter
        else []
    )
    listed = {normalise_material(m.name) for m in matter.materials} if matter else set()
    other = [m for m in values.get("materials", []) if normalise_material(m) not in listed]
    if other and not values.get("materials_other"):
        values["materials_other"] = "\n".join(other)
    matters = list(catalogue.matters) if catalogue else []
    codes = found(catalogue, q)
    options = _matter_options(matters, codes, keep=code if matter else "")
    if matter:
        chosen = codes[0] if codes else code
    else:
        chosen = code or (codes[0] if codes else "")
    return Template(
        template_name="register.html",
        status_code=403 if refused else status,
        context={
            **frame,
            "refused": refused,
            "catalogue": catalogue,
            "matters": matters,
            "options": options,
            "q": q.strip()[:MAX_QUERY] if codes is not None else "",
            "shown": len(codes) if codes is not None else len(matters),
            "chosen": chosen,
            "matter": matter,
            "guide_url": guide_url(matter.code) if matter else "",
            # where a villager goes for a matter not open to proxy: the village's township, by name
            "go_to": screen_name(store.directory, parent) if (parent := store.directory.parent(store.node_id)) else "",
            "values": values,
            "errors": errors,
            "labels": REGISTER_LABELS,
            "checklist": checklist,
            "check": check,
            "refusal": refusal,
        },
    )


def _matter_options(matters: list[Matter], codes: list[str] | None, *, keep: str = "") -> list[dict[str, Any]]:
    """The matter list: what ``codes`` found in their order, then the rest hidden but ``keep`` (all, no query)."""
    rank = {c: i for i, c in enumerate(codes or ())}
    order = sorted(range(len(matters)), key=lambda i: rank.get(matters[i].code, len(rank) + i))
    return [
        {
            "code": matters[i].code,
            "name": matters[i].name,
            "in_person": matters[i].in_person,
            "proxy_allowed": matters[i].proxy_allowed,
            "i": i,
            "hidden": codes is not None and matters[i].code not in rank and matters[i].code != keep,
        }
        for i in order
    ]


def _review_page(
    store: Store, context: NodeContext, values: dict[str, Any], data: RegisterForm, matter: Matter | None, check: Any
) -> Template:
    """核对后确认: what will be signed, and the typed form carried in hidden fields for 确认 or 返回修改.

    The hidden fields are only the form again: 确认登记 runs every check and asks the rule anew.
    """
    listed = {normalise_material(m.name) for m in matter.materials} if matter else set()
    return Template(
        template_name="register_review.html",
        context={
            **_frame(store, context, "register"),
            "values": values,
            "data": data,
            "matter": matter,
            "check": check,
            "ticked": [m for m in values["materials"] if normalise_material(m) in listed],
            "once": new_key(),  # 确认登记's one-time key: sent twice, it registers once (sanji.store.submissions)
            "other": [m for m in data.materials if normalise_material(m) not in listed],
        },
    )
