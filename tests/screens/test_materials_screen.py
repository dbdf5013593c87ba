"""The errand page's materials, from the one reading of its history (``protocol.binding.held_materials``):
已收材料 with what came in since registration, 缺少材料 marking main and secondary, acceptance neither offered
nor taken while a main material (主件) is missing, the one-time notice's form listing only what is still
missing, and the receipt naming the main materials the agent registered without."""

from __future__ import annotations

import re
from html import unescape

from litestar import Litestar
from litestar.testing import TestClient
from screens_kit import PROMISED, act, register

Client = TestClient[Litestar]


def kinds(page: str) -> set[str]:
    return set(re.findall(r'name="kind" value="([a-z_]+)"', page))


def cell(page: str, cell_id: str) -> str:
    found = re.search(rf'<td id="{cell_id}">(.*?)</td>', page, re.S)
    assert found is not None, cell_id
    return unescape(re.sub(r"<[^>]+>", "", found.group(1)))


def test_a_main_material_missing_is_said_and_acceptance_is_neither_offered_nor_taken(village: Client) -> None:
    # 临时救助 may be accepted at the village station itself (accept_levels), so acceptance would be offered here
    errand = register(village, materials=("申请书", "身份证复印件"))
    page = village.get(f"/errands/{errand}").text
    assert cell(page, "materials-held") == "申请书、身份证复印件"
    missing = re.search(r'<td id="materials-missing">(.*?)</td>', page, re.S)
    assert missing is not None
    assert re.search(
        r'data-missing="main"><b>主件 <span class="en" lang="en">main</span>：户口簿复印件</b>', missing.group(1)
    )
    assert re.search(
        r'data-missing="secondary">副件 <span class="en" lang="en">secondary</span>：困难情况证明材料', page
    )
    assert "accept" not in kinds(page) and "submit" in kinds(page)  # carried up to the township instead
    note = re.search(
        r'<p class="note" id="accept-unavailable" data-refusal="accept_mains_missing" lang="zh-CN">(.*?)</p>',
        page,
        re.S,
    )
    assert note is not None and note.group(1).startswith("主件不齐，不能受理：缺少户口簿复印件")

    # posted anyway (a stale page, a script): refused, Chinese first, nothing written
    r = village.post(
        f"/errands/{errand}/act",
        data={"kind": "accept", "actor": "李建国", "role": "代办员", "errand_kind": "承诺件"},
        follow_redirects=False,
    )
    assert r.status_code == 409 and 'data-refusal="accept_mains_missing"' in r.text, r.text
    assert "主件不齐，不能受理" in r.text
    api = village.post(f"/api/errands/{errand}/actions", json={"kind": "accept", "actor": "李建国"})
    assert api.status_code == 409 and api.json()["error_code"] == "accept_mains_missing", api.text
    assert api.json()["message_zh"].startswith("主件不齐，不能受理")
    shown = village.get(f"/api/errands/{errand}").json()
    assert shown["version"] == 1 and shown["stage"] == "registered"
    assert shown["materials"]["held"] == ["申请书", "身份证复印件"]
    assert shown["materials"]["missing_main"] == ["户口簿复印件"]
    assert shown["materials"]["missing_secondary"] == ["困难情况证明材料"]

    # the receipt the agent prints says which main materials the registration lacked, and what follows
    receipt = village.get(f"/print/{errand}/receipt").text
    said = re.search(r'<p id="receipt-missing-main">(.*?)</p>', receipt, re.S)
    assert said is not None and "缺少主件：户口簿复印件" in said.group(1) and "不能受理" in said.group(1)

    # every main one brought: acceptance offered, no missing row, nothing on the receipt
    whole = register(village, materials=("申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料"))
    page = village.get(f"/errands/{whole}").text
    assert "accept" in kinds(page) and 'id="materials-missing"' not in page and 'id="accept-unavailable"' not in page
    assert 'id="receipt-missing-main"' not in village.get(f"/print/{whole}/receipt").text


def test_materials_received_since_registration_are_held_and_never_asked_for_again(town: Client) -> None:
    errand = register(town, materials=("申请书", "身份证复印件", "户口簿复印件"), in_person=True)
    act(town, errand, "accept", errand_kind="承诺件", provisional="困难情况证明材料", promise_by=PROMISED.isoformat())
    page = town.get(f"/errands/{errand}").text
    assert "request_supplement" in kinds(page)
    prefilled = re.search(r'<textarea id="request_supplement-items"[^>]*>(.*?)</textarea>', page, re.S)
    assert prefilled is not None and prefilled.group(1) == "困难情况证明材料"

    act(town, errand, "materials_received", items="困难情况证明材料")  # 容缺: the promised one arrives
    page = town.get(f"/errands/{errand}").text
    assert cell(page, "materials-held") == "申请书、身份证复印件、户口簿复印件、困难情况证明材料"
    assert 'id="materials-missing"' not in page
    prefilled = re.search(r'<textarea id="request_supplement-items"[^>]*>(.*?)</textarea>', page, re.S)
    assert prefilled is not None and prefilled.group(1) == ""  # nothing owed: no second notice of the same item
    held = town.get(f"/api/errands/{errand}").json()["materials"]
    assert held["held"][-1] == "困难情况证明材料" and held["missing_main"] == held["missing_secondary"] == []


def test_the_home_page_tells_the_registering_desk_which_materials_to_bring(village: Client) -> None:
    errand = register(village, materials=("申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料"))
    act(village, errand, "accept", errand_kind="承诺件")  # 临时救助: the village station may accept it itself
    act(village, errand, "request_supplement", items="银行账户复印件")
    home = village.get("/").text
    worklist = home[home.index("待办") : home.index("全部办件")]
    assert f'href="/errands/{errand}"' in worklist and "data-owed" in worklist and "需补交材料" in worklist
    notice = re.search(r'data-kind="supplement_asked">(.*?)</li>', home, re.S)
    assert notice is not None and "需补正材料" in notice.group(1) and "银行账户复印件" in notice.group(1)
    assert 'data-kind="new_work"' not in home  # said as what it is, not as new work
    # asked after the acceptance at the desk it was registered at: a clock runs, so the notice stops it
    notice = village.get(f"/print/{errand}/supplement").text
    assert re.search(r'id="supplement-clock">自本通知书出具之日起至上述材料全部补齐之日止，办理时限暂停计算', notice)


def test_a_walk_in_missing_a_main_material_is_told_once_at_the_window_then_accepted(town: Client) -> None:
    """Rules 3 (the illustrative catalogue's): the township's window gives the walk-in the one-time notice on the
    spot, listing what is still missing, prints it, takes the papers in, and accepts the errand."""
    errand = register(town, materials=("申请书", "身份证复印件"), in_person=True)
    page = town.get(f"/errands/{errand}").text
    assert "request_supplement" in kinds(page) and "accept" not in kinds(page)
    prefilled = re.search(r'<textarea id="request_supplement-items"[^>]*>(.*?)</textarea>', page, re.S)
    assert prefilled is not None and prefilled.group(1).split("\n") == ["户口簿复印件", "困难情况证明材料"]

    act(town, errand, "request_supplement", items=prefilled.group(1))
    shown = town.get(f"/api/errands/{errand}").json()
    assert shown["stage"] == "supplement" and shown["deadline"] is None  # no clock runs before the acceptance
    notice = town.get(f"/print/{errand}/supplement")
    assert notice.status_code == 200 and "一次性告知书" in notice.text
    for item in ("户口簿复印件", "困难情况证明材料"):
        assert f"<td>{item}</td>" in notice.text
    clock = re.search(r'<p class="strong" id="supplement-clock">(.*?)</p>', notice.text, re.S)
    assert clock is not None and clock.group(1).startswith("上述材料全部补齐后予以受理")
    where = re.search(r'<p class="lead" id="supplement-where">(.*?)<span', notice.text, re.S)
    assert where is not None and "村代办员" not in where.group(1) and "便民服务中心" in where.group(1)

    act(town, errand, "materials_received", items="户口簿复印件\n困难情况证明材料")
    page = town.get(f"/errands/{errand}").text
    assert "accept" in kinds(page) and "request_supplement" not in kinds(page)  # one notice; now it may accept
    assert 'id="materials-missing"' not in page
    act(town, errand, "accept", errand_kind="承诺件")
    shown = town.get(f"/api/errands/{errand}").json()
    assert shown["stage"] == "accepted" and shown["deadline"]["due"]  # counted from the acceptance
    reprinted = town.get(f"/print/{errand}/supplement").text  # the paper is of the notice, not of today's stage
    assert re.search(r'id="supplement-clock">上述材料全部补齐后予以受理', reprinted)
    # the API asks the same rule: a second notice from this desk is refused, Chinese first
    again = town.post(
        f"/api/errands/{errand}/actions", json={"kind": "request_supplement", "items": ["照片"], "actor": "王晓红"}
    )
    assert again.status_code == 409 and again.json()["error_code"] == "notice_already_issued", again.text
    assert again.json()["message_zh"]


def test_the_agent_is_told_the_next_step_for_materials_asked_for(village: Client) -> None:
    """待补正 at the desk that brings the materials: the row says what to do next (collect, record, carry up)."""
    errand = register(village, materials=("申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料"))
    assert 'id="supply-next"' not in village.get(f"/errands/{errand}").text  # nothing asked for yet
    act(village, errand, "accept", errand_kind="承诺件")
    act(village, errand, "request_supplement", items="银行账户复印件")
    page = village.get(f"/errands/{errand}").text
    assert "supply" in kinds(page)
    hint = re.search(r'<span class="warn" id="supply-next">(.*?)</span>', page, re.S)
    assert hint is not None and "下一步" in hint.group(1) and "代办员补交材料" in hint.group(1)


def test_a_window_is_not_told_to_carry_materials_up(town: Client) -> None:
    errand = register(town, in_person=True)
    act(town, errand, "accept", errand_kind="承诺件")
    act(town, errand, "request_supplement", items="银行账户复印件")
    page = town.get(f"/errands/{errand}").text
    assert "银行账户复印件" in page and "supply" not in kinds(page) and 'id="supply-next"' not in page
