"""督办 with an answer due, through real node processes: the county urges, the township answers.

The urging goes down to the township by the nodes' own sync and shows on its home page (worklist
mark and notice) until answered; refusals come back with their stable codes from whichever desk is
not allowed; the answer goes up and the county's supervision screen lists it as answered, with its
text. Every node on the path ends with the same digest.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.e2e.process_kit import prepared, running
from tests.e2e.urging_kit import TOWN, VILLAGE, C, Urged, kinds

pytestmark = pytest.mark.processes

URGING_TEXT = "群众反映进度慢，请五个工作日内办结并答复"
ANSWER_TEXT = "已补充入户核查，预计本周五前办结"


@pytest.fixture
async def county(tmp_path: Path) -> AsyncIterator[Urged]:
    cluster = prepared(tmp_path)
    async with running(cluster, Urged(cluster)) as kit:
        yield kit


def urgings_row(page: str) -> str:
    found = re.search(r'<tr data-urging="[^"]+" data-status="([a-z]+)">(.*?)</tr>', page, re.S)
    assert found, "the supervision screen lists the urging"
    return found.group(1) + " " + html.unescape(found.group(2))


async def test_county_urges_the_township_answers_and_the_county_sees_it(county: Urged) -> None:
    errand = await county.accepted_errand()
    # only the county urges with an answer due, and never with a date in the past
    assert await county.refused(TOWN, errand, "supervise", text=URGING_TEXT, answer_days=3) == "urging_level"
    yesterday = (date.today() - timedelta(days=2)).isoformat()
    assert await county.refused(C, errand, "supervise", text=URGING_TEXT, answer_by=yesterday) == "urging_answer_by"
    # nobody answers an urging that does not exist
    assert await county.refused(TOWN, errand, "answer_urging", text=ANSWER_TEXT) == "no_open_urging"

    await county.act(C, errand, "supervise", text=URGING_TEXT, answer_days=5)
    urged = await county.wait(TOWN, errand, lambda e: "supervise" in kinds(e), "urged")
    urging = next(h for h in urged["history"] if h["kind"] == "supervise")
    assert (urging["to"], urging["window"], urging["node"]) == (TOWN, "社会救助窗口", C)
    assert urging["answer_by"] > date.today().isoformat()

    home = await county.page(TOWN, "/", "督办 待答复")
    assert urging["answer_by"] in home and 'data-kind="urging"' in home and URGING_TEXT in home
    assert "督办 待答复" not in (await county.http[C].get("/")).text  # only the desk urged is told
    assert urgings_row(await county.page(C, "/supervision", URGING_TEXT)).startswith("open ")
    listed = await county.get(TOWN, "/api/urgings", to=TOWN, status="open")
    assert [(u["id"], u["errand"], u["text"], u["answer_by"]) for u in listed["items"]] == [
        (urging["id"], errand, URGING_TEXT, urging["answer_by"])
    ]
    assert listed["counts"] == {"open": 1, "answered": 0, "overdue": 0}
    assert (await county.get(TOWN, "/api/urgings", status="answered"))["items"] == []

    # the village holds the errand but was not urged
    await county.wait(VILLAGE, errand, lambda e: "supervise" in kinds(e), "urged (at the village)")
    assert await county.refused(VILLAGE, errand, "answer_urging", text=ANSWER_TEXT) == "urging_not_addressed"

    await county.act(TOWN, errand, "answer_urging", text=ANSWER_TEXT)
    assert await county.refused(TOWN, errand, "answer_urging", text="再答一次") == "no_open_urging"
    again = {"text": "再答一次", "urging": urging["id"]}
    assert await county.refused(TOWN, errand, "answer_urging", **again) == "urging_answered"
    home = (await county.http[TOWN].get("/")).text
    assert "督办 待答复" not in home

    await county.wait(C, errand, lambda e: "answer_urging" in kinds(e), "answered (at the county)")
    row = urgings_row(await county.page(C, "/supervision", ANSWER_TEXT))
    assert row.startswith("answered ") and "已答复" in row and ANSWER_TEXT in row
    answered = (await county.get(C, "/api/urgings", status="answered"))["items"]
    assert [(u["id"], u["answer"], u["to"]) for u in answered] == [(urging["id"], ANSWER_TEXT, TOWN)]
    bad = await county.http[C].get("/api/urgings", params={"status": "lost", "limit": "0"})
    assert bad.status_code == 400

    digests = [(await county.clients[n].errand(errand))["digest"] for n in (C, TOWN)]
    await county.wait(VILLAGE, errand, lambda e: e["digest"] == digests[0], "the same digest")
    assert digests[0] == digests[1]
