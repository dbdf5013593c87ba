"""The English switch and the header's notice badge, through the HTML a node serves.

``/lang`` sets the ``lang`` cookie and goes back to a local page only; with ``lang=en`` pages put
English first, ``<html lang>`` says ``en`` and each pair's second half carries its own ``lang``;
printed documents stay Chinese. The badge counts the desk's unread notices on every staff page and
drops to 0 once they are marked read; a public page has none.
"""

from __future__ import annotations

import re

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from screens_kit import act, register

from sanji.bilingual import Pair, split_pair
from sanji.web.language import local_path


def test_a_label_built_in_python_splits_into_its_two_languages() -> None:
    assert split_pair("县级政务服务中心 County hub") == Pair("县级政务服务中心", "County hub")
    assert split_pair("第3版 v3 test") == Pair("第3版", "v3 test")
    assert split_pair("受理") is None and split_pair("Accept it") is None


@pytest.mark.parametrize(
    "raw",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "",
        "evil",
        "/a\r\nb",
        "/lang?to=en",
    ],
)
def test_the_switch_never_leads_off_the_node(raw: str) -> None:
    assert local_path(raw) == "/"


def test_local_pages_are_kept_with_their_query() -> None:
    assert local_path("/supervision?sample=5&seed=x") == "/supervision?sample=5&seed=x"
    assert local_path("/errands/T01V01-1%2F2") == "/errands/T01V01-1%2F2"


def _html_lang(text: str) -> str:
    found = re.search(r'<html lang="([^"]+)"', text)
    assert found, text[:200]
    return found.group(1)


def test_the_switch_sets_the_cookie_and_comes_back_to_the_same_page(village: TestClient[Litestar]) -> None:
    page = village.get("/supervision?sample=3")
    assert _html_lang(page.text) == "zh-CN"
    assert (
        '<a href="/lang?to=en&amp;next=/supervision%3Fsample%3D3" id="lang-switch" lang="en" hreflang="en">English</a>'
        in page.text
    )
    assert '首页 <span lang="en">Home</span>' in page.text

    r = village.get("/lang", params={"to": "en", "next": "/supervision?sample=3"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/supervision?sample=3"
    assert "lang=en" in r.headers["set-cookie"] and "Path=/" in r.headers["set-cookie"]
    page = village.get(r.headers["location"])
    assert _html_lang(page.text) == "en"
    assert 'Home <span lang="zh-CN">首页</span>' in page.text
    assert 'id="lang-switch" lang="zh-CN" hreflang="zh-CN">中文</a>' in page.text
    assert "Village station" in page.text.split("</h1>")[0].split("<h1>")[1].split("<span lang")[0]

    r = village.get("/lang", params={"to": "zh", "next": "https://evil.example/"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert _html_lang(village.get("/").text) == "zh-CN"


def test_public_pages_switch_without_a_login_and_printed_papers_stay_chinese(village: TestClient[Litestar]) -> None:
    village.get("/lang", params={"to": "en", "next": "/public"})
    page = village.get("/public")
    assert page.status_code == 200 and _html_lang(page.text) == "en"
    assert 'id="notice-badge"' not in page.text  # no desk's notices on a public page
    errand = register(village)
    receipt = village.get(f"/print/{errand}/receipt")
    assert receipt.status_code == 200 and _html_lang(receipt.text) == "zh-CN"


def _badge(text: str) -> str:
    found = re.search(r'id="notice-badge"[^>]*data-unread="(\d+)"', text)
    assert found, "no notice badge in the header"
    return found.group(1)


def test_the_badge_counts_unread_notices_on_every_staff_page_and_drops_when_read(
    village: TestClient[Litestar],
) -> None:
    assert _badge(village.get("/supervision").text) == "0"
    register(village)  # new work at the village: one notice
    for path in ("/", "/supervision", "/office/ledger", "/office/sms/", "/register"):
        page = village.get(path)
        assert page.status_code == 200, path
        assert _badge(page.text) == "1", path
    assert 'id="notice-badge"' not in village.get("/lookup").text  # a public page: nobody's notices
    home = village.get("/")
    upto = re.search(r'name="upto" value="(\d+)"', home.text)
    assert upto
    r = village.post("/notices/read", data={"upto": upto.group(1)}, follow_redirects=False)
    assert r.status_code == 303
    assert _badge(village.get("/office/sms/").text) == "0"
    assert _badge(village.get("/").text) == "0"


def test_an_errand_page_in_english_puts_the_steps_english_first(village: TestClient[Litestar]) -> None:
    errand = register(village)
    village.get("/lang", params={"to": "en", "next": "/"})
    page = village.get(f"/errands/{errand}").text
    assert 'Submit to the township <span lang="zh-CN">报送乡镇</span>' in page
    assert 'History <span lang="zh-CN" class="alt">办理记录</span>' in page
    home = village.get("/").text
    assert 'Receipt <span lang="zh-CN">回执号</span>' in home and 'data-label="Receipt 回执号"' in home


def test_times_ago_and_the_custodian_follow_the_switch(village: TestClient[Litestar]) -> None:
    """ "刚刚 just now" beside a notice and the custodian's id were Chinese first on an English page."""
    errand = register(village)  # new work at the village: a notice a moment old
    home = village.get("/").text
    assert '<small>刚刚 <span lang="en">just now</span></small>' in home
    page = village.get(f"/errands/{errand}").text
    custodian = re.search(r'<td id="custodian">(.*?)</td>', page, re.S)
    assert custodian and custodian.group(1).startswith('东村代办点 <span class="muted">T01V01</span>'), custodian

    village.get("/lang", params={"to": "en", "next": "/"})
    home = village.get("/").text
    assert '<small>just now <span lang="zh-CN">刚刚</span></small>' in home and "刚刚 just now" not in home
    page = village.get(f"/errands/{errand}").text
    custodian = re.search(r'<td id="custodian">(.*?)</td>', page, re.S)
    assert custodian and custodian.group(1).startswith('T01V01 <span lang="zh-CN" class="alt">东村代办点</span>')
    assert "(T01V01)" not in page


def test_the_supervision_lights_follow_the_switch(village: TestClient[Litestar]) -> None:
    register(village)  # not accepted yet: counted under 未受理或无期限
    assert '未受理或无期限 <span lang="en">not yet timed</span>: 1' in village.get("/supervision").text
    village.get("/lang", params={"to": "en", "next": "/"})
    page = village.get("/supervision").text
    assert 'not yet timed <span lang="zh-CN">未受理或无期限</span>: 1' in page
    assert "未受理或无期限 not yet timed" not in page


def test_nodes_named_with_their_ids_follow_the_switch(village: TestClient[Litestar]) -> None:
    """The worklist's and the history's nodes were "东村代办点 T01V01" on an English page: the id leads there now,
    the Chinese name after it in its own ``lang``, as the errand's 经办节点 row already had it."""
    errand = register(village)
    chinese = '东村代办点 <span class="muted">T01V01</span>'
    home = village.get("/").text
    assert re.search(r'<td data-label="经办节点 Custodian">东村代办点 <span class="muted">T01V01</span>', home)
    history = village.get(f"/errands/{errand}").text.split("办理记录")[1]
    assert chinese in history

    village.get("/lang", params={"to": "en", "next": "/"})
    english = 'T01V01 <span lang="zh-CN" class="alt">东村代办点</span>'
    home = village.get("/").text
    custodian = re.findall(r'<td data-label="Custodian 经办节点">(.*?)</td>', home, re.S)
    assert custodian and all(c.startswith(english) for c in custodian), custodian
    assert chinese not in home.split("</header>")[-1]
    history = village.get(f"/errands/{errand}").text.split("History")[1]
    nodes = re.findall(r'<td data-label="Node 节点">(.*?)</td>', history, re.S)
    assert nodes and all(n == english for n in nodes), nodes
    assert "东村代办点 <span" not in history


def test_the_supervision_page_names_nodes_and_rating_levels_in_the_readers_order(town: TestClient[Litestar]) -> None:
    """Its township rows were "城关镇便民服务中心 T01" and its ratings "满意 1 条 ratings" whatever the switch said."""
    errand = register(town, in_person=True)
    act(town, errand, "accept", errand_kind="承诺件")
    act(town, errand, "decide", outcome="approved", document="临时救助审批决定书")
    act(town, errand, "deliver", confirmed_by="刘翠花", signature="刘翠花")
    act(town, errand, "rate", level="满意")
    register(town, in_person=True)  # open: counted in the township's row
    page = town.get("/supervision").text
    assert '满意 <span lang="en">satisfied</span> 1 条' in page
    row = re.search(r'<tr data-row="T01"><td data-label="[^"]*">(.*?)</td>', page, re.S)
    assert row and row.group(1) == '城关镇便民服务中心 <span class="muted">T01</span>', row

    town.get("/lang", params={"to": "en", "next": "/"})
    page = town.get("/supervision").text
    assert 'satisfied <span lang="zh-CN">满意</span> 1 ' in page and "满意 1 条" not in page
    row = re.search(r'<tr data-row="T01"><td data-label="[^"]*">(.*?)</td>', page, re.S)
    assert row and row.group(1) == 'T01 <span lang="zh-CN" class="alt">城关镇便民服务中心</span>', row


def test_the_operator_panel_labels_follow_the_switch(village: TestClient[Litestar]) -> None:
    """ "最近同步 Last exchange" and its neighbours in the node-status panel were fixed Chinese-first text."""
    assert '最近同步 <span lang="en">Last exchange</span>:' in village.get("/").text
    village.get("/lang", params={"to": "en", "next": "/"})
    home = village.get("/").text
    assert 'Last exchange <span lang="zh-CN">最近同步</span>:' in home and "最近同步 Last exchange" not in home
    assert 'Queue <span lang="zh-CN">待上传批次</span>:' in home
