"""Printable documents (A4, Chinese first): the papers a villager takes home or signs.

One route each under ``/print/{errand_id}/{doc}``, plus the service guide of a matter
at ``/print/guide/{matter_code}``. Every document is built only from what the
errand's applied actions say (the receipt from ``register``, the acceptance notice
from ``accept`` ...), so every replica prints the same paper. A document that does
not apply to the errand — a non-acceptance notice for an accepted errand — is a 404
page that says so in Chinese and English, never an empty form.
"""

from __future__ import annotations

import re
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from protocol.binding import held_materials
from protocol.catalogue import Matter
from protocol.deadlines import CHINA_STANDARD_TIME, UNIT_NAMES
from protocol.errand import (
    ErrandState,
    errand_category,
    is_licence,
    outcome_label,
    outcome_words,
    walk_in_notice,
)
from protocol.errors import RouteError
from protocol.hlc import wall_seconds
from protocol.lookup import lookup_code
from protocol.menu import allowed_steps
from protocol.stages import SUBMITTED, stage_label
from protocol.topology import Directory
from sanji.auth.guard import Caller
from sanji.bilingual import split_pair
from sanji.calendar_duty import marks_of
from sanji.context import NodeContext, bound_entry
from sanji.privacy import mask_id_number
from sanji.store import Store
from sanji.web.link_state import handoff_view
from sanji.web.qr import qr_svg

FREE_OF_CHARGE = "代办服务免费"
LEVEL_LABELS = {"village": "村(社区)", "town": "乡镇(街道)", "county": "县级部门"}
UNIT_LABELS = {unit: zh for unit, (zh, _) in UNIT_NAMES.items()}
UNIT_LABELS_EN = {unit: en for unit, (_, en) in UNIT_NAMES.items()}


# -- shared formatting (the desk screens use these too) ----------------------------------------


def cn_date(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def cn_iso(text: str) -> str:
    """An ISO date as 2026年11月23日; anything else unchanged."""
    try:
        return cn_date(date.fromisoformat(text))
    except (TypeError, ValueError):
        return text


_TRAILING_NOTE = re.compile(r"\s*[(（][^()（）]*[)）]\s*$")


def applied_for(matter_name: str) -> str:
    """The matter said as an application in "你于…提出的<X>", never as "…申请申请".

    ``临时救助申请`` and ``医疗救助申请(民政医疗救助)`` already are one (a trailing bracketed note is
    looked past); ``户口迁移`` becomes ``户口迁移申请``.
    """
    name = matter_name.strip()
    return name if _TRAILING_NOTE.sub("", name).endswith("申请") else name + "申请"


def cn_at(hlc: int) -> str:
    """An action's time as a paper writes it, in China Standard Time: 2026年12月7日 13:05 (a paper's dates are all
    written 2026年12月7日, never 2026-12-07 beside them)."""
    if not hlc:
        return ""
    moment = datetime.fromtimestamp(wall_seconds(hlc), CHINA_STANDARD_TIME)
    return f"{cn_date(moment.date())} {moment:%H:%M}"


def at_text(hlc: int) -> str:
    """An action's time in China Standard Time, to the minute."""
    if not hlc:
        return ""
    return datetime.fromtimestamp(wall_seconds(hlc), CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M")


def node_name(directory: Directory, node_id: str) -> str:
    """The node's name from the directory ("某某村代办点"), or its id if it has none or is unknown."""
    if not node_id:
        return ""
    try:
        return directory.get(node_id).name or node_id
    except RouteError:
        return node_id


# Names more than one node of a directory bears (two townships may each have a 东村代办点), per directory seen.
_SHARED_NAMES: weakref.WeakKeyDictionary[Directory, frozenset[str]] = weakref.WeakKeyDictionary()


def _may_submit(state: Any, node_id: str, directory: Directory) -> bool:
    """Whether the rule offers 报送 here now (``protocol.menu.allowed_steps``), asked for the receipt's next step."""
    if not state:
        return False
    return "submit" in allowed_steps(msgspec.convert(state, ErrandState), node_id, directory)


def screen_name(directory: Directory, node_id: str) -> str:
    """A node as a desk's screen names it: ``node_name``, and where another node bears the same name, with its
    parent's name too ("东村代办点（城关镇便民服务中心）"), so two villages are told apart by where they are, not by
    an id. A paper keeps ``node_name`` (it names its own issuer, which the seal and the heading say already)."""
    name = node_name(directory, node_id)
    shared = _SHARED_NAMES.get(directory)
    if shared is None:
        seen = Counter(n.name for n in directory.nodes() if n.name)
        shared = frozenset(n for n, count in seen.items() if count > 1)
        _SHARED_NAMES[directory] = shared
    if name not in shared or node_id not in directory:
        return name
    parent = directory.parent(node_id)
    return f"{name}（{node_name(directory, parent)}）" if parent else name


def applied(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The actions that count: applied ones, in the order they happened (refused and waiting ones left out)."""
    return [h for h in history if h.get("status", "applied") == "applied"]


def last_of(history: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    found = [h for h in applied(history) if h["kind"] == kind]
    return found[-1] if found else None


# -- which documents an errand has --------------------------------------------------------------


@dataclass(frozen=True)
class DocSpec:
    slug: str
    zh: str
    en: str
    template: str
    source: str  # the action kind the document is made from
    why_not: str  # when it does not apply, in Chinese and English
    applies: Callable[[list[dict[str, Any]]], bool]
    # The title when it depends on the source action and the errand's category (``errand_category``: a
    # decision grants or refuses, a licence or a benefit); None: zh, en.
    titled: Callable[[dict[str, Any], str], tuple[str, str]] | None = None

    def title(self, history: list[dict[str, Any]], category: str) -> tuple[str, str]:
        source = last_of(history, self.source)
        return self.titled(source, category) if self.titled is not None and source is not None else (self.zh, self.en)


def _has(kind: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda history: last_of(history, kind) is not None


def _provisional(history: list[dict[str, Any]]) -> bool:
    accept = last_of(history, "accept")
    return accept is not None and bool(accept.get("provisional"))


DECISION_TITLES: dict[str, tuple[str, str]] = {
    "approved": ("准予许可决定书", "Decision to grant"),
    "refused": ("不予许可决定书", "Decision to refuse"),
}
# A matter that is not a licence (给付 benefits, 确认 confirmations, 公共服务 …) is granted or refused, not
# licensed: "准予办理", never "准予许可" for a 低保 or 临时救助.
SERVICE_DECISION_TITLES: dict[str, tuple[str, str]] = {
    "approved": ("准予办理决定书", "Decision to grant"),
    "refused": ("不予办理决定书", "Decision to refuse"),
}


def delivered_outcome(outcome: str, decide: dict[str, Any] | None, category: str) -> tuple[str, str]:
    """The 送达回证's 办理结果 in the words of the paper handed over: 准予办理 / 不予许可 … as the decision document
    is titled (超时默许 said), else the outcome's own Chinese (不予受理, 退回 …); English apart, never a code.
    ``category``: the errand's (``protocol.errand.errand_category``)."""
    if decide is not None and outcome in ("approved", "refused"):
        zh = decision_title(decide, category)[0].removesuffix("决定书")
        if decide.get("deemed"):
            zh += "（超时默许）"
        return zh, "granted" if outcome == "approved" else "refused"
    label = outcome_label(outcome, category) if outcome else ""
    pair = split_pair(label)
    return (pair.zh, pair.en) if pair else (label or "—", "")


def decision_title(decide: dict[str, Any], category: str) -> tuple[str, str]:
    """The decision document's title, by outcome and by the errand's category (``errand_category``: the entry
    it was registered under, else the one held)."""
    return titles_for(category, refused=decide.get("outcome") == "refused")


def titles_for(category: str, *, refused: bool) -> tuple[str, str]:
    titles = DECISION_TITLES if is_licence(category) else SERVICE_DECISION_TITLES
    return titles["refused" if refused else "approved"]


DOCUMENTS: dict[str, DocSpec] = {
    spec.slug: spec
    for spec in (
        DocSpec(
            "receipt",
            "回执",
            "Receipt",
            "print_receipt.html",
            "register",
            "该办件没有登记记录 The errand has no registration",
            _has("register"),
        ),
        DocSpec(
            "acceptance",
            "受理通知书",
            "Acceptance notice",
            "print_acceptance.html",
            "accept",
            "该办件尚未受理 The errand has not been accepted",
            _has("accept"),
        ),
        DocSpec(
            "non-acceptance",
            "不予受理通知书",
            "Non-acceptance notice",
            "print_non_acceptance.html",
            "not_accept",
            "该办件没有不予受理决定 The errand was not refused acceptance",
            _has("not_accept"),
        ),
        DocSpec(
            "return",
            "退回通知书",
            "Return notice",
            "print_return.html",
            "return",
            "该办件未被退回 The errand was not returned",
            _has("return"),
        ),
        DocSpec(
            "supplement",
            "一次性告知书",
            "One-time notice of missing materials",
            "print_supplement.html",
            "request_supplement",
            "该办件没有补正告知 No supplement was requested on this errand",
            _has("request_supplement"),
        ),
        DocSpec(
            "commitment",
            "容缺受理承诺书",
            "Provisional acceptance commitment letter",
            "print_commitment.html",
            "accept",
            "该办件不是容缺受理 The errand was not accepted provisionally",
            _provisional,
        ),
        DocSpec(
            "extension",
            "延期告知书",
            "Notice of extension",
            "print_extension.html",
            "extend",
            "该办件没有延期 The errand was not extended",
            _has("extend"),
        ),
        DocSpec(
            "decision",
            "决定书",
            "Decision",
            "print_decision.html",
            "decide",
            "该办件尚未作出办理决定 The errand has not been decided",
            _has("decide"),
            decision_title,
        ),
        DocSpec(
            "delivery",
            "送达回证",
            "Delivery confirmation",
            "print_delivery.html",
            "deliver",
            "该办件结果尚未送达 The result has not been delivered",
            _has("deliver"),
        ),
    )
}


def document_url(errand_id: str, slug: str) -> str:
    return f"/print/{quote(errand_id, safe='')}/{slug}"


def guide_url(matter_code: str) -> str:
    return f"/print/guide/{quote(matter_code, safe='')}"


def document_links(errand_id: str, history: list[dict[str, Any]], category: str) -> list[dict[str, str]]:
    """The printable documents that apply to this errand now, in the order they arise; ``category``: the
    errand's (``protocol.errand.errand_category``), which titles its decision."""
    return [
        {"slug": s.slug, "zh": zh, "en": en, "url": document_url(errand_id, s.slug)}
        for s in DOCUMENTS.values()
        if s.applies(history)
        for zh, en in (s.title(history, category),)
    ]


def lookup_url(public_url: str, receipt: str, code: str) -> str:
    """Where a villager's phone looks the errand up: the configured public site (``[node] public_url``),
    never this desk's own address, which a phone outside the centre cannot reach. "" when none is set."""
    if not public_url:
        return ""
    return public_url.rstrip("/") + "/lookup?" + urlencode({"receipt": receipt, "code": code})


def limit_text(days: int, unit: str) -> str:
    if days <= 0:
        return "当场办结 done on the spot"
    return f"{days}{UNIT_LABELS.get(unit, '日')} ({days} {UNIT_LABELS_EN.get(unit, 'days')})"


def _missing(title_zh: str, title_en: str, message: str, links: list[dict[str, str]], status: int = 404) -> Template:
    return Template(
        template_name="print_missing.html",
        status_code=status,
        context={"title_zh": title_zh, "title_en": title_en, "message": message, "links": links},
    )


def _register_of(history: list[dict[str, Any]]) -> dict[str, Any]:
    return last_of(history, "register") or {"materials": [], "actor": "", "role": "", "at": 0, "node": ""}


class DocumentController(Controller):
    """Print-friendly A4 pages; open one and use the browser's print (Ctrl+P)."""

    path = "/print"
    include_in_schema = False

    @get("/guide/{matter_code:str}", name="print_guide")
    async def guide(
        self, store: NamedDependency[Store], context: NamedDependency[NodeContext], matter_code: FromPath[str]
    ) -> Template:
        catalogue = context.catalogue
        matter = context.matter(matter_code)
        if catalogue is None or matter is None:
            why = (
                "本节点尚未收到事项目录 No catalogue has reached this node yet"
                if catalogue is None
                else f"目录第{catalogue.version}版中没有事项 {matter_code} "
                f"Matter {matter_code} is not in catalogue version {catalogue.version}"
            )
            return _missing("办事指南", "Service guide", why, [])
        return Template(
            template_name="print_guide.html",
            context={
                "title_zh": "办事指南",
                "title_en": "Service guide",
                "matter": matter,
                "guide": guide_facts(matter),
                "catalogue": catalogue,
                "published_on": cn_iso(catalogue.published_at),  # one date style on the paper (printed 2026年…)
                "issuer": node_name(store.directory, store.node_id),
                "printed": cn_date(context.today()),
            },
        )

    @get("/{errand_id:str}/{doc:str}", name="print_document")
    async def document(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        caller: NamedDependency[Caller],
        errand_id: FromPath[str],
        doc: FromPath[str],
    ) -> Template:
        spec = DOCUMENTS.get(doc)
        if spec is None:
            return _missing(
                "无此文书",
                "No such document",
                f"没有名为 {doc} 的文书 There is no document called {doc!r}",
                [],
            )
        row = await store.errand(errand_id)
        if row is None or row["stage"] == "incomplete":
            return _missing(
                spec.zh, spec.en, f"本节点({store.node_id})没有办件 {errand_id} Errand {errand_id} is not held here", []
            )
        history: list[dict[str, Any]] = row["history"]
        matter = context.matter(row["matter"])
        bound = bound_entry(row.get("state"))  # the entry the errand was registered under
        category = errand_category(bound, matter)  # the words of its outcome and decision, as on every surface
        if not spec.applies(history):
            stage = stage_label(row["stage"], row["outcome"])
            message = (
                f"{spec.why_not}（当前状态 current stage: {stage}）。本文书不适用于该办件 This document does not apply"
            )
            return _missing(spec.zh, spec.en, message, document_links(errand_id, history, category))
        source = last_of(history, spec.source)
        assert source is not None
        await caller.read(f"document:{spec.slug}", errand=errand_id)  # names, ID numbers, phones
        register = _register_of(history)
        directory = store.directory
        facts: dict[str, Any] = {
            "title_zh": spec.zh,
            "title_en": spec.en,
            "errand": row,
            "receipt": row["receipt"],
            "matter": matter,
            "matter_name": matter.name if matter else row["matter"],
            "applied_for": applied_for(matter.name if matter else row["matter"]),
            "matter_code": row["matter"],
            "applicant": row["applicant_name"],
            "register": register,
            "registered_on": cn_date(context.date_of(register["at"])) if register.get("at") else "",
            "registered_at": node_name(directory, register.get("node", "")),
            "action": source,
            "action_date": cn_date(context.date_of(source["at"])),
            "action_at": cn_at(source["at"]),
            "issuer": node_name(directory, source["node"]),
            "issuer_id": source["node"],
            "free": FREE_OF_CHARGE,
            "printed": cn_date(context.today()),
            "outcome_label": outcome_words(row["outcome"], bound, matter),  # 不予办理 for a benefit, as on the desk
            "guide_url": guide_url(row["matter"]) if matter else "",
            "errand_url": "/errands/" + quote(errand_id, safe=""),
        }
        if spec.slug == "receipt":
            code = lookup_code(errand_id)
            url = lookup_url(request.app.state.settings.node.public_url, row["receipt"], code)
            facts["query_code"] = code
            facts["lookup_url"] = url
            facts["qr"] = qr_svg(url, scale=3, label=f"回执号 Receipt {row['receipt']}") if url else ""
            facts["committed"] = limit_text(matter.committed_limit, matter.limit_unit) if matter else ""
            # The receipt is of the registration: the main materials it lacked, as the agent was warned and went on.
            registered = held_materials(bound or matter, [("register", tuple(register.get("materials") or ()))])
            facts["missing_main"] = registered.missing_main
            # 确认登记 sent twice lands here (sanji.store.submissions): said above the sheet, never printed
            facts["sent_again"] = request.query_params.get("again") == "1"
            # Registered is not sent: until 报送 it stays here, and the agent who printed this may think she is done.
            state = (await store.errand_states([errand_id])).get(errand_id)
            facts["submit_next"] = _may_submit(state, store.node_id, directory)
            # Once submitted, where the submission stands: still on this laptop, or with the township. Only then: the
            # banner says 已报送, and a receipt reprinted at a township while a result goes down is not a submission.
            if row["stage"] == SUBMITTED:
                facts["handoff"] = handoff_view(directory, row, (await store.handoffs([row])).get(errand_id, ""))
        elif spec.slug in ("acceptance", "commitment"):
            facts["due"] = cn_iso(row["due"]) if row["due"] else ""
            # 暂定: counted over a year whose official arrangement the county has not published yet.
            facts["due_provisional"] = bool(row["due"]) and (
                marks_of(row.get("state")).due_provisional or context.is_provisional(row["due"])
            )
            facts["promise_by"] = cn_iso(source.get("promise_by", ""))
            facts["limit"] = limit_text(int(source.get("limit_days", 0)), str(source.get("limit_unit", "working")))
            facts["deemed"] = bool(matter and matter.deemed_approval)
        elif spec.slug == "supplement":
            # A walk-in told at the desk it came to, before any acceptance (rules 3): no time limit runs yet, so the
            # notice says the errand is accepted once the papers are in, and that they come back to this desk.
            # Asked of the rule that allowed the notice, so the paper cannot say otherwise.
            actions = await store.applied_actions(errand_id)
            notice = next((a for a in actions if a.id == source["id"]), None)
            facts["walk_in"] = notice is not None and walk_in_notice(errand_id, actions, notice, directory)
        elif spec.slug == "extension":
            # In the errand's own unit: a limit of calendar days is extended by calendar days.
            unit = str((last_of(history, "accept") or {}).get("limit_unit") or (matter.limit_unit if matter else ""))
            facts["unit_zh"], facts["unit_en"] = UNIT_NAMES.get(unit, UNIT_NAMES["working"])
            facts["new_due"] = cn_iso(str(source.get("due") or ""))
        elif spec.slug == "decision":
            facts.update(
                decision_facts(
                    source,
                    directory,
                    matter,
                    receipt=row["receipt"],
                    due=row["due"] or "",
                    register=register,
                    category=category,
                )
            )

        elif spec.slug == "delivery":
            decide = last_of(history, "decide")
            facts["decide"] = decide
            # issuing_body names the department itself when one decided: said once, not "县民政局 · 县民政局"
            facts["decided_by"] = (
                issuing_body(directory, str(decide["node"]), str(decide.get("department") or "")) if decide else ""
            )
            # what was handed over: the decision's own document (its number or name), else the decision document
            # this desk prints (准予/不予…决定书), else the notice an errand that was not decided ends with
            named = (decide or {}).get("document") or ""
            facts["result_document"] = (
                named or (decision_title(decide, category)[0] if decide else "") or _notice_for(row["outcome"])
            )
            facts["signature_path"] = signature_path(str(source.get("signature") or ""))
            facts["outcome_zh"], facts["outcome_en"] = delivered_outcome(row["outcome"], decide, category)
        return Template(template_name=spec.template, context=facts)


# -- the decision (准予许可决定书 / 不予许可决定书) ------------------------------------------------------

# A result document's field holds either a document number (文号: 示民低〔2026〕1号, 2026-0012) or a
# description (临时救助审批决定书); only a number heads the decision as its 文号.
_DOCUMENT_NUMBER = re.compile(
    r"[^\s〔〕\[\]]{0,24}[〔\[（(]\d{4}[〕\]）)]第?\d{1,8}号|第?[A-Za-z0-9][A-Za-z0-9\-/]{0,38}号?"
)
_CENTRE_SUFFIXES = ("政务服务中心", "行政服务中心", "政务服务管理办公室", "便民服务中心")


def document_number(text: str) -> str:
    """``text`` when it reads as a document number (文号) with a digit in it, else ''."""
    text = text.strip()
    ok = len(text) <= 40 and any(c.isdigit() for c in text) and _DOCUMENT_NUMBER.fullmatch(text)
    return text if ok else ""


def review_government(directory: Directory, node_id: str) -> str:
    """The people's government that hears an administrative review of a decision made at ``node_id``.

    A township's decision goes to the county people's government, and so (since the 2023 行政复议法) does a
    county department's: "示范县人民政府" when the county's centre is named so, '' when the directory
    cannot tell (the document then says "依法申请行政复议" without naming anyone).
    """
    try:
        county = directory.county_of(node_id)
    except RouteError:
        return ""
    name = node_name(directory, county or "")
    for suffix in _CENTRE_SUFFIXES:
        name = name.removesuffix(suffix)
    return f"{name}人民政府" if name and name[-1] in "县区市旗" else ""


def issuing_body(directory: Directory, node_id: str, department: str = "") -> str:
    """Who decides in law: the county department named, or the people's government of the township (乡镇人民政府)
    or county whose centre wrote the decision — a service centre (便民服务中心) is no administrative body and
    cannot be appealed against. The centre's own name when it does not say which township or county it is."""
    if department.strip():
        return department.strip()
    name = node_name(directory, node_id)
    place = name
    for suffix in _CENTRE_SUFFIXES:
        place = place.removesuffix(suffix)
    if place.endswith("街道"):
        return f"{place}办事处"
    if place and place != name and place[-1] in "乡镇县区市旗":
        return f"{place}人民政府"
    return name


def decision_facts(
    decide: dict[str, Any],
    directory: Directory,
    matter: Matter | None,
    *,
    receipt: str,
    due: str = "",
    register: dict[str, Any] | None = None,
    category: str = "",
) -> dict[str, Any]:
    """What a decision document says beyond the common facts, from the ``decide`` action as stored (a dict).

    Read defensively: ``reasons`` (不予许可理由) is a field of newer decisions only; an older refusal's
    reasons are its ``document`` text.
    """
    refused = decide.get("outcome") == "refused"
    document = str(decide.get("document") or "")
    number = document_number(document)
    deemed = bool(decide.get("deemed"))
    reasons = str(decide.get("reasons") or "") if refused else ""
    if refused and not reasons and not number:
        reasons = document
    applicant = (register or {}).get("applicant") or {}
    id_number = str(applicant.get("id_number") or "") if isinstance(applicant, dict) else ""
    title_zh, title_en = titles_for(category, refused=refused)
    return {
        "licence": is_licence(category),
        "title_zh": title_zh,
        "title_en": title_en,
        "refused": refused,
        "deemed": deemed,
        "due_text": cn_iso(due) if due else "",
        "authority": issuing_body(directory, str(decide.get("node", "")), str(decide.get("department") or "")),
        "document_number": number,
        # the result document named in words (not a number, not the system's own note of a deemed approval)
        "result_document": "" if number or deemed or document == reasons else document,
        "reasons": reasons,
        "legal_basis": matter.legal_basis if matter else "",
        "review_government": review_government(directory, str(decide.get("node", ""))),
        "applicant_id": mask_id_number(id_number) if id_number else "",
    }


# -- the delivery's signature --------------------------------------------------------------------------

# The signature pad's record (errand.html): "svg:400x150:" and the strokes as an SVG path of absolute
# moves and relative lines with integer coordinates, e.g. "svg:400x150:M12 80l3 -2 4 -1M200 90l1 1".
SIGNATURE_PREFIX = "svg:400x150:"
SIGNATURE_BOX = (400, 150)
_SIGNATURE_PATH = re.compile(r"(?:M\d{1,3} \d{1,3}(?:l-?\d{1,3} -?\d{1,3}(?: -?\d{1,3} -?\d{1,3})*)?)+")


def signature_path(signature: str) -> str:
    """The SVG path of a signature drawn on the pad, or '' when ``signature`` is text (a paper record).

    Only moves and lines with numbers pass, so nothing but a path ever reaches the page (where it is still
    escaped as any attribute is).
    """
    if not signature.startswith(SIGNATURE_PREFIX):
        return ""
    path = signature.removeprefix(SIGNATURE_PREFIX)
    return path if len(path) <= 4000 and _SIGNATURE_PATH.fullmatch(path) else ""


def paper_signature(signer: str) -> str:
    """The signature record when the applicant signed the paper 送达回证 (no pointer device to sign on)."""
    return f"纸质送达回证已签字（签收人：{signer}）" if signer else "纸质送达回证已签字"


def _notice_for(outcome: str) -> str:
    return {
        "not_accepted": "不予受理通知书 Non-acceptance notice",
        "returned": "退回通知书及申请材料 Return notice and the materials",
        "terminated": "终止办理通知 Notice of termination",
        "withdrawn": "撤回的申请材料 The withdrawn materials",
    }.get(outcome, "")


def guide_facts(matter: Matter) -> dict[str, Any]:
    """The service guide's facts in display form (办事指南: what, where, who, how long, how much)."""

    def levels(values: tuple[str, ...]) -> str:
        return "、".join(LEVEL_LABELS.get(v, v) for v in values)

    if matter.in_person:
        proxy = "须本人亲自办理，不可代办 The applicant must come in person; no proxy"
    elif matter.proxy_allowed:
        proxy = "可由村代办员全程免费代办 A village agent may handle it for you, free of charge"
    else:
        proxy = "不适用代办，请到窗口办理 Not open to proxy service; apply at the window"
    if matter.immediate:
        kind = "即办件 immediate (done on the spot)"
    elif matter.joint_departments:
        kind = "联办件 joint (several departments)"
    elif matter.department:
        kind = "上报件 reported to the county department"
    else:
        kind = "承诺件 committed (within the limit)"
    return {
        "main": [m for m in matter.materials if m.main],
        "secondary": [m for m in matter.materials if not m.main],
        "accept": levels(matter.accept_levels),
        "handle": levels(matter.handle_levels),
        "approve": levels(matter.approve_levels),
        "proxy": proxy,
        "kind": kind,
        "statutory": limit_text(matter.statutory_limit, matter.limit_unit),
        "committed": limit_text(matter.committed_limit, matter.limit_unit),
        "fee": matter.fee or "不收费",
    }
