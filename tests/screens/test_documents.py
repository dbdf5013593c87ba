"""Printable documents: each renders for an errand in the right state, and is a clear 404 otherwise."""

from __future__ import annotations

import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import TestClient
from screens_kit import MZ003_ALL, act, register

from protocol.lookup import lookup_code
from sanji.web.documents import DOCUMENTS, cn_iso
from sanji.web.qr import qr_svg

ALL = tuple(DOCUMENTS)
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

    act(town, errand_id, "accept", errand_kind="承诺件", provisional="困难情况证明材料", promise_by="2099-01-31")
    row = town.get(f"/api/errands/{errand_id}").json()
    status, html = doc(town, errand_id, "acceptance")
    assert status == 200
    assert_print_page(html)
    assert "受理通知书" in html and "张秀英" in html and "容缺受理" in html
    due = row["deadline"]["due"] if row["deadline"] else ""
    assert (cn_iso(due) in html) if due else ("期限待定" in html)
    assert "申请人的权利" in html and "申请人的义务" in html
    status, html = doc(town, errand_id, "commitment")
    assert status == 200
    assert "容缺受理承诺书" in html and "困难情况证明材料" in html and "2099年1月31日" in html
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
    assert "送达回证" in html and "准予 approved" in html and "临时救助审批决定书" in html
    assert "签收人" in html and "张秀英 手写签名" in html and "受送达人（签名）" in html
    assert available(town, errand_id) == {"receipt", "acceptance", "commitment", "supplement", "delivery"}


def test_non_acceptance_notice_gives_the_reasons(town: Client) -> None:
    errand_id = register(town, in_person=True)
    act(town, errand_id, "not_accept", reasons="申请人户籍不在本镇，请到户籍所在地申请")
    status, html = doc(town, errand_id, "non-acceptance")
    assert status == 200
    assert "不予受理通知书" in html and "申请人户籍不在本镇，请到户籍所在地申请" in html
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
    assert doc(town, errand_id, "commitment")[0] == 404  # accepted in full, not provisionally


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
