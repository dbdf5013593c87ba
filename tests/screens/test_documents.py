"""Printable documents: each renders for an errand in the right state, and is a clear 404 otherwise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from httpx import Response
from jinja2 import Environment, FileSystemLoader
from litestar import Litestar
from litestar.testing import TestClient
from screens_kit import MZ003_ALL, PROMISED, act, register

from protocol.lookup import lookup_code
from protocol.topology import Directory, NodeEntry
from sanji.web.documents import (
    DOCUMENTS,
    SIGNATURE_PREFIX,
    applied_for,
    cn_iso,
    decision_facts,
    delivered_outcome,
    document_number,
    issuing_body,
    review_government,
    signature_path,
)
from sanji.web.qr import qr_svg

ALL = tuple(DOCUMENTS)
TEMPLATES = Path(__file__).parents[2] / "sanji" / "web" / "templates"
Client = TestClient[Litestar]


def doc(client: Client, errand_id: str, slug: str) -> tuple[int, str]:
    r = client.get(f"/print/{errand_id}/{slug}")
    assert r.headers["content-type"].startswith("text/html")
    return r.status_code, r.text


def available(client: Client, errand_id: str) -> set[str]:
    return {slug for slug in ALL if doc(client, errand_id, slug)[0] == 200}


def assert_print_page(html: str) -> None:
    assert "@media print" in html and "size: A4" in html and 'lang="zh-CN"' in html


def test_receipt_has_the_qr_and_everything_the_villager_needs(village: Client) -> None:
    errand_id = register(village, applicant_phone="13812345678")
    status, html = doc(village, errand_id, "receipt")
    assert status == 200
    assert_print_page(html)
    row = village.get(f"/api/errands/{errand_id}").json()
    receipt = row["receipt"]
    assert receipt in html and "回执" in html
    assert "<svg" in html and 'class="qr"' in html
    public = village.app.state.settings.node.public_url
    assert public.startswith("http://127.0.0.1:")
    url = f"{public}/lookup?receipt={receipt}&code={lookup_code(errand_id)}"  # the public site, not this desk
    assert str(qr_svg(url, scale=3, label=f"回执号 Receipt {receipt}")) in html  # the QR encodes the lookup URL
    assert "临时救助申请" in html and "张秀英" in html and "李建国" in html
    for material in ("申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料"):
        assert f"<li>{material}</li>" in html
    assert "代办服务免费" in html
    assert "13812345678" not in html  # the receipt carries no phone or ID number
    day = receipt.split("-")[1]  # the receipt number carries the registration day (yymmdd)
    assert f"20{day[:2]}年{int(day[2:4])}月{int(day[4:])}日" in html
    # only the receipt applies to a freshly registered errand
    assert available(village, errand_id) == {"receipt"}


def test_full_life_prints_acceptance_commitment_supplement_and_delivery(town: Client) -> None:
    errand_id = register(town, matter="MZ-003", materials=("申请书", "身份证复印件", "户口簿复印件"), in_person=True)
    for slug in ("acceptance", "commitment", "supplement", "delivery", "non-acceptance", "return"):
        status, html = doc(town, errand_id, slug)
        assert status == 404, slug
        assert "无法出具此文书" in html and "does not apply" in html

    promised = PROMISED.isoformat()
    act(town, errand_id, "accept", errand_kind="承诺件", provisional="困难情况证明材料", promise_by=promised)
    row = town.get(f"/api/errands/{errand_id}").json()
    status, html = doc(town, errand_id, "acceptance")
    assert status == 200
    assert_print_page(html)
    assert "受理通知书" in html and "张秀英" in html and "容缺受理" in html
    assert "提出的<b>临时救助申请</b>，" in html and "申请申请" not in html  # the matter's name is the application
    due = row["deadline"]["due"] if row["deadline"] else ""
    assert (cn_iso(due) in html) if due else ("期限待定" in html)
    assert "申请人的权利" in html and "申请人的义务" in html
    status, html = doc(town, errand_id, "commitment")
    assert status == 200
    assert "容缺受理承诺书" in html and "困难情况证明材料" in html
    assert f"{PROMISED.year}年{PROMISED.month}月{PROMISED.day}日" in html
    assert "终止办理" in html
    assert doc(town, errand_id, "non-acceptance")[0] == 404

    act(town, errand_id, "request_supplement", items="村委会证明\n医疗费票据\n银行流水", text="原件核对")
    status, html = doc(town, errand_id, "supplement")
    assert status == 200
    assert "一次性告知书" in html
    for item in ("村委会证明", "医疗费票据", "银行流水"):
        assert item in html
    assert "办理时限暂停计算" in html and "clock stops" in html

    act(town, errand_id, "materials_received", items="村委会证明\n医疗费票据\n银行流水")
    act(town, errand_id, "materials_received", items="困难情况证明材料")
    act(town, errand_id, "decide", outcome="approved", document="临时救助审批决定书")
    assert doc(town, errand_id, "delivery")[0] == 404
    act(town, errand_id, "deliver", confirmed_by="张秀英", signature="张秀英 手写签名")
    status, html = doc(town, errand_id, "delivery")
    assert status == 200
    assert "送达回证" in html and "临时救助审批决定书" in html
    # the outcome in the decision's words (临时救助 is a benefit: 准予办理), its English apart, never a code
    assert '<td class="strong" id="outcome">准予办理 <span class="en" lang="en">granted</span></td>' in html
    assert "approved" not in html
    assert "签收人" in html and "张秀英 手写签名" in html and "受送达人（签名）" in html
    assert available(town, errand_id) == {"receipt", "acceptance", "commitment", "supplement", "decision", "delivery"}
    assert "城关镇人民政府" in html  # who decided: the township's government, not its service centre
    # A decision that named no document hands over the decision document this desk prints.
    unnamed = register(town, in_person=True)
    act(town, unnamed, "accept")
    act(town, unnamed, "decide", outcome="approved")
    act(town, unnamed, "deliver", confirmed_by="张秀英", signature="纸质送达回证已签字")
    assert "准予办理决定书" in doc(town, unnamed, "delivery")[1]


def test_non_acceptance_notice_gives_the_reasons(town: Client) -> None:
    errand_id = register(town, in_person=True)
    act(town, errand_id, "not_accept", reasons="申请人户籍不在本镇，请到户籍所在地申请")
    status, html = doc(town, errand_id, "non-acceptance")
    assert status == 200
    assert "不予受理通知书" in html and "申请人户籍不在本镇，请到户籍所在地申请" in html
    assert "提出的<b>临时救助申请</b>，" in html and "申请申请" not in html
    assert "行政复议" in html and "申请材料随本通知书退还" in html  # materials were received: they go back
    status, html = doc(town, errand_id, "acceptance")
    assert status == 404 and "该办件尚未受理" in html and "not been accepted" in html
    assert available(town, errand_id) == {"receipt", "non-acceptance"}
    nothing = register(town, materials=(), in_person=True)  # nothing was received: nothing goes back
    act(town, nothing, "not_accept", reasons="不属于本中心受理范围")
    status, html = doc(town, nothing, "non-acceptance")
    assert status == 200 and "不属于本中心受理范围" in html and "随本通知书退还" not in html


def test_return_notice_gives_the_reasons_and_the_materials(town: Client) -> None:
    errand_id = register(town, in_person=True)
    act(town, errand_id, "accept")
    act(town, errand_id, "return", reasons="申请书未签名")
    status, html = doc(town, errand_id, "return")
    assert status == 200
    assert "退回通知书" in html and "申请书未签名" in html and "<li>户口簿复印件</li>" in html
    assert "提出的<b>临时救助申请</b>，" in html and "申请申请" not in html
    assert doc(town, errand_id, "commitment")[0] == 404  # accepted in full, not provisionally


def test_decision_to_grant_heads_with_its_number_and_names_the_law(town: Client) -> None:
    """临时救助 is a benefit (给付), not a licence: granted "准予办理", never "准予许可"."""
    errand_id = register(town, in_person=True)
    act(town, errand_id, "accept")
    assert doc(town, errand_id, "decision")[0] == 404
    r = act(town, errand_id, "decide", outcome="approved", document="城民救〔2026〕12号")
    page = town.get(r.headers["location"]).text
    assert "打印准予办理决定书" in page  # the flash after deciding offers the paper
    status, html = doc(town, errand_id, "decision")
    assert status == 200
    assert_print_page(html)
    assert "<h1>准予办理决定书" in html and '<b id="docno">城民救〔2026〕12号</b>' in html
    assert "提出的<b>临时救助申请</b>，经审查" in html and "决定<b>准予办理</b>" in html and "许可" not in html
    assert "《社会救助暂行办法》" in html  # the catalogue entry's legal basis
    assert "城关镇人民政府（盖章）" in html and "承办人（签名）" in html and "申请人签收" in html
    assert "行政复议" not in html and "超时默许" not in html
    errand_page = town.get(f"/errands/{errand_id}").text
    assert f'<a href="/print/{errand_id}/decision">准予办理决定书' in errand_page


def test_decision_to_refuse_gives_reasons_and_the_way_to_appeal(town: Client) -> None:
    errand_id = register(town, in_person=True, applicant_id_number="430621195007307791")
    act(town, errand_id, "accept")
    # a refusal states its reasons (rules 2): without them it is refused, with them the document gives them
    data = {"kind": "decide", "actor": "王晓红", "role": "窗口工作人员", "outcome": "refused", "document": "13号"}
    silent = town.post(f"/errands/{errand_id}/act", data=data, follow_redirects=False)
    assert silent.status_code == 409 and "不予许可（不予办理）决定须写明理由" in silent.text
    act(town, errand_id, "decide", outcome="refused", document="不予办理", reasons="家庭人均收入高于当地临时救助标准")
    status, html = doc(town, errand_id, "decision")
    assert status == 200
    assert "<h1>不予办理决定书" in html and "决定<b>不予办理</b>" in html
    assert '<div class="box" id="reasons" style="white-space: pre-wrap">家庭人均收入高于当地临时救助标准</div>' in html
    assert "六十日内" in html and "《中华人民共和国行政复议法》向县人民政府申请行政复议" in html
    assert "六个月内" in html and "《中华人民共和国行政诉讼法》" in html
    assert "430621********7791" in html and "430621195007307791" not in html  # the ID number masked
    assert 'id="docno"' not in html  # the document text is no number: the receipt number heads it
    errand_page = town.get(f"/errands/{errand_id}").text
    assert "不予办理决定书" in errand_page and f"/print/{errand_id}/decision" in errand_page


def test_decision_facts_read_reasons_deemed_and_numbers() -> None:
    """What a decision says, from the action as stored: ``reasons`` when a newer decision carries it, a deemed
    approval said as one (the system writes it at the county, so it is rendered here from its facts)."""
    book = Directory(
        [
            NodeEntry(id="C", role="county", parent=None, name="示范县政务服务中心", keys=()),
            NodeEntry(id="T01", role="town", parent="C", name="城关镇便民服务中心", keys=()),
        ]
    )
    assert review_government(book, "T01") == "示范县人民政府" == review_government(book, "C")
    assert review_government(book, "nowhere") == ""
    for number in ("城民救〔2026〕12号", "示民低[2026]1号", "2026-0012", "第12号"):
        assert document_number(number) == number, number
    for words in ("临时救助审批决定书", "", "家庭收入超标", "<b>1号</b>"):
        assert document_number(words) == "", words
    base = {"kind": "decide", "node": "T01", "actor": "王晓红", "role": "窗口", "at": 0, "department": ""}
    refused = decision_facts(
        {**base, "outcome": "refused", "document": "城民救〔2026〕3号", "reasons": "户籍不在本镇"},
        book,
        None,
        receipt="R",
        category="许可",
    )
    assert refused["reasons"] == "户籍不在本镇" and refused["document_number"] == "城民救〔2026〕3号"
    assert refused["title_zh"] == "不予许可决定书" and refused["authority"] == "城关镇人民政府"
    benefit = decision_facts({**base, "outcome": "refused", "reasons": "x"}, book, None, receipt="R", category="给付")
    assert benefit["title_zh"] == "不予办理决定书" and not benefit["licence"]
    county = decision_facts(
        {**base, "node": "C", "department": "县民政局", "outcome": "approved"}, book, None, receipt="R"
    )
    assert county["authority"] == "县民政局" and county["reasons"] == ""
    # a service centre is no administrative body: the people's government of its township or county decides
    assert issuing_body(book, "T01") == "城关镇人民政府" and issuing_body(book, "C") == "示范县人民政府"
    assert issuing_body(book, "T01", "县民政局") == "县民政局" and issuing_body(book, "nowhere") == "nowhere"
    deemed = decision_facts(
        {**base, "outcome": "approved", "deemed": True, "document": "超时默许:2026-05-06 前未作决定"},
        book,
        None,
        receipt="R",
        due="2026-05-06",
        category="许可",
    )
    assert deemed["deemed"] and deemed["due_text"] == "2026年5月6日" and deemed["result_document"] == ""
    templates = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    name = "个体工商户变更登记"
    common = {
        "receipt": "R",
        "applicant": "张秀英",
        "matter_name": name,
        "applied_for": applied_for(name),
        "action": base,
    }
    html = templates.get_template("print_decision.html").render(**common, **deemed, registered_on="2026年4月1日")
    assert "提出的<b>个体工商户变更登记申请</b>" in html
    assert "超时默许" in html and "视为<b>准予许可</b>" in html and "（2026年5月6日）" in html
    html = templates.get_template("print_decision.html").render(**common, **refused, registered_on="2026年4月1日")
    assert "户籍不在本镇" in html and "城民救〔2026〕3号" in html


def test_a_delivery_names_the_outcome_as_the_paper_handed_over_does() -> None:
    """送达回证's 办理结果: the decision document's words (许可 for a licence, 办理 otherwise), else the outcome's."""
    licence, benefit = "许可", "给付"  # the errand's category (protocol.errand.errand_category)
    assert delivered_outcome("refused", {"outcome": "refused"}, licence) == ("不予许可", "refused")
    assert delivered_outcome("refused", {"outcome": "refused"}, benefit) == ("不予办理", "refused")
    deemed = {"outcome": "approved", "deemed": True}
    assert delivered_outcome("approved", deemed, licence) == ("准予许可（超时默许）", "granted")
    assert delivered_outcome("not_accepted", None, benefit) == ("不予受理", "not accepted")


def test_a_matter_is_said_as_one_application_never_twice() -> None:
    """In "你于…提出的<X>": a name that already is an application (a bracketed note after it looked past) stays."""
    assert applied_for("临时救助申请") == "临时救助申请"
    assert applied_for("最低生活保障(低保)申请") == "最低生活保障(低保)申请"
    assert applied_for("医疗救助申请(民政医疗救助)") == "医疗救助申请(民政医疗救助)"
    assert applied_for("户籍迁移（迁出、迁入）") == "户籍迁移（迁出、迁入）申请"
    assert applied_for("户口迁移") == "户口迁移申请"


def test_service_guide_comes_from_the_catalogue(village: Client) -> None:
    r = village.get("/print/guide/MZ-001")
    assert r.status_code == 200
    html = r.text
    assert_print_page(html)
    assert "办事指南" in html and "最低生活保障(低保)申请" in html
    assert "《社会救助暂行办法》" in html and "社会救助窗口" in html and "县民政局" in html
    assert "代办免费" in html and "30个工作日" in html and "40个工作日" in html
    main, secondary = html.index("主件"), html.index("副件")
    assert main < html.index("户口簿复印件") < secondary < html.index("家庭收入及财产状况声明")
    in_person = village.get("/print/guide/RS-004").text
    assert "须本人亲自办理" in in_person


@pytest.mark.parametrize("path", ["/print/guide/NOPE-1", "/print/nope/receipt"])
def test_unknown_matter_or_errand_is_a_404_page(village: Client, path: str) -> None:
    r = village.get(path)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "无法出具此文书" in r.text


def test_unknown_document_is_a_404_page(village: Client) -> None:
    errand_id = register(village)
    r = village.get(f"/print/{errand_id}/certificate")
    assert r.status_code == 404 and "没有名为 certificate 的文书" in r.text


def test_guide_without_a_catalogue_says_so(bare_village: Client) -> None:
    r = bare_village.get("/print/guide/MZ-001")
    assert r.status_code == 404 and "尚未收到事项目录" in r.text


def test_documents_escape_what_people_typed(town: Client) -> None:
    errand_id = register(town, name="<script>alert(1)</script>", in_person=True)
    act(town, errand_id, "not_accept", reasons="<img src=x onerror=alert(2)>")
    for slug in ("receipt", "non-acceptance"):
        html = doc(town, errand_id, slug)[1]
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;" in html


def test_a_registration_the_rule_refuses_uses_up_no_receipt_number(village: Client) -> None:
    """At a village holding the catalogue, a registration is bound to its entry and judged by it; one refused
    there (no mandate, a matter not open to proxy) took a number of the day before it was refused."""

    def receipt(**fields: object) -> Response:
        body = {"matter": "MZ-003", "applicant_name": "张秀英", "materials": list(MZ003_ALL), "actor": "李建国"}
        return village.post("/api/errands", json={**body, **fields})

    first = receipt()
    assert first.status_code == 201
    for _ in range(3):
        refused = receipt(mandate=False)
        assert refused.status_code == 409 and refused.json()["error_code"] == "mandate_missing", refused.text
    second = receipt()

    def seq(r: Response) -> int:
        number = village.get(f"/api/errands/{r.json()['errand']}").json()["receipt"]
        return int(number.split("-")[-1][:-1])

    assert seq(second) == seq(first) + 1


def test_a_signature_is_drawn_only_when_it_is_a_path_of_moves_and_lines() -> None:
    assert signature_path(SIGNATURE_PREFIX + "M12 80l3 -2 4 -1M200 90l1 1") == "M12 80l3 -2 4 -1M200 90l1 1"
    for text in (
        "纸质送达回证已签字（签收人：张秀英）",
        "M12 80l3 -2",  # a path without the pad's prefix is text someone typed
        SIGNATURE_PREFIX + 'M1 2"/><script>alert(1)</script>',
        SIGNATURE_PREFIX + "M1 2c3 4 5 6 7 8",  # curves, arcs and anything else: not ours
        SIGNATURE_PREFIX,
        SIGNATURE_PREFIX + "M1 2" * 1001,
    ):
        assert signature_path(text) == "", text


def test_the_deliver_form_wants_a_signature_drawn_or_on_paper(town: Client) -> None:
    errand_id = register(town, in_person=True)
    act(town, errand_id, "accept")
    act(town, errand_id, "decide", outcome="approved", document="城民救〔2026〕12号")
    url = f"/errands/{errand_id}/act"
    step = {"kind": "deliver", "actor": "王晓红", "role": "窗口工作人员", "confirmed_by": "张秀英"}
    for signature, error in (("", "请申请人在签名框内签名"), (SIGNATURE_PREFIX + "M1 2c3 4", "签名记录无法识别")):
        r = town.post(url, data={**step, "signature": signature}, follow_redirects=False)
        assert r.status_code == 400 and error in r.text, signature
    r = town.post(url, data={**step, "signature_paper": "1"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    status, html = doc(town, errand_id, "delivery")
    assert (
        status == 200
        and '<td id="signature" style="word-break: break-all">纸质送达回证已签字（签收人：张秀英）</td>' in html
    )
    assert "签名：纸质送达回证已签字（签收人：张秀英）" in town.get(f"/errands/{errand_id}").text


def test_a_signature_drawn_on_the_pad_stands_in_place_of_the_blank_line_a_paper_receipt_keeps(town: Client) -> None:
    def delivered(**signed: str) -> str:
        errand_id = register(town, in_person=True)
        act(town, errand_id, "accept")
        act(town, errand_id, "decide", outcome="approved", document="城民救〔2026〕12号")
        act(town, errand_id, "deliver", confirmed_by="张秀英", **signed)
        status, html = doc(town, errand_id, "delivery")
        assert status == 200
        return html

    def recipients_signature(html: str) -> tuple[str, str]:
        found = re.search(r'<div class="sign">\s*<div id="(recipient-[a-z-]+)">(.*?)</div>', html, re.S)
        assert found is not None, html
        return found[1], found[2]

    strokes = "M12 80l3 -2 4 -1M200 90l1 1"
    drawn = delivered(signature=SIGNATURE_PREFIX + strokes)
    where, block = recipients_signature(drawn)
    delivered_on = re.search(r"送达时间 .*?<td>(\d{4}年\d{1,2}月\d{1,2}日) \d\d:\d\d</td>", drawn)
    assert where == "recipient-signed" and delivered_on is not None
    assert '<svg class="signature" id="signature"' in block and f'<path d="{strokes}"' in block
    assert "张秀英" in block and f'日期 <span class="en" lang="en">Date</span>：{delivered_on[1]}' in block
    assert 'class="line"' not in block  # nothing left to sign by hand
    assert drawn.count("<svg") == 1 and "签名记录" not in drawn  # drawn once, where the recipient signs

    paper = delivered(signature_paper="1")
    where, block = recipients_signature(paper)
    assert where == "recipient-sign-here" and block.count('<span class="line"></span>') == 2
    assert "<svg" not in paper and "纸质送达回证已签字（签收人：张秀英）" in paper


def test_the_receipt_of_an_errand_not_yet_submitted_says_to_submit_it(village: Client) -> None:
    # Registering prints the receipt; the errand stays at the village until 报送. An agent who hands the
    # receipt over and stops there leaves it unsent, so the screen (never the paper) says what comes next.
    errand_id = register(village)
    _, html = doc(village, errand_id, "receipt")
    note = re.search(r'class="toolbar noprint"[^>]*id="submit-next"[^>]*>(.*?)</div>', html, re.S)
    assert note is not None and "下一步：报送乡镇" in note[1]  # noprint: said on the screen, never on paper
    assert f'href="/errands/{errand_id}"' in note[1]
    act(village, errand_id, "submit")
    _, html = doc(village, errand_id, "receipt")
    assert 'id="submit-next"' not in html  # sent: nothing left to say
