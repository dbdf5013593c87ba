"""电子监察 at a county that has answered more errands than one report reads.

Every errand not yet answered is read, however many answered ones the store holds, and the figures
about finished work cover the newest answered errands, saying how many of how many. (It used to read
the oldest errands first, up to the bound, so past it the newest — the open ones among them — fell out.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from office_kit import Story, seeded_county

import sanji.web.desk_api
from sanji.context import NodeContext
from sanji.layout import Layout, county_layout
from sanji.store import Store
from sanji.web.desk_api import supervision_report

ANSWERED = [f"D{i}" for i in range(1, 6)]  # registered on five days in a row, each delivered without review


def stories() -> list[Story]:
    out = []
    for day, errand in enumerate(ANSWERED, start=2):
        story = (
            Story(errand, "T01", "T01").registered(f"2026-11-{day:02d}").accepted(f"2026-11-{day:02d}", "2026-11-20")
        )
        out.append(story.decided(f"2026-11-{day + 1:02d}").delivered_here(f"2026-11-{day + 1:02d}"))
    for errand in ("O1", "O2"):  # registered first, still open, due long ago
        out.append(Story(errand, "T01", "T01").registered("2026-10-12").accepted("2026-10-12", "2026-10-16"))
    out.append(Story("N1", "T01", "T01").registered("2026-11-25"))  # registered, not accepted: no clock yet
    return out


@pytest.fixture
async def county(tmp_path: Path) -> AsyncIterator[tuple[Store, NodeContext, Layout]]:
    layout = county_layout(1, 1)
    async with seeded_county(tmp_path / "county.db", stories(), layout) as (store, context):
        yield store, context, layout


async def test_every_open_errand_and_the_newest_answered_ones_are_supervised(
    county: tuple[Store, NodeContext, Layout], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, context, _ = county
    whole = await supervision_report(store, context)
    assert (whole.answered_counted, whole.answered_total) == (5, 5)
    assert set(whole.missing_steps) == set(ANSWERED)

    monkeypatch.setattr(sanji.web.desk_api, "SUPERVISED_AT_MOST", 3)  # fewer than the store holds of either kind
    report = await supervision_report(store, context, sample=5)
    assert report.open_errands == 3
    assert sorted(e.id for e in report.overdue) == ["O1", "O2"] and report.by_level == {"red": 2, "none": 1}
    assert whole.by_level == {"red": 2, "none": 1} and whole.open_errands == 3  # every open errand counted once
    assert report.by_township == {"T01": {"accepted": 2, "registered": 1}}
    assert (report.answered_counted, report.answered_total) == (3, 5)
    assert set(report.missing_steps) == {"D3", "D4", "D5"}  # the newest three, not the oldest
    assert sorted(report.callback_sample) == ["D3", "D4", "D5"]
