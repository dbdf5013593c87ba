"""With logins on (the default): numbers masked until an audited show, complaints for supervision only.

One village node with three accounts — the agent 李建国, the supervisor 周明 and the discipline
inspector 钱纪 — driven through its screens and API as each of them would use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from protocol.lookup import lookup_code
from sanji.auth import events as ev
from tests.auth.auth_kit import GOOD, add, app, bearer, csrf_of, events, login, prepare, token

Client = TestClient[Litestar]
FULL_ID, MASKED_ID = "430621195007307791", "430621********7791"
FULL_PHONE, MASKED_PHONE = "13812345678", "138****5678"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Client, Path, str]]:
    config = prepare(tmp_path, "T01V01", required=True)
    add(config, "李建国", "village_agent")
    add(config, "周明", "supervisor")
    add(config, "钱纪", "inspector")
    agent = token(config, "李建国")
    with TestClient(app(config)) as client:
        r = client.post("/api/errands", json=GOOD, headers=bearer(agent))
        assert r.status_code == 201, r.text
        yield client, config, r.json()["errand"]


def test_the_agent_sees_masked_numbers_until_an_audited_show(node: tuple[Client, Path, str]) -> None:
    client, config, errand = node
    login(client, "李建国")
    page = client.get(f"/errands/{errand}")
    assert page.status_code == 200
    assert MASKED_ID in page.text and MASKED_PHONE in page.text
    assert FULL_ID not in page.text and FULL_PHONE not in page.text
    assert "查看完整号码" in page.text
    no_token = client.post(f"/errands/{errand}/reveal")
    assert no_token.status_code == 403  # a form like any other: the session's CSRF token is needed
    shown = client.post(f"/errands/{errand}/reveal", data={"_csrf_token": csrf_of(page.text)})
    assert shown.status_code == 200
    assert FULL_ID in shown.text and FULL_PHONE in shown.text and "本次查看已记录" in shown.text
    again = client.get(f"/errands/{errand}")
    assert FULL_ID not in again.text  # nothing stays open
    reveals = [
        e
        for e in events(config, errand=errand, event="read")
        if isinstance(e, ev.PersonalDataRead) and e.what == "reveal"
    ]
    assert [(e.account, e.via, e.detail) for e in reveals] == [("李建国", "session", "screen")]


def test_the_api_masks_and_reveals_by_role(node: tuple[Client, Path, str]) -> None:
    client, config, errand = node
    agent, inspector = bearer(token(config, "李建国")), bearer(token(config, "钱纪"))
    masked = client.get(f"/api/errands/{errand}", headers=agent).json()["history"][0]["applicant"]
    assert (masked["id_number"], masked["phone"]) == (MASKED_ID, MASKED_PHONE)
    full = client.get(f"/api/errands/{errand}", params={"reveal": "true"}, headers=agent).json()
    assert full["history"][0]["applicant"]["id_number"] == FULL_ID
    refused = client.get(f"/api/errands/{errand}", params={"reveal": "true"}, headers=inspector)
    assert refused.status_code == 403
    seen = client.get(f"/api/errands/{errand}", headers=inspector)
    assert seen.status_code == 200 and FULL_ID not in seen.text
    assert client.get(f"/api/errands/{errand}").status_code == 401  # nobody anonymous


def test_the_inspector_gets_no_show_button_and_no_show(node: tuple[Client, Path, str]) -> None:
    client, _, errand = node
    login(client, "钱纪")
    page = client.get(f"/errands/{errand}")
    assert page.status_code == 200 and MASKED_ID in page.text and "查看完整号码" not in page.text
    refused = client.post(f"/errands/{errand}/reveal", data={"_csrf_token": csrf_of(page.text)})
    assert refused.status_code == 403 and FULL_ID not in refused.text


def _public_complaint(client: Client, errand: str, against: str) -> None:
    receipt = re.search(r"<b>([A-Z0-9]+-\d{6}-\d{4,6}[0-9A-Z])</b>", client.get(f"/errands/{errand}").text)
    assert receipt is not None
    client.cookies.clear()  # the villager, not the desk
    form = client.get("/complain")
    r = client.post(
        "/complain",
        data={
            "_public_token": re.findall(r'name="_public_token" value="([^"]+)"', form.text)[-1],
            "receipt": receipt.group(1),
            "code": lookup_code(errand),
            "kind": "投诉",
            "against": against,
            "text": f"{against}态度恶劣",
            "name": "王五",
            "phone": "13900001111",
        },
    )
    assert r.status_code == 200, r.text


def test_complaints_reach_supervision_and_never_the_person_named(node: tuple[Client, Path, str]) -> None:
    client, _, errand = node
    login(client, "李建国")
    _public_complaint(client, errand, "李建国")
    login(client, "周明")
    _public_complaint(client, errand, "周明")

    login(client, "周明")  # the supervisor sees the complaint about the agent, not the one about himself
    board = client.get("/supervision")
    assert "李建国态度恶劣" in board.text and "周明态度恶劣" not in board.text
    assert "13900001111" not in board.text and "已加密" in board.text  # sealed to the county, not this village
    detail = client.get(f"/errands/{errand}")
    assert "李建国态度恶劣" in detail.text and "周明态度恶劣" not in detail.text

    login(client, "钱纪")  # the inspector sees both
    board = client.get("/supervision")
    assert "李建国态度恶劣" in board.text and "周明态度恶劣" in board.text

    login(client, "李建国")  # the agent named sees neither, on no page and in no API answer
    assert "态度恶劣" not in client.get(f"/errands/{errand}").text
    assert "态度恶劣" not in client.get("/supervision").text
    client.cookies.clear()
    assert "态度恶劣" not in client.get(f"/lookup?receipt=x&code={lookup_code(errand)}").text


def test_an_anonymous_api_lookup_says_why_an_errand_ended_as_the_screen_does_masked(
    node: tuple[Client, Path, str],
) -> None:
    """``GET /api/lookup/…`` with no login (logins on): the ending the /lookup screen shows, and nothing more."""
    client, config, errand = node
    agent = bearer(token(config, "李建国"))
    receipt = client.get(f"/api/errands/{errand}", headers=agent).json()["receipt"]
    said = f"申请人撤回，身份证{FULL_ID}，电话{FULL_PHONE[:3]} {FULL_PHONE[3:7]} {FULL_PHONE[7:]}"
    r = client.post(
        f"/api/errands/{errand}/actions", json={"kind": "withdraw", "actor": "李建国", "reasons": said}, headers=agent
    )
    assert r.status_code == 201, r.text
    client.cookies.clear()
    answer = client.get(f"/api/lookup/{receipt}", params={"code": lookup_code(errand)})
    assert answer.status_code == 200, answer.text
    ending = answer.json()["ending"]
    assert ending["reasons"] == f"申请人撤回，身份证{'*' * 18}，电话*** **** ****"
    assert ending["document"] == "" and "重新申请" in ending["steps"][0]["zh"]
    for secret in (FULL_ID, FULL_PHONE[7:], "张秀英", "李建国"):
        assert secret not in answer.text, secret
    screen = client.get("/lookup", params={"receipt": receipt, "code": lookup_code(errand)}).text
    shown = re.search(r'id="ending-reasons">(.*?)</tr>', screen, re.S)
    assert shown is not None and ending["reasons"] in shown[1]  # the screen's words, one function
    wrong = client.get(f"/api/lookup/{receipt}", params={"code": "0000"})
    assert wrong.status_code == 404 and "撤回" not in wrong.text  # the second factor still guards it
