"""The login guard's refusals say themselves in Chinese too: ``message_zh`` beside the English ``message`` in every
401/403 JSON body (no login, a bad token, a post without the right, a missing CSRF token; a generated password:
``test_own_password``), its ``hint`` Chinese first ("中文 English", what to do next),
and the 429 of a throttled search; a screen refused for the post shows the Chinese reason before the English."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_kit import GOOD, add, app, bearer, login, prepare, token
from litestar import Litestar
from litestar.testing import TestClient

from sanji.bilingual import split_pair
from sanji.web.catalogue_search import search_throttle

Client = TestClient[Litestar]
HAN = re.compile(r"[\u4e00-\u9fff]")


def chinese(body: dict[str, object]) -> str:
    zh = body.get("message_zh")
    assert isinstance(zh, str) and HAN.search(zh), body
    assert isinstance(body["message"], str) and body["message"], body  # the English stays
    return zh


def hint_in_chinese(body: dict[str, object], en: str) -> str:
    """The refusal's ``hint``: Chinese, then the English ``en`` (what a client showing it whole reads first)."""
    hint = body.get("hint")
    assert isinstance(hint, str) and HAN.match(hint), body
    said = split_pair(hint)
    assert said is not None and said.en == en, body
    return said.zh


@pytest.fixture
def village_config(tmp_path: Path) -> Path:
    config = prepare(tmp_path, "T01V01", required=True)
    add(config, "李建国", "village_agent")
    add(config, "管理员", "admin")
    add(config, "王纪检", "inspector")
    return config


@pytest.fixture
def village(village_config: Path) -> Iterator[Client]:
    with TestClient(app(village_config)) as client:
        yield client


def test_no_login_and_a_bad_token_are_refused_in_chinese_too(village: Client) -> None:
    r = village.get("/api/errands")
    assert r.status_code == 401
    assert "需要登录" in chinese(r.json()) and r.json()["message"].startswith("log in first")
    assert "/login 登录" in hint_in_chinese(r.json(), "Log in at /login, or send Authorization: Bearer <token>.")
    r = village.get("/api/errands", headers=bearer("sanji_not-a-token"))
    assert r.status_code == 401 and "令牌无效" in chinese(r.json())
    r = village.post("/api/errands", json=GOOD)
    assert r.status_code == 401 and "需要登录" in chinese(r.json())


def test_a_post_without_the_right_is_refused_naming_the_posts_that_have_it(
    village: Client, village_config: Path
) -> None:
    r = village.get("/api/errands", headers=bearer(token(village_config, "管理员")))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    zh = chinese(r.json())
    assert zh.startswith("本岗位（管理员）无权进行此操作") and "代办员" in zh, zh  # the posts that may, by name
    assert r.json()["message"].startswith("a administrator may not use GET /api/errands")
    assert "village agent" in r.json()["message"]
    assert "管理员" in hint_in_chinese(r.json(), "Ask an administrator for an account with the right role.")


def test_a_step_the_post_may_not_take_is_refused_in_chinese_too(village: Client, village_config: Path) -> None:
    agent = bearer(token(village_config, "李建国"))
    r = village.post("/api/errands", json=GOOD, headers=agent)
    assert r.status_code == 201, r.text
    errand = r.json()["errand"]
    r = village.post(
        f"/api/errands/{errand}/actions",
        json={"kind": "supervise", "actor": "x", "text": "请加快办理"},
        headers=agent,
    )
    assert r.status_code == 403, r.text
    assert chinese(r.json()) == "代办员无权办理“督办”"
    assert r.json()["message"] == "a village agent may not take the step 'supervise'"
    inspector = bearer(token(village_config, "王纪检"))
    r = village.get(f"/api/errands/{errand}", params={"reveal": "true"}, headers=inspector)
    assert r.status_code == 403 and "本岗位不能查看完整" in chinese(r.json())


def test_a_form_without_its_csrf_token_is_refused_in_chinese_too(village: Client) -> None:
    login(village, "李建国")
    r = village.post("/api/errands", json=GOOD)  # a session without the X-CSRFToken header
    assert r.status_code == 403 and "校验码" in chinese(r.json())


def test_the_forbidden_screen_shows_the_chinese_reason_before_the_english(village: Client) -> None:
    login(village, "管理员")
    page = village.get("/")
    assert page.status_code == 403
    zh = page.text.index("本岗位（管理员）无权进行此操作")
    assert zh < page.text.index("a administrator may not use GET /")
    assert '<span class="en" lang="en">' in page.text


def test_a_throttled_search_says_so_in_chinese_too(village: Client) -> None:
    search_throttle(village.app).limit = 1
    assert village.get("/api/catalogue/search", params={"q": "dbs"}).status_code == 200
    r = village.get("/api/catalogue/search", params={"q": "dbs"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert chinese(r.json()).startswith("查找过于频繁")
