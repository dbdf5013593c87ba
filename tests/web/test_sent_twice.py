"""A form sent twice takes its step once (``sanji.store.submissions``): 确认登记, 督办 and 备注, a public complaint.

One village node with logins on, served by uvicorn on loopback, so the two sendings of a double click really
overlap; each test counts the actions in the node's database. The second sending, at once or later (the
browser's back and resubmit), lands where the first did and says it was not taken twice.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from sanji.config import load_settings
from sanji.store.submissions import KEEP_MS
from tests.auth.auth_kit import GOOD, add, app, bearer, prepare, token
from tests.screens.screens_kit import served
from tests.sent_twice_kit import ONCE, at_once, count, logged_in, once_key, sent_together

PUBLIC_TOKEN = re.compile(r'name="_public_token" value="([^"]+)"')


@dataclass(frozen=True)
class Node:
    url: str
    db: Path
    errand: str  # one errand registered there through the API
    receipt: str
    config: Path


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    config = prepare(tmp_path, "T01V01", required=True)
    add(config, "李建国", "village_agent")
    add(config, "周明", "supervisor")
    settings = load_settings(config)
    with served(app(config), name="village") as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            agent = bearer(token(config, "李建国"))
            r = client.post("/api/errands", json=GOOD, headers=agent)
            assert r.status_code == 201, r.text
            errand = r.json()["errand"]
            receipt = client.get(f"/api/errands/{errand}", headers=agent).json()["receipt"]
        yield Node(url, settings.path(settings.node.data_dir) / "node.db", errand, receipt, config)


def test_confirm_register_sent_twice_at_once_registers_one_errand(node: Node) -> None:
    cookies, csrf = logged_in(node.url, "李建国")
    form: dict[str, object] = {
        "_csrf_token": csrf,
        "matter": "MZ-001",
        "applicant_name": "王桂兰",
        "materials": ["身份证复印件"],
        "mandate": "1",
        "confirm": "1",  # 仍然登记: the main materials not all here
        "actor": "李建国",
        "role": "代办员",
        "step": "review",
    }
    with httpx.Client(base_url=node.url, timeout=30, cookies=cookies) as client:
        review = client.post("/register", data=form)
    assert review.status_code == 200 and 'value="confirm"' in review.text, review.text
    confirm = {**form, "step": "confirm", "_once": ONCE.findall(review.text)[-1]}
    registered = "SELECT count(*) FROM actions WHERE kind = 'register'"
    before = count(node.db, registered)

    answers = at_once(node.url, cookies, "/register", {**confirm, "_csrf_token": csrf}, times=3)
    assert [a.status_code for a in answers] == [303, 303, 303], [a.text for a in answers]
    places = sorted(a.headers["location"] for a in answers)
    receipt = places[0]
    assert receipt.startswith("/print/") and receipt.endswith("/receipt"), places
    assert places[1:] == [receipt + "?again=1"] * 2  # the same errand's receipt, twice said sent already
    assert count(node.db, registered) == before + 1
    # One receipt number taken (the API's registration took the day's first): no gap in the day's numbers.
    assert count(node.db, "SELECT max(CAST(value AS INTEGER)) FROM meta WHERE key LIKE 'counter:receipt:%'") == 2
    assert count(node.db, "SELECT count(*) FROM submissions WHERE key LIKE 'register:%'") == 1

    # Later: the browser's back to the review page and 确认登记 again. No second errand, no receipt number used.
    numbers = "SELECT count(*) FROM meta WHERE key LIKE 'counter:receipt:%' AND value = ?"
    with httpx.Client(base_url=node.url, timeout=30, cookies=cookies) as client:
        held = count(node.db, "SELECT max(CAST(value AS INTEGER)) FROM meta WHERE key LIKE 'counter:receipt:%'")
        again = client.post("/register", data=confirm, follow_redirects=False)
        assert (again.status_code, again.headers["location"]) == (303, receipt + "?again=1")
        shown = client.get(again.headers["location"])
    assert shown.status_code == 200 and 'id="sent-again"' in shown.text and "已提交，未重复登记" in shown.text
    assert count(node.db, registered) == before + 1
    assert count(node.db, numbers, str(held)) == 1  # the day's counter did not move
    errand = unquote(receipt.split("/")[2])
    assert count(node.db, "SELECT count(*) FROM submissions WHERE errand = ?", errand) == 1


def errand_form(url: str, cookies: httpx.Cookies, errand: str) -> str:
    return once_key(url, cookies, f"/errands/{quote(errand, safe='')}")


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        # 督办 (an answer due) is the county's alone (``urging_level``): the village's supervisor sends a 纠错
        ("supervise", {"supervision": "纠错", "text": "请加快办理"}),
        ("note", {"text": "申请人来电询问进度"}),
    ],
)
def test_an_errand_step_sent_twice_at_once_is_taken_once(node: Node, kind: str, fields: dict[str, str]) -> None:
    cookies, csrf = logged_in(node.url, "周明")
    key = errand_form(node.url, cookies, node.errand)
    path = f"/errands/{quote(node.errand, safe='')}/act"
    data = {"_csrf_token": csrf, "_once": key, "kind": kind, "actor": "周明", "role": "督查员", **fields}
    taken = "SELECT count(*) FROM actions WHERE errand = ? AND kind = ?"

    answers = at_once(node.url, cookies, path, data, times=3)
    assert [a.status_code for a in answers] == [303, 303, 303], [a.text for a in answers]
    done = f"/errands/{quote(node.errand, safe='')}?done={kind}"
    assert sorted(a.headers["location"] for a in answers) == [done, done + "&again=1", done + "&again=1"]
    assert count(node.db, taken, node.errand, kind) == 1
    with httpx.Client(base_url=node.url, timeout=30, cookies=cookies) as client:
        page = client.get(f"/errands/{quote(node.errand, safe='')}?done={kind}&again=1")
    assert page.text.count(fields["text"]) == 1  # its line in the history, once
    assert 'id="sent-again"' in page.text and "已提交，未重复办理" in page.text

    # The browser's back to the same page: the same step again is the same sending; another text is a new step.
    with httpx.Client(base_url=node.url, timeout=30, cookies=cookies) as client:
        again = client.post(path, data=data, follow_redirects=False)
        assert (again.status_code, again.headers["location"]) == (303, done + "&again=1")
        assert count(node.db, taken, node.errand, kind) == 1
        other = client.post(path, data={**data, "text": "再次提醒"}, follow_redirects=False)
        assert (other.status_code, other.headers["location"]) == (303, done)
    assert count(node.db, taken, node.errand, kind) == 2


def test_a_refused_step_uses_no_key(node: Node) -> None:
    """The key is written with the step: a step the rule refuses (a 督办 sent from a village) writes no key."""
    cookies, csrf = logged_in(node.url, "周明")
    key = errand_form(node.url, cookies, node.errand)
    path = f"/errands/{quote(node.errand, safe='')}/act"
    data = {"_csrf_token": csrf, "_once": key, "kind": "supervise", "actor": "周明", "role": "督查员"}
    with httpx.Client(base_url=node.url, timeout=30, cookies=cookies) as client:
        urging = {"supervision": "督办", "text": "请核实", "answer_days": "3"}
        refused = client.post(path, data={**data, **urging}, follow_redirects=False)
        assert refused.status_code == 409 and 'data-refusal="urging_level"' in refused.text
        assert count(node.db, "SELECT count(*) FROM submissions") == 0
        taken = client.post(path, data={**data, "supervision": "纠错", "text": "请核实"}, follow_redirects=False)
        assert taken.status_code == 303 and "again" not in taken.headers["location"]
    assert count(node.db, "SELECT count(*) FROM submissions") == 1


def test_a_complaint_sent_twice_at_once_is_filed_once(node: Node) -> None:
    with httpx.Client(base_url=node.url, timeout=30) as client:
        form = client.get("/complain")
        cookies = client.cookies
    data = {
        "_public_token": PUBLIC_TOKEN.findall(form.text)[-1],
        "_once": ONCE.findall(form.text)[-1],
        "receipt": node.receipt,
        "code": "5678",
        "kind": "投诉",
        "text": "窗口推诿",
    }
    filed = "SELECT count(*) FROM actions WHERE errand = ? AND kind = 'complain'"

    answers = at_once(node.url, cookies, "/complain", data, times=3)
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert count(node.db, filed, node.errand) == 1
    references = {re.findall(r"<b>([0-9A-F]{8})</b>", a.text)[0] for a in answers}
    assert len(references) == 1  # each page names the one complaint filed
    assert sum("已提交，未重复投诉" in a.text for a in answers) == 2

    # Back to the form, the same complaint again: nothing new. Back, another text typed, sent: a second one.
    with httpx.Client(base_url=node.url, timeout=30, cookies=cookies) as client:
        again = client.post("/complain", data=data)
        assert again.status_code == 200 and "已提交，未重复投诉" in again.text
        assert count(node.db, filed, node.errand) == 1
        other = client.post("/complain", data={**data, "text": "窗口推诿，第二次"})
        assert other.status_code == 200 and "已提交，未重复投诉" not in other.text
    assert count(node.db, filed, node.errand) == 2


def test_old_keys_are_trimmed_by_the_writes_that_add_one(node: Node) -> None:
    cookies, csrf = logged_in(node.url, "周明")
    path = f"/errands/{quote(node.errand, safe='')}/act"
    data = {"_csrf_token": csrf, "kind": "note", "actor": "周明", "role": "督查员", "text": "一"}
    with httpx.Client(base_url=node.url, timeout=30, cookies=cookies) as client:
        first = client.post(path, data={**data, "_once": errand_form(node.url, cookies, node.errand)})
        assert first.status_code in (200, 303)
        with sqlite3.connect(node.db) as conn:  # the first key, as if sent more than a week ago
            conn.execute("UPDATE submissions SET at = at - ?", (KEEP_MS + 1,))
        second = client.post(path, data={**data, "text": "二", "_once": errand_form(node.url, cookies, node.errand)})
        assert second.status_code in (200, 303)
    assert count(node.db, "SELECT count(*) FROM submissions") == 1
    assert count(node.db, "SELECT count(*) FROM actions WHERE errand = ? AND kind = 'note'", node.errand) == 2


def test_the_api_takes_a_request_sent_again_under_its_idempotency_key_once(node: Node) -> None:
    """A script's retry (the answer lost to a timeout) sends the same request with the same key: one errand."""
    agent = {**bearer(token(node.config, "李建国")), "Idempotency-Key": "retry-0123456789abcdef"}
    form = {**GOOD, "applicant_name": "赵四"}
    registered = "SELECT count(*) FROM actions WHERE kind = 'register'"
    before = count(node.db, registered)

    answers = sent_together(node.url, lambda client: client.post("/api/errands", json=form, headers=agent))
    assert [a.status_code for a in answers] == [201, 201, 201], [a.text for a in answers]
    assert len({a.json()["errand"] for a in answers}) == 1
    assert count(node.db, registered) == before + 1
    with httpx.Client(base_url=node.url, timeout=30) as client:
        errand = answers[0].json()["errand"]
        note = {"kind": "note", "actor": "李建国", "text": "已电话告知"}
        path = f"/api/errands/{quote(errand, safe='')}/actions"
        # the registration's key sent with a step: another request under it, refused; a step takes its own key
        reused = client.post(path, json=note, headers=agent)
        assert reused.status_code == 409 and reused.json()["error"] == "idempotency_key_reused", reused.text
        agent = {**agent, "Idempotency-Key": "step-0123456789abcdef"}
        steps = [client.post(path, json=note, headers=agent) for _ in range(2)]
        assert [s.status_code for s in steps] == [201, 201] and steps[0].json() == steps[1].json()
        assert count(node.db, "SELECT count(*) FROM actions WHERE errand = ? AND kind = 'note'", errand) == 1
        other = client.post("/api/errands", json=form, headers={**agent, "Idempotency-Key": "another key"})
        assert other.status_code == 201 and other.json()["errand"] != errand  # another key: another request
        # the same key and body on another errand is another request (another path): refused, as on the office API
        elsewhere = f"/api/errands/{quote(other.json()['errand'], safe='')}/actions"
        noted = client.post(elsewhere, json=note, headers=agent)
        assert noted.status_code == 409 and noted.json()["error"] == "idempotency_key_reused", noted.text
        assert (
            count(node.db, "SELECT count(*) FROM actions WHERE errand = ? AND kind = 'note'", other.json()["errand"])
            == 0
        )
    assert count(node.db, registered) == before + 2


def test_an_idempotency_key_names_one_request_of_one_account(node: Node) -> None:
    """The rule the office API keeps too (``submissions.from_header``): another body under a key used is refused,
    409, saying a retry under it cannot help; another account's same key is its own; a malformed key is a 400."""
    path = f"/api/errands/{quote(node.errand, safe='')}/actions"
    agent = {**bearer(token(node.config, "李建国")), "Idempotency-Key": "note-2026-0001"}
    note = {"kind": "note", "actor": "李建国", "text": "已电话告知"}
    notes = "SELECT count(*) FROM actions WHERE errand = ? AND kind = 'note'"
    with httpx.Client(base_url=node.url, timeout=30) as client:
        first = client.post(path, json=note, headers=agent)
        assert first.status_code == 201, first.text

        other = client.post(path, json={**note, "text": "申请人已补交材料"}, headers=agent)
        assert other.status_code == 409, other.text
        body = other.json()
        assert body["error"] == "idempotency_key_reused" and body["retryable"] is False
        assert body["message_zh"].startswith("该幂等键已用于另一个请求") and "请换用新的键" in body["message_zh"]
        assert body["message"].startswith("该幂等键已用于另一个请求") and "a new key" in body["message"]
        assert count(node.db, notes, node.errand) == 1

        again = client.post(path, json=note, headers=agent)  # the first request, retried: still answered
        assert again.status_code == 201 and again.json() == first.json()
        assert count(node.db, notes, node.errand) == 1

        # another account sending the same key: its own request, taken (the keys never meet)
        supervisor = {**bearer(token(node.config, "周明")), "Idempotency-Key": "note-2026-0001"}
        theirs = client.post(path, json={**note, "actor": "周明", "text": "已核实"}, headers=supervisor)
        assert theirs.status_code == 201, theirs.text
        assert count(node.db, notes, node.errand) == 2

        for bad in ("", "k" * 201, "键".encode(), "a\x01b"):
            refused = client.post(path, json={**note, "text": "不应写入"}, headers={**agent, "Idempotency-Key": bad})
            assert refused.status_code == 400, (bad, refused.text)
            assert refused.json()["error"] == "idempotency_key_malformed", refused.text
            assert refused.json()["message_zh"].startswith("幂等键格式有误")
        ok = client.post(path, json={**note, "text": "二"}, headers={**agent, "Idempotency-Key": "k" * 200})
        assert ok.status_code == 201, ok.text
    assert count(node.db, notes, node.errand) == 3


def test_a_scan_sent_twice_at_once_is_attached_once(node: Node) -> None:
    """The errand page's 上传 form: the same file sent twice is one attach step, on the same page."""
    cookies, csrf = logged_in(node.url, "李建国")
    key = errand_form(node.url, cookies, node.errand)
    path = f"/errands/{quote(node.errand, safe='')}/attach"
    data = {"_csrf_token": csrf, "_once": key, "name": "身份证正面"}
    scan = b"%PDF-1.4\n" + b"0" * 2000
    attached = "SELECT count(*) FROM actions WHERE errand = ? AND kind = 'attach'"

    def send(client: httpx.Client | httpx.AsyncClient, body: bytes) -> Any:
        return client.post(path, data=data, files={"scan": ("id.pdf", body, "application/pdf")})

    answers = sent_together(node.url, lambda client: send(client, scan), cookies=cookies)
    assert [a.status_code for a in answers] == [303, 303, 303], [a.text for a in answers]
    done = f"/errands/{quote(node.errand, safe='')}?done=attach"
    assert sorted(a.headers["location"] for a in answers) == [done, done + "&again=1", done + "&again=1"]
    assert count(node.db, attached, node.errand) == 1
    with httpx.Client(base_url=node.url, timeout=30, cookies=cookies) as client:
        page = client.get(done + "&again=1")
        assert 'id="sent-again"' in page.text and page.text.count("身份证正面") == 1
        # Later, the browser's back and the same file again: still one. Another file on that page: a new step.
        again = send(client, scan)
        assert (again.status_code, again.headers["location"]) == (303, done + "&again=1")
        assert count(node.db, attached, node.errand) == 1
        other = send(client, b"%PDF-1.4\n" + b"1" * 2000)
        assert (other.status_code, other.headers["location"]) == (303, done)
    assert count(node.db, attached, node.errand) == 2


def test_a_desk_step_sent_twice_lands_on_the_page_not_on_a_refusal(node: Node) -> None:
    """A step that moves the errand on (上报 here; 受理, 办结 … alike, one handler): without the key the second
    sending found the errand moved and the clerk read a refusal; with it, the errand page, said sent once."""
    cookies, csrf = logged_in(node.url, "李建国")
    with httpx.Client(base_url=node.url, timeout=30, cookies=cookies) as client:
        page = client.get(f"/errands/{quote(node.errand, safe='')}")
    version = re.findall(r'name="expected_version" value="([0-9]+)"', page.text)[0]
    path = f"/errands/{quote(node.errand, safe='')}/act"
    data = {"_csrf_token": csrf, "_once": ONCE.findall(page.text)[-1], "kind": "submit"}
    data |= {"expected_version": version, "actor": "李建国", "role": "代办员", "text": "材料齐全，上报"}
    taken = "SELECT count(*) FROM actions WHERE errand = ? AND kind = 'handoff'"  # 上报 is a handoff

    answers = at_once(node.url, cookies, path, data, times=3)
    assert [a.status_code for a in answers] == [303, 303, 303], [a.text for a in answers]
    done = f"/errands/{quote(node.errand, safe='')}?done=submit"
    assert sorted(a.headers["location"] for a in answers) == [done, done + "&again=1", done + "&again=1"]
    assert count(node.db, taken, node.errand) == 1
    with httpx.Client(base_url=node.url, timeout=30, cookies=cookies) as client:
        later = client.post(path, data=data, follow_redirects=False)  # back and resubmit, the errand moved on
        assert (later.status_code, later.headers["location"]) == (303, done + "&again=1")
    assert count(node.db, taken, node.errand) == 1
