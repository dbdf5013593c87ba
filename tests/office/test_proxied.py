"""代办件 in the ledgers: an errand a village agent carried on the villager's mandate, whatever its handling kind.

A real county store receives signed batches of three errands registered in November 2026:

* P1 at the village T01V01, the villager absent, on the mandate (委托): 代办件, accepted as a 承诺件;
* P2 at the same village, the applicant came in person: not 代办件;
* P3 a walk-in at the township T01: not 代办件.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from office_kit import Story, seeded_county

from protocol.actions import Applicant, HandOff, Receive, Register
from protocol.errand import PROXIED
from sanji.context import NodeContext
from sanji.layout import county_layout
from sanji.office.export import ledger_csv, stats_csv
from sanji.office.ledger import LedgerFilter
from sanji.office.query import build_filter
from sanji.office.source import ledger
from sanji.office.stats import group, total
from sanji.store import Store

AS_OF = date(2026, 12, 8)


def village_story(errand: str, *, in_person: bool) -> Story:
    story = Story(errand, "T01V01", "T01")
    story.add(
        Register, "T01V01", "2026-11-02", matter="MZ-003", applicant=Applicant(name="李桂兰"), in_person=in_person
    )
    story.add(HandOff, "T01V01", "2026-11-02", to="T01", purpose="submit").add(Receive, "T01", "2026-11-03")
    return story.accepted("2026-11-03", "2026-11-10")


@pytest.fixture
async def county(tmp_path: Path) -> AsyncIterator[tuple[Store, NodeContext]]:
    walk_in = Story("P3", "T01", "T01").registered("2026-11-04").accepted("2026-11-04", "2026-11-11")
    stories = [village_story("P1", in_person=False), village_story("P2", in_person=True), walk_in]
    async with seeded_county(tmp_path / "county.db", stories, county_layout(1, 1)) as held:
        yield held


async def test_the_ledger_knows_a_proxied_errand_beside_its_handling_kind(county: tuple[Store, NodeContext]) -> None:
    store, context = county
    rows = {r.errand: r for r in await ledger(store, context, LedgerFilter(), as_of=AS_OF)}
    assert {e: (r.kind, r.service_kind) for e, r in rows.items()} == {
        "P1": ("承诺件", PROXIED),
        "P2": ("承诺件", ""),
        "P3": ("承诺件", ""),
    }


async def test_filter_and_count_proxied_errands(county: tuple[Store, NodeContext]) -> None:
    store, context = county
    flt = build_filter({"kind": PROXIED}, default_from=date(2026, 11, 1), default_to=AS_OF)
    assert [r.errand for r in await ledger(store, context, flt, as_of=AS_OF)] == ["P1"]
    everything = await ledger(store, context, LedgerFilter(), as_of=AS_OF)
    assert total(everything).proxied == 1
    assert {line.key: line.proxied for line in group(everything, "township")} == {"T01": 1}
    # The village's own ledger counts it too.
    village = await ledger(store, context, LedgerFilter(node="T01V01"), as_of=AS_OF)
    assert (len(village), total(village).proxied) == (2, 1)
    # ... and the downloads say so, in Chinese.
    table = list(csv.reader(io.StringIO(ledger_csv(everything).decode("utf-8-sig"))))
    column = table[0].index("代办件")
    assert {row[0]: row[column] for row in table[1:]} == {"P1": "是", "P2": "否", "P3": "否"}
    by_township = {"township": [*group(everything, "township"), total(everything)]}
    stats = list(csv.reader(io.StringIO(stats_csv(by_township).decode("utf-8-sig"))))
    assert stats[1][-1] == "代办件" and [r[-1] for r in stats[2:4]] == ["1", "1"]
