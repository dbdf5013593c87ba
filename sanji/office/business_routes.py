"""业务报表 over HTTP: the nodes' reported day counts beside what this node computes, per period.

The screen and the API call ``sanji.office.business.business_table``; any node shows the nodes
below it (the county: every township and village).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template

from protocol.bounds import whole
from sanji.context import NodeContext
from sanji.office.business import COUNT_LABELS, BusinessLine, business_table
from sanji.office.query import parse_day
from sanji.store import Store
from sanji.web.screens import _frame

DAY = whole("([0-9]{4}-[0-9]{2}-[0-9]{2})?")
From = Annotated[str, QueryParameter(name="from", max_length=10, pattern=DAY, description="first day (ISO)")]
To = Annotated[str, QueryParameter(max_length=10, pattern=DAY, description="last day (default: yesterday)")]


class BusinessPage(msgspec.Struct, kw_only=True):
    date_from: str
    date_to: str
    lines: list[BusinessLine]


def period(context: NodeContext, date_from: str, date_to: str) -> tuple[date, date]:
    """The days asked for; by default the last seven complete business days. A bad date is a ``QueryProblem``
    (a ValueError saying itself in Chinese too: 400, a page on the screen)."""
    first = parse_day(date_from, "from") if date_from else None  # the first day is checked first, as on the ledger
    end = parse_day(date_to, "to") if date_to else context.today() - timedelta(days=1)
    return first or end - timedelta(days=6), end


async def page(store: Store, context: NodeContext, date_from: str, date_to: str) -> BusinessPage:
    start, end = period(context, date_from, date_to)
    lines = await business_table(store, context, start, end)
    return BusinessPage(date_from=start.isoformat(), date_to=end.isoformat(), lines=lines)


class BusinessApiController(Controller):
    path = "/api/office/business"
    tags = ["office"]

    @get("/", summary="业务报表: each node's reported day counts over a period, this node's own count, the difference")
    async def table(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        from_: From = "",
        to: To = "",
    ) -> BusinessPage:
        return await page(store, context, from_, to)


class BusinessScreenController(Controller):
    path = "/office/business"
    include_in_schema = False

    @get("/")
    async def screen(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        from_: From = "",
        to: To = "",
    ) -> Template:
        found = await page(store, context, from_, to)
        return Template(
            template_name="office_business.html",
            context={**_frame(store, context, "business"), "page": "business", "report": found, "labels": COUNT_LABELS},
        )
