"""Ledgers and statistics over HTTP: the JSON API, the downloads and the county office's screen.

Thin handlers: parse the filter (``sanji.office.query``), read the rows
(``sanji.office.source``), group them (``sanji.office.stats``) and return JSON, a file or a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from litestar.response import Template

from protocol.bounds import LINE_CLASS, whole
from protocol.stages import SHOWN_LABELS
from protocol.topology import regional
from sanji.context import NodeContext
from sanji.office import choices
from sanji.office.chart import DESK, PHONE, svg_chart
from sanji.office.export import ledger_csv, stats_csv, workbook_bytes
from sanji.office.ledger import LEVEL_LABELS, LedgerFilter, LedgerRow
from sanji.office.query import build_filter, quarter_start
from sanji.office.source import ledger
from sanji.office.stats import (
    DIMENSION_LABELS,
    DIMENSIONS,
    Dimension,
    StatLine,
    group,
    natural_groups,
    series,
    total,
)
from sanji.store import Store
from sanji.web.documents import screen_name
from sanji.web.screens import _frame

# One line of text: the character class protocol.bounds holds every name to, said in the schema too.
Text = Annotated[str, QueryParameter(max_length=96, pattern=whole(f"[^{LINE_CLASS}]{{0,96}}"))]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _above_counties(store: Store) -> bool:
    """A city's (or province's) ledger spans several counties: it groups by county first."""
    me = store.node_id
    return me in store.directory and regional(store.directory.role(me))


class LedgerPage(msgspec.Struct, kw_only=True):
    filter: LedgerFilter
    total: int
    items: list[LedgerRow]
    summary: StatLine


class StatsPage(msgspec.Struct, kw_only=True):
    filter: LedgerFilter
    by: str
    lines: list[StatLine]
    total: StatLine


@dataclass
class Query:
    values: dict[str, str]

    def filter(self, context: NodeContext) -> LedgerFilter:
        today = context.today()
        return build_filter(self.values, default_from=quarter_start(today), default_to=today)


def _ledger_query(
    from_: Annotated[str, QueryParameter(name="from", max_length=10)] = "",
    to: Annotated[str, QueryParameter(max_length=10)] = "",
    matter: Text = "",
    kind: Text = "",
    stage: Text = "",
    node: Text = "",
    county: Text = "",
    township: Text = "",
    window: Text = "",
    handler: Text = "",
    department: Text = "",
    level: Text = "",
) -> Query:
    """The ledger's filter as typed, one dependency of the ledger, statistics, downloads and screen: each takes
    the same parameters with the same bounds, and ``Query.filter`` refuses the same things in each."""
    values = {
        "from": from_,
        "to": to,
        "matter": matter,
        "kind": kind,
        "stage": stage,
        "node": node,
        "county": county,
        "township": township,
        "window": window,
        "handler": handler,
        "department": department,
        "level": level,
    }
    return Query({k: v for k, v in values.items() if v})


def _by(value: str) -> str:
    if value not in DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}, not {value[:40]!r}")
    return value


def _filename(flt: LedgerFilter, suffix: str) -> str:
    return f"ledger_{flt.node or 'all'}_{flt.date_from}_{flt.date_to}.{suffix}"


def _download(data: bytes, name: str, media_type: str) -> Response[bytes]:
    disposition = f"attachment; filename=\"{name.encode('ascii', 'replace').decode()}\"; filename*=UTF-8''{quote(name)}"
    return Response(data, media_type=media_type, headers={"Content-Disposition": disposition})


class OfficeApiController(Controller):
    path = "/api/office"
    tags = ["office"]
    dependencies = {"ledger_query": Provide(_ledger_query, sync_to_thread=False)}

    @get("/ledger", summary="台账: one row per errand registered in the period (default: this quarter), with filters")
    async def ledger_json(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        ledger_query: NamedDependency[Query],
        limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 1000,
        offset: Annotated[int, QueryParameter(ge=0, le=10_000_000)] = 0,
    ) -> LedgerPage:
        flt = ledger_query.filter(context)
        rows = await ledger(store, context, flt)
        return LedgerPage(filter=flt, total=len(rows), items=rows[offset : offset + limit], summary=total(rows))

    @get(
        "/stats",
        summary="Statistics by matter, kind, level, county, township, node, department, window, handler or period",
    )
    async def stats_json(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        ledger_query: NamedDependency[Query],
        by: Annotated[Dimension, QueryParameter()] = "township",
    ) -> StatsPage:
        dimension = _by(by)
        flt = ledger_query.filter(context)
        rows = await ledger(store, context, flt)
        return StatsPage(filter=flt, by=dimension, lines=group(rows, dimension), total=total(rows))

    @get("/ledger/export", summary="The ledger and its statistics as XLSX or CSV (Chinese headers)")
    async def ledger_export(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        ledger_query: NamedDependency[Query],
        format_: Annotated[Literal["xlsx", "csv"], QueryParameter(name="format")] = "xlsx",
        what: Annotated[Literal["ledger", "stats"], QueryParameter()] = "ledger",
    ) -> Response[bytes]:
        if format_ not in ("xlsx", "csv") or what not in ("ledger", "stats"):
            raise ValueError("format is xlsx or csv; what is ledger or stats")
        flt = ledger_query.filter(context)
        rows = await ledger(store, context, flt)
        groups = {by: [*group(rows, by), total(rows)] for by in natural_groups(_above_counties(store))}
        if format_ == "xlsx":
            data = workbook_bytes(rows if what == "ledger" else None, groups)
            return _download(data, _filename(flt, "xlsx"), XLSX)
        data = ledger_csv(rows) if what == "ledger" else stats_csv(groups)
        # "text/csv" alone: Litestar adds "; charset=utf-8" to a text/* type itself (it was there twice).
        return _download(data, _filename(flt, "csv" if what == "ledger" else "stats.csv"), "text/csv")


_FILTER_NAMES = {
    "township": ("乡镇", "township"),
    "node": ("节点", "node"),
    "matter": ("事项", "matter"),
    "department": ("部门", "department"),
}


def _chosen(flt: LedgerFilter, lists: dict[str, list[choices.Choice]]) -> tuple[LedgerFilter, tuple[str, str]]:
    """The filter with names typed by hand taken as their ids (城关镇 as T01), and what is said of a value that is
    none of the list's (a list this node cannot fill, as a city's matters, takes any value)."""
    changes: dict[str, str] = {}
    unknown: list[tuple[str, str, str]] = []
    for field, offered in lists.items():
        value, known = choices.resolve(getattr(flt, field), offered)
        if value != getattr(flt, field):
            changes[field] = value
        if not known and offered:
            zh, en = _FILTER_NAMES[field]
            unknown.append((zh, en, value[:40]))
    flt = msgspec.structs.replace(flt, **changes) if changes else flt
    if not unknown:
        return flt, ("", "")
    return flt, (
        "；".join(f"没有{zh}“{v}”，请从列表中选择" for zh, _, v in unknown),
        "; ".join(f"no {en} {v!r} here: choose one from the list" for _, en, v in unknown),
    )


class OfficeScreenController(Controller):
    path = "/office"
    include_in_schema = False
    dependencies = {"ledger_query": Provide(_ledger_query, sync_to_thread=False)}

    @get("/ledger")
    async def ledger_screen(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        ledger_query: NamedDependency[Query],
        by: Annotated[str, QueryParameter(max_length=16)] = "",  # "": by county at a city, by township below
        period: Annotated[str, QueryParameter(max_length=16)] = "month",
    ) -> Template:
        problem = ("", "")
        above = _above_counties(store)
        natural = natural_groups(above)[0]
        try:
            flt = ledger_query.filter(context)
            dimension = _by(by or natural)
            chart_period = period if period in ("week", "month", "quarter") else "month"
        except ValueError as exc:  # Chinese first; the page then shows this quarter so far
            problem = (getattr(exc, "message_zh", "") or "查询条件有误", str(exc))
            today = context.today()
            flt = LedgerFilter(date_from=quarter_start(today).isoformat(), date_to=today.isoformat())
            dimension, chart_period = natural, "month"
        lists = {
            "township": choices.townships(store.directory, store.node_id),
            "node": choices.nodes(store.directory, store.node_id),
            "matter": choices.matters(context.catalogue),
            "department": choices.departments(context.catalogue),
        }
        if not problem[1]:
            flt, problem = _chosen(flt, lists)
        rows = await ledger(store, context, flt)
        params = {k: v for k, v in msgspec.to_builtins(flt).items() if v}
        params["from"] = params.pop("date_from", "")
        params["to"] = params.pop("date_to", "")
        query_string = urlencode(params)
        # nodes by their names (城关镇便民服务中心, not T01): the ledger's 节点, a group that is a node, and the
        # chart's legend
        nodes = {*(r.scope for r in rows), *(r.township for r in rows), *(r.county for r in rows)}
        names = {n: screen_name(store.directory, n) for n in nodes if n}
        drawn = series(rows, chart_period, by="county" if above else "township")
        return Template(
            template_name="office_ledger.html",
            status_code=400 if problem[1] else 200,
            context={
                **_frame(store, context, "office"),
                "problem": problem,
                "flt": flt,
                "by": dimension,
                "period": chart_period,
                "dimensions": [(d, DIMENSION_LABELS[d]) for d in DIMENSIONS],
                "lines": group(rows, dimension),
                "total": total(rows),
                # drawn twice, wide for a desk and narrow for a phone, so its type is readable on either
                "charts": [svg_chart(drawn, names=names, layout=layout) for layout in (DESK, PHONE)],
                "rows": rows[:500],
                "row_count": len(rows),
                "stage_labels": SHOWN_LABELS,
                "level_labels": LEVEL_LABELS,
                "kinds": ("即办件", "承诺件", "上报件", "联办件", "特办件", "代办件"),
                "lists": lists,
                "node_names": names,
                "node_groups": dimension in ("county", "township", "node"),
                "above_counties": above,
                "download": {
                    "xlsx": "/api/office/ledger/export?" + urlencode({**params, "format": "xlsx"}),
                    "csv": "/api/office/ledger/export?" + urlencode({**params, "format": "csv"}),
                    "stats_csv": "/api/office/ledger/export?" + urlencode({**params, "format": "csv", "what": "stats"}),
                },
                "query_string": query_string,
            },
        )
