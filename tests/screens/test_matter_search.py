"""Matter search over HTTP (issue 13): the register page's box without JavaScript, the guide's, and the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from screens_kit import make_app, prepared_node

from sanji.auth.roles import route_requirement
from sanji.catalogue import search as search_module
from sanji.web.catalogue_search import SEARCH_LIMIT, search_throttle
from sanji.web.throttle import Throttle

Client = TestClient[Litestar]
ODD = ["\x00", "%ff", "<script>alert(1)</script>", "a" * 5000, "低" * 300, "'; --", "\u202e", "🙂", "  "]


def _options(page: str) -> list[tuple[str, bool, bool]]:
    """(code, shown, selected) of the first step's matter list, in page order."""
    select = re.search(r'<select id="matter".*?</select>', page, re.S)
    assert select, page
    return [
        (code, "hidden" not in rest, "selected" in rest)
        for code, rest in re.findall(r'<option value="([^"]+)"([^>]*)>', select.group(0))
    ]


def _count(page: str) -> str:
    found = re.search(r'id="q-count"[^>]*>([^<]*)<', page)
    assert found, page
    return found.group(1)


def test_the_register_page_filters_by_initials_without_javascript(village: Client) -> None:
    page = village.get("/register")
    assert page.status_code == 200
    assert all(shown for _, shown, _ in _options(page.text)) and "共 42 项" in _count(page.text)
    assert '<label for="q">' in page.text and 'aria-live="polite"' in page.text

    found = village.get("/register", params={"q": "dbs", "find": "1"})
    assert found.status_code == 200
    options = _options(found.text)
    assert [code for code, shown, _ in options if shown] == ["MZ-001"]
    assert options[0] == ("MZ-001", True, True)  # the best match first, and chosen
    assert len(options) == 42  # the others stay, hidden, for the filter as one types
    assert "找到 1 项" in _count(found.text) and 'value="dbs"' in found.text

    ranked = [code for code, shown, _ in _options(village.get("/register", params={"q": "db"}).text) if shown]
    assert ranked == ["MZ-001", "YB-003"]  # 低保 then 大病, as the catalogue orders them


def test_find_searches_again_whatever_was_chosen_and_choose_goes_on(village: Client) -> None:
    again = village.get("/register", params={"q": "hukou", "find": "1", "matter": "MZ-001"})
    assert '<select id="matter" name="matter" class="" required' in again.text  # still the first step
    assert [(c, s) for c, s, chosen in _options(again.text) if chosen] == [("GA-001", True)]
    chosen = village.get("/register", params={"q": "hukou", "matter": "GA-001"})
    assert chosen.status_code == 200 and 'method="post" action="/register"' in chosen.text and "户口迁移" in chosen.text


def test_nothing_found_says_so_and_chooses_nothing(village: Client) -> None:
    page = village.get("/register", params={"q": "zzzzqqq", "find": "1"})
    assert page.status_code == 200
    assert not any(shown for _, shown, _ in _options(page.text))
    assert not any(chosen for _, _, chosen in _options(page.text))
    assert "没有找到" in _count(page.text)


@pytest.mark.parametrize("query", ODD)
def test_any_query_is_a_200_on_every_surface(village: Client, query: str) -> None:
    for path in ("/register", "/public"):
        r = village.get(path, params={"q": query, "find": "1"})
        assert r.status_code == 200, (path, r.text[:300])
        assert "<script>alert" not in r.text
    r = village.get("/api/catalogue/search", params={"q": query})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == min(body["total"], 20) and len(body["q"]) <= 40


def test_the_township_intake_has_the_same_search(town: Client) -> None:
    page = town.get("/register", params={"q": "ylbx"})
    shown = [code for code, visible, _ in _options(page.text) if visible]
    assert shown[:2] == ["RS-002", "RS-003"]  # 养老保险… from the start of the name
    assert shown[-1] == "YB-002"  # 城乡居民基本医疗保险…: 医疗保险 inside the name comes last


def test_the_public_guide_finds_by_pinyin_and_hides_the_rest(town: Client) -> None:
    page = town.get("/public", params={"q": "hukou", "levels": "all"})
    assert page.status_code == 200
    shown = re.findall(r'<tr data-matter="([^"]+)">', page.text)
    hidden = re.findall(r'<tr data-matter="([^"]+)" hidden>', page.text)
    assert shown == ["GA-001"] and len(hidden) == 41
    assert "找到 1 项" in _count(page.text)
    everything = town.get("/public", params={"levels": "all"})
    assert "hidden>" not in everything.text.split('id="matters"')[1].split("<script>")[0]


def test_the_api_answers_code_name_level_and_limit_best_first(village: Client) -> None:
    r = village.get("/api/catalogue/search", params={"q": "dbs"})
    assert r.status_code == 200
    body = r.json()
    assert body["q"] == "dbs" and body["catalogue_version"] == 1 and body["total"] == 1
    (hit,) = body["items"]
    assert (hit["code"], hit["name"], hit["level"], hit["match"]) == (
        "MZ-001",
        "最低生活保障(低保)申请",
        "county",
        "initials",
    )
    assert hit["limit"].startswith("30") and hit["committed_limit"] == 30 and hit["accept_levels"] == ["town"]
    many = village.get("/api/catalogue/search", params={"q": "s", "limit": 3}).json()
    assert len(many["items"]) == 3 and many["total"] > 3
    assert village.get("/api/catalogue/search", params={"q": "s", "limit": 0}).status_code == 400
    assert village.get("/api/catalogue/search", params={"q": "s", "limit": 100000}).status_code == 400
    assert village.get("/api/catalogue/search").json()["items"] == []


def test_the_api_without_a_catalogue_finds_nothing(tmp_path: Path) -> None:
    _, settings = prepared_node(tmp_path, "T01V01", catalogue=False)
    with TestClient(make_app(settings)) as client:
        r = client.get("/api/catalogue/search", params={"q": "db"})
        assert r.status_code == 200 and r.json() == {
            "q": "db",
            "catalogue_version": 0,
            "total": 0,
            "items": [],
            "codes": [],
        }


def test_the_search_is_public_like_the_guide_and_the_register_page_is_not() -> None:
    assert route_requirement("GET", "/api/catalogue/search") == "public"
    assert route_requirement("GET", "/register") != "public"


def test_the_script_asks_for_codes_alone(village: Client) -> None:
    full = village.get("/api/catalogue/search", params={"q": "s", "limit": 2000}).json()
    r = village.get("/api/catalogue/search", params={"q": "s", "limit": 2000, "codes": "true"})
    assert r.status_code == 200
    body = r.json()
    assert body["items"] == [] and body["codes"] == [hit["code"] for hit in full["items"]]
    assert body["total"] == full["total"] and len(r.content) < len(village.get("/register").content)
    page = village.get("/register").text
    assert "/api/catalogue/search?codes=true&" in page and "body.codes" in page


def test_searches_are_throttled_per_address_before_any_matter_is_ranked(
    village: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    throttle = search_throttle(village.app)
    assert throttle.limit == SEARCH_LIMIT
    village.app.state.search_throttle = Throttle(3, 60.0, clock=lambda: now[0])
    ranked: list[str] = []
    real_rank = search_module._rank
    monkeypatch.setattr(search_module, "_rank", lambda entry, *a: ranked.append(entry.code) or real_rank(entry, *a))
    for i in range(3):
        assert village.get("/api/catalogue/search", params={"q": f"zz{i}"}).status_code == 200
    assert ranked  # the three were ranked
    ranked.clear()
    r = village.get("/api/catalogue/search", params={"q": "zz-new"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "60"
    assert r.json()["error"] == "too_many_requests" and r.json()["retryable"] is True
    assert "Too many searches" in r.json()["message"]
    assert ranked == []  # refused before any matter was looked at
    now[0] += 61
    assert village.get("/api/catalogue/search", params={"q": "zz-new"}).status_code == 200


def test_the_guides_search_draws_on_the_same_allowance_and_refuses_with_a_bilingual_page(
    town: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    town.app.state.search_throttle = Throttle(3, 60.0, clock=lambda: now[0])
    ranked: list[str] = []
    real_rank = search_module._rank
    monkeypatch.setattr(search_module, "_rank", lambda entry, *a: ranked.append(entry.code) or real_rank(entry, *a))
    assert town.get("/public", params={"q": "hukou", "levels": "all"}).status_code == 200
    assert town.get("/api/catalogue/search", params={"q": "dbs"}).status_code == 200
    assert town.get("/public", params={"q": "ylbx"}).status_code == 200
    for _ in range(3):  # the guide itself, without a search, is not a search
        assert town.get("/public", params={"levels": "all"}).status_code == 200
    ranked.clear()

    r = town.get("/public", params={"q": "dibao", "levels": "all"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "60"
    assert "查找过于频繁，请60秒后再试" in r.text and "Too many searches from this address: try again in 60 s" in r.text
    assert ranked == []  # refused before any matter was looked at
    assert len(re.findall(r'<tr data-matter="[^"]+">', r.text)) == 42  # the whole guide still shows, unfiltered
    assert town.get("/api/catalogue/search", params={"q": "dibao"}).status_code == 429
    now[0] += 61
    found = town.get("/public", params={"q": "dibao", "levels": "all"})
    assert found.status_code == 200 and "查找过于频繁" not in found.text


def _post_form(page: str) -> str:
    form = re.search(r'<form method="post" action="/register".*?</form>', page, re.S)
    assert form, page
    return form.group(0)


def test_the_change_matter_list_has_the_same_search_without_javascript(village: Client) -> None:
    chosen = village.get("/register", params={"matter": "GA-001"})
    form = _post_form(chosen.text)
    assert 'id="q"' in form and 'name="find"' in form and "共 42 项" in _count(form)
    assert all(shown for _, shown, _ in _options(form)) and [c for c, _, sel in _options(form) if sel] == ["GA-001"]

    typed = {"matter": "GA-001", "applicant_name": "张秀英", "applicant_phone": "13800000000", "mandate": "1"}
    found = village.post("/register", data={**typed, "q": "dbs", "find": "1"})
    assert found.status_code == 200
    form = _post_form(found.text)
    options = _options(form)
    assert [code for code, shown, _ in options if shown] == ["MZ-001", "GA-001"]  # the match, then the one held
    assert [code for code, _, sel in options if sel] == ["MZ-001"] and len(options) == 42
    assert "找到 1 项" in _count(form) and 'value="dbs"' in form
    assert 'value="张秀英"' in form and 'value="13800000000"' in form  # nothing typed is lost
    assert 'href="/print/guide/GA-001"' in form and 'id="errors"' not in form  # still 户口迁移's form until 换事项

    changed = village.post(
        "/register", data={**typed, "matter": "MZ-001", "q": "dbs", "q_shown": "dbs", "step": "choose"}
    )
    assert changed.status_code == 200 and 'href="/print/guide/MZ-001"' in changed.text
    assert 'value="张秀英"' in changed.text and "共 42 项" in _count(changed.text)  # the list whole again
    assert [c for c, _, sel in _options(_post_form(changed.text)) if sel] == ["MZ-001"]

    # Enter in the box sends the form's unseen first button: a new query searches, an unchanged one pre-checks.
    entered = village.post("/register", data={**typed, "q": "hukou", "q_shown": "", "step": "enter"})
    assert [c for c, shown, _ in _options(_post_form(entered.text)) if shown] == ["GA-001"]
    assert "找到 1 项" in _count(entered.text)
    checked = village.post("/register", data={**typed, "q": "", "q_shown": "", "step": "enter"})
    assert checked.status_code == 200 and "共 42 项" in _count(checked.text)
    assert checked.text == village.post("/register", data={**typed, "step": "check"}).text  # 预审, as clicked

    nothing = village.post("/register", data={**typed, "q": "zzzzqqq", "find": "1"})
    options = _options(_post_form(nothing.text))
    assert [(c, sel) for c, shown, sel in options if shown] == [("GA-001", True)]  # the held matter stays chosen
    assert "没有找到" in _count(nothing.text)
