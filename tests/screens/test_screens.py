"""Desk screens: plain HTML forms that post, redirect, and show refusals in Chinese and English."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from screens_kit import MZ003_ALL, act, make_app, prepared_node, register

import sanji.web.desk_api
from protocol.deadlines import business_today
from protocol.errand import outcome_label
from protocol.receipts import is_valid, make_receipt
from protocol.session import NodeReport
from sanji.context import NodeContext
from sanji.keys import read_directory, read_key
from sanji.store import Store, open_database
from sanji.web.screens import light
from sanji.web.views import Deadline

Client = TestClient[Litestar]


def count(client: Client) -> int:
    return int(client.get("/api/errands").json()["total"])


# -- deadline lights ----------------------------------------------------------------------------


def test_lights_are_yellow_then_red_with_days_over() -> None:
    assert light(Deadline(due="2026-03-16", level="red", days_over=4))["zh"] == "红灯 超期4个工作日"
    assert light(Deadline(due="2026-03-16", level="yellow", days_left=2))["zh"] == "黄灯 剩2个工作日"
    assert light(Deadline(due="2026-03-16", level="normal", days_left=9))["cls"] == "green"
    assert light(Deadline(due="2026-03-16", level="paused"))["zh"].startswith("停表")
    assert light(None)["cls"] == "none"


@pytest.fixture
def frozen_town(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Client, list[date]]]:
    """A town whose calendar day reads ``today[0]`` (from the real day on); its actions are dated as signed, since the
    rule checks an acceptance's deadline against the day of its signed time."""
    today = [business_today(datetime.now(UTC))]
    monkeypatch.setattr(NodeContext, "today", lambda self: today[0])
    _, settings = prepared_node(tmp_path, "T01")
    with TestClient(make_app(settings)) as client:
        yield client, today


def test_home_worklist_turns_yellow_then_red_with_days_over(frozen_town: tuple[Client, list[date]]) -> None:
    town, today = frozen_town
    errand_id = register(town, in_person=True)
    act(town, errand_id, "accept", window="民政窗口")
    due = date.fromisoformat(town.get(f"/api/errands/{errand_id}").json()["deadline"]["due"])
    assert due > today[0]
    page = town.get("/").text
    assert f'href="/errands/{errand_id}"' in page and "正常 剩" in page
    # where each errand is, by the centre's name (not "T01"); no internal version number to puzzle over
    assert 'data-label="经办节点 Custodian">城关镇便民服务中心 <span class="muted">T01</span></td>' in page
    assert 'data-label="经办节点 Custodian">T01<' not in page and 'data-label="版本 Version"' not in page
    today[0] = due
    page = town.get("/").text
    assert 'class="light yellow"' in page and "黄灯 剩" in page
    today[0] = due + timedelta(days=20)
    page = town.get("/").text
    assert 'class="light red"' in page
    assert re.search(r"红灯 超期\d+个工作日", page) and "件超期 overdue" in page
    detail = town.get(f"/errands/{errand_id}").text
    assert re.search(r"红灯 超期\d+个工作日", detail)
    board = town.get("/supervision").text
    assert '红灯 <span lang="en">overdue</span>: 1' in board
    overdue = board[board.index("超期办件") : board.index("临期预警")]
    assert f'href="/errands/{errand_id}"' in overdue and "民政窗口" in overdue  # the window that answers for it
    board = town.get("/supervision", params={"township": "T01"}).text
    assert f'href="/errands/{errand_id}"' in board and 'option value="T01" selected' in board
    assert f'href="/errands/{errand_id}"' not in town.get("/supervision", params={"window": "无此窗口"}).text
    assert town.get("/supervision", params={"department": "x" * 5000}).status_code == 200


def test_supervision_counts_errands_by_township_and_stage(frozen_town: tuple[Client, list[date]]) -> None:
    town, _ = frozen_town
    accepted = register(town, in_person=True)
    act(town, accepted, "accept")
    waiting = register(town, in_person=True)
    page = town.get("/supervision").text
    row = re.search(r'<tr data-row="T01">(.*?)</tr>', page, re.S)
    assert row, page
    cells = dict(re.findall(r'data-stage="(\w+)">(?:<strong>|<a [^>]*>)?(\d+|—)', row.group(1)))
    assert cells["accepted"] == "1" and cells["total"] == "2", cells
    assert sum(int(v) for k, v in cells.items() if k != "total" and v != "—") == 2
    # each count opens those errands: the ledger of the township's errands at that stage
    link = re.search(r'data-stage="accepted"><a href="(/office/ledger\?[^"]+)"', row.group(1))
    assert link, row.group(1)
    ledger = town.get(link.group(1).replace("&amp;", "&")).text
    assert accepted in ledger and f"/errands/{waiting}" not in ledger
    # the lights are explained: what red and yellow mean, with the number of working days
    legend = re.search(r'id="light-legend">(.*?)</p>', page, re.S)
    assert legend and "红灯：已过办结期限" in legend.group(1) and "剩余不超过 3 个工作日" in legend.group(1)
    assert 'id="by-department"' in page and 'id="deemed-approvals"' in page
    report = town.get("/api/supervision").json()
    assert sum(report["by_township"]["T01"].values()) == 2 and report["by_township"]["T01"]["accepted"] == 1
    assert report["by_department"] == {} and report["deemed"] == []


# -- the errand page ----------------------------------------------------------------------------


def test_errand_page_shows_state_history_documents_and_steps(village: Client) -> None:
    errand_id = register(village)
    r = village.get(f"/errands/{errand_id}")
    assert r.status_code == 200
    page = r.text
    assert "临时救助申请" in page and "张秀英" in page and "已登记 registered" in page
    assert "T01V01" in page and "李建国" in page and "代办员" in page
    assert re.search(r"<td[^>]*>\d{4}-\d{2}-\d{2} \d{2}:\d{2}</td><td[^>]*>登记 registered", page)
    assert f'href="/print/{errand_id}/receipt"' in page and 'href="/print/guide/MZ-003"' in page
    steps = set(re.findall(r'name="kind" value="([a-z_]+)"', page))
    assert {"submit", "withdraw", "note", "supply"} <= steps
    assert not steps & {"decide", "deliver"}
    assert f'action="/errands/{errand_id}/act"' in page and 'method="post"' in page
    # The village accepts MZ-003 itself where the catalogue lists the village (小事不出村) ...
    assert {"accept", "not_accept"} <= steps
    # ... and not a matter only the township accepts.
    other = register(village, matter="MZ-001", materials=("申请书", "身份证复印件", "户口簿复印件"))
    page = village.get(f"/errands/{other}").text
    assert not set(re.findall(r'name="kind" value="([a-z_]+)"', page)) & {"accept", "not_accept", "decide", "deliver"}


def test_acting_for_is_not_asked_at_a_village_station(village: Client) -> None:
    """代岗 is a 窗口B岗's, and no B post works at a village station (sanji.auth.roles.WORKS_AT): an agent's forms
    do not ask for it (before, every step and the registration did, and anything typed was refused)."""
    errand_id = register(village)
    assert 'name="acting_for"' not in village.get(f"/errands/{errand_id}").text
    page = village.get("/register", params={"matter": "MZ-003"}).text
    assert 'name="acting_for"' not in page
    assert "<h2>代办登记" in page and "收件登记" not in page  # the agent registers on the villager's behalf


def test_a_township_window_receives_walk_ins_and_is_asked_acting_for(town: Client) -> None:
    walk_in = register(town, in_person=True)
    page = town.get(f"/errands/{walk_in}").text
    assert 'name="acting_for"' in page and "代岗（B岗代A岗时填A岗姓名）" in page
    page = town.get("/register", params={"matter": "MZ-003"}).text
    assert 'name="acting_for"' in page and "代岗（B岗代A岗时填A岗姓名）" in page
    # a walk-in at the window is received (收件), not registered on anyone's behalf (代办): the menu says so too
    assert "<h2>收件登记" in page and "代办登记" not in page


def test_unknown_errand_is_a_404_page(village: Client) -> None:
    r = village.get("/errands/T01V01-0000000000000000")
    assert r.status_code == 404 and "本节点没有编号为" in r.text and "is not held at T01V01" in r.text


def test_form_posts_and_redirects_back_with_a_flash(village: Client) -> None:
    errand_id = register(village)
    r = act(village, errand_id, "submit", text="今日带到镇上", expected_version="1")
    page = village.get(r.headers["location"]).text
    assert "已完成：报送乡镇" in page and "已报送 submitted" in page and "待签收" in page
    assert "今日带到镇上" in page  # the history shows the note of the hand-off
    # the name typed once is remembered for the next form at this desk
    assert 'name="actor" value="王晓红"' in page


def test_refusal_is_shown_in_chinese_and_english_and_keeps_the_input(village: Client) -> None:
    # 低保 is accepted at the township only (MZ-003's levels include the village: 小事不出村).
    errand_id = register(village, matter="MZ-001", materials=("申请书", "身份证复印件", "户口簿复印件"))
    r = village.post(
        f"/errands/{errand_id}/act",
        data={"kind": "accept", "actor": "李建国", "role": "代办员", "text": "村里写的备注"},
        follow_redirects=False,
    )
    assert r.status_code == 409
    assert "受理或不予受理只能由乡镇便民服务中心作出" in r.text and "at the township" in r.text
    # the hint under it Chinese first too, not an English line alone
    hint = r.text.split("<span data-hint>", 1)[1].split("</span></span>", 1)[0]
    assert hint.startswith('办件规则此时不允许在本节点进行此操作 <span lang="en">The errand'), hint
    assert "村里写的备注" in r.text and 'value="李建国"' in r.text
    assert village.get(f"/api/errands/{errand_id}").json()["version"] == 1


def test_missing_field_is_a_400_that_keeps_what_was_typed(town: Client) -> None:
    errand_id = register(town, in_person=True)
    r = town.post(
        f"/errands/{errand_id}/act",
        data={"kind": "not_accept", "actor": "王晓红", "role": "窗口工作人员", "reasons": "  "},
        follow_redirects=False,
    )
    assert r.status_code == 400
    assert "请填写不予受理理由" in r.text and 'value="王晓红"' in r.text
    r = town.post(
        f"/errands/{errand_id}/act",
        data={"kind": "accept", "actor": "王晓红", "role": "窗口", "provisional": "困难情况证明材料"},
        follow_redirects=False,
    )
    assert r.status_code == 400 and "须填写承诺补齐日期" in r.text and "困难情况证明材料" in r.text
    assert town.get(f"/api/errands/{errand_id}").json()["version"] == 1


def test_stale_page_is_refused(village: Client) -> None:
    errand_id = register(village)
    r = village.post(
        f"/errands/{errand_id}/act",
        data={"kind": "submit", "actor": "李建国", "role": "代办员", "expected_version": "7"},
        follow_redirects=False,
    )
    assert r.status_code == 409 and "办件已被更新" in r.text and "changed meanwhile" in r.text


def test_names_are_escaped_on_screens(village: Client) -> None:
    errand_id = register(village, name="<script>alert(1)</script>")
    for path in ("/", f"/errands/{errand_id}"):
        page = village.get(path).text
        assert "<script>alert(1)" not in page and "&lt;script&gt;" in page


# -- registration -------------------------------------------------------------------------------


def test_register_offers_the_catalogue_then_the_matters_checklist(village: Client) -> None:
    page = village.get("/register").text
    assert '<select id="matter" name="matter"' in page and 'value="MZ-001"' in page and 'method="get"' in page
    page = village.get("/register?matter=MZ-003").text
    for material in ("申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料"):
        assert f'name="materials" value="{material}"' in page
    assert page.count("主件 main") == 3 and page.count("副件 secondary") == 1
    # The mandate and the applicant's presence are ticked by the agent, never beforehand.
    assert 'name="mandate" value="1" >' in page and 'name="in_person" value="1" >' in page
    assert village.get("/register?matter=NOPE").text.count("不在目录中") == 1


def test_precheck_is_shown_before_saving_and_nothing_is_saved(village: Client) -> None:
    form = {
        "matter": "MZ-003",
        "applicant_name": "王大妈",
        "applicant_phone": "13900001111",
        "materials": ["申请书"],
        "materials_other": "低保证复印件",
        "mandate": "1",
        "actor": "李建国",
        "role": "代办员",
    }
    r = village.post("/register", data={**form, "step": "check"}, follow_redirects=False)
    assert r.status_code == 200
    assert "预审结果" in r.text and "缺少主件" in r.text and "身份证复印件、户口簿复印件" in r.text
    assert "缺少副件" in r.text and "困难情况证明材料" in r.text
    assert 'value="王大妈"' in r.text and 'value="13900001111"' in r.text and "低保证复印件" in r.text
    assert 'value="申请书" checked' in r.text
    r = village.post("/register", data={**form, "step": "save"}, follow_redirects=False)
    assert r.status_code == 400 and "仍然登记" in r.text
    assert count(village) == 0
    r = village.post("/register", data={**form, "step": "review", "confirm": "1"}, follow_redirects=False)
    assert r.status_code == 200 and "确认登记" in r.text and count(village) == 0  # reviewed, not yet signed
    r = village.post("/register", data={**form, "step": "confirm", "confirm": "1"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/receipt")
    assert count(village) == 1
    materials = village.get(r.headers["location"]).text
    assert "<li>低保证复印件</li>" in materials


def test_complete_materials_save_without_confirmation(village: Client) -> None:
    r = village.post(
        "/register",
        data={
            "matter": "MZ-003",
            "applicant_name": "王大妈",
            "materials": ["申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料"],
            "mandate": "1",
            "actor": "李建国",
            "role": "代办员",
            "step": "confirm",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303


def test_in_person_matter_cannot_be_proxied(village: Client) -> None:
    r = village.post(
        "/register",
        data={
            "matter": "RS-004",
            "applicant_name": "王大妈",
            "materials": ["身份证复印件", "社会保障卡"],
            "mandate": "1",
            "actor": "李建国",
            "role": "代办员",
            "step": "save",
            "confirm": "1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 400
    assert "不能代办" in r.text and "in person" in r.text
    assert count(village) == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("applicant_id_number", "430621195007307797", "校验位不符"),
        ("applicant_id_number", "12345", "应为18位"),
        ("applicant_phone", "138-abc", "电话只能包含"),
        ("applicant_name", "", "请填写申请人姓名"),
        ("actor", "", "请填写代办员/经办人姓名"),
        ("mandate", "", "代办须有申请人委托"),
    ],
)
def test_bad_registration_input_is_explained_and_kept(village: Client, field: str, value: str, message: str) -> None:
    form = {
        "matter": "MZ-003",
        "applicant_name": "赵六",
        "applicant_id_number": "",
        "applicant_phone": "13900001111",
        "materials": ["申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料"],
        "summary": "家中失火，急需救助",
        "mandate": "1",
        "actor": "李建国",
        "role": "代办员",
        "step": "save",
        field: value,
    }
    r = village.post("/register", data={k: v for k, v in form.items() if v != ""}, follow_redirects=False)
    assert r.status_code == 400
    assert message in r.text and "请更正标红的内容" in r.text
    assert "家中失火，急需救助" in r.text and 'value="困难情况证明材料" checked' in r.text
    if value:
        assert value in r.text
    assert count(village) == 0


def test_register_without_a_catalogue_takes_a_typed_matter_code(bare_village: Client) -> None:
    page = bare_village.get("/register").text
    assert "尚未收到事项目录" in page and '<input type="text" id="matter"' in page
    r = bare_village.post(
        "/register",
        data={
            "matter": "MZ-003",
            "applicant_name": "孙七",
            "mandate": "1",
            "actor": "李建国",
            "role": "代办员",
            "step": "confirm",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and count(bare_village) == 1


def test_the_county_does_not_register(tmp_path: Path) -> None:
    _, settings = prepared_node(tmp_path, "C", catalogue=False)
    with TestClient(make_app(settings)) as county:
        r = county.get("/register")
        assert r.status_code == 403 and "县级政务服务中心不登记办件" in r.text
        r = county.post("/register", data={"matter": "MZ-003"}, follow_redirects=False)
        assert r.status_code == 403 and count(county) == 0
        assert county.get("/supervision").status_code == 200


# -- lookup and supervision ---------------------------------------------------------------------


def test_a_refused_benefit_is_said_as_not_granted_never_as_not_licensed(town: Client) -> None:
    """临时救助 is a benefit (给付), not a licence: its refusal reads 不予办理 wherever it is shown, as its decision
    document is titled, on the desk, the ledger and the villager's lookup; a licence's stays 不予许可."""
    errand_id = register(town, in_person=True, applicant_phone="13812345678")
    act(town, errand_id, "accept")
    act(town, errand_id, "decide", outcome="refused", reasons="家庭收入超过本县临时救助标准")
    receipt = town.get(f"/api/errands/{errand_id}").json()["receipt"]
    looked_up = town.get("/lookup", params={"receipt": receipt, "code": "5678"}).text
    assert "不予办理 refused" in looked_up and "不予许可" not in looked_up
    assert town.get(f"/api/lookup/{receipt}", params={"code": "5678"}).json()["outcome"] == "不予办理 refused"
    assert "不予办理" in town.get(f"/errands/{errand_id}").text.split("办理记录")[0]
    ledger = town.get("/office/ledger").text
    assert "不予办理" in ledger and "不予许可" not in ledger
    assert outcome_label("refused", "许可") == "不予许可 refused" == outcome_label("refused")  # a licence, or unknown


def test_public_lookup_shows_status_but_no_personal_data(village: Client) -> None:
    errand_id = register(village, applicant_id_number="11010519491231002X", applicant_phone="13812345678")
    receipt = village.get(f"/api/errands/{errand_id}").json()["receipt"]
    assert village.get("/lookup", params={"receipt": receipt.lower()}).status_code == 400  # needs a second factor
    r = village.get("/lookup", params={"receipt": receipt.lower(), "code": "5678"})
    assert r.status_code == 200
    assert receipt in r.text and "临时救助申请" in r.text and "已登记 registered" in r.text
    for private in ("张秀英", "11010519491231002X", "13812345678", "李建国"):
        assert private not in r.text
    bad = receipt[:-1] + ("0" if receipt[-1] != "0" else "1")
    r = village.get("/lookup", params={"receipt": bad, "code": "5678"})
    assert r.status_code == 400 and "逐位核对" in r.text  # a slip in a number of the right shape
    r = village.get("/lookup", params={"receipt": "张秀英", "code": "5678"})
    assert r.status_code == 400 and "这不是回执号" in r.text and "逐位核对" not in r.text  # no number at all
    # the example the form shows (and the refusal quotes) is a number that checks out: typed as shown, it is no typo
    example = re.search(r'id="receipt"[^>]*placeholder="([^"]+)"', village.get("/lookup").text)
    assert example is not None and is_valid(example.group(1)) and example.group(1) in r.text
    unknown = make_receipt("T01V01", date(2026, 1, 5), 999)
    r = village.get("/lookup", params={"receipt": unknown, "code": "5678"})
    assert r.status_code == 404 and "本站没有该办件" in r.text
    assert village.get("/lookup").status_code == 200


def test_supervision_screen_renders_the_api_data(town: Client) -> None:
    first = register(town, in_person=True)
    register(town, in_person=True)
    act(town, first, "accept")
    api = town.get("/api/supervision").json()
    r = town.get("/supervision")
    assert r.status_code == 200
    match = re.search(r"在办件 <span lang=\"en\" class=\"alt\">Open errands</span></th><td>(\d+) 件", r.text)
    assert match and int(match.group(1)) == api["open_errands"] == 2  # a count with its unit
    for heading in ("超期办件", "临期预警", "环节缺失", "投诉", "回访抽样"):
        assert heading in r.text
    assert town.get("/supervision", params={"sample": "abc", "seed": "x" * 100}).status_code == 200
    # an approval that skipped 承办 and 审核 is named as a person names it: its receipt and its matter, not its id
    act(town, first, "decide", outcome="approved")
    act(town, first, "deliver", confirmed_by="张秀英", signature="纸质送达回证已签字")
    receipt = town.get(f"/api/errands/{first}").json()["receipt"]
    page = town.get("/supervision").text
    row = re.search(rf'<tr data-errand="{re.escape(first)}">(.*?)</tr>', page, re.S)
    assert row and f">{receipt}</a>" in row.group(1) and "临时救助申请" in row.group(1), page
    assert f">{first}</a>" not in page


def test_changing_the_matter_keeps_the_form_and_swaps_the_checklist(village: Client) -> None:
    r = village.post(
        "/register",
        data={"matter": "MZ-001", "applicant_name": "周八", "materials": ["申请书"], "step": "choose", "mandate": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 200 and "请更正" not in r.text
    assert 'value="周八"' in r.text and 'name="materials" value="家庭收入及财产状况声明"' in r.text
    assert 'value="申请书" checked' in r.text and count(village) == 0


def test_review_shows_what_will_be_signed_and_back_to_edit_keeps_it(village: Client) -> None:
    form = {
        "matter": "MZ-003",
        "applicant_name": "王大妈",
        "applicant_phone": "13900001111",
        "materials": ["申请书", "身份证复印件", "户口簿复印件"],
        "materials_other": "低保证复印件\n病历",
        "summary": "第一行\n第二行",
        "mandate": "1",
        "actor": "李建国",
        "role": "代办员",
    }
    r = village.post("/register", data={**form, "step": "review"}, follow_redirects=False)
    assert r.status_code == 200 and count(village) == 0
    review = r.text
    assert 'id="review-applicant"><b>王大妈</b>' in review and "临时救助" in review
    assert "已签委托书" in review and "代办" in review and "承诺件" in review
    assert "申请书、身份证复印件、户口簿复印件" in review and "低保证复印件、病历" in review
    assert "困难情况证明材料" in review.split('id="review-missing"')[1].split("</tr>")[0]  # missing secondary shown
    assert 'value="confirm"' in review and 'value="edit"' in review
    # 返回修改 sends the hidden copy back: the form comes again as it was typed
    hidden = {
        **form,
        "materials_other": "低保证复印件\n病历",
        "step": "edit",
    }
    r = village.post("/register", data=hidden, follow_redirects=False)
    assert r.status_code == 200 and count(village) == 0
    assert 'value="王大妈"' in r.text and "低保证复印件\n病历" in r.text and "第一行\n第二行" in r.text
    assert 'value="户口簿复印件" checked' in r.text and 'value="困难情况证明材料" >' in r.text
    # 确认登记 checks everything again: a hidden field changed to something wrong is caught, not signed
    r = village.post("/register", data={**form, "applicant_phone": "abc", "step": "confirm"}, follow_redirects=False)
    assert r.status_code == 400 and count(village) == 0
    r = village.post("/register", data={**form, "step": "confirm"}, follow_redirects=False)
    assert r.status_code == 303 and count(village) == 1


def test_register_errors_link_to_their_fields_and_the_first_takes_the_focus(village: Client) -> None:
    form = {
        "matter": "MZ-003",
        "applicant_phone": "138-abc",
        "materials": ["申请书"],
        "actor": "李建国",
        "role": "代办员",
    }
    r = village.post("/register", data={**form, "step": "review"}, follow_redirects=False)
    assert r.status_code == 400 and count(village) == 0
    page = r.text
    for field, fid in (("applicant_name", "applicant_name"), ("applicant_phone", "applicant_phone")):
        assert f'id="{fid}"' in page and f'aria-describedby="err-{field}"' in page and f'id="err-{field}"' in page
        assert f'<a href="#{fid}">' in page
    focused = re.findall(r"<(?:input|select|textarea)[^>]*\bautofocus\b[^>]*>", page)
    assert len(focused) == 1 and 'id="applicant_name"' in focused[0]  # the first wrong field in page order
    # the judge's refusal (no mandate, proxy) lands on the mandate box, linked and focused too
    r = village.post("/register", data={**form, "applicant_phone": "", "applicant_name": "王大妈", "step": "review"})
    assert r.status_code == 400 and 'data-refusal="mandate_missing"' in r.text
    focused = re.findall(r"<input[^>]*\bautofocus\b[^>]*>", r.text)
    assert len(focused) == 1 and 'id="mandate"' in focused[0] and 'aria-describedby="err-mandate"' in focused[0]


def test_supervision_says_when_it_reads_only_the_newest_answered_errands(
    town: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("刘翠花", "陈永福"):
        errand = register(town, name=name, in_person=True)
        act(town, errand, "accept", errand_kind="承诺件")
        act(town, errand, "decide", outcome="approved", document="临时救助审批决定书")
        act(town, errand, "deliver", confirmed_by=name, signature=name)
    register(town, name="王桂兰", in_person=True)
    register(town, name="赵德明", in_person=True)
    page = town.get("/supervision").text
    assert 'id="answered-window"' not in page and 'id="unanswered-window"' not in page  # all read: nothing to say
    monkeypatch.setattr(sanji.web.desk_api, "SUPERVISED_AT_MOST", 1)
    page = town.get("/supervision").text
    note = page.split('id="answered-window"')[1].split("</p>")[0]
    assert "只统计最近 1 件（共 2 件）" in note and "cover the newest 1" in note
    note = page.split('id="unanswered-window"')[1].split("</p>")[0]
    assert "未办结的 2 件中只列出最早登记的 1 件" in note and "the oldest 1 are listed" in note
    report = town.get("/api/supervision").json()
    assert (report["answered_total"], report["open_errands"], report["unanswered_counted"]) == (2, 2, 1)


def test_supervision_says_when_it_counts_only_the_newest_ratings(town: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, level in (("刘翠花", "满意"), ("陈永福", "不满意")):
        errand = register(town, name=name, in_person=True)
        act(town, errand, "accept", errand_kind="承诺件")
        act(town, errand, "decide", outcome="approved", document="临时救助审批决定书")
        act(town, errand, "deliver", confirmed_by=name, signature=name)
        act(town, errand, "rate", level=level)
    for at_most in (100_000, 2):  # as many ratings as the window holds, or more room
        monkeypatch.setattr(sanji.web.desk_api, "RATED_AT_MOST", at_most)
        assert 'id="ratings-window"' not in town.get("/supervision").text  # every rating counted: nothing to say
        report = town.get("/api/supervision").json()
        assert (report["ratings"], report["ratings_counted"], report["ratings_cut"]) == (
            {"满意": 1, "不满意": 1},
            2,
            False,
        )
    monkeypatch.setattr(sanji.web.desk_api, "RATED_AT_MOST", 1)  # fewer than the store holds: the window cuts
    note = town.get("/supervision").text.split('id="ratings-window"')[1].split("</p>")[0]
    assert "只统计最近的 1 条评价" in note and "count the newest 1 ratings only" in note
    report = town.get("/api/supervision").json()
    assert (report["ratings"], report["ratings_counted"], report["ratings_cut"]) == ({"不满意": 1}, 1, True)


def test_call_back_sample_says_whom_to_call_and_about_what(town: Client) -> None:
    closed = register(town, name="刘翠花", in_person=True, applicant_phone="13912345678")
    open_one = register(town, name="陈永福", in_person=True, applicant_phone="13700001111")
    act(town, closed, "accept", errand_kind="承诺件")
    act(town, closed, "decide", outcome="approved", document="临时救助审批决定书")
    act(town, closed, "deliver", confirmed_by="刘翠花", signature="刘翠花")
    receipt = town.get(f"/api/errands/{closed}").json()["receipt"]
    r = town.get("/supervision", params={"sample": "5", "seed": "s"})
    assert r.status_code == 200
    table = r.text.split('id="callbacks"')[1].split("</table>")[0]
    row = re.search(r"<tr><td data-label=\"回执号 Receipt\">(.*?)</tr>", table, re.S)
    assert row, table
    cells = row.group(1)
    assert receipt in cells and closed not in re.sub(r'(href|action)="[^"]*"', "", cells)  # the receipt, not the hex id
    assert "刘翠花" in cells and "临时救助" in cells and "准予" in cells and "已送达" in cells
    assert "139****5678" in cells and "13912345678" not in cells  # masked; the full number is the audited show
    assert 'action="/errands/' in cells and "/reveal" in cells  # open demo: anyone may ask, and it is audited
    assert "陈永福" not in table and open_one not in table  # only closed errands are called back


def test_call_back_sample_offers_the_show_only_to_roles_that_may(tmp_path: Path) -> None:
    from sanji.cli import accounts_cmd
    from tests.auth.auth_kit import PASSWORD, app, bearer, login, prepare, token
    from tests.auth.auth_kit import add as add_account

    config = prepare(tmp_path, "T01", required=True)
    add_account(config, "王晓红", "director")
    add_account(config, "周明", "supervisor")
    add_account(config, "钱纪", "inspector")
    assert accounts_cmd.run_add(str(config), "陈建", "director", PASSWORD, window="乡村建设窗口") == 0
    with TestClient(app(config)) as town:
        desk = bearer(token(config, "王晓红"))
        body = {"matter": "MZ-003", "applicant_name": "刘翠花", "applicant_phone": "13912345678", "in_person": True}
        r = town.post("/api/errands", json=body | {"materials": list(MZ003_ALL), "actor": "x"}, headers=desk)
        assert r.status_code == 201, r.text
        errand = r.json()["errand"]
        for step in ({"kind": "accept", "errand_kind": "承诺件"}, {"kind": "decide", "outcome": "approved"}):
            assert town.post(f"/api/errands/{errand}/actions", json=step | {"actor": "x"}, headers=desk).is_success
        step = {"kind": "deliver", "confirmed_by": "刘翠花", "signature": "纸质送达回证已签字", "actor": "x"}
        assert town.post(f"/api/errands/{errand}/actions", json=step, headers=desk).is_success
        login(town, "周明")
        table = town.get("/supervision").text.split('id="callbacks"')[1].split("</table>")[0]
        assert "刘翠花" in table and "139****5678" in table and f"/errands/{errand}/reveal" in table
        town.cookies.clear()
        login(town, "钱纪")
        table = town.get("/supervision").text.split('id="callbacks"')[1].split("</table>")[0]
        assert "刘翠花" in table and "139****5678" in table and "/reveal" not in table  # masked, no show
        assert "13912345678" not in table
        # A director bound to another window than the errand's (MZ-003: 社会救助窗口) is offered no show either.
        town.cookies.clear()
        login(town, "陈建")
        table = town.get("/supervision").text.split('id="callbacks"')[1].split("</table>")[0]
        assert "刘翠花" in table and "139****5678" in table and "/reveal" not in table


def test_review_and_confirm_carry_the_session_csrf_token(tmp_path: Path) -> None:
    from tests.auth.auth_kit import add as add_account
    from tests.auth.auth_kit import app, csrf_of, login, prepare

    config = prepare(tmp_path, "T01V01", required=True)
    add_account(config, "李建国", "village_agent")
    with TestClient(app(config)) as village:
        login(village, "李建国")
        form = {"matter": "MZ-003", "applicant_name": "王大妈", "materials": list(MZ003_ALL), "mandate": "1"}
        form |= {"actor": "李建国", "role": "代办员"}
        token = csrf_of(village.get("/register?matter=MZ-003").text)
        review = village.post("/register", data={**form, "step": "review", "_csrf_token": token})
        assert review.status_code == 200 and 'value="confirm"' in review.text
        carried = csrf_of(review.text.split('id="review"')[1])  # the review's own form holds the token
        bad = village.post("/register", data={**form, "step": "confirm"}, follow_redirects=False)
        assert bad.status_code == 403 and count(village) == 0  # no token, no registration
        r = village.post("/register", data={**form, "step": "confirm", "_csrf_token": carried}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].endswith("/receipt")
        assert count(village) == 1


def test_the_nodes_table_shows_which_nodes_judge_by_older_errand_rules(tmp_path: Path) -> None:
    """The county's supervisor sees, before publishing a catalogue of a new rules generation, who must upgrade."""
    _, settings = prepared_node(tmp_path, "T01")

    async def reports() -> None:
        directory = read_directory(settings.path(settings.node.directory))
        db = await open_database(settings.db_url)
        try:
            store = Store(db, node_id="T01", key=read_key(settings.path(settings.node.key_file)), directory=directory)
            await store.start()
            now = store.clock.now()
            old = NodeReport(node="T01V01", at=now)  # a build before the field: it reports no generation
            await store.record_reports([old], via="T01V01")
        finally:
            await db.dispose()

    asyncio.run(reports())
    with TestClient(make_app(settings)) as town:
        page = town.get("/").text
    row = page[page.index('<tr data-node="T01V01">') :].split("</tr>")[0]
    assert "办件规则" in page
    assert '旧版本 <span lang="en">an older build</span> 需升级 <span lang="en">upgrade</span>' in row
    assert "东村代办点" in row and 'data-label="节点 Node"' in row  # named, and a card on a phone


def test_an_in_person_matter_tells_the_agent_what_to_do_instead(village: Client) -> None:
    # "须本人亲自办理" alone leaves the agent at a dead end: the page says what she does either way.
    page = village.get("/register?matter=RS-004").text
    said = re.search(r'id="in-person-next"><span lang="zh-CN">(.*?)</span>', page, re.S)
    assert said is not None, page
    assert "勾选下面的“申请人本人到场”" in said[1] and "就业和社会保障窗口" in said[1]  # the catalogue's window
    assert "城关镇便民服务中心" in said[1] and 'href="/print/guide/RS-004"' in said[1]  # the township, by name
    assert 'id="in-person-next"' not in village.get("/register?matter=MZ-003").text  # open to proxy: nothing to say
    # And ticking it is enough: the applicant here in person registers the matter at the village.
    register(village, matter="RS-004", materials=("身份证复印件", "社会保障卡"), in_person=True)
    assert count(village) == 1
