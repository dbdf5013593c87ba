"""Forms that write something other than an errand's step, sent twice: the county's 考核 entry, appeal and
decision, 新建账号, 修改本人密码, 签发入网令牌 (``sanji.store.submissions``).

A real county with logins required and a root of trust (``trust init-root``, ``certify-hub``), served by
uvicorn on loopback so a double click's two sendings really overlap; each test counts what the county's
database holds. The second sending, at once or later (the browser's back and resubmit), writes nothing and
lands where the first did, saying so.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from protocol.topology import TOWN
from sanji.auth import passwords
from sanji.catalogue import default_catalogue_path
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from tests.auth.auth_kit import PASSWORD, add, app, bearer, csrf_of, token
from tests.enroll_kit import certify_county, issue, join, serving
from tests.screens.screens_kit import _seed_catalogue as seed_catalogue
from tests.sent_twice_kit import ONCE, at_once, count, logged_in, once_key

Q = "2026Q4"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with small parameters, as the account tests use (production's cost ~1 s a hash)."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))


@dataclass(frozen=True)
class County:
    url: str
    db: Path
    config: Path
    cluster: Cluster


@pytest.fixture
def county(tmp_path: Path) -> Iterator[County]:
    cluster = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=False)
    config = cluster.nodes["C"].config
    asyncio.run(seed_catalogue(load_settings(config), cluster.layout.keys["C"]))
    certify_county(cluster, tmp_path / "root")
    add(config, "监察员", "supervisor")
    add(config, "督查员", "supervisor")  # decides the appeals the other files (no one decides their own)
    add(config, "管理员", "admin")
    settings = load_settings(config)
    # on the cluster's port: the township's configuration names it as its parent (the revocation test enrolls it)
    with serving(app(config), cluster.nodes["C"].port, name="county") as url:
        yield County(url, settings.path(settings.node.data_dir) / "node.db", config, cluster)


def test_assessment_forms_sent_twice_record_once(county: County) -> None:
    cookies, csrf = logged_in(county.url, "监察员")
    page = f"/office/assessment/?quarter={Q}"
    records = "SELECT count(*) FROM office_records WHERE kind = ?"
    done = f"/office/assessment/?quarter={Q}&done="
    base = {"_csrf_token": csrf, "quarter": Q}

    entry = {**base, "_once": once_key(county.url, cookies, page), "target": "staff", "subject": "王芳", "item": "late"}
    answers = at_once(county.url, cookies, "/office/assessment/entries", entry)
    assert [a.status_code for a in answers] == [303] * 3, [a.text for a in answers]
    assert sorted(a.headers["location"] for a in answers) == [done + "entry"] + [done + "entry&again=1"] * 2
    assert count(county.db, records, "entry") == 1

    appeal = {**base, "_once": once_key(county.url, cookies, page), "target": "staff", "subject": "王芳"}
    appeal["reason"] = "迟到系系统故障"
    answers = at_once(county.url, cookies, "/office/assessment/appeals", appeal)
    assert sorted(a.headers["location"] for a in answers) == [done + "appeal"] + [done + "appeal&again=1"] * 2
    assert count(county.db, records, "appeal") == 1

    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        shown = client.get(done + "appeal&again=1")
        assert 'id="sent-again"' in shown.text and "已提交，未重复记录" in shown.text
        (appeal_id,) = re.findall(r'id="appeal-(AP-[0-9a-f]+)"', shown.text)
        # the browser's back to the entry form, sent again: nothing new; another subject typed there: recorded
        again = client.post("/office/assessment/entries", data=entry, follow_redirects=False)
        assert again.headers["location"] == done + "entry&again=1"
        other = client.post("/office/assessment/entries", data={**entry, "subject": "李强"}, follow_redirects=False)
        assert other.headers["location"] == done + "entry"
    assert count(county.db, records, "entry") == 2

    # 复核: a second decision is refused by the rules (已经作出决定); the same form sent again is not refused.
    cookies, csrf = logged_in(county.url, "督查员")
    decision = {"_csrf_token": csrf, "quarter": Q, "upheld": "0", "reason": "维持原评"}
    decision["_once"] = once_key(county.url, cookies, page)
    path = f"/office/assessment/appeals/{appeal_id}/decision"
    answers = at_once(county.url, cookies, path, decision)
    assert sorted(a.headers["location"] for a in answers) == [done + "decision"] + [done + "decision&again=1"] * 2
    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        later = client.post(path, data=decision, follow_redirects=False)
        assert later.headers["location"] == done + "decision&again=1"  # not ?problem=…已经作出决定
    assert count(county.db, records, "decision") == 1


def test_create_account_sent_twice_creates_one_and_says_so(county: County) -> None:
    cookies, csrf = logged_in(county.url, "管理员")
    form = {"_csrf_token": csrf, "_once": once_key(county.url, cookies, "/admin/accounts/"), "name": "赵敏"}
    form["role"] = "supervisor"
    accounts = "SELECT count(*) FROM accounts WHERE name = ?"

    answers = at_once(county.url, cookies, "/admin/accounts/", form)
    assert sorted(a.status_code for a in answers) == [200, 200, 201], [a.text for a in answers]
    assert count(county.db, accounts, "赵敏") == 1
    (first,) = [a for a in answers if a.status_code == 201]
    assert 'id="password"' in first.text
    for second in (a for a in answers if a.status_code == 200):
        assert "已提交，未重复创建：账号 赵敏 已由第一次提交创建" in second.text
        assert 'id="password"' not in second.text and "已有名为" not in second.text
    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        later = client.post("/admin/accounts/", data=form)  # the browser's resubmit, later
        assert later.status_code == 200 and "未重复创建" in later.text
        other = client.post("/admin/accounts/", data={**form, "name": "钱进"})  # back, another name typed
        assert other.status_code == 201 and 'id="password"' in other.text
    assert count(county.db, accounts, "赵敏") == 1 and count(county.db, accounts, "钱进") == 1


def test_own_password_sent_twice_is_changed_once_not_refused(county: County) -> None:
    cookies, csrf = logged_in(county.url, "监察员")
    new = "新的密码-Correct-Horse-42"
    form = {"_csrf_token": csrf, "_once": once_key(county.url, cookies, "/account/password")}
    form |= {"current": PASSWORD, "new": new, "again": new}
    changed = "SELECT count(*) FROM audit_events WHERE event = 'account' AND body LIKE '%\"change\":\"password\"%'"
    before = count(county.db, changed)

    answers = at_once(county.url, cookies, "/account/password", form)
    assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
    assert all('id="password-changed"' in a.text for a in answers), [a.text for a in answers]
    assert sum('id="sent-again"' in a.text for a in answers) == 2
    assert not any("当前密码不正确" in a.text for a in answers)
    assert count(county.db, changed) == before + 1
    assert count(county.db, "SELECT failed_logins FROM accounts WHERE name = ?", "监察员") == 0
    with httpx.Client(base_url=county.url, timeout=30) as client:
        page = client.get("/login")
        data = {"name": "监察员", "password": new, "next": "/", "_csrf_token": csrf_of(page.text)}
        assert client.post("/login", data=data, follow_redirects=False).status_code == 303


def test_an_enrollment_token_sent_twice_is_issued_once_and_shown_again(county: County) -> None:
    cookies, csrf = logged_in(county.url, "管理员")
    form = {"_csrf_token": csrf, "_once": once_key(county.url, cookies, "/enroll"), "node": "T05"}
    form |= {"role": "town", "name": "五里镇", "days": "7"}
    issued = "SELECT count(*) FROM enrollments WHERE node = 'T05'"

    answers = at_once(county.url, cookies, "/enroll", form)
    assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
    assert count(county.db, issued) == 1
    tokens = {re.sub(r"<[^>]+>|\s", "", re.findall(r'id="token"[^>]*>(.*?)</div>', a.text, re.S)[0]) for a in answers}
    assert len(tokens) == 1  # every answer shows the one token issued
    assert sum("已提交，未重复签发" in a.text for a in answers) == 2
    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        later = client.post("/enroll", data=form)
        assert later.status_code == 200 and "已提交，未重复签发" in later.text
    assert count(county.db, issued) == 1


def test_publishing_sent_twice_publishes_once_and_says_so_not_not_newer(county: County) -> None:
    """目录 and 考核细则: the second sending of the same publish form lands on 已发布, not on 版本须高于."""
    published = "SELECT count(*) FROM audit_events WHERE event = 'published'"
    version = "SELECT version FROM documents WHERE kind = ?"

    cookies, csrf = logged_in(county.url, "管理员")
    text = default_catalogue_path().read_text(encoding="utf-8").replace("version = 1", "version = 2")
    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        review = client.post(
            "/admin/catalogue/check", data={"_csrf_token": csrf}, files={"file": ("v2.toml", text.encode())}
        )
    assert review.status_code == 200 and 'id="review"' in review.text, review.text
    catalogue = html.unescape(review.text.split('name="catalogue" value="', 1)[1].split('">', 1)[0])
    form = {"_csrf_token": csrf, "_once": ONCE.findall(review.text)[-1], "catalogue": catalogue}
    answers = at_once(county.url, cookies, "/admin/catalogue/publish", form)
    assert [a.status_code for a in answers] == [303] * 3, [a.text for a in answers]
    places = sorted(a.headers["location"] for a in answers)
    assert places == ["/admin/catalogue/?done=again"] * 2 + ["/admin/catalogue/?done=published"]
    assert count(county.db, version, "catalogue") == 2 and count(county.db, published) == 1
    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        later = client.post(
            "/admin/catalogue/publish", data=form, follow_redirects=True
        )  # the browser's resubmit, later
        assert later.status_code == 200 and 'id="sent-again"' in later.text and "未重复发布" in later.text
        assert "未发布" not in later.text
    assert count(county.db, published) == 1

    calendar = (Path(__file__).resolve().parents[2] / "deploy" / "calendar.example.toml").read_bytes()
    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        review = client.post(
            "/admin/calendar/check", data={"_csrf_token": csrf}, files={"file": ("2026.toml", calendar)}
        )
    assert review.status_code == 200 and 'id="review"' in review.text, review.text
    field = html.unescape(review.text.split('name="calendar" value="', 1)[1].split('">', 1)[0])
    form = {"_csrf_token": csrf, "_once": ONCE.findall(review.text)[-1], "calendar": field}
    answers = at_once(county.url, cookies, "/admin/calendar/publish", form)
    places = sorted(a.headers.get("location", str(a.status_code)) for a in answers)
    assert places == ["/admin/calendar/?done=again"] * 2 + ["/admin/calendar/?done=published"], places
    assert count(county.db, version, "calendar") == 1 and count(county.db, published) == 2

    cookies, csrf = logged_in(county.url, "监察员")
    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        page = client.get("/office/rules/")
    draft = html.unescape(re.findall(r'<textarea id="rules-text"[^>]*>(.*?)</textarea>', page.text, re.S)[0])
    form = {"_csrf_token": csrf, "_once": ONCE.findall(page.text)[-1], "rules": draft}
    answers = at_once(county.url, cookies, "/office/rules/publish", form)
    places = sorted(a.headers["location"] for a in answers)
    assert places == ["/office/rules/?done=again"] * 2 + ["/office/rules/?done=published"], places
    assert count(county.db, version, "assessment_rules") == json.loads(draft)["version"]
    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        later = client.post("/office/rules/publish", data=form, follow_redirects=True)
        assert later.status_code == 200 and 'id="sent-again"' in later.text and 'id="problem"' not in later.text


def test_revoking_sent_twice_revokes_once(county: County) -> None:
    """撤销 an API token and 吊销 a township's keys: the second sending of the same form lands where the first did,
    not on 没有有效的令牌, and writes no second revocation."""
    token(county.config, "监察员")
    cookies, csrf = logged_in(county.url, "管理员")
    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        page = client.get("/admin/accounts/")
    (path,) = re.findall(r'action="(/admin/accounts/tokens/[0-9]+/revoke)"', page.text)
    form = {"_csrf_token": csrf, "_once": ONCE.findall(page.text)[-1]}
    answers = at_once(county.url, cookies, path, form)
    places = sorted(a.headers.get("location", str(a.status_code)) for a in answers)
    assert places == ["/admin/accounts/?done=revoked"] + ["/admin/accounts/?done=revoked_again"] * 2, places
    assert count(county.db, "SELECT count(*) FROM audit_events WHERE event = 'token_revoked'") == 1
    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        later = client.post(path, data=form, follow_redirects=True)  # the browser's resubmit, later
        assert later.status_code == 200 and "未重复撤销" in later.text and 'id="row-error"' not in later.text

    join(county.cluster.nodes["T01"].config, issue(county.config, "T01", TOWN))
    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        page = client.get("/enroll")
    assert 'name="revoke" value="T01"' in page.text, page.text
    form = {"_csrf_token": csrf, "_once": ONCE.findall(page.text)[-1], "action": "revoke", "node": "T01"}
    form |= {"reason": "电脑丢失", "revoke": "T01"}
    revocations = "SELECT count(*) FROM trust_docs WHERE kind = 'revocation'"
    answers = at_once(county.url, cookies, "/enroll", form)
    assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
    assert all("已吊销 T01 的签名密钥" in a.text for a in answers)
    assert count(county.db, revocations) == 1
    assert sum("已提交，未重复吊销" in a.text for a in answers) == 2
    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        later = client.post("/enroll", data=form)
        assert later.status_code == 200 and "已提交，未重复吊销" in later.text
    assert count(county.db, revocations) == 1


def test_the_office_api_takes_a_request_sent_again_under_its_idempotency_key_once(county: County) -> None:
    """A script's retry after a lost answer (``Idempotency-Key``): one entry, appeal, decision and publication, each
    answered as the first was; another body under a key already used is refused, and writes nothing."""
    records = "SELECT count(*) FROM office_records WHERE kind = ?"
    supervisor = bearer(token(county.config, "监察员"))

    def keyed(key: str, who: dict[str, str] = supervisor) -> dict[str, str]:
        return {**who, "Idempotency-Key": key}

    async def burst(path: str, body: object, headers: dict[str, str], times: int = 3) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=county.url, timeout=60) as client:
            return list(await asyncio.gather(*(client.post(path, json=body, headers=headers) for _ in range(times))))

    entry = {"quarter": Q, "target": "staff", "subject": "王芳", "item": "late"}
    answers = asyncio.run(burst("/api/office/assessment/entries", entry, keyed("entry-retry-1")))
    assert [a.status_code for a in answers] == [201] * 3, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1 and count(county.db, records, "entry") == 1
    entry_id = answers[0].json()["id"]

    appeal = {"quarter": Q, "target": "staff", "subject": "王芳", "reason": "迟到系系统故障"}
    answers = asyncio.run(burst("/api/office/assessment/appeals", appeal, keyed("appeal-retry-1")))
    assert [a.status_code for a in answers] == [201] * 3, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1 and count(county.db, records, "appeal") == 1
    appeal_id = answers[0].json()["id"]

    decision = {"upheld": False, "reason": "维持原评"}
    deciding_at = f"/api/office/assessment/appeals/{appeal_id}/decision"
    deciding = keyed("decision-retry-1", bearer(token(county.config, "督查员")))
    answers = asyncio.run(burst(deciding_at, decision, deciding))
    assert [a.status_code for a in answers] == [201] * 3, [a.text for a in answers]  # never 已经作出决定
    assert {a.json()["status"] for a in answers} == {"rejected"} and count(county.db, records, "decision") == 1

    with httpx.Client(base_url=county.url, timeout=30) as client:
        held = client.get("/api/office/rules/", headers=supervisor).json()
        rules = {**held, "version": held["version"] + 1}
        published = [client.post("/api/office/rules/", json=rules, headers=keyed("rules-retry-1")) for _ in range(2)]
        assert [p.status_code for p in published] == [201, 201], [p.text for p in published]  # not 版本须高于
        assert published[0].json() == published[1].json() == rules
        assert count(county.db, "SELECT version FROM documents WHERE kind = 'assessment_rules'") == rules["version"]

        # the same key with another body: a client's bug, refused; nothing written under it
        for path, body, headers in (
            ("/api/office/assessment/entries", {**entry, "subject": "李强"}, keyed("entry-retry-1")),
            ("/api/office/assessment/appeals", {**appeal, "reason": "另一理由"}, keyed("appeal-retry-1")),
            (deciding_at, {**decision, "reason": "改判"}, deciding),
            ("/api/office/rules/", {**rules, "version": rules["version"] + 1}, keyed("rules-retry-1")),
        ):
            refused = client.post(path, json=body, headers=headers)
            assert refused.status_code == 409, refused.text
            assert refused.json()["error"] == "idempotency_key_reused", refused.text
        assert [count(county.db, records, k) for k in ("entry", "appeal", "decision")] == [1, 1, 1]
        assert count(county.db, "SELECT version FROM documents WHERE kind = 'assessment_rules'") == rules["version"]
        # another key: another request, recorded
        other = client.post("/api/office/assessment/entries", json=entry, headers=keyed("entry-retry-2"))
        assert other.status_code == 201 and other.json()["id"] != entry_id
        assert count(county.db, records, "entry") == 2


def test_the_office_api_keeps_the_one_rule_of_idempotency_keys(county: County) -> None:
    """The errands' API's rule (``submissions.from_header``): a key names one request of one account. Another
    path under a key used is refused as another body is; another account's same key is its own; a malformed key
    is a 400, nothing recorded."""
    records = "SELECT count(*) FROM office_records WHERE kind = ?"
    entry = {"quarter": Q, "target": "staff", "subject": "王芳", "item": "late"}
    mine = {**bearer(token(county.config, "监察员")), "Idempotency-Key": "office-2026-0001"}
    theirs = {**bearer(token(county.config, "督查员")), "Idempotency-Key": "office-2026-0001"}
    with httpx.Client(base_url=county.url, timeout=30) as client:
        first = client.post("/api/office/assessment/entries", json=entry, headers=mine)
        assert first.status_code == 201, first.text
        appeal = {"quarter": Q, "target": "staff", "subject": "王芳", "reason": "迟到系系统故障"}
        elsewhere = client.post("/api/office/assessment/appeals", json=appeal, headers=mine)
        assert elsewhere.status_code == 409, elsewhere.text
        assert elsewhere.json()["error"] == "idempotency_key_reused"
        assert elsewhere.json()["message_zh"].startswith("该幂等键已用于另一个请求")
        assert count(county.db, records, "appeal") == 0

        other = client.post("/api/office/assessment/entries", json=entry, headers=theirs)
        assert other.status_code == 201 and other.json()["id"] != first.json()["id"], other.text
        assert count(county.db, records, "entry") == 2
        again = client.post("/api/office/assessment/entries", json=entry, headers=theirs)  # its own retry
        assert again.status_code == 201 and again.json() == other.json()

        for bad in ("", "x" * 201, "幂等".encode()):
            refused = client.post(
                "/api/office/assessment/entries", json=entry, headers={**mine, "Idempotency-Key": bad}
            )
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"] == "idempotency_key_malformed"
    assert count(county.db, records, "entry") == 2


def test_a_password_reset_sent_twice_resets_once(county: County) -> None:
    """重置密码: one new password, not two (the first answer's would not stand), and a token issued after the first
    sending is not revoked by the second."""
    cookies, csrf = logged_in(county.url, "管理员")
    form = {"_csrf_token": csrf, "_once": once_key(county.url, cookies, "/admin/accounts/"), "name": "监察员"}
    resets = "SELECT count(*) FROM audit_events WHERE event = 'account' AND body LIKE '%\"change\":\"password\"%'"
    before = count(county.db, resets)

    answers = at_once(county.url, cookies, "/admin/accounts/password", form)
    assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
    assert count(county.db, resets) == before + 1
    (first,) = [a for a in answers if 'id="password"' in a.text]
    assert sum("已提交，未重复重置：账号 监察员 的密码已由第一次提交重置" in a.text for a in answers) == 2
    shown = re.findall(r'id="password">([^<]+)</span>', first.text)[0]

    issued = bearer(token(county.config, "监察员"))  # after the reset, before the form is sent again
    with httpx.Client(base_url=county.url, timeout=30, cookies=cookies) as client:
        later = client.post("/admin/accounts/password", data=form)  # the browser's resubmit, later
        assert later.status_code == 200 and "未重复重置" in later.text and 'id="password"' not in later.text
        fresh = {**form, "_once": once_key(county.url, cookies, "/admin/accounts/"), "name": "督查员"}
        other = client.post("/admin/accounts/password", data=fresh)  # the page drawn again: another reset
        assert other.status_code == 200 and 'id="password"' in other.text
    assert count(county.db, resets) == before + 2
    with httpx.Client(base_url=county.url, timeout=30) as client:
        assert client.get("/api/errands", headers=issued).status_code == 200  # the token issued between stands
        page = client.get("/login")
        data = {"name": "监察员", "password": shown, "next": "/", "_csrf_token": csrf_of(page.text)}
        assert client.post("/login", data=data, follow_redirects=False).status_code == 303  # the first's stands
