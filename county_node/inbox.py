"""部门收件箱 at the county: the 上报件 escalated to each county department, as JSON and as a screen.

Thin: the page of errands and the counts come from ``sanji.store.inbox`` (bounded: a page and the counts of
the rest), the deadline lights from ``sanji.web.views`` as on every worklist, the open 联办 sub-tasks'
count from ``sanji.store.subtasks``. The department signs for an errand, decides it and sends the result
down on the errand's own page, where ``judge`` decides as for every step. Names only, as every list: ID
numbers and phones are on the errand's page, masked.

An account that carries a department (``sanji accounts add --department``) opens on its own department's
inbox; ``?department=`` chooses another, among those with an errand here and those the catalogue names as
approving, and ``?department=`` left empty shows every department's — what an account without a department
sees by default. The query (department, page) is declared and parsed once (``inbox_query``, the handlers'
``asked``), for the screen and ``/api/inbox`` alike.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from litestar.response import Template

from protocol.bounds import LINE_CLASS, whole
from protocol.hlc import wall_seconds
from protocol.stages import stage_label
from protocol.topology import Directory
from sanji.auth.guard import Caller
from sanji.context import NodeContext
from sanji.store import Store
from sanji.store.inbox import MAX_PAGE, InboxCounts, department_inbox, inbox_departments
from sanji.store.subtasks import open_subtask_count
from sanji.web.desk_api import township_of
from sanji.web.documents import at_text, node_name
from sanji.web.screens import _frame, errand_url, light
from sanji.web.views import Deadline, summarise

Department = Annotated[str, QueryParameter(max_length=64, pattern=whole(f"[^{LINE_CLASS}]{{0,64}}"))]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000_000)]


def own_department(request: Request[Any, Any, Any], caller: Caller, department: str) -> str:
    """The department a county list shows: the one asked for (``?department=``, empty for every one), else (the
    parameter left out) the department the caller's account answers for ('' without one, or no login)."""
    if "department" in request.query_params:
        return department.strip()
    return caller.principal.department if caller.principal is not None else ""


class InboxItem(msgspec.Struct, kw_only=True):
    errand: str
    receipt: str
    matter: str
    matter_name: str
    applicant_name: str  # the name only: ID numbers and phones stay on the errand's page, masked
    department: str
    township: str  # the township that escalated it
    stage: str
    stage_label: str
    to_receive: bool  # escalated here, not yet signed for by the department
    received_at: int  # hybrid-clock time the department signed for it; 0 while on its way
    deadline: Deadline | None  # the whole errand's (办结期限): never reset
    stage_deadline: Deadline | None  # the department's own stage (本环节)


class InboxQuery(msgspec.Struct, frozen=True, kw_only=True):
    department: str  # the one shown ("": every department's): asked for, else the account's own
    account_department: str  # the department the caller's account answers for ("" without one, or no login)
    limit: int
    offset: int


def inbox_query(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    department: Department = "",
    limit: Limit = 100,
    offset: Offset = 0,
) -> InboxQuery:
    """The inbox's query string, parsed: a dependency, so its parameters and their bounds are declared once for
    both handlers, and Litestar still lists them in ``/api/inbox``'s schema as its query parameters."""
    return InboxQuery(
        department=own_department(request, caller, department),
        account_department=caller.principal.department if caller.principal is not None else "",
        limit=limit,
        offset=offset,
    )


class DepartmentInbox(msgspec.Struct, kw_only=True):
    department: str  # "": every department's
    departments: list[str]  # those with an errand here, and those the catalogue names as approving
    counts: InboxCounts  # of the whole inbox, not only this page
    offset: int
    limit: int
    items: list[InboxItem]
    open_subtasks: int  # 联办 sub-tasks the department still owes (/subtasks); every department's if none named
    open_subtasks_more: bool  # more 联办件 than were read: the count is at least this


def _approving(context: NodeContext) -> set[str]:
    if context.catalogue is None:
        return set()
    return {m.department for m in context.catalogue.matters if m.department and "county" in m.approve_levels}


async def _inbox(store: Store, context: NodeContext, query: InboxQuery) -> DepartmentInbox:
    today = context.today()
    department = query.department
    rows, counts = await department_inbox(
        store.db, store.node_id, today=today, department=department, limit=query.limit, offset=query.offset
    )
    directory = store.directory
    items = []
    for row in rows:
        view = summarise(row, context, today)
        items.append(
            InboxItem(
                errand=row["id"],
                receipt=row["receipt"] or row["id"],
                matter=row["matter"],
                matter_name=view["matter_name"],
                applicant_name=row["applicant_name"],
                department=row["department"],
                township=township_of(directory, row["scope"]),
                stage=row["stage"],
                stage_label=stage_label(row["stage"], row["outcome"]),
                to_receive=row["pending_to"] is not None,
                received_at=row["received_at"],
                deadline=view["deadline"],
                stage_deadline=view["stage_deadline"],
            )
        )
    here = await inbox_departments(store.db, store.node_id)
    subtasks, more = await open_subtask_count(store.db, department)
    return DepartmentInbox(
        department=department,
        departments=sorted(_approving(context) | set(here)),
        counts=counts,
        offset=query.offset,
        limit=query.limit,
        items=items,
        open_subtasks=subtasks,
        open_subtasks_more=more,
    )


def _screen(directory: Directory, query: InboxQuery, inbox: DepartmentInbox) -> dict[str, Any]:
    """What ``inbox.html`` shows of ``inbox`` beyond the page frame: its rows and the links to the pages around."""
    rows: list[dict[str, Any]] = []
    for item in inbox.items:
        deadline, stage = light(item.deadline), light(item.stage_deadline)
        rows.append(
            {
                "url": errand_url(item.errand),
                "item": item,
                "township": node_name(directory, item.township),
                "received": at_text(item.received_at) if item.received_at else "",
                "received_s": wall_seconds(item.received_at) if item.received_at else 0,
                "light": deadline,
                "stage_light": stage,
            }
        )
    chosen, offset, limit = query.department, query.offset, query.limit
    # an account with a department that chose every department's keeps that choice from page to page
    keep_empty = bool(query.account_department)
    shown_to = offset + len(inbox.items)

    def page_url(start: int) -> str:
        page = {"department": chosen, "offset": str(start), "limit": str(limit)}
        return "/inbox?" + urlencode({k: v for k, v in page.items() if v or (k == "department" and keep_empty)})

    return {
        "inbox": inbox,
        "rows": rows,
        "shown_from": offset + 1 if inbox.items else 0,
        "shown_to": shown_to,
        "next_url": page_url(shown_to) if shown_to < inbox.counts.total else "",
        "previous_url": page_url(max(0, offset - limit)) if offset > 0 else "",
        "subtasks_url": "/subtasks?" + urlencode({"department": chosen}) if chosen or keep_empty else "/subtasks",
    }


class InboxController(Controller):
    path = "/"
    tags = ["inbox"]
    dependencies = {"asked": Provide(inbox_query, sync_to_thread=False)}

    @get(
        "/api/inbox",
        summary="上报件 escalated to the county's departments (one department's, if named): a page and the counts",
    )
    async def api(
        self, store: NamedDependency[Store], context: NamedDependency[NodeContext], asked: NamedDependency[InboxQuery]
    ) -> DepartmentInbox:
        return await _inbox(store, context, asked)

    @get("/inbox", include_in_schema=False)
    async def screen(
        self, store: NamedDependency[Store], context: NamedDependency[NodeContext], asked: NamedDependency[InboxQuery]
    ) -> Template:
        inbox = await _inbox(store, context, asked)
        shown = {**_frame(store, context, "inbox"), **_screen(store.directory, asked, inbox)}
        return Template(template_name="inbox.html", context=shown)
