"""The public face (政务公开), open to anyone without a login.

- ``/lookup`` and ``/api/lookup/{receipt}``: an errand's status by receipt number **and** a
  second factor (``protocol.lookup``: the receipt's query code, or the last four digits of the
  applicant's phone). A wrong receipt and a wrong factor get the same answer, so nothing tells
  a guesser which receipts exist. Rate-limited per client address and per receipt (``Throttle``).
- ``/public``: this centre's service guide — the matters it accepts with their limits, fees,
  materials and windows, office hours, the windows and staff on duty, the supervision phone
  (``[public]`` in the node's TOML) — and, at the county, the centres below it.
- ``/complain``: a complaint or suggestion about an errand. It is recorded as a ``complain``
  annotation, which travels up the errand's path to the county hub like any action; the
  complainant's name and phone are sealed to the county hub alone (``sanji.complaints``), and
  the complaint is shown only to supervisors and discipline inspectors, never to the person named.

No page here shows an applicant's name, ID number or phone.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Controller, Litestar, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from protocol.actions import Decide
from protocol.bounds import line_problem, text_problem
from protocol.catalogue import Matter
from protocol.errand import outcome_words
from protocol.lookup import normalise_factor, second_factor_matches
from protocol.receipts import is_valid, node_of, normalise
from protocol.stages import FINISHED, stage_label
from protocol.topology import COUNTY, TOWN
from sanji.auth.guard import client_ip
from sanji.catalogue.search import MAX_QUERY
from sanji.catalogue.search import normalise as normalise_query
from sanji.complaints import ComplaintForm, file_public_complaint, reference_of
from sanji.config import NodeSettings
from sanji.context import NodeContext, bound_entry
from sanji.privacy import mask_numbers_in_text
from sanji.store import Store
from sanji.store.submissions import FIELD as ONCE_FIELD
from sanji.store.submissions import AlreadySent, new_key, once, said
from sanji.web.bounded_form import bounded_form
from sanji.web.catalogue_search import found, search_refused
from sanji.web.documents import at_text, cn_iso, document_number, guide_url, limit_text, node_name, review_government
from sanji.web.screens import _frame, light
from sanji.web.throttle import Throttle
from sanji.web.views import summarise

PUBLIC_CSRF_COOKIE = "sanji_public_csrf"


@dataclass
class PublicLimits:
    """Per process. Sized for a villager who mistypes a few times, not for a script."""

    lookups: Throttle  # every lookup from one address
    failures: Throttle  # wrong receipt or wrong second factor from one address
    receipt_failures: Throttle  # wrong second factors for one receipt, from anywhere
    complaints: Throttle  # complaints filed from one address

    @classmethod
    def default(cls) -> PublicLimits:
        return cls(
            lookups=Throttle(30, 600.0),
            failures=Throttle(5, 900.0),
            receipt_failures=Throttle(10, 3600.0),
            complaints=Throttle(5, 3600.0),
        )


def limits_of(app: Litestar) -> PublicLimits:
    limits = getattr(app.state, "public_limits", None)
    if not isinstance(limits, PublicLimits):
        limits = PublicLimits.default()
        app.state.public_limits = limits
    return limits


class NextStep(msgspec.Struct, kw_only=True):
    """One thing the applicant can do next, as the /lookup screen says it."""

    zh: str
    en: str


class Ending(msgspec.Struct, kw_only=True):
    """Why an errand that was not granted ended so (不予受理, 退回, 不予许可 …), as /lookup shows it: the reasons with
    any ID or phone number masked, the decision's document number, and what the applicant can do next."""

    reasons: str
    document: str
    steps: list[NextStep]


class PublicStatus(msgspec.Struct, kw_only=True):
    """What anyone may see with a receipt number and its second factor (政务公开): no personal data."""

    receipt: str
    matter: str
    stage: str
    outcome: str
    due: str
    updated_at: int
    # null unless the errand ended without being granted (``ending_view``, the screen's)
    ending: Ending | None


class LookupRefused(Exception):
    def __init__(self, status: int, code: str, zh: str, en: str, *, field: str = "", retry_after: float = 0) -> None:
        super().__init__(en)
        self.status = status
        self.code = code
        self.zh = zh
        self.en = en
        self.field = field
        self.retry_after = retry_after


def _too_many(wait: float) -> LookupRefused:
    minutes = max(1, math.ceil(wait / 60))
    return LookupRefused(
        429,
        "too_many_lookups",
        f"查询过于频繁，请{minutes}分钟后再试",
        f"Too many attempts from this address: try again in {minutes} min",
        retry_after=wait,
    )


NO_MATCH = (
    "回执号与查询码（或手机号后四位）不符，或本站没有该办件",
    "The receipt number and the query code (or phone digits) do not match an errand held here",
)


async def find_errand(store: Store, limits: PublicLimits, ip: str, receipt: str, factor: str) -> dict[str, Any]:
    """The errand row a receipt and its second factor open; ``LookupRefused`` otherwise (limits counted)."""
    wait = max(limits.lookups.retry_after(ip), limits.failures.retry_after(ip))
    if wait:
        raise _too_many(wait)
    limits.lookups.hit(ip)
    number = normalise(receipt)
    if not is_valid(number):
        # the check character catches a slip anywhere in a number of the right shape; any other text is no number
        shaped = node_of(number) is not None
        raise LookupRefused(
            400,
            "bad_receipt",
            "回执号有误（校验不符），请对照回执逐位核对"
            if shaped
            else "这不是回执号：请照回执上印的回执号输入，形如 T01V01-261207-0011J",
            "The receipt number does not check out: compare it with the receipt character by character"
            if shaped
            else "Not a receipt number: type the one printed on the receipt, like T01V01-261207-0011J",
            field="receipt",
        )
    if not normalise_factor(factor):
        raise LookupRefused(
            400,
            "second_factor_needed",
            "请输入回执上的查询码，或申请人手机号后四位",
            "Type the query code from the receipt, or the last four digits of the applicant's phone",
            field="code",
        )
    wait = limits.receipt_failures.retry_after(number)
    if wait:
        raise _too_many(wait)
    # Counted as a miss while it is checked, before the store is read: lookups sent all at once see each
    # other's and cannot outrun the limits. A match takes its counts back.
    ip_miss, receipt_miss = limits.failures.hit(ip), limits.receipt_failures.hit(number)
    try:
        rows, _ = await store.errands(receipt=number, limit=1)
        row = rows[0] if rows else None
        phone = await store.applicant_phone(row["id"]) if row is not None else ""
    except BaseException:  # a store that failed (busy, cancelled) is no wrong guess: nobody is charged for it
        limits.failures.forgive(ip, ip_miss)
        limits.receipt_failures.forgive(number, receipt_miss)
        raise
    if row is None or not second_factor_matches(factor, errand_id=row["id"], phone=phone):
        raise LookupRefused(404, "no_match", *NO_MATCH, field="code")
    limits.failures.forgive(ip, ip_miss)
    limits.receipt_failures.forgive(number, receipt_miss)
    return row


# The action an errand that was not granted ended with, by its outcome: where its reasons are.
ENDING_KINDS = {
    "refused": "decide",
    "not_accepted": "not_accept",
    "returned": "return",
    "terminated": "terminate",
    "withdrawn": "withdraw",
}
MAX_REASONS = 500  # characters of the reasons the lookup shows (the notice itself holds them all)
AGAIN = (
    "按上述理由补齐或更正材料后，可以重新申请；村代办员可免费为你代办。",
    "Once the reasons are remedied you may apply again; the village agent will help free of charge.",
)


def appeal_words(government: str) -> tuple[str, str]:
    """The rights a refusal or a notice of non-acceptance states (print_decision.html's, shortened)."""
    to = f"向{government}" if government else "依法"
    return (
        f"如不服，可以自收到决定书（通知书）之日起六十日内{to}申请行政复议，或者六个月内向人民法院提起行政诉讼。",
        "If you disagree, you may apply for administrative review within 60 days of receiving the decision "
        "(notice), or bring an administrative lawsuit in the people's court within six months.",
    )


async def ending_view(store: Store, row: dict[str, Any]) -> Ending | None:
    """Why an errand that was not granted ended so, and what the applicant can do next; None for any other.

    The reasons are the ending action's as written on the notice the applicant was handed (cut to
    ``MAX_REASONS``, any ID or phone number in them masked), with the decision's document number; no name."""
    kind = ENDING_KINDS.get(row["outcome"])
    if kind is None or row["stage"] not in FINISHED:
        return None
    action = await store.applied_of(row["id"], kind)
    text = str(getattr(action, "reasons", "") or getattr(action, "reason", "") or "")
    # an ID or phone number typed into the reasons is the applicant's: the public lookup, open to anyone holding
    # the receipt and its code, shows neither, however it was spaced (``sanji.privacy``)
    text = mask_numbers_in_text(text[:MAX_REASONS])
    document = document_number(action.document) if isinstance(action, Decide) else ""
    steps: list[tuple[str, str]] = []
    if row["outcome"] != "refused":
        steps.append(AGAIN)
    if row["outcome"] in ("refused", "not_accepted"):  # a decision against the applicant: it may be appealed
        steps.append(appeal_words(review_government(store.directory, action.node) if action else ""))
    return Ending(reasons=text, document=document, steps=[NextStep(zh=zh, en=en) for zh, en in steps])


def _status_view(row: dict[str, Any], context: NodeContext) -> dict[str, str]:
    view = summarise(row, context)
    matter = view["bound_matter"]
    return {
        "receipt": row["receipt"],
        "matter": matter.name if matter else row["matter"],
        "matter_url": guide_url(row["matter"]) if context.matter(row["matter"]) else "",  # a guide only where held
        "stage": stage_label(row["stage"], row["outcome"]),
        # 不予受理 … the stage says already: the outcome is not said a second time under it
        "outcome": view["outcome_label"] if row["outcome"] and not view["stage_says_outcome"] else "",
        "ended": "1" if view["stage_says_outcome"] else "",
        "due": cn_iso(row["due"]) if row["due"] else "",
        "light": light(view["deadline"])["zh"] if view["deadline"] else "",
        "updated": at_text(row["updated_at"]),
    }


def _refusal_json(exc: LookupRefused) -> Response[Any]:
    headers = {"Retry-After": str(math.ceil(exc.retry_after))} if exc.retry_after else None
    return Response(
        {
            "error": exc.code,
            "message": f"{exc.zh} · {exc.en}",
            "message_zh": exc.zh,
            "hint": "Wait before trying again." if exc.status == 429 else "Check the receipt and the query code.",
            "retryable": exc.status == 429,
        },
        status_code=exc.status,
        headers=headers,
    )


def _public_csrf(page: Template, token: str) -> Template:
    page.cookies.append(
        Cookie(key=PUBLIC_CSRF_COOKIE, value=token, path="/complain", httponly=True, samesite="strict", max_age=3600)
    )
    return page


def _levels_of(role: str) -> tuple[str, ...]:
    return {TOWN: ("town",), COUNTY: ("county",)}.get(role, ("village",))


def _matter_row(m: Matter) -> dict[str, Any]:
    return {
        "code": m.code,
        "name": m.name,
        "name_en": m.name_en,
        "category": m.category,
        "limit": limit_text(m.committed_limit, m.limit_unit),
        "statutory": limit_text(m.statutory_limit, m.limit_unit),
        "fee": m.fee or "不收费 free",
        "materials": len(m.materials),
        "window": m.window or m.department or "",
        "proxy": m.proxy_allowed and not m.in_person,
        "url": guide_url(m.code),
    }


class PublicController(Controller):
    path = "/"
    include_in_schema = False

    # -- status lookup -----------------------------------------------------------------------

    @get("/lookup")
    async def lookup(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        receipt: FromQuery[str] = "",
        code: FromQuery[str] = "",
    ) -> Template:
        result: dict[str, str] | None = None
        problem: LookupRefused | None = None
        ending: Ending | None = None
        if receipt or code:
            try:
                row = await find_errand(store, limits_of(request.app), client_ip(request), receipt[:64], code[:64])
            except LookupRefused as exc:
                problem = exc
            else:
                result = _status_view(row, context)
                ending = await ending_view(store, row)
        page = Template(
            template_name="lookup.html",
            status_code=problem.status if problem else 200,
            context={
                **_frame(store, context, "lookup"),
                "receipt": receipt[:64],
                "code": code[:64],
                "result": result,
                "ending": ending,
                "problem": problem,
            },
        )
        if problem is not None and problem.retry_after:
            page.headers["Retry-After"] = str(math.ceil(problem.retry_after))
        return page

    @get("/api/lookup/{receipt:str}", include_in_schema=True, tags=["public"])
    async def lookup_api(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        receipt: FromPath[str],
        code: FromQuery[str] = "",
    ) -> Response[PublicStatus]:
        """Status by receipt number and its second factor (``code``: the query code or the phone's last four digits).

        An errand that ended without being granted also says why and what the applicant can do next (``ending``),
        as the /lookup screen does: the same reasons, ID and phone numbers in them masked."""
        try:
            row = await find_errand(store, limits_of(request.app), client_ip(request), receipt[:64], code[:64])
        except LookupRefused as exc:
            return _refusal_json(exc)
        matter = context.matter(row["matter"])
        status = PublicStatus(
            receipt=row["receipt"],
            matter=matter.name if matter else row["matter"],
            stage=stage_label(row["stage"], row["outcome"]),
            # the words the /lookup screen and the SMS use: the entry the errand was registered under first
            outcome=outcome_words(row["outcome"], bound_entry(row.get("state")), matter) if row["outcome"] else "",
            due=row["due"],
            updated_at=row["updated_at"],
            ending=await ending_view(store, row),
        )
        return Response(status)

    # -- 政务公开: this centre's service guide --------------------------------------------------

    @get("/public")
    async def guide(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        q: FromQuery[str] = "",
        levels: FromQuery[str] = "",
    ) -> Template:
        settings: NodeSettings = request.app.state.settings
        role = store.directory.role(store.node_id)
        query = q.strip()[:MAX_QUERY]
        wait = search_refused(request) if normalise_query(query) else 0
        if wait:  # refused before any matter is ranked, like /api/catalogue/search; the whole list still shows
            query = ""
        catalogue = context.catalogue
        matters = list(catalogue.matters) if catalogue else []
        here = _levels_of(role)
        if levels != "all":
            matters = [m for m in matters if set(m.accept_levels) & set(here)]
        # The search (sanji.catalogue.search) orders the matches first, best first, and hides the rest, which
        # stay on the page for the filter as one types.
        codes = found(catalogue, query)
        rank = {c: i for i, c in enumerate(codes or ())}
        if codes is not None:
            matters.sort(key=lambda m: rank.get(m.code, len(rank)))
        groups: dict[str, list[dict[str, Any]]] = {}
        for m in matters:
            row = {**_matter_row(m), "hidden": codes is not None and m.code not in rank}
            groups.setdefault(m.category, []).append(row)
        shown = sum(1 for m in matters if codes is None or m.code in rank)
        below = [
            {"id": child, "name": node_name(store.directory, child)}
            for child in store.directory.children(store.node_id)
        ]
        page = Template(
            template_name="public.html",
            status_code=429 if wait else 200,
            context={
                **_frame(store, context, "public"),
                "centre": node_name(store.directory, store.node_id),
                "info": settings.public,
                "groups": groups,
                "count": shown,
                "total": len(matters),
                "q": query,
                "levels": "all" if levels == "all" else "",
                "catalogue": catalogue,
                "below": below if role == COUNTY else [],
                "too_many": wait,
            },
        )
        if wait:
            page.headers["Retry-After"] = str(wait)
        return page

    # -- complaints and suggestions --------------------------------------------------------------

    @get("/complain")
    async def complain_form(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        receipt: FromQuery[str] = "",
        code: FromQuery[str] = "",
    ) -> Template:
        values = {"receipt": receipt[:64], "code": code[:64], "kind": "投诉"}
        return _complain_page(store, context, values, {})

    @post("/complain", status_code=200)
    async def complain(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template:
        raw = await bounded_form(request)
        values = {
            k: str(raw.get(k, "")).strip() for k in ("receipt", "code", "kind", "against", "text", "name", "phone")
        }
        values["kind"] = values["kind"] if values["kind"] in ("投诉", "建议") else "投诉"
        if request.app.state.desk.reads_only:  # a centre above the counties writes nothing on an errand
            return _complain_page(store, context, values, {"_": f"{ABOVE_COUNTIES[0]} {ABOVE_COUNTIES[1]}"}, status=409)
        # Its own double-submit token: a logged-in person's form also carries the session's (checked by the guard).
        sent = str(raw.get("_public_token", ""))
        expected = request.cookies.get(PUBLIC_CSRF_COOKIE, "")
        if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            errors = {"_": "页面已过期，请重新填写提交 The form expired: please send it again"}
            return _complain_page(store, context, values, errors, status=403)
        errors = _check_complaint(values)
        if errors:
            return _complain_page(store, context, values, errors, status=400)
        limits = limits_of(request.app)
        ip = client_ip(request)
        wait = limits.complaints.retry_after(ip)
        if wait:
            errors = {"_": f"{_too_many(wait).zh} {_too_many(wait).en}"}
            return _complain_page(store, context, values, errors, status=429)
        filing = limits.complaints.hit(ip)  # before the store is read: complaints sent at once see each other
        try:
            row = await find_errand(store, limits, ip, values["receipt"], values["code"])
            form = ComplaintForm(
                kind=values["kind"],
                text=values["text"],
                against=values["against"],
                name=values["name"],
                phone=values["phone"],
            )
            # The form's one-time key, with what it says: sent twice, one complaint; back, changed and sent, a new one
            key = once("complain", str(raw.get(ONCE_FIELD, "")), said({k: [v] for k, v in values.items()}))
            filed = await file_public_complaint(store, row["id"], form, ip=ip, once=key)
        except AlreadySent as first:  # the first sending filed it: the same reference, not a second complaint
            limits.complaints.forgive(ip, filing)
            return Template(
                template_name="complain_done.html",
                context={
                    **_frame(store, context, "complain"),
                    "kind": values["kind"],
                    "reference": reference_of(first.action),
                    "again": True,
                    "sealed": False,  # what became of a name and phone was said the first time
                    "had_identity": False,
                    "supervision_phone": request.app.state.settings.public.supervision_phone,
                },
            )
        except LookupRefused as exc:
            limits.complaints.forgive(ip, filing)
            return _complain_page(store, context, values, {exc.field or "_": f"{exc.zh} {exc.en}"}, status=exc.status)
        except BaseException:  # nothing was filed (the store failed): the complaint is not counted
            limits.complaints.forgive(ip, filing)
            raise
        return Template(
            template_name="complain_done.html",
            context={
                **_frame(store, context, "complain"),
                "kind": values["kind"],
                "reference": filed.reference,
                "sealed": filed.identity_sealed,
                "had_identity": bool(values["name"] or values["phone"]),
                "supervision_phone": request.app.state.settings.public.supervision_phone,
            },
        )


ABOVE_COUNTIES = (
    "本中心在各县之上，不受理投诉建议：请到办件所在县的政务服务中心投诉（回执二维码所指的网址），或拨打该县的监督电话。",
    "This centre sits above the counties and takes no complaints: complain at the county centre that handles the "
    "errand (the address the receipt's QR code opens), or call that county's supervision phone.",
)


def _check_complaint(values: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not values["text"]:
        errors["text"] = "请写明投诉或建议的内容 Please write what happened or what you suggest"
    elif len(values["text"]) > 2000:
        errors["text"] = "内容不超过2000字 At most 2000 characters"
    elif text_problem("text", values["text"]):  # the rule's own character check (protocol.bounds), said here
        errors["text"] = "内容含有无法保存的字符，请删去后再提交 The text holds a character that cannot be kept"
    if len(values["against"]) > 64:
        errors["against"] = "不超过64字 At most 64 characters"
    elif line_problem("against", values["against"]):
        errors["against"] = "含有无法保存的字符 A character that cannot be kept"
    if len(values["name"]) > 64:
        errors["name"] = "姓名不超过64字 At most 64 characters"
    elif line_problem("name", values["name"]):
        errors["name"] = "姓名含有无法保存的字符 A character that cannot be kept"
    if values["phone"] and not re.fullmatch(r"[\d+\- ]{5,20}", values["phone"]):
        errors["phone"] = "电话只能包含数字、+、- 和空格 Digits, +, - and spaces only"
    if not values["receipt"]:
        errors["receipt"] = "请填写回执号 The receipt number is required"
    if not values["code"]:
        errors["code"] = "请填写查询码或申请人手机号后四位 The query code or the phone's last four digits"
    return errors


def _complain_page(
    store: Store, context: NodeContext, values: dict[str, str], errors: dict[str, str], *, status: int = 200
) -> Template:
    token = secrets.token_urlsafe(24)
    page = Template(
        template_name="complain.html",
        status_code=status,
        context={
            **_frame(store, context, "complain"),
            "values": values,
            "errors": errors,
            "public_csrf": token,
            "once": new_key(),  # the form's one-time key: sent twice, filed once (sanji.store.submissions)
            "above_counties": ABOVE_COUNTIES,
        },
    )
    return _public_csrf(page, token)
