"""季度考核 over HTTP, the county's desk: scores with sources, the office's entries, appeals and their decisions.

The JSON API and the screen call the same functions (``sanji.office.assess``,
``sanji.office.book``); whoever is logged in is recorded as the author, else the name typed
in the form (open demo mode only).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Template

from protocol.assessment import Appeal, Entry, Person, quarter_span
from protocol.bounds import whole
from protocol.errors import SanjiError
from sanji.auth.guard import principal_of
from sanji.context import NodeContext
from sanji.office import choices
from sanji.office.assess import as_json, held_rules, run_assessment
from sanji.office.book import OfficeBook, OfficeInvalid, OfficeRefused, problem_text
from sanji.office.forms import AppealForm, DecisionForm, EntryForm
from sanji.store import Store, submissions
from sanji.store.submissions import FIELD as ONCE_FIELD
from sanji.store.submissions import AlreadySent, Once, new_key, once, said
from sanji.web.client_keys import IdempotencyKey, client_key
from sanji.web.documents import node_name
from sanji.web.errors import status_for
from sanji.web.screens import _frame, one, read_form

Quarter = Annotated[
    str,
    QueryParameter(
        max_length=6, pattern=whole("(20[0-9]{2}[Qq][1-4])?"), description="e.g. 2026Q4 (default: this quarter)"
    ),
]


# The screen takes any short text and says itself what a quarter looks like, with the form again and the typed value
# in it; the API keeps the pattern (a program gets the JSON refusal).
ScreenQuarter = Annotated[str, QueryParameter(max_length=64)]


def this_quarter(context: NodeContext) -> str:
    today = context.today()
    return f"{today.year}Q{(today.month - 1) // 3 + 1}"


def _author(request: Request[Any, Any, Any], typed: str) -> str:
    return _person(request, typed).name


def _person(request: Request[Any, Any, Any], typed: str) -> Person:
    """Who sends this: the logged-in account (its id, which the appeal rule compares), else the name typed."""
    principal = principal_of(request)
    if principal is not None:
        return Person(name=principal.name, account=principal.account_id)
    if not typed.strip():
        raise OfficeRefused("say who records this (by)", zh="请填写记录人")
    return Person(name=typed)


def _workplaces(store: Store, context: NodeContext) -> list[choices.Choice]:
    """Where a person may be scored: the county's township centres, and its departments (the catalogue's)."""
    return choices.townships(store.directory, store.node_id) + choices.departments(context.catalogue)


async def _entry(
    store: Store, context: NodeContext, request: Request[Any, Any, Any], form: EntryForm, once: Once | None = None
) -> Entry:
    subject, centre = form.subject, form.centre
    if form.target == "centre":  # a centre named as the list shows it (城关镇便民服务中心) is its id (T01)
        subject, _ = choices.resolve(subject, choices.townships(store.directory, store.node_id))
    elif centre.strip():
        centre, known = choices.resolve(centre, _workplaces(store, context))
        if not known:
            raise OfficeInvalid(
                f"no centre or department {centre[:40]!r} in this county",
                zh=f"本县没有中心或部门“{centre[:40]}”，请从列表中选择",
            )
    return await OfficeBook(store).add_entry(
        quarter=form.quarter,
        target=form.target,
        subject=subject,
        centre=centre,
        item=form.item,
        count=form.count,
        note=form.note,
        errand=form.errand,
        by=_author(request, form.by),
        rules=await held_rules(context),  # an item they do not have is refused, not kept scoring nothing
        once=once,
    )


async def _appeal(
    store: Store, context: NodeContext, request: Request[Any, Any, Any], form: AppealForm, once: Once | None = None
) -> Appeal:
    by = _person(request, form.by)
    quarter_span(form.quarter)
    _, scored = await run_assessment(store, context, form.quarter.upper())  # the score the appeal contests
    return await OfficeBook(store).file_appeal(
        quarter=form.quarter,
        target=form.target,
        subject=form.subject,
        reason=form.reason,
        by=by.name,
        by_account=by.account,
        scored=scored,
        once=once,
    )


async def _decide(
    store: Store,
    context: NodeContext,
    request: Request[Any, Any, Any],
    appeal_id: str,
    form: DecisionForm,
    once: Once | None = None,
) -> Appeal:
    by = _person(request, form.by)
    book = OfficeBook(store)
    rules, scored = await run_assessment(store, context, (await book.appeal(appeal_id)).quarter)
    return await book.decide_appeal(
        appeal_id,
        upheld=form.upheld,
        points=form.points,
        part=form.part,
        reason=form.reason,
        by=by.name,
        by_account=by.account,
        rules=rules,
        scored=scored,
        once=once,
    )


class AssessmentApiController(Controller):
    path = "/api/office/assessment"
    tags = ["office"]

    @get("/", summary="季度考核: staff and centre scores with the source of every point")
    async def scores(
        self, store: NamedDependency[Store], context: NamedDependency[NodeContext], quarter: Quarter = ""
    ) -> dict[str, object]:
        rules, result = await run_assessment(store, context, quarter.upper() or this_quarter(context))
        return as_json(rules, result)

    @post("/entries", summary="Record an office entry (attendance, inspection, praise …) for staff or a centre")
    async def add_entry(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        request: Request[Any, Any, Any],
        data: JSONBody[EntryForm],
        idempotency_key: IdempotencyKey = None,
    ) -> Entry:
        key = client_key(request, idempotency_key, data)
        try:
            return await _entry(store, context, request, data, key)
        except AlreadySent as sent:  # a retry: the entry its first sending recorded
            return await OfficeBook(store).entry(sent.action)

    @post("/appeals", summary="File an appeal (申诉) against a quarter's score")
    async def add_appeal(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        request: Request[Any, Any, Any],
        data: JSONBody[AppealForm],
        idempotency_key: IdempotencyKey = None,
    ) -> Appeal:
        key = client_key(request, idempotency_key, data)
        try:
            await submissions.sent_before(store.db, key)  # before the quarter is assessed again for nothing
            return await _appeal(store, context, request, data, key)
        except AlreadySent as sent:  # a retry: the appeal its first sending filed, as it is now
            return await OfficeBook(store).appeal(sent.action)

    @post("/appeals/{appeal_id:str}/decision", summary="Decide an appeal: upheld (with points and reason) or rejected")
    async def decide(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        request: Request[Any, Any, Any],
        appeal_id: FromPath[str],
        data: JSONBody[DecisionForm],
        idempotency_key: IdempotencyKey = None,
    ) -> Appeal:
        # the same key and body on another appeal is another request (its path): refused, as any other body
        key = client_key(request, idempotency_key, data)
        try:
            await submissions.sent_before(store.db, key)  # a retry lands on the decision, not on 已经作出决定
            return await _decide(store, context, request, appeal_id, data, key)
        except AlreadySent:  # a retry: the appeal as its first sending decided it
            return await OfficeBook(store).appeal(appeal_id)
        except OfficeRefused:
            # sent twice at once: the first was decided between this one's reading of the key and of the appeal
            if await submissions.was_sent(store.db, key):
                return await OfficeBook(store).appeal(appeal_id)
            raise

    @get("/appeals", summary="Appeals of a quarter and their decisions")
    async def appeals(self, store: NamedDependency[Store], quarter: Quarter = "") -> list[Appeal]:
        if quarter:
            quarter_span(quarter.upper())
        return await OfficeBook(store).appeals(quarter.upper() or None)


# What the screen says after a form was taken: a code in the redirect, worded here (never text from the link).
DONE = frozenset({"entry", "appeal", "decision"})


def _redirect(quarter: str, *, done: str, again: bool = False) -> Redirect:
    query = {"quarter": quarter[:8], "done": done}
    if again:  # the same form sent twice (a double click, back and resubmit): recorded once, said so
        query["again"] = "1"
    return Redirect(f"/office/assessment/?{urlencode(query)}", status_code=303)


def _centres(result: Any) -> set[str]:
    return {*(s.centre for s in result.staff), *(c.centre for c in result.centres)}


def _refused_status(exc: Exception) -> int:
    return status_for(exc) if isinstance(exc, SanjiError) else 400


async def assessment_page(
    store: Store,
    context: NodeContext,
    quarter: str,
    *,
    done: str = "",
    again: bool = False,
    problem: str = "",
    status: int = 200,
) -> Template:
    """The screen. A refused form is answered with this page and the refusal (``problem``: "中文 English", from the
    refusal itself), with the refusal's status; a link's query never puts words on it."""
    typed = quarter.strip()
    try:
        chosen = (typed or this_quarter(context)).upper()
        quarter_span(chosen)
    except ValueError:
        problem = problem or (
            f"季度“{typed[:20]}”写法不对，应写成 2026Q4 这样（四位年份、字母 Q、1 至 4），下面仍是本季度 · "
            f"a quarter is written like 2026Q4 (year, Q, 1-4), not {typed[:20]!r}; this quarter is shown below"
        )
        status, chosen, typed = 400, this_quarter(context), typed or "?"
    else:
        typed = chosen
    rules, result = await run_assessment(store, context, chosen)
    book = OfficeBook(store)
    return Template(
        template_name="office_assessment.html",
        status_code=status,
        context={
            **_frame(store, context, "assessment"),
            "quarter": chosen,
            "typed": typed,  # the form keeps a quarter typed wrong, to correct it
            "rules": rules,
            "result": result,
            "appeals": await book.appeals(chosen),
            "entries": await book.entries(chosen),
            "staff_items": [i for i in rules.items if i.target == "staff"],
            "centre_items": [i for i in rules.items if i.target == "centre"],
            "part_names": {p.code: p.name for p in rules.parts},
            # a centre by its name (城关镇便民服务中心), not its id
            "centre_names": {c: node_name(store.directory, c) for c in _centres(result)},
            "centre_choices": choices.townships(store.directory, store.node_id),
            "workplaces": _workplaces(store, context),
            "done": done if done in DONE else "",
            "again": again and done in DONE,
            "problem": problem,
            "once": new_key(),  # the forms' one-time key: sent twice, recorded once (sanji.store.submissions)
        },
    )


class AssessmentScreenController(Controller):
    path = "/office/assessment"
    include_in_schema = False

    @get("/")
    async def screen(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        quarter: ScreenQuarter = "",
        done: Annotated[str, QueryParameter(max_length=16)] = "",
        again: Annotated[str, QueryParameter(max_length=1)] = "",
    ) -> Template:
        return await assessment_page(store, context, quarter, done=done, again=again == "1")

    @post("/entries", status_code=303)
    async def post_entry(
        self, store: NamedDependency[Store], context: NamedDependency[NodeContext], request: Request[Any, Any, Any]
    ) -> Redirect | Template:
        form = await read_form(request)
        quarter = one(form, "quarter")
        try:
            count = int(one(form, "count") or "1")
            data = msgspec.convert(
                {k: one(form, k) for k in ("quarter", "target", "subject", "item", "note", "errand", "by", "centre")}
                | {"count": count},
                EntryForm,
            )
            await _entry(store, context, request, data, once("entry", one(form, ONCE_FIELD), said(form)))
        except AlreadySent:
            return _redirect(quarter, done="entry", again=True)
        except (msgspec.ValidationError, ValueError, SanjiError) as exc:
            return await assessment_page(
                store, context, quarter, problem=problem_text(exc), status=_refused_status(exc)
            )
        return _redirect(quarter, done="entry")

    @post("/appeals", status_code=303)
    async def post_appeal(
        self, store: NamedDependency[Store], context: NamedDependency[NodeContext], request: Request[Any, Any, Any]
    ) -> Redirect | Template:
        form = await read_form(request)
        quarter = one(form, "quarter")
        try:
            data = msgspec.convert(
                {k: one(form, k) for k in ("quarter", "target", "subject", "reason", "by")}, AppealForm
            )
            await _appeal(store, context, request, data, once("appeal", one(form, ONCE_FIELD), said(form)))
        except AlreadySent:
            return _redirect(quarter, done="appeal", again=True)
        except (msgspec.ValidationError, ValueError, SanjiError) as exc:
            return await assessment_page(
                store, context, quarter, problem=problem_text(exc), status=_refused_status(exc)
            )
        return _redirect(quarter, done="appeal")

    @post("/appeals/{appeal_id:str}/decision", status_code=303)
    async def post_decision(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        request: Request[Any, Any, Any],
        appeal_id: FromPath[str],
    ) -> Redirect | Template:
        form = await read_form(request)
        quarter = one(form, "quarter")
        try:
            data = msgspec.convert(
                {
                    "upheld": one(form, "upheld") == "1",
                    "points": float(one(form, "points") or "0"),
                    "part": one(form, "part"),
                    "reason": one(form, "reason"),
                    "by": one(form, "by"),
                },
                DecisionForm,
            )
            key = once("decision", one(form, ONCE_FIELD), said({**form, "appeal": [appeal_id]}))
            await _decide(store, context, request, appeal_id, data, key)
        except AlreadySent:
            return _redirect(quarter, done="decision", again=True)
        except (msgspec.ValidationError, ValueError, SanjiError) as exc:
            return await assessment_page(
                store, context, quarter, problem=problem_text(exc), status=_refused_status(exc)
            )
        return _redirect(quarter, done="decision")
