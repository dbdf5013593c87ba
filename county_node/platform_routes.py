"""The provincial collector's pull: the national tables of errands changed since a moment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from protocol.deadlines import CHINA_STANDARD_TIME
from sanji.cli.platform_cmd import parse_since
from sanji.context import NodeContext
from sanji.office.platform import export_tables
from sanji.store import Store


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
        since: Annotated[str, QueryParameter(max_length=40, description="2026-11-01 or an ISO time")],
        source: Annotated[str, QueryParameter(max_length=3, pattern=r"^\d{3}$")] = "001",
    ) -> PlatformBatch:
        moment = parse_since(since)
        batch = datetime.now(CHINA_STANDARD_TIME).strftime("%Y%m%d%H%M%S")
        tables = await export_tables(store, context.catalogue, since=moment, batch_no=batch, data_source=source)
        return PlatformBatch(
            batch_no=batch,
            since=moment.isoformat(),
            data_source=source,
            counts={name: len(rows) for name, rows in tables.items()},
            tables=tables,
        )
