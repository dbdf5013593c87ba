"""A window's staff see the 督办 urgings of their own window: on the home page's notices and on ``/supervision``.

The county urges township T01 three times: once naming 社会救助窗口, once 综合窗口, once naming no window (urged
before the errand had one). Through T01's real app with logins on, each account asks with a bearer token: an
account sitting at a window sees its window's urging and the one naming none, never the other window's, and the
page says the list is filtered; an account with no window sees all three and no such line.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sanji.urgings import UrgingRow, seen_at_window
from tests.web.test_department_clerks import JIUZHU, T01, ZONGHE, Desk, _urged, desk
from tests.web.test_department_inbox import County, open_county
from tests.web.test_desks import menu

STAFF = {
    "李红": ("window_a", "", JIUZHU),
    "王芳": ("window_a", "", ZONGHE),
    "陈主任": ("director", "", ""),  # the whole centre's
    "吴主任": ("director", "", JIUZHU),  # a director sitting at a window: /supervision is filtered too
    "郑主任": ("director", "", ZONGHE),
    "周B岗": ("window_b", "", ""),  # the posts below only open the menu's pages (the menu test)
    "孙监察": ("supervisor", "", ""),
    "钱纪检": ("inspector", "", ""),
    "管理员": ("admin", "", ""),
}


@dataclass
class Urged:
    jiuzhu: tuple[str, str]  # (errand, urging id)
    zonghe: tuple[str, str]
    whole: tuple[str, str]  # naming no window


@dataclass
class Setup:
    """What ``tests.web.test_department_clerks.desk`` needs of a set-up county, and the urgings made."""

    county: County
    urged: Urged


@pytest.fixture
def made(tmp_path: Path) -> Setup:
    async def work() -> Setup:
        county = await open_county(tmp_path, open_demo=False)
        try:
            urged = Urged(
                jiuzhu=await _urged(county, JIUZHU), zonghe=await _urged(county, ZONGHE), whole=await _urged(county, "")
            )
            return Setup(county, urged)
        finally:
            await county.close()

    return asyncio.run(work())


@pytest.fixture
def town(made: Setup) -> Iterator[Desk]:
    yield from desk(made, T01, STAFF)  # type: ignore[arg-type]  # desk reads .county alone


def notice_errands(page: str) -> set[str]:
    """The errands the home page's 督办 notices link to."""
    section = page.split('<section id="notices"')[1].split("</section>")[0]
    items = re.findall(r'<li class="notice-item urging[^"]*" data-kind="urging">.*?href="/errands/([^"]+)"', section)
    return set(items)


def supervision_urgings(page: str) -> set[str]:
    return set(re.findall(r'<tr data-urging="([^"]+)"', page))


def test_two_windows_see_different_urgings_on_the_home_page(made: Setup, town: Desk) -> None:
    urged = made.urged
    jiuzhu, zonghe, whole = urged.jiuzhu[0], urged.zonghe[0], urged.whole[0]

    page = town.get("李红", "/").text
    assert notice_errands(page) == {jiuzhu, whole}
    assert 'id="urging-window"' in page and f"本窗口（{JIUZHU}）" in page and f"for your window ({JIUZHU})" in page

    page = town.get("王芳", "/").text
    assert notice_errands(page) == {zonghe, whole}
    assert f"本窗口（{ZONGHE}）" in page and JIUZHU not in page.split('<section id="notices"')[1].split("</section>")[0]

    page = town.get("陈主任", "/").text  # no window: the whole centre's, unfiltered
    assert notice_errands(page) == {jiuzhu, zonghe, whole}
    assert 'id="urging-window"' not in page

    # The header's badge on another page counts what the home page counts unread: the same worklist for both, but
    # the window's count leaves out the other window's urging and the centre's, which it may not answer.
    assert badge(town, "陈主任") - badge(town, "李红") == 2 and badge(town, "李红") == badge(town, "王芳") > 0


def badge(town: Desk, who: str) -> int:
    found = re.search(r'id="notice-badge"[^>]*data-unread="(\d+)"', town.get(who, "/register").text)
    assert found, who
    return int(found.group(1))


def home_unread(page: str) -> int:
    found = re.search(r"通知（(\d+) 条未读）", page)
    assert found
    return int(found.group(1))


def urging_notice(page: str, errand: str) -> str:
    section = page.split('<section id="notices"')[1].split("</section>")[0]
    found = re.search(
        r'<li class="notice-item urging[^"]*" data-kind="urging">[^\n]*?href="/errands/' + errand + r'"[^\n]*', section
    )
    assert found, errand
    return found.group(0)


def test_a_window_clerk_sees_the_centres_urging_marked_and_answers_only_its_own(made: Setup, town: Desk) -> None:
    """An urging naming no window concerns the clerk's centre, so it is listed, but only an account with no window
    may answer it (``roles.place_refusal``): every screen says the centre's head answers it, offers the clerk no
    answer, and the badge counts only the clerk's own window's urging."""
    own, whole = made.urged.jiuzhu[0], made.urged.whole[0]
    page = town.get("李红", "/").text
    mine, centre = urging_notice(page, own), urging_notice(page, whole)
    assert 'data-answered-by="centre"' in centre and "由中心负责人答复" in centre and "未读" not in centre
    assert "unread" not in centre.split(">")[0]  # its class: never counted, whatever the read mark
    assert 'data-answered-by="centre"' not in mine and "督办 待答复" in mine and "unread" in mine.split(">")[0]
    # in the work waiting here, the errand's line says the same
    assert re.search(f'data-urging="{made.urged.whole[1]}" data-answered-by="centre">督办 由中心负责人答复', page)
    assert re.search(f'data-urging="{made.urged.jiuzhu[1]}">督办 待答复', page)
    # the home page's count, the notices marked unread and the header's badge agree: the clerk's own urging counts
    assert home_unread(page) == len(re.findall(r'class="notice-item [^"]*unread"', page)) == badge(town, "李红") > 0

    # The errand page: the urging is shown, saying who answers it, and no answer form; the own one keeps its form.
    errand_page = town.get("李红", f"/errands/{whole}").text
    assert "由中心负责人答复" in errand_page and 'data-answered-by="centre"' in errand_page
    assert 'name="kind" value="answer_urging"' not in errand_page and "use “督办回复" not in errand_page
    errand_page = town.get("李红", f"/errands/{own}").text
    assert 'name="kind" value="answer_urging"' in errand_page and "data-answered-by" not in errand_page
    # another window's clerk is told whose it is, not pointed at a form it is not offered
    errand_page = town.get("王芳", f"/errands/{own}").text
    assert 'data-answered-by="window"' in errand_page and f"督办{JIUZHU}，由该窗口答复" in errand_page
    assert 'name="kind" value="answer_urging"' not in errand_page
    # the centre's head is offered the answer to the urging naming no window, and told nothing of who else answers
    errand_page = town.get("陈主任", f"/errands/{whole}").text
    assert 'name="kind" value="answer_urging"' in errand_page and "data-answered-by" not in errand_page
    home = town.get("陈主任", "/").text
    assert 'data-answered-by="centre"' not in home and home_unread(home) == badge(town, "陈主任")

    # /supervision (a director sitting at the window: a window A post may not open it) marks the same row alike
    page = town.get("吴主任", "/supervision").text
    rows = {
        u: page.split(f'<tr data-urging="{u}"')[1].split("</tr>")[0]
        for u in (made.urged.jiuzhu[1], made.urged.whole[1])
    }
    assert 'data-answered-by="centre"' in rows[made.urged.whole[1]] and "由中心负责人答复" in rows[made.urged.whole[1]]
    assert "data-answered-by" not in rows[made.urged.jiuzhu[1]]
    assert "data-answered-by" not in town.get("陈主任", "/supervision").text


def test_the_menu_links_only_the_pages_a_post_may_open(made: Setup, town: Desk) -> None:
    window = menu(town.get("李红", "/").text)  # a window A post: 电子监察 and the office's pages would answer 403
    assert "/supervision" not in window and "/office/business/" not in window
    assert "/register" in window and "/office/ledger" in window
    assert town.get("李红", "/supervision").status_code == 403
    director = menu(town.get("陈主任", "/").text)
    assert "/supervision" in director and "/office/business/" in director
    admin = menu(town.get("管理员", "/admin/accounts").text)
    assert "/" not in admin and "/register" not in admin and "/admin/accounts" in admin
    # every post: each page its menu links opens for it, never 403 (the menu asks the route guard's own table)
    for who in STAFF:
        start = "/admin/accounts" if STAFF[who][0] == "admin" else "/"
        for href in menu(town.get(who, start).text):
            # 404 is the rules page of a township that holds no rules yet; never the guard's 403
            assert town.get(who, href).status_code in (200, 404), (who, href)


def test_supervision_lists_only_the_windows_urgings(made: Setup, town: Desk) -> None:
    urged = made.urged
    page = town.get("吴主任", "/supervision").text
    assert supervision_urgings(page) == {urged.jiuzhu[1], urged.whole[1]}
    assert f"仅显示本窗口（{JIUZHU}）的督办" in page and f"Showing urgings for window {JIUZHU} only" in page

    page = town.get("郑主任", "/supervision").text
    assert supervision_urgings(page) == {urged.zonghe[1], urged.whole[1]}

    # the urged desk by its name, and its window or that it names none
    rows = {u: page.split(f'<tr data-urging="{u}"')[1].split("</tr>")[0] for u in (urged.zonghe[1], urged.whole[1])}
    assert "城关镇便民服务中心" in rows[urged.zonghe[1]] and f"· {ZONGHE}" in rows[urged.zonghe[1]]
    # the desk's id beside its name is in no language: the switch's English class would style it as English
    assert f'城关镇便民服务中心 <span class="muted">{T01}</span>' in rows[urged.zonghe[1]]
    assert f'<span class="en" lang="en">{T01}</span>' not in page and f'<span class="en">{T01}</span>' not in page
    assert "未指定窗口" in rows[urged.whole[1]]

    page = town.get("陈主任", "/supervision").text
    assert supervision_urgings(page) == {urged.jiuzhu[1], urged.zonghe[1], urged.whole[1]}
    assert 'id="urging-window"' not in page


def _row(urging: str, to: str, window: str) -> UrgingRow:
    return UrgingRow(
        id=urging,
        errand="e-" + urging,
        url="/errands/e-" + urging,
        receipt=urging,
        matter="MZ-001",
        applicant_name="",
        by="C",
        to=to,
        window=window,
        text="",
        answer_by="2026-12-01",
        at_ms=0,
        status="open",
        status_zh="待答复",
        status_en="open",
    )


def test_the_filter_keeps_the_windows_own_urgings_at_its_node() -> None:
    rows = [_row("a", T01, JIUZHU), _row("b", T01, ZONGHE), _row("c", T01, ""), _row("d", "T02", JIUZHU)]
    assert [r.id for r in seen_at_window(rows, T01, JIUZHU)] == ["a", "c"]  # not another node's, though same name
    assert [r.id for r in seen_at_window(rows, T01, "")] == ["a", "b", "c", "d"]  # the whole node; the open demo
