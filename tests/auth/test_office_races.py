"""The assessment office on a real county with logins required: two decisions on one appeal sent at once, and
entries naming an item or a centre the office does not know.

An adversarial run found both decisions recorded (201 each, the score counting one) and entries under an
item the rules lack (scoring nothing) or for a made-up centre kept. Now the decision's check runs inside the
write transaction that appends it (and its record id is the appeal's, unique in the table): of two sent
at once, by one hub process or two over one database, one is recorded and the other refused 409 as if sent
afterwards. An unknown item, a centre that is not a township of the county, a subject holding an invisible
character (王芳 with a zero-width space inside is not 王芳): 400, Chinese first, nothing recorded.
"""

from __future__ import annotations

import html
import re
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from auth_kit import add, app, bearer, login, prepare, token
from httpx import Response
from litestar import Litestar
from litestar.testing import TestClient

from tests.auth.test_publish_races import at_once  # threads released by one barrier

Client = TestClient[Litestar]
Q = "2026Q4"
API = "/api/office/assessment"


@pytest.fixture
def county_config(tmp_path: Path) -> Path:
    config = prepare(tmp_path, "C", required=True)
    add(config, "监察员", "supervisor")
    add(config, "督查员", "supervisor")  # decides what the other files: no one decides their own appeal
    return config


def appeal_lines(client: Client, auth: dict[str, str], subject: str) -> list[dict[str, Any]]:
    staff = client.get(API, params={"quarter": Q}, headers=auth).json()["staff"]
    (person,) = [s for s in staff if s["name"] == subject]
    return [ln for ln in person["lines"] if ln["source"] == "appeal"]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("processes", [1, 2])
def test_two_decisions_on_one_appeal_at_once_record_one(county_config: Path, processes: int) -> None:
    auth = bearer(token(county_config, "监察员"))
    decider = bearer(token(county_config, "督查员"))
    with TestClient(app(county_config)) as first, TestClient(app(county_config)) as second:
        other = first if processes == 1 else second  # two hub processes: two apps over one database
        for round_ in range(3):
            subject = f"王芳{round_}"
            entry = {"quarter": Q, "target": "staff", "subject": subject, "item": "late", "count": 2}
            assert first.post(f"{API}/entries", json=entry, headers=auth).status_code == 201
            filed = first.post(
                f"{API}/appeals",
                json={"quarter": Q, "target": "staff", "subject": subject, "reason": "迟到系系统故障"},
                headers=auth,
            )
            assert filed.status_code == 201, filed.text
            appeal = filed.json()["id"]
            upheld = {"upheld": True, "points": 4, "part": "attendance", "reason": "情况属实"}
            rejected = {"upheld": False, "reason": "维持原评"}
            url = f"{API}/appeals/{appeal}/decision"
            answers = at_once(
                partial(first.post, url, json=upheld, headers=decider),
                partial(other.post, url, json=rejected, headers=decider),
            )
            assert sorted(a.status_code for a in answers) == [201, 409], [(a.status_code, a.text) for a in answers]
            won = next(a for a in answers if a.status_code == 201).json()
            lost = next(a for a in answers if a.status_code == 409).json()
            assert lost["error"] == "office_refused" and lost["message_zh"] == f"申诉 {appeal} 已经作出决定", lost
            for client in (first, other):  # what the winner was told is what every process reads
                listed = client.get(f"{API}/appeals", params={"quarter": Q}, headers=auth).json()
                assert len(listed) == round_ + 1
                (held,) = [a for a in listed if a["id"] == appeal]
                assert held["status"] == won["status"]
                lines = appeal_lines(client, auth, subject)
                assert [ln["points"] for ln in lines] == ([4] if won["status"] == "upheld" else [])
            later = other.post(f"{API}/appeals/{appeal}/decision", json=rejected, headers=decider)
            assert later.status_code == 409 and later.json()["message_zh"] == lost["message_zh"]


@pytest.mark.timeout(120)
def test_an_entry_names_an_item_the_rules_hold_and_a_real_centre(county_config: Path) -> None:
    auth = bearer(token(county_config, "监察员"))
    with TestClient(app(county_config)) as client:

        def entries() -> int:
            return sum(len(s["lines"]) for s in client.get(API, params={"quarter": Q}, headers=auth).json()["staff"])

        def post(**fields: object) -> Response:
            body = {"quarter": Q, "target": "staff", "subject": "王芳", "item": "late"} | fields
            return client.post(f"{API}/entries", json=body, headers=auth)

        before = entries()
        nope = post(item="nope")
        assert nope.status_code == 400, nope.text
        body = nope.json()
        assert body["error"] == "office_invalid" and "nope" in body["message"]
        assert body["message_zh"] == "考核细则（第1版）中没有工作人员考核项目“nope”", body
        wrong_target = post(item="banner_centre")  # a centre's item, for a person
        assert wrong_target.status_code == 400 and "banner_centre" in wrong_target.json()["message_zh"]
        for invisible in ("\u200b", "\u3000\u200b\u200d", "\ufeff\u2800", "\u3164", "王\u200b芳"):
            r = post(subject=invisible)
            assert r.status_code == 400, (invisible, r.text)
            assert r.json()["message_zh"] == "考核对象不能含有不可见字符"
        assert post(subject="   ").json()["message_zh"] == "请填写考核对象"  # empty once trimmed, as before
        made_up = post(target="centre", subject="不存在的中心", item="banner_centre")
        assert made_up.status_code == 400 and "不存在的中心" in made_up.json()["message_zh"]
        village = post(target="centre", subject="T01V01", item="banner_centre")  # a village is no 便民服务中心
        assert village.status_code == 400
        assert entries() == before  # nothing was recorded
        centres = client.get(API, params={"quarter": Q}, headers=auth).json()["centres"]
        assert not [c for c in centres if c["centre"] not in ("T01", "T02")]  # no made-up centre is ranked

        # what the office knows is recorded and scores
        assert post(target="centre", subject="T01", item="banner_centre").status_code == 201
        staff = post(subject="新来的 张三", count=1)  # staff are named freely: the county holds no township's accounts
        assert staff.status_code == 201, staff.text
        names = [s["name"] for s in client.get(API, params={"quarter": Q}, headers=auth).json()["staff"]]
        assert "新来的 张三" in names

        # an appeal for a centre names a real one too
        bad_appeal = client.post(
            f"{API}/appeals",
            json={"quarter": Q, "target": "centre", "subject": "T99", "reason": "复核"},
            headers=auth,
        )
        assert bad_appeal.status_code == 400 and "T99" in bad_appeal.json()["message_zh"]


@pytest.mark.timeout(120)
def test_the_screen_says_why_an_unknown_item_was_refused_chinese_first(county_config: Path) -> None:
    with TestClient(app(county_config)) as client:
        csrf = login(client, "监察员")
        form = {"_csrf_token": csrf, "quarter": Q, "target": "staff", "subject": "王芳", "item": "nope", "count": "1"}
        r = client.post("/office/assessment/entries", data=form, follow_redirects=False)
        assert r.status_code == 400 and "location" not in r.headers  # the screen again, the refusal on it
        found = re.search(r'<p class="error" role="alert" id="problem">(.*?)</p>', r.text, re.S)
        assert found, r.text
        assert html.unescape(found.group(1)).startswith("考核细则（第1版）中没有工作人员考核项目“nope”"), found
        r = client.post("/office/assessment/entries", data=form | {"item": "late"}, follow_redirects=False)
        assert "done=entry" in r.headers["location"]


@pytest.mark.timeout(120)
def test_no_one_raises_a_score_by_appeal(county_config: Path) -> None:
    """A probe with a supervisor's login filed an appeal about itself and upheld it with 100 points and no part:
    bonus 100, total 200, rank 1. An appeal concerns someone the quarter scores, is decided by someone else, and
    gives back at most the points deducted in the part it names, once."""
    filer = bearer(token(county_config, "监察员"))
    decider = bearer(token(county_config, "督查员"))
    with TestClient(app(county_config)) as client:

        def appeal(subject: str, headers: dict[str, str]) -> Response:
            body = {"quarter": Q, "target": "staff", "subject": subject, "reason": "复核"}
            return client.post(f"{API}/appeals", json=body, headers=headers)

        def decide(appeal_id: str, headers: dict[str, str], **fields: object) -> Response:
            body = {"upheld": True, "reason": "属实"} | fields
            return client.post(f"{API}/appeals/{appeal_id}/decision", json=body, headers=headers)

        itself = appeal("监察员", filer)  # no score of its own to contest
        assert itself.status_code == 400 and itself.json()["error"] == "office_invalid", itself.text
        assert "没有“监察员”的考核得分" in itself.json()["message_zh"]
        entry = {"quarter": Q, "target": "staff", "subject": "王芳", "item": "late", "count": 2}  # attendance -4
        assert client.post(f"{API}/entries", json=entry, headers=filer).status_code == 201
        filed = appeal("王芳", filer)
        assert filed.status_code == 201, filed.text
        ap = filed.json()["id"]
        own = decide(ap, filer, points=4, part="attendance")
        assert own.status_code == 409 and own.json()["message_zh"].startswith("申诉不能由提出人或被考核人本人复核")
        no_part = decide(ap, decider, points=100, part="")
        assert no_part.status_code == 400 and "考核部分" in no_part.json()["message_zh"], no_part.text
        too_many = decide(ap, decider, points=100, part="attendance")
        assert too_many.status_code == 409 and "最多退还" in too_many.json()["message_zh"], too_many.text
        other_part = decide(ap, decider, points=1, part="conduct")  # nothing was deducted there
        assert other_part.status_code == 409, other_part.text
        assert decide(ap, decider, points=3, part="attendance").status_code == 201
        again = appeal("王芳", filer).json()["id"]
        over = decide(again, decider, points=2, part="attendance")  # 4 deducted, 3 given back: 1 left
        assert over.status_code == 409 and "1分可退还" in over.json()["message_zh"], over.text
        assert decide(again, decider, points=1, part="attendance").status_code == 201
        staff = client.get(API, params={"quarter": Q}, headers=filer).json()["staff"]
        (wang,) = [s for s in staff if s["name"] == "王芳"]
        assert wang["bonus"] == 0 and wang["total"] == 100 and wang["parts"]["attendance"] == 20
        assert "监察员" not in {s["name"] for s in staff}
        # a centre: an upheld appeal offsets its deductions, never a bonus beyond them
        centre = {"quarter": Q, "target": "centre", "subject": "T01", "reason": "复核"}
        first = client.post(f"{API}/appeals", json=centre, headers=filer).json()["id"]
        assert decide(first, decider, points=5).status_code == 409  # nothing deducted from T01 yet
        late = {"quarter": Q, "target": "centre", "subject": "T01", "item": "staff_late", "count": 2}
        assert client.post(f"{API}/entries", json=late, headers=filer).status_code == 201  # -2
        assert decide(first, decider, points=2, part="results").status_code == 201  # a centre has no parts
        centres = client.get(API, params={"quarter": Q}, headers=filer).json()["centres"]
        (t01,) = [c for c in centres if c["centre"] == "T01"]
        assert (t01["deductions"], t01["bonus"], t01["total"]) == (0, 0, 100), t01
