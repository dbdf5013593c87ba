"""联办 sub-tasks at the county: each co-handling department's inbox, as JSON and as a screen.

Thin: the pending sub-tasks come from ``sanji.store.subtasks``; a department answers on the
errand's own page (or ``POST /api/errands/{id}/actions`` with ``subtask_done``), where
``judge`` decides as for every step. An account that carries a department opens on its own department's
sub-tasks (``?department=`` chooses another; empty, every department's), as the 部门收件箱 does. The query is
declared and parsed once (``subtask_query``, the handlers' ``asked``), for the screen and ``/api/subtasks`` alike.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.response import Template

from county_node.inbox import Department, own_department
from protocol.hlc import wall_seconds
from sanji.auth.guard import Caller
from sanji.context import NodeContext
from sanji.store import Store
from sanji.store.subtasks import OpenSubtask, open_subtasks
from sanji.web.documents import at_text, node_name
from sanji.web.screens import _frame, errand_url


class SubtaskQuery(msgspec.Struct, frozen=True, kw_only=True):
    department: str  # the one shown ("": every department's): asked for, else the account's own


def subtask_query(
    request: Request[Any, Any, Any], caller: NamedDependency[Caller], department: Department = ""
) -> SubtaskQuery:
    """The sub-tasks' query string, parsed: a dependency, so ``?department=`` and its bounds are declared once for
    both handlers, and Litestar still lists it in ``/api/subtasks``'s schema as its query parameter."""
    return SubtaskQuery(department=own_department(request, caller, department))


class SubtaskInbox(msgspec.Struct, kw_only=True):
    department: str  # "" : every department's
    departments: list[str]  # co-handling departments the catalogue names, and any with a pending sub-task
    items: list[OpenSubtask]
    more: bool = False  # more live 联办件 than one look reads (``READ_AT_MOST``): the oldest are listed


def _departments(context: NodeContext, items: list[OpenSubtask]) -> list[str]:
    named = {d for m in context.catalogue.matters for d in m.joint_departments} if context.catalogue else set()
    return sorted(named | {s.department for s in items})


async def _inbox(store: Store, context: NodeContext, department: str) -> SubtaskInbox:
    everyone, more = await open_subtasks(store.db)
    mine = [s for s in everyone if not department or s.department == department]
    return SubtaskInbox(department=department, departments=_departments(context, everyone), items=mine, more=more)


class SubtaskController(Controller):
    path = "/"
    tags = ["subtasks"]
    dependencies = {"asked": Provide(subtask_query, sync_to_thread=False)}

    @get(
        "/api/subtasks",
        summary="联办 sub-tasks still waiting for a county department's answer (one department's, if named)",
    )
    async def api(
        self, store: NamedDependency[Store], context: NamedDependency[NodeContext], asked: NamedDependency[SubtaskQuery]
    ) -> SubtaskInbox:
        return await _inbox(store, context, asked.department)

    @get("/subtasks", include_in_schema=False)
    async def screen(
        self, store: NamedDependency[Store], context: NamedDependency[NodeContext], asked: NamedDependency[SubtaskQuery]
    ) -> Template:
        inbox = await _inbox(store, context, asked.department)
        directory = store.directory
        rows: list[dict[str, Any]] = []
        for s in inbox.items:
            matter = context.matter(s.matter)
            rows.append(
                {
                    "url": errand_url(s.errand),
                    "receipt": s.receipt or s.errand,
                    "matter": f"{s.matter} {matter.name}" if matter else s.matter,
                    "applicant": s.applicant_name,
                    "department": s.department,
                    "lead": node_name(directory, s.lead) if s.lead else "—",
                    "lead_window": s.lead_window,
                    "holder": node_name(directory, s.holder),
                    "since": at_text(s.since),
                    "since_s": wall_seconds(s.since) if s.since else 0,
                    "due": s.due,
                }
            )
        return Template(
            template_name="subtasks.html",
            context={**_frame(store, context, "subtasks"), "inbox": inbox, "rows": rows},
        )
