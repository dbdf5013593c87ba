"""An appeal's decider is told apart from its filer and its subject by account, not by how a name is written.

The rule compared display names: two staff called 王伟 blocked each other, and a name written another way
(an ideographic space, a trailing space) slipped past it. Now a logged-in account is compared by its id, on
the JSON API and the screen alike (both ask ``protocol.assessment.decision_problem``); names are compared,
NFKC and without white space, only where no account is known: a name typed in open demo mode. The refusal
says which was compared, Chinese first.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from auth_kit import PASSWORD, add, app, bearer, login, prepare, token, with_service
from httpx import Response
from litestar import Litestar
from litestar.testing import TestClient

from sanji.auth.service import AuthService
from sanji.cli import accounts_cmd

Client = TestClient[Litestar]
Q = "2026Q4"
API = "/api/office/assessment"
ALIKE = "王\u3000伟"  # a second account whose name is 王伟 written with an ideographic space


def rename(config: Path, name: str, new: str) -> None:
    """Give an account another name straight in its node's database (the account, its id, stay)."""

    async def work(service: AuthService) -> None:
        account = await service.book.account(name=name)
        assert account is not None
        await service.book.update_account(account.id, {"name": new})

    with_service(config, work)


@pytest.fixture
def county_config(tmp_path: Path) -> Path:
    config = prepare(tmp_path, "C", required=True)
    for name in ("王伟", "王伟二", "督查员"):
        add(config, name, "supervisor")
    rename(config, "王伟二", ALIKE)
    return config


def file(client: Client, headers: dict[str, str], subject: str = "王芳") -> str:
    body = {"quarter": Q, "target": "staff", "subject": subject, "reason": "复核"}
    r = client.post(f"{API}/appeals", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def decide(client: Client, appeal: str, headers: dict[str, str], **extra: Any) -> Response:
    return client.post(
        f"{API}/appeals/{appeal}/decision", json={"upheld": False, "reason": "维持"} | extra, headers=headers
    )


def status(client: Client, headers: dict[str, str], appeal: str) -> str:
    listed = client.get(f"{API}/appeals", params={"quarter": Q}, headers=headers).json()
    (held,) = [a for a in listed if a["id"] == appeal]
    return str(held["status"])


def screen_problem(r: Response) -> str:
    found = re.search(r'<p class="error" role="alert" id="problem">(.*?)</p>', r.text, re.S)
    assert found, r.text
    return html.unescape(found.group(1))


@pytest.mark.timeout(180)
def test_same_name_other_account_decides_same_account_other_name_does_not(county_config: Path) -> None:
    wang = bearer(token(county_config, "王伟"))
    alike = bearer(token(county_config, ALIKE))
    other = bearer(token(county_config, "督查员"))
    with TestClient(app(county_config)) as client:
        entry = {"quarter": Q, "target": "staff", "subject": "王芳", "item": "late", "count": 2}
        assert client.post(f"{API}/entries", json=entry, headers=other).status_code == 201

        # two accounts whose names read alike are two people: each decides the other's appeal
        first = file(client, wang)
        r = decide(client, first, alike)
        assert r.status_code == 201, r.text
        assert r.json()["decided_by_account"] is not None and r.json()["by_account"] != r.json()["decided_by_account"]
        second = file(client, alike)
        with TestClient(app(county_config)) as screen:
            csrf = login(screen, "王伟")
            form = {"_csrf_token": csrf, "quarter": Q, "upheld": "0", "reason": "维持原评"}
            r = screen.post(f"/office/assessment/appeals/{second}/decision", data=form, follow_redirects=False)
            assert r.status_code == 303 and "done=decision" in r.headers["location"], r.text
        assert status(client, other, second) == "rejected"

        # one account is one person however its name is written now: refused on the API and the screen
        third = file(client, wang)
        rename(county_config, "王伟", "王 伟")  # written otherwise, the login its holder types
        r = decide(client, third, wang)
        assert r.status_code == 409, r.text
        zh = r.json()["message_zh"]
        assert zh.startswith("申诉不能由提出人或被考核人本人复核") and "按登录账号核对：当前账号即提出人" in zh, zh
        assert "compared by login account" in r.json()["message"]
        with TestClient(app(county_config)) as screen:
            csrf = login(screen, "王 伟")
            form = {"_csrf_token": csrf, "quarter": Q, "upheld": "0", "reason": "维持原评"}
            r = screen.post(f"/office/assessment/appeals/{third}/decision", data=form, follow_redirects=False)
            assert r.status_code == 409 and "location" not in r.headers
            assert "按登录账号核对：当前账号即提出人" in screen_problem(r)
        assert status(client, other, third) == "pending"  # nothing recorded


@pytest.mark.timeout(180)
def test_a_subject_holding_a_county_account_is_told_by_that_account(county_config: Path) -> None:
    wang = bearer(token(county_config, "王伟"))
    alike = bearer(token(county_config, ALIKE))
    subject = bearer(token(county_config, "督查员"))
    with TestClient(app(county_config)) as client:
        # scored at the county (no township named): the person holding the county's account 督查员
        entry = {"quarter": Q, "target": "staff", "subject": "督查员", "item": "late", "count": 1}
        assert client.post(f"{API}/entries", json=entry, headers=wang).status_code == 201
        appeal = file(client, wang, subject="督查员")
        rename(county_config, "督查员", "督查员\u3000")  # the account's name written otherwise: still bound to it
        own = decide(client, appeal, subject)
        assert own.status_code == 409 and "当前账号即被考核人" in own.json()["message_zh"], own.text
        assert status(client, wang, appeal) == "pending"
        assert decide(client, appeal, alike).status_code == 201  # 王　伟 neither filed it nor is its subject


@pytest.mark.timeout(180)
def test_typed_names_are_compared_written_any_way(tmp_path: Path) -> None:
    """Open demo mode: no account is known, so the names typed are compared, NFKC and without white space."""
    config = prepare(tmp_path, "C")
    with TestClient(app(config)) as client:
        entry = {"quarter": Q, "target": "staff", "subject": "王芳", "item": "late", "count": 2, "by": "主任"}
        assert client.post(f"{API}/entries", json=entry).status_code == 201
        body = {"quarter": Q, "target": "staff", "subject": "王芳", "reason": "复核", "by": "WangWei"}
        appeal = client.post(f"{API}/appeals", json=body).json()["id"]
        for typed in ("ＷａｎｇＷｅｉ", " wang wei ", "王\u3000芳 "):  # the filer's name, the subject's
            r = decide(client, appeal, {}, by=typed)
            assert r.status_code == 409, (typed, r.text)
            assert "无法按登录账号核对，按姓名核对" in r.json()["message_zh"], r.json()
            assert "names were" in r.json()["message"]
        r = client.post(
            f"/office/assessment/appeals/{appeal}/decision",
            data={"quarter": Q, "upheld": "0", "reason": "维持", "by": "王 芳"},
            follow_redirects=False,
        )
        assert r.status_code == 409 and "与被考核人“王芳”为同一姓名" in screen_problem(r)
        assert decide(client, appeal, {}, by="王伟").status_code == 201  # another name: another person


@pytest.mark.timeout(180)
def test_a_township_clerk_is_not_the_county_account_of_the_same_name(tmp_path: Path) -> None:
    """Accounts are per node: 李明 scored at township T01 is not whoever holds the county's account 李明, so that
    account decides the clerk's appeal. Scored at the county too, 李明 is bound to it, and it does not."""
    config = prepare(tmp_path, "C", required=True)
    for name in ("李明", "督查员"):
        add(config, name, "supervisor")
    liming = bearer(token(config, "李明"))
    other = bearer(token(config, "督查员"))
    with TestClient(app(config)) as client:
        entry = {"quarter": Q, "target": "staff", "subject": "李明", "item": "late", "count": 1, "centre": "T01"}
        assert client.post(f"{API}/entries", json=entry, headers=other).status_code == 201
        township = file(client, other, subject="李明")
        r = decide(client, township, liming)
        assert r.status_code == 201, r.text  # refused before: the names were compared
        assert status(client, other, township) == "rejected"

        entry = {"quarter": Q, "target": "staff", "subject": "李明", "item": "late", "count": 1}  # at the county
        assert client.post(f"{API}/entries", json=entry, headers=other).status_code == 201
        county = file(client, other, subject="李明")
        own = decide(client, county, liming)
        assert own.status_code == 409 and "按登录账号核对：当前账号即被考核人" in own.json()["message_zh"], own.text
        assert status(client, other, county) == "pending"


@pytest.mark.timeout(180)
def test_a_subject_is_bound_by_the_display_name_where_the_score_puts_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The score names 张三 under 县民政局; the account's login is zhangsan, its display name 张三, and it sits at
    县民政局: bound to it, so zhangsan does not decide 张三's appeal (compared by account). lisi goes by 李四 at
    县民政局 too; the 李四 scored under 县人社局 is bound to no account (not lisi's: another department), so names are
    compared, lisi's display name among them, and lisi is refused by name. Its display name cleared, zhangsan
    is bound to no one and named otherwise: it decides."""
    config = prepare(tmp_path, "C", required=True)
    add(config, "督查员", "supervisor")
    for account, shown in (("zhangsan", "张三"), ("lisi", "李四")):
        assert accounts_cmd.run_add(str(config), account, "director", PASSWORD, department="县民政局") == 0
        assert accounts_cmd.run_edit(str(config), account, display_name=shown) == 0
    capsys.readouterr()
    assert accounts_cmd.run_list(str(config)) == 0
    assert "zhangsan\tdirector" in (listed := capsys.readouterr().out) and "显示姓名 张三" in listed, listed
    other = bearer(token(config, "督查员"))
    with TestClient(app(config)) as client:
        for subject, centre in (("张三", "县民政局"), ("李四", "县人社局")):
            entry = {"quarter": Q, "target": "staff", "subject": subject, "item": "late", "count": 1, "centre": centre}
            assert client.post(f"{API}/entries", json=entry, headers=other).status_code == 201, centre
        zhang = file(client, other, subject="张三")
        own = decide(client, zhang, bearer(token(config, "zhangsan")))
        assert own.status_code == 409 and "当前账号即被考核人" in own.json()["message_zh"], own.text
        assert status(client, other, zhang) == "pending"
        li = file(client, other, subject="李四")
        by_name = decide(client, li, bearer(token(config, "lisi")))
        assert by_name.status_code == 409 and "按姓名核对：“李四”与被考核人“李四”" in by_name.json()["message_zh"]
        # the display name cleared: zhangsan is bound to no one named 张三, and its login is another name
        assert accounts_cmd.run_edit(str(config), "zhangsan", display_name="") == 0
        assert decide(client, zhang, bearer(token(config, "zhangsan"))).status_code == 201
