"""What a desk's lists say, through the real app: 全部办件 newest first, paged and searchable; an errand that
ended without a decision counted as what happened to it; the lookup's reasons and next steps; node names.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from screens_kit import act, register

from protocol.topology import Directory, NodeEntry
from sanji.privacy import mask_numbers_in_text
from sanji.web import screens
from sanji.web.documents import screen_name
from sanji.web.views import Deadline

Client = TestClient[Litestar]


def all_errands(page: str) -> list[str]:
    """The errand ids 全部办件 lists, in its order."""
    table = page.split('id="all-errands"')[1].split("</table>")[0]
    return [screens.unquote(m) for m in re.findall(r'href="/errands/([^"]+)"', table)]


def receipt_of(client: Client, errand_id: str) -> str:
    return str(client.get(f"/api/errands/{errand_id}").json()["receipt"])


def test_all_errands_are_newest_first_a_page_at_a_time(town: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(screens, "LIST_PAGE", 2)  # three errands make two pages
    first, second, third = (register(town, in_person=True, name=n) for n in ("张秀英", "李四", "王五"))
    home = town.get("/").text
    assert all_errands(home) == [third, second]  # the newest first, never the oldest 200
    assert "All errands held here (3)" in home and "第 1/2 页，共 3 件" in home
    older = re.search(r'href="([^"]+)" rel="next" id="errands-older"', home)
    assert older is not None
    page2 = town.get(older[1].replace("&amp;", "&")).text
    assert all_errands(page2) == [first] and 'id="errands-newer"' in page2 and "第 2/2 页" in page2
    assert all_errands(town.get("/", params={"page": "999"}).text) == [first]  # past the last: the last
    for nonsense in ("abc", "-1", "0", "9" * 40, "²", "1²"):  # "²".isdigit(), yet int() refuses it
        r = town.get("/", params={"page": nonsense})
        assert r.status_code == 200 and all_errands(r.text) == [third, second]


def test_the_list_is_searched_by_receipt_id_matter_and_name_never_by_sealed_details(town: Client) -> None:
    zhang = register(town, in_person=True, name="张秀英", applicant_phone="13812345678")
    li = register(town, in_person=True, name="李四", applicant_id_number="11010519491231002X")

    def found(q: str) -> list[str]:
        r = town.get("/", params={"q": q})
        assert r.status_code == 200
        return all_errands(r.text)

    assert found("李四") == [li] and found("秀英") == [zhang]
    assert found(receipt_of(town, zhang)) == [zhang] and found(receipt_of(town, li).lower()) == [li]
    assert found(li) == [li]  # the errand id
    assert found("临时救助") == [li, zhang] == found("mz-003")  # the matter, by its name or its code
    # the sealed details are never searched: a hit would tell what the page masks
    assert found("13812345678") == [] and found("5678") == [] and found("11010519491231002X") == []
    assert found("%") == [] and found("_") == []  # typed, not wildcards
    # what shows as nothing is dropped, never sent to the store (PostgreSQL refuses a NUL: a 500)
    assert found("李\x00四") == [li] and found("李\u200b四") == [li] and found("秀英\x07") == [zhang]
    assert len(found("\x00")) == 2  # nothing left to search: the whole list
    r = town.get("/", params={"q": "李四" + "x" * 300})
    assert r.status_code == 200 and "查找词过长" in r.text and all_errands(r.text) == []
    page = town.get("/", params={"q": "李四"}).text
    assert "找到 1 件" in page and "All errands held here (2)" in page


SPLIT = ("decided", "not_accepted", "returned")


def test_a_refused_to_accept_errand_is_counted_as_such_never_as_decided(town: Client) -> None:
    refused = register(town, in_person=True)
    act(town, refused, "not_accept", reasons="不属于本中心受理范围")
    decided = register(town, in_person=True)
    act(town, decided, "accept")
    act(town, decided, "decide", outcome="approved")
    # the errand page says it once, not "不予受理 · 不予受理"
    head = town.get(f"/errands/{refused}").text.split("办理记录")[0]
    assert "不予受理 not accepted</b>" in head and "不予受理 not accepted · " not in head
    # 在办分布: its own column, not 已办结
    page = town.get("/supervision").text
    row = re.search(r'<tr data-row="T01">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = dict(re.findall(r'data-stage="(\w+)">(?:<strong>|<a [^>]*>)?(\d+|—)', row[1]))
    assert cells["not_accepted"] == "1" and cells["decided"] == "1", cells
    assert town.get("/api/supervision").json()["by_township"]["T01"] == {"not_accepted": 1, "decided": 1}
    # the ledger's 状态 filter, which 在办分布's counts open
    ledger = town.get("/office/ledger", params={"stage": "decided"}).text
    assert f"/errands/{decided}" in ledger and f"/errands/{refused}" not in ledger
    ledger = town.get("/office/ledger", params={"stage": "not_accepted"}).text
    assert f"/errands/{refused}" in ledger and f"/errands/{decided}" not in ledger
    assert '<option value="not_accepted"' in ledger
    # the API's list filters by the same stage as shown (it matched the stored one: not_accepted found nothing)
    listed = {s: [i["id"] for i in town.get("/api/errands", params={"stage": s}).json()["items"]] for s in SPLIT}
    assert listed == {"decided": [decided], "not_accepted": [refused], "returned": []}, listed
    # the node's own count by stage (its report, /metrics, the demo's progress table)
    by_stage = town.get("/api/node").json()["errands_by_stage"]
    assert by_stage["not_accepted"] == 1 and by_stage["decided"] == 1, by_stage


def lookup(client: Client, errand_id: str) -> str:
    r = client.get("/lookup", params={"receipt": receipt_of(client, errand_id), "code": "5678"})
    assert r.status_code == 200, r.text
    return r.text


def lookup_api(client: Client, errand_id: str) -> dict[str, Any]:
    r = client.get(f"/api/lookup/{receipt_of(client, errand_id)}", params={"code": "5678"})
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def test_the_lookup_says_why_an_errand_was_refused_and_what_to_do_next(town: Client) -> None:
    phone: dict[str, Any] = {"in_person": True, "applicant_phone": "13812345678"}
    not_accepted = register(town, **phone)
    typed = (
        "户籍不在本镇（身份证11010519491231002X，另一证件430621 19500730 7797），"
        "请到户籍所在地申请，咨询139-1234-5678或139 1234 5678"
    )
    act(town, not_accepted, "not_accept", reasons=typed)
    page = lookup(town, not_accepted)
    reasons = re.search(r'id="ending-reasons">(.*?)</tr>', page, re.S)
    assert reasons is not None and "户籍不在本镇" in reasons[1] and "*" * 18 in reasons[1]
    assert "****** ******** ****" in reasons[1] and "***-****-****" in reasons[1] and "*** **** ****" in reasons[1]
    assert "11010519491231002X" not in page and "张秀英" not in page
    for shown in ("430621", "19500730", "7797", "1234-5678", "1234 5678"):
        assert shown not in reasons[1], shown
    assert page.count("不予受理") == 1  # the stage says it; no 办理结果 row saying it again
    after = re.search(r'id="ending-next">(.*?)</tr>', page, re.S)
    assert after is not None and "重新申请" in after[1] and "行政复议" in after[1] and "行政诉讼" in after[1]
    # the API says what the screen says (``ending_view``, one function): the same masked reasons, the same steps
    answer = lookup_api(town, not_accepted)
    assert answer["stage"] == "不予受理 not accepted" and answer["ending"]["reasons"] == mask_numbers_in_text(typed)
    assert "11010519491231002X" not in str(answer) and "139-1234-5678" not in str(answer)
    assert "张秀英" not in str(answer) and "applicant" not in str(answer)
    steps = answer["ending"]["steps"]
    assert "重新申请" in steps[0]["zh"] and "apply again" in steps[0]["en"] and "行政复议" in steps[1]["zh"]
    assert all(s["zh"] in after[1] for s in steps)

    refused = register(town, **phone)
    act(town, refused, "accept")
    act(
        town, refused, "decide", outcome="refused", reasons="家庭收入超过本县临时救助标准", document="城民救〔2026〕9号"
    )
    page = lookup(town, refused)
    assert "家庭收入超过本县临时救助标准" in page and "城民救〔2026〕9号" in page
    ending = lookup_api(town, refused)["ending"]
    assert ending["reasons"] == "家庭收入超过本县临时救助标准" and ending["document"] == "城民救〔2026〕9号"
    assert len(ending["steps"]) == 1 and "六十日内" in ending["steps"][0]["zh"]
    after = re.search(r'id="ending-next">(.*?)</tr>', page, re.S)
    assert after is not None and "六十日内" in after[1] and "重新申请" not in after[1]

    granted = register(town, **phone)
    act(town, granted, "accept")
    act(town, granted, "decide", outcome="approved")
    assert 'id="ending-reasons"' not in lookup(town, granted)
    assert lookup_api(town, granted)["ending"] is None


def test_numbers_in_free_text_are_masked_however_spaced_and_the_rest_kept() -> None:
    """``sanji.privacy.mask_numbers_in_text``, the lookup's one rule: a date, an amount or a 文号 stays readable."""
    assert mask_numbers_in_text("证件４３０６２１１９５００７３０７７９Ｘ") == "证件" + "*" * 18  # full-width too
    assert mask_numbers_in_text("430621-1950-0730-779x号") == "******-****-****-****号"
    assert mask_numbers_in_text("13912345678 Xiao") == "*********** Xiao"
    kept = "2026-12-07 城民救〔2026〕9号 月收入 1 200 元"
    assert mask_numbers_in_text(kept) == kept


def test_deadline_lights_say_working_days_in_both_languages() -> None:
    shown = screens.light(Deadline(due="2026-12-31", level="normal", days_left=30))
    assert shown["zh"] == "正常 剩30个工作日" and shown["en"] == "30 working days left"
    shown = screens.light(Deadline(due="2026-12-31", level="red", days_over=1))
    assert shown["zh"] == "红灯 超期1个工作日" and shown["en"] == "overdue by 1 working day"


def test_nodes_are_named_and_two_villages_of_one_name_told_apart_by_township(village: Client) -> None:
    home = village.get("/").text
    parent = re.search(r'id="parent-node">(.*?)</span>：', home, re.S)
    assert parent is not None and parent[1] == '城关镇便民服务中心 <span class="muted">T01</span>', parent
    assert "上级" in home and "Parent T01" not in home

    directory = Directory(
        [
            NodeEntry(id="C", role="county", name="示范县政务服务中心"),
            NodeEntry(id="T01", role="town", parent="C", name="城关镇便民服务中心"),
            NodeEntry(id="T02", role="town", parent="C", name="河口镇便民服务中心"),
            NodeEntry(id="T01V01", role="village", parent="T01", name="东村代办点"),
            NodeEntry(id="T02V01", role="village", parent="T02", name="东村代办点"),
            NodeEntry(id="T02V02", role="village", parent="T02", name="西村代办点"),
        ]
    )
    assert screen_name(directory, "T01V01") == "东村代办点（城关镇便民服务中心）"
    assert screen_name(directory, "T02V01") == "东村代办点（河口镇便民服务中心）"
    assert screen_name(directory, "T02V02") == "西村代办点" and screen_name(directory, "X9") == "X9"
    detail = screens.history_detail({"kind": "supervise", "text": "请加快办理", "to": "T02"}, directory)
    assert "督办对象：河口镇便民服务中心" in detail and "T02" not in detail


def test_papers_write_one_date_style_and_say_each_fact_once(town: Client) -> None:
    errand_id = register(town, in_person=True)
    act(town, errand_id, "accept")
    act(town, errand_id, "decide", outcome="approved", document="城民救〔2026〕12号")
    act(town, errand_id, "deliver", confirmed_by="张秀英", signature="纸质送达回证已签字")
    iso = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
    for doc in ("receipt", "acceptance", "decision", "delivery"):
        r = town.get(f"/print/{screens.quote(errand_id, safe='')}/{doc}")
        assert r.status_code == 200, (doc, r.text)
        sheet = r.text.split('<main class="sheet">')[1]
        assert not iso.search(sheet), (doc, iso.findall(sheet))
        assert f"{date.today().year}年" in sheet
    receipt = town.get(f"/print/{screens.quote(errand_id, safe='')}/receipt").text.split('<main class="sheet">')[1]
    assert receipt.count("回执号 <span") == 1  # the number once, large, in the table
    delivery = town.get(f"/print/{screens.quote(errand_id, safe='')}/delivery").text
    decided = re.search(r"作出决定 .*?<td>(.*?)</td>", delivery, re.S)
    assert decided is not None and " · " not in decided[1]
    # a county department's decision delivered: the department is who decided, said once (issuing_body names it)
    paper = town.app.template_engine.get_template("print_delivery.html").render(
        title_zh="送达回证",
        title_en="Proof of delivery",
        receipt="T01V01-261207-0001K",
        decide={"department": "县民政局", "node": "C"},
        decided_by="县民政局",
        action={"confirmed_by": "张秀英", "actor": "李建国", "role": "代办员"},
        action_at="2026年12月7日 10:05",
        action_date="2026年12月7日",
    )
    decided = re.search(r"作出决定 .*?<td>(.*?)</td>", paper, re.S)
    assert decided is not None and decided[1] == "县民政局", decided
