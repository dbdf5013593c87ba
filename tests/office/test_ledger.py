"""Ledgers (台账) and statistics from a real county store that received signed batches.

November 2026 has no public holiday, so working days are Monday to Friday. The county holds:

* E1 T01 walk-in, accepted 11-02 due 11-09, decided 11-06: on time, 4 working days, 满意.
* E2 T01, due 11-09, paused 11-03..11-05 (due moved to 11-11), decided 11-13: 2 working days late,
  9 working days less 2 paused = 7; 不满意 and a complaint against its handler.
* E3 T02, due 11-05, extended by 2 days to 11-09, deemed approved on 11-09: on time, one extension.
* E4 village T02V01, registered 11-10, received by T02, not accepted yet: no deadline, not answered.
* E5 T01, registered 12-01, due 12-03, still open on 12-08: late by 3 working days.
* E6 T01, registered 10-15.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import date
from itertools import pairwise
from pathlib import Path

import pytest
from office_kit import Story, seeded_county
from openpyxl import load_workbook

from protocol.actions import HandOff, Receive, Register
from sanji.context import NodeContext
from sanji.layout import Layout, county_layout
from sanji.office.chart import LEGEND_CHARS, PHONE, svg_chart
from sanji.office.export import LEDGER_COLUMNS, ledger_csv, stats_csv, workbook_bytes
from sanji.office.ledger import LedgerFilter, LedgerRow
from sanji.office.query import build_filter
from sanji.office.source import ledger
from sanji.office.stats import Series, group, series, total
from sanji.store import Store

AS_OF = date(2026, 12, 8)


def stories() -> list[Story]:
    e1 = Story("E1", "T01", "T01").registered("2026-11-02").accepted("2026-11-02", "2026-11-09")
    e1.assigned("2026-11-02", "王芳").reviewed("2026-11-04").decided("2026-11-06").delivered_here("2026-11-06")
    e1.rated("2026-11-06", "满意")
    e2 = Story("E2", "T01", "T01").registered("2026-11-02").accepted("2026-11-02", "2026-11-09")
    e2.assigned("2026-11-02", "王芳").paused("2026-11-03", "2026-11-05", "2026-11-11").decided("2026-11-13")
    e2.rated("2026-11-13", "不满意").complained("2026-11-13", "王芳")
    e3 = Story("E3", "T02", "T02", matter="SJ-002").registered("2026-11-03").accepted("2026-11-03", "2026-11-05")
    e3.assigned("2026-11-03", "李明", "市场窗口").extended("2026-11-04", 2, "2026-11-09")
    e3.decided("2026-11-09", deemed=True, actor="system")
    e4 = Story("E4", "T02V01", "T02")
    e4.add(Register, "T02V01", "2026-11-10", matter="MZ-005", applicant=e1.actions[0].applicant)  # type: ignore[attr-defined]
    e4.add(HandOff, "T02V01", "2026-11-10", to="T02", purpose="submit").add(Receive, "T02", "2026-11-11")
    e5 = Story("E5", "T01", "T01").registered("2026-12-01").accepted("2026-12-01", "2026-12-03")
    e6 = Story("E6", "T01", "T01").registered("2026-10-15")
    return [e1, e2, e3, e4, e5, e6]


@pytest.fixture
async def county(tmp_path: Path) -> AsyncIterator[tuple[Store, NodeContext, Layout]]:
    layout = county_layout(2, 1)
    async with seeded_county(tmp_path / "county.db", stories(), layout) as (store, context):
        yield store, context, layout


def by_id(rows: list[LedgerRow]) -> dict[str, LedgerRow]:
    return {r.errand: r for r in rows}


async def test_every_errand_is_a_row_with_its_answer_and_deadline(county: tuple[Store, NodeContext, Layout]) -> None:
    store, context, _ = county
    rows = by_id(await ledger(store, context, LedgerFilter(), as_of=AS_OF))
    assert set(rows) == {"E1", "E2", "E3", "E4", "E5", "E6"}
    e1, e2, e3, e4, e5 = rows["E1"], rows["E2"], rows["E3"], rows["E4"], rows["E5"]
    assert (e1.on_time, e1.overdue_days, e1.working_days, e1.rating) == (True, 0, 4, "满意")
    assert (e1.accepted_on, e1.answered_on, e1.delivered_on) == ("2026-11-02", "2026-11-06", "2026-11-06")
    assert e1.skipped_steps == ()  # 受理 承办 审核 批准 办结 all happened
    assert (e2.on_time, e2.overdue_days, e2.working_days) == (False, 2, 7)
    assert (e2.due, e2.rating, e2.complaints, e2.handler) == ("2026-11-11", "不满意", 1, "王芳")
    assert (e3.on_time, e3.deemed, e3.extensions, e3.extended_days, e3.handler) == (True, True, 1, 2, "李明")
    assert (e3.township, e3.level, e3.matter_name) == ("T02", "town", "个体工商户变更登记")
    assert (e4.answered, e4.on_time, e4.working_days, e4.scope, e4.township) == (False, None, None, "T02V01", "T02")
    assert (e5.answered, e5.on_time, e5.overdue_days) == (False, False, 3)


async def test_filters_pick_the_period_node_subtree_and_handler(county: tuple[Store, NodeContext, Layout]) -> None:
    store, context, _ = county

    async def ids(**fields: str) -> list[str]:
        return [r.errand for r in await ledger(store, context, LedgerFilter(**fields), as_of=AS_OF)]

    november = {"date_from": "2026-11-01", "date_to": "2026-11-30"}
    assert sorted(await ids(**november)) == ["E1", "E2", "E3", "E4"]
    assert sorted(await ids(**november, node="T02")) == ["E3", "E4"]  # the township's ledger: its subtree
    assert await ids(**november, node="T02V01") == ["E4"]  # the village's ledger
    assert sorted(await ids(handler="王芳")) == ["E1", "E2"]
    assert await ids(kind="承诺件", stage="accepted") == ["E5"]
    assert await ids(matter="SJ-002") == ["E3"]
    assert await ids(date_from="2026-10-15", date_to="2026-10-15") == ["E6"]


async def test_statistics_by_township_and_month(county: tuple[Store, NodeContext, Layout]) -> None:
    store, context, _ = county
    rows = await ledger(store, context, LedgerFilter(date_from="2026-11-01", date_to="2026-11-30"), as_of=AS_OF)
    t01, t02 = group(rows, "township")
    assert (t01.key, t01.volume, t01.answered, t01.on_time, t01.late, t01.on_time_rate) == ("T01", 2, 2, 1, 1, 0.5)
    assert (t01.average_working_days, t01.ratings, t01.satisfaction, t01.complaints) == (5.5, 2, 0.5, 1)
    assert (t02.key, t02.volume, t02.answered, t02.on_time_rate, t02.deemed, t02.extensions) == ("T02", 2, 1, 1.0, 1, 1)
    everything = await ledger(store, context, LedgerFilter(), as_of=AS_OF)
    assert [(s.key, s.volume) for s in group(everything, "month")] == [("2026-10", 1), ("2026-11", 4), ("2026-12", 1)]
    assert [(s.key, s.volume) for s in group(everything, "quarter")] == [("2026Q4", 6)]
    assert total(everything).late == 2
    drawn = series(everything, "month")
    assert drawn.volume == {"T01": [1, 2, 1], "T02": [0, 2, 0]}
    assert drawn.on_time_rate["T01"] == [None, 0.5, 0.0]
    svg = svg_chart(drawn)
    assert (
        svg.startswith("<svg")
        and svg.count('class="bar"') == 4
        and "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


def test_the_chart_legend_names_nodes_and_grows_for_a_large_county() -> None:
    """Each legend entry is the node's name (cut with "…" past ten characters, whole in its tooltip with the id);
    an id with no name is drawn as it is; past two lines of six the picture grows so no entry hides the caption."""
    towns = [f"T{i:02d}" for i in range(1, 15)]
    drawn = Series(
        periods=["2026-11"], townships=towns, volume={t: [1] for t in towns}, on_time_rate={t: [1.0] for t in towns}
    )
    names = {"T01": "城关镇便民服务中心", "T02": "某某某某某某某某乡便民服务中心"}
    svg = svg_chart(drawn, names=names)
    legend = dict(re.findall(r'data-node="([^"]+)"><title>[^<]*</title>([^<]*)</text>', svg))
    assert legend["T01"] == "城关镇便民服务中心" and legend["T02"] == "某某某某某某某某乡…" and legend["T03"] == "T03"
    assert (
        "<title>某某某某某某某某乡便民服务中心 T02</title>" in svg
        and "<title>城关镇便民服务中心 2026-11: 1 件</title>" in svg
    )
    assert 'viewBox="0 0 900 334"' in svg  # three lines of legend: one line (14 px) more than the 320 px
    twelve = towns[:12]
    fits = Series(
        periods=["2026-11"], townships=twelve, volume={t: [1] for t in twelve}, on_time_rate={t: [1.0] for t in twelve}
    )
    assert 'viewBox="0 0 900 320"' in svg_chart(fits)


async def test_exports_have_chinese_headers_and_every_row(county: tuple[Store, NodeContext, Layout]) -> None:
    store, context, _ = county
    rows = await ledger(store, context, LedgerFilter(), as_of=AS_OF)
    text = ledger_csv(rows).decode("utf-8")
    assert text.startswith("\ufeff")  # Excel needs the BOM to read UTF-8 Chinese
    table = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert table[0][:3] == ["办件编号", "回执号", "登记节点"] and len(table) == 7
    e2 = next(r for r in table if r[0] == "E2")
    header = table[0]
    assert e2[header.index("按时办结")] == "否" and e2[header.index("超期工作日")] == "2"
    groups = {"township": [*group(rows, "township"), total(rows)]}
    assert "按乡镇统计" in stats_csv(groups).decode("utf-8")
    book = load_workbook(io.BytesIO(workbook_bytes(rows, groups)))
    assert book.sheetnames == ["台账", "按乡镇统计", "口径说明"]
    sheet = book["台账"]
    assert [c.value for c in sheet[1]] == [name for name, _ in LEDGER_COLUMNS]
    assert sheet.max_row == 7
    stats = book["按乡镇统计"]
    assert [c.value for c in stats[1]][:3] == ["分组", "办件量", "办结量"]
    assert [stats.cell(row=i, column=2).value for i in (2, 3, 4)] == [4, 2, 6]


def test_bad_periods_are_refused_with_a_reason() -> None:
    today = date(2026, 12, 8)
    with pytest.raises(ValueError, match="before it starts"):
        build_filter({"from": "2026-12-01", "to": "2026-11-01"}, default_from=today, default_to=today)
    with pytest.raises(ValueError, match="date like"):
        build_filter({"from": "yesterday"}, default_from=today, default_to=today)
    with pytest.raises(ValueError, match="three years"):
        build_filter({"from": "2000-01-01"}, default_from=today, default_to=today)
    with pytest.raises(ValueError, match="longer than"):
        build_filter({"handler": "x" * 200}, default_from=today, default_to=today)


def test_a_deemed_approval_is_counted_against_the_window_that_accepted_it() -> None:
    """超时默许: the system writes the approval, the accepting window answers for it (seeds 000, 003). Before,
    the ledger's handler (and so the quarterly score) was 系统(电子监察), which could even rank among the best."""
    from functools import reduce

    from protocol.binding import SYSTEM_ACTOR
    from protocol.errand import step
    from sanji.layout import county_layout
    from sanji.office.ledger import ledger_row
    from tests.office.office_kit import Story

    story = Story("E1", "T01V01", "T01").registered("2026-10-08").accepted("2026-10-09", "2026-10-16")
    story.decided("2026-10-20", deemed=True, actor=SYSTEM_ACTOR)
    story.rated("2026-10-21", "不满意").rated("2026-10-22", "满意")
    state = reduce(step, story.actions, None)  # type: ignore[arg-type]
    assert state is not None
    row = ledger_row(
        state,
        story.actions,
        directory=county_layout(1, 1).directory,
        catalogue=None,
        calendar=None,
        as_of=date(2026, 11, 1),
    )
    assert row.deemed and row.handler == "T01-staff"  # the one who accepted it, not the system
    assert row.rating == "不满意"  # the applicant's first rating: a later one never replaces it


def test_the_name_and_the_category_come_from_the_entry_the_errand_was_bound_under() -> None:
    """An errand keeps the entry it was registered under; a catalogue held since that renamed the matter and
    changed its category names neither in the ledger (``protocol.errand.errand_entry``)."""
    from functools import reduce

    import msgspec

    from protocol.errand import ErrandState, step
    from sanji.catalogue import default_catalogue
    from sanji.layout import county_layout
    from sanji.office.ledger import ledger_row

    catalogue = default_catalogue()
    bound = catalogue.get("MZ-003")
    assert bound is not None
    other = "许可" if bound.category != "许可" else "给付"
    renamed = msgspec.structs.replace(bound, name="改名后的事项", category=other)
    held = msgspec.structs.replace(
        catalogue, matters=tuple(renamed if m.code == bound.code else m for m in catalogue.matters)
    )
    story = Story("E1", "T01V01", "T01").registered("2026-10-08").accepted("2026-10-09", "2026-10-16")
    state = reduce(step, story.actions, None)  # type: ignore[arg-type]
    assert state is not None

    def row(state: ErrandState) -> tuple[str, str]:
        made = ledger_row(
            state,
            story.actions,
            directory=county_layout(1, 1).directory,
            catalogue=held,
            calendar=None,
            as_of=date(2026, 11, 1),
        )
        return made.matter_name, made.category

    assert row(msgspec.structs.replace(state, matter_entry=bound)) == (bound.name, bound.category)
    assert row(msgspec.structs.replace(state, matter_entry=None)) == ("改名后的事项", other)  # bound to none


def test_the_volume_axis_reads_whole_counts_each_once() -> None:
    """A peak of 1 read "1 / 0 / 0" (the midpoint rounded to 0); it reads 1 and 0."""
    one = Series(periods=["2026-12"], townships=["T01"], volume={"T01": [1]}, on_time_rate={"T01": [1.0]})
    labels = re.findall(r'text-anchor="end" font-size="11">(\d+)</text>', svg_chart(one))
    assert labels == ["0", "1"]
    four = Series(periods=["2026-12"], townships=["T01"], volume={"T01": [4]}, on_time_rate={"T01": [None]})
    assert re.findall(r'text-anchor="end" font-size="11">(\d+)</text>', svg_chart(four)) == ["0", "2", "4"]


def test_the_phone_drawing_keeps_its_labels_inside_it_and_apart() -> None:
    """The narrow drawing a phone is shown: 13-unit type, two legend entries a line (each ten characters at most,
    inside the 360 units), and a year of weeks labelled every few weeks so no two labels overlap."""
    towns = [f"T{i:02d}" for i in range(1, 6)]
    weeks = [f"2026-W{w:02d}" for w in range(1, 53)]
    drawn = Series(
        periods=weeks, townships=towns, volume={t: [1] * 52 for t in towns}, on_time_rate={t: [1.0] * 52 for t in towns}
    )
    names = {t: "某某某某某某某某乡便民服务中心" for t in towns}
    svg = svg_chart(drawn, names=names, layout=PHONE)
    assert 'class="chart phone"' in svg and 'font-size="11"' not in svg
    width = int(re.search(r'viewBox="0 0 (\d+) ', svg).group(1))  # type: ignore[union-attr]
    legend = [int(x) for x in re.findall(r'<text class="legend" x="(\d+)"', svg)]
    assert len(set(legend)) == 2 and max(legend) + LEGEND_CHARS * PHONE.font <= width, legend
    xs = [float(x) for x in re.findall(r'<text class="period" x="([\d.]+)"', svg)]
    label = len(weeks[0]) * PHONE.font * 0.6
    assert 2 <= len(xs) < len(weeks) and all(b - a >= label for a, b in pairwise(xs)), xs
    desk = svg_chart(drawn, names=names)
    assert 'class="chart desk"' in desk and 'viewBox="0 0 900 320"' in desk
