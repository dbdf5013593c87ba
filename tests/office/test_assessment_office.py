"""季度考核 at a real county node: errand facts, office entries, appeals, the chain of records,
the JSON API, the screen's forms and ``sanji assess`` as a process."""

from __future__ import annotations

import asyncio
import html
import json
import re
import sqlite3
import subprocess
import sys
from datetime import date

from litestar.testing import TestClient
from test_ledger_http_cli import county_node  # noqa: F401  (fixture)

from protocol.assessment import default_rules
from sanji.config import NodeSettings
from sanji.context import NodeContext
from sanji.demo.cluster import Cluster
from sanji.keys import read_directory, read_key
from sanji.office.assess import run_assessment
from sanji.office.book import OfficeBook
from sanji.store import Store, open_database
from sanji.tiers import create_app
from sanji.workcalendar import load_calendar

Q = {"quarter": "2026Q4"}


def staff_of(body: dict[str, object], name: str) -> dict[str, object]:
    staff = body["staff"]
    assert isinstance(staff, list)
    return next(s for s in staff if s["name"] == name)


def test_scores_entries_and_appeals_over_http_and_screen(county_node: tuple[Cluster, NodeSettings]) -> None:  # noqa: F811
    cluster, settings = county_node
    with TestClient(create_app(settings)) as client:
        body = client.get("/api/office/assessment", params=Q).json()
        assert body["rules"]["version"] == 1
        wang = staff_of(body, "王芳")
        assert [(ln["item"], ln["points"], ln["ref"]) for ln in wang["lines"]] == [
            ("overdue_day", -4, "E2"),
            ("dissatisfied", -1, "E2"),
        ]
        assert wang["total"] == 95 and wang["grade"] == "excellent" and wang["errands"] == 2
        li = staff_of(body, "李明")
        assert li["total"] == 97 and li["lines"][0]["detail"].endswith("超时默许")
        centres = {c["centre"]: c for c in body["centres"]}
        assert not centres["T01"]["eligible"] and centres["T02"]["red_flag"]

        r = client.post(
            "/api/office/assessment/entries",
            json={**Q, "target": "staff", "subject": "王芳", "item": "late", "count": 2, "by": "督查员 赵"},
        )
        assert r.status_code == 201, r.text
        entry_id = r.json()["id"]
        wang = staff_of(client.get("/api/office/assessment", params=Q).json(), "王芳")
        assert wang["parts"]["attendance"] == 16 and wang["total"] == 91
        assert wang["lines"][-1]["ref"] == entry_id and wang["lines"][-1]["source"] == "entry"

        # the screen: file an appeal, then decide it, as plain HTML forms
        r = client.post(
            "/office/assessment/appeals",
            data={**Q, "target": "staff", "subject": "王芳", "reason": "E2 逾期系县局系统停机所致", "by": "王芳"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and "done=appeal" in r.headers["location"]
        (appeal,) = client.get("/api/office/assessment/appeals", params=Q).json()
        assert appeal["status"] == "pending"
        page = client.get("/office/assessment/", params=Q)
        assert page.status_code == 200 and "待复核" in page.text and f"/appeals/{appeal['id']}/decision" in page.text
        r = client.post(
            f"/office/assessment/appeals/{appeal['id']}/decision",
            data={**Q, "upheld": "1", "points": "4", "part": "results", "reason": "停机属实，超期不计", "by": "主任"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and "done=decision" in r.headers["location"], r.headers["location"]
        wang = staff_of(client.get("/api/office/assessment", params=Q).json(), "王芳")
        assert wang["total"] == 95 and wang["lines"][-1] == {
            "item": "appeal",
            "name": "申诉复核",
            "part": "results",
            "points": 4,
            "source": "appeal",
            "ref": appeal["id"],
            "detail": "停机属实，超期不计",
        }
        again = client.post(
            f"/api/office/assessment/appeals/{appeal['id']}/decision",
            json={"upheld": False, "reason": "再议", "by": "主任"},
        )
        assert again.status_code == 409 and "already decided" in again.json()["message"]  # the office's rules
        page = client.get("/office/assessment/", params=Q).text
        assert "申诉成立" in page and "停机属实" in page and 'id="staff-王芳"' in page
        staff_row = page[page.index('id="staff-王芳"') :].split("</tr>")[0]
        assert 'data-label="中心 Centre">城关镇便民服务中心</td>' in staff_row  # the centre by its name, not T01

        # bad input: a clear 4xx, nothing recorded
        assert client.get("/api/office/assessment", params={"quarter": "2026Q9"}).status_code == 400
        bad = client.post(
            "/api/office/assessment/entries", json={**Q, "target": "staff", "subject": "x", "item": "late", "count": 0}
        )
        assert bad.status_code == 400
        assert (
            client.post(
                "/api/office/assessment/appeals/AP-nope/decision",
                json={"upheld": True, "points": 1, "reason": "x", "by": "主任"},
            ).status_code
            == 404  # no such appeal
        )
        r = client.post(
            "/office/assessment/entries",
            data={**Q, "target": "staff", "subject": "", "item": "late"},
            follow_redirects=False,
        )
        assert r.status_code == 409 and 'id="problem"' in r.text  # the screen again, saying why

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sanji.cli.main",
            "assess",
            "--config",
            str(cluster.nodes["C"].config),
            "--quarter",
            "2026Q4",
            "--json",
            "--as-of",
            "2026-12-08",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    wang = staff_of(report, "王芳")
    assert wang["total"] == 95 and [ln["source"] for ln in wang["lines"]] == ["errand", "errand", "entry", "appeal"]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "sanji.cli.main",
            "assess",
            "--config",
            str(cluster.nodes["C"].config),
            "--quarter",
            "Q4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "2026Q4" in bad.stderr


def test_the_screen_says_why_a_form_was_refused_in_chinese_first(county_node: tuple[Cluster, NodeSettings]) -> None:  # noqa: F811
    _, settings = county_node
    with TestClient(create_app(settings)) as client:

        def refused(path: str, form: dict[str, str]) -> str:
            r = client.post(path, data={**Q, **form}, follow_redirects=False)
            assert r.status_code in (400, 404, 409) and "location" not in r.headers, r.status_code  # no redirect
            found = re.search(r'<p class="error" role="alert" id="problem">(.*?)</p>', r.text, re.S)
            assert found, r.text
            return html.unescape(found.group(1))

        appeal = {"target": "staff", "subject": "王芳", "reason": "系统停机", "by": "王芳"}
        assert (
            client.post("/office/assessment/appeals", data={**Q, **appeal}, follow_redirects=False).status_code == 303
        )
        (held,) = client.get("/api/office/assessment/appeals", params=Q).json()
        cases = [
            (
                f"/office/assessment/appeals/{held['id']}/decision",
                {"upheld": "1", "points": "0", "reason": "属实", "by": "主任"},
                "支持申诉时请填写调整的分数",
                "an upheld appeal says how many points it changes",
            ),
            (
                "/office/assessment/appeals/AP-nope/decision",
                {"upheld": "0", "reason": "不成立", "by": "主任"},
                "没有编号为 AP-nope 的申诉",
                "no appeal AP-nope",
            ),
            (
                "/office/assessment/entries",
                {"target": "staff", "subject": "王芳", "item": "late", "by": " "},
                "请填写记录人",
                "say who records this (by)",
            ),
            (
                "/office/assessment/appeals",
                {**appeal, "reason": "   "},
                "请填写理由",
                "reason is required",
            ),
        ]
        for path, form, zh, en in cases:
            said = refused(path, form)
            assert said.startswith(zh) and '<span lang="en">' + en in said, (path, said)  # Chinese first
        # A form the schema refuses (no Chinese of its own) still leads with a Chinese line.
        said = refused("/office/assessment/entries", {"target": "nobody", "subject": "王芳", "item": "late"})
        assert said.startswith("未保存，请检查填写的内容") and '<span lang="en">' in said, said
        # The JSON API's body carries the Chinese too.
        body = client.post(
            "/api/office/assessment/appeals/AP-nope/decision", json={"upheld": False, "reason": "x", "by": "主任"}
        ).json()
        assert body["message_zh"] == "没有编号为 AP-nope 的申诉" and body["message"] == "no appeal AP-nope"


def test_office_records_are_signed_and_chained(county_node: tuple[Cluster, NodeSettings]) -> None:  # noqa: F811
    _, settings = county_node

    async def record_and_verify(record: bool) -> list[str]:
        db = await open_database(settings.db_url)
        try:
            store = Store(
                db,
                node_id="C",
                key=read_key(settings.path(settings.node.key_file)),
                directory=read_directory(settings.path(settings.node.directory)),
            )
            await store.start()
            book = OfficeBook(store)
            if not record:
                return await book.verify()
            await book.add_entry(
                quarter="2026Q4",
                target="centre",
                subject="T01",
                item="banner_centre",
                by="主任",
                rules=default_rules("C"),
            )
            context = NodeContext(store, load_calendar())
            await context.load()
            rules, scored = await run_assessment(store, context, "2026Q4", as_of=date(2026, 12, 8))
            appeal = await book.file_appeal(
                quarter="2026Q4", target="centre", subject="T01", reason="复核", by="T01", scored=scored
            )
            await book.decide_appeal(appeal.id, upheld=False, reason="维持", by="主任", rules=rules, scored=scored)
            assert [a.status for a in await book.appeals("2026Q4")] == ["rejected"]
            return await book.verify()
        finally:
            await db.dispose()

    assert asyncio.run(record_and_verify(True)) == []
    db_file = settings.db_url.split("///", 1)[1]
    with sqlite3.connect(db_file) as conn:
        body = conn.execute("SELECT body FROM office_records WHERE seq = 1").fetchone()[0]
        conn.execute(
            "UPDATE office_records SET body = ? WHERE seq = 1", (body.replace("主任".encode(), "他人".encode()),)
        )
    problems = asyncio.run(record_and_verify(False))
    assert any("chain breaks" in p for p in problems) and any("signature" in p for p in problems)


def test_a_link_puts_no_words_on_the_office_screens(county_node: tuple[Cluster, NodeSettings]) -> None:  # noqa: F811
    """``?problem=`` / ``?done=`` showed any text from the link (escaped): a spoofing vector (probe, session 21).
    A refusal is said on the page the form's answer is; a link carries at most a code the screen words itself."""
    _, settings = county_node
    spoof = "账号已冻结，请拨打 400-000-0000"
    with TestClient(create_app(settings)) as client:
        for path, params in (
            ("/office/assessment/", {**Q, "problem": spoof, "done": "请拨打400"}),
            ("/office/platform/", {"problem": spoof, "problem_en": spoof}),
            ("/office/rules/", {"problem": spoof, "done": spoof[:16]}),
        ):
            r = client.get(path, params=params)
            assert r.status_code == 200, (path, r.text[:300])
            assert "拨打" not in r.text and 'role="alert"' not in r.text, path


RED_FLAG_ZH = '红旗窗口 <span lang="en">red-flag window</span>'
RED_FLAG_EN = 'red-flag window <span lang="zh-CN">红旗窗口</span>'


def test_red_flag_windows_follow_the_language_switch(county_node: tuple[Cluster, NodeSettings]) -> None:  # noqa: F811
    """红旗窗口 stood in Chinese alone on an English page: in the centres' heading, in T02's flag, in the rules."""
    _, settings = county_node
    with TestClient(create_app(settings)) as client:
        page = client.get("/office/assessment/", params=Q).text
        flag = re.search(r'<tr id="centre-T02">.*?<td class="flag"[^>]*>(.*?)</td>', page, re.S)
        assert (
            flag and flag.group(1) == '<span class="light red">红旗窗口 <span lang="en">red-flag window</span></span>'
        )
        assert "前 5 名为红旗窗口） <span" in page
        assert "top 5 are red-flag windows" in client.get("/office/rules/").text

        client.get("/lang", params={"to": "en", "next": "/"})
        page = client.get("/office/assessment/", params=Q).text
        flag = re.search(r'<tr id="centre-T02">.*?<td class="flag"[^>]*>(.*?)</td>', page, re.S)
        assert (
            flag
            and flag.group(1) == '<span class="light red">red-flag window <span lang="zh-CN">红旗窗口</span></span>'
        )
        heading = re.search(r"<h2>(Centres \(base .*?)</h2>", page)
        assert heading and "top 5 are red-flag windows) <span" in heading.group(1), heading
        rules = client.get("/office/rules/").text
        heading = re.search(r"<h2>(Centres: base .*?)</h2>", rules)
        assert heading and heading.group(1).startswith(
            "Centres: base 100, bonuses capped at 20, the top 5 are red-flag"
        )
        assert "red-flag windows <span" in heading.group(1) and "名为红旗窗口）</span>" in heading.group(1)
