"""Exchange with the provincial platform: the collector's pull and the office's export screen.

Both hand over the national tables of errands changed since a moment (``sanji.office.platform``):
the collector pulls JSON from ``/api/office/platform/export``; the office downloads the same files
the command ``sanji platform export`` writes, as one ZIP, from ``/office/platform/``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Response, Template

from protocol.bounds import whole
from protocol.deadlines import CHINA_STANDARD_TIME
from sanji.auth.guard import Caller
from sanji.context import NodeContext
from sanji.office.platform import (
    LAST_EXPORT,
    TABLES,
    export_files,
    export_tables,
    remember_export,
    since_of,
    zipped,
)
from sanji.store import Store
from sanji.web.screens import _frame, one, read_form


class PlatformBatch(msgspec.Struct, kw_only=True):
    batch_no: str
    since: str
    data_source: str
    counts: dict[str, int]
    tables: dict[str, list[dict[str, Any]]]


class PlatformController(Controller):
    path = "/api/office/platform"
    tags = ["office"]

    @get("/export", summary="National-table rows (accept, process, result, special, material, rating) changed since")
    async def export(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        since: Annotated[str, QueryParameter(max_length=40, description="2026-11-01, an ISO time, or last")],
        source: Annotated[str, QueryParameter(max_length=3, pattern=whole("[0-9]{3}"))] = "001",
    ) -> PlatformBatch:
        moment, arrived = await since_of(store, since)
        batch = datetime.now(CHINA_STANDARD_TIME).strftime("%Y%m%d%H%M%S")
        tables = await export_tables(
            store, context.catalogue, since=moment, batch_no=batch, data_source=source, arrived_since=arrived
        )
        return PlatformBatch(
            batch_no=batch,
            since=moment.isoformat(),
            data_source=source,
            counts={name: len(rows) for name, rows in tables.items()},
            tables=tables,
        )


# Why ``since`` cannot be exported from (``sanji.office.platform.parse_since``'s ValueError), in Chinese.
SINCE_PROBLEMS_ZH = (
    ("no export has run yet", "尚未导出过：首次导出请填写起始日期，如 2026-11-01"),
    ("must be a date like", "起始时间应为日期（如 2026-11-01）、ISO 时间或“上次导出以来”"),
    ("must fall between the years", "起始时间应在 2000 年至 2100 年之间"),
)


def since_problem(problem: str) -> tuple[str, str]:
    """Why nothing was exported: Chinese first, the English beside (from the refusal itself, never from a link)."""
    zh = next((zh for words, zh in SINCE_PROBLEMS_ZH if words in problem), "请检查填写的起始时间")
    return f"无法导出：{zh}", f"cannot export: {problem}"[:300]


async def platform_page(
    store: Store, context: NodeContext, *, problem: tuple[str, str] = ("", ""), status: int = 200
) -> Template:
    last = await store.meta_value(LAST_EXPORT)
    default = last[:10] if last else context.today().replace(day=1).isoformat()
    return Template(
        template_name="office_platform.html",
        status_code=status,
        context={
            **_frame(store, context, "platform"),
            "last": last.replace("T", " ")[:16] if last else "",
            "since": default,
            "tables": TABLES,
            "problem": problem,
        },
    )


class PlatformScreenController(Controller):
    """省平台交换: the office runs an export and downloads it (what the collector would pull)."""

    path = "/office/platform"
    include_in_schema = False

    @get("/")
    async def screen(self, store: NamedDependency[Store], context: NamedDependency[NodeContext]) -> Template:
        return await platform_page(store, context)

    @post("/export", status_code=200)
    async def export(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        caller: NamedDependency[Caller],
        request: Request[Any, Any, Any],
    ) -> Response[bytes] | Template:
        form = await read_form(request)
        since, source = one(form, "since")[:40], one(form, "source")[:3] or "001"
        if one(form, "mode") == "last" or not since:
            since = "last"
        try:
            moment, arrived = await since_of(store, since)
            files = await export_files(
                store, context.catalogue, since=moment, data_source=source, arrived_since=arrived
            )
        except ValueError as exc:  # the screen again, saying why (status 400)
            return await platform_page(store, context, problem=since_problem(str(exc)), status=400)
        manifest = msgspec.json.decode(files["manifest.json"])
        batch = manifest["batch_no"]
        # every changed errand's applicant name leaves in the ZIP: audited as a read of personal data
        await caller.read("platform_export", detail=f"since {moment.isoformat()}: {manifest['counts']}")
        await remember_export(store, files)
        return Response(
            zipped(files),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="platform-{store.node_id}-{batch}.zip"'},
        )
