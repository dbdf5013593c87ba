"""Who is scored where: a person is scored under the centre or department where their step was taken, two people
of one name at two townships are two rows, and equal totals share a rank (1, 1, 3).

The reviewer's county screen listed "王芳" and "综合窗口 A岗 王芳" as two people at 河口乡, the county's approvers
under 城关镇 (the errand's township, not where they work), no row for T01's 王芳 (the two 王芳 were one key), and
ranks 1, 2, 3 for three equal scores."""

from __future__ import annotations

import asyncio
from pathlib import Path

from litestar.testing import TestClient
from office_kit import Story, seed_store
from test_assessment_rules import AS_OF, CAL, Q4, entry

from protocol.actions import Assign, Decide, HandOff, Receive
from protocol.assessment import ErrandRecord, assess, default_rules
from sanji.config import NodeSettings, load_settings
from sanji.demo.cluster import Cluster
from sanji.keys import read_directory, read_key
from sanji.store import Store, open_database
from sanji.tiers import create_app

Q = {"quarter": "2026Q4"}


def stories() -> list[Story]:
    at_t01 = Story("A1", "T01", "T01").registered("2026-11-02").accepted("2026-11-02", "2026-11-09")
    at_t01.assigned("2026-11-02", "王芳").reviewed("2026-11-03").decided("2026-11-04", actor="王芳")
    at_t02 = Story("A2", "T02", "T02").registered("2026-11-02").accepted("2026-11-02", "2026-11-09")
    at_t02.assigned("2026-11-02", "王芳").reviewed("2026-11-03").decided("2026-11-04", actor="王芳")
    # escalated from 城关镇 to the county's 县民政局, assigned and decided there by 赵敏
    up = Story("A3", "T01", "T01").registered("2026-11-02").accepted("2026-11-02", "2026-11-20", kind="上报件")
    up.add(HandOff, "T01", "2026-11-02", to="C", purpose="escalate", department="县民政局")
    up.add(Receive, "C", "2026-11-03").add(Assign, "C", "2026-11-03", window="县民政局", handler="赵敏")
    up.add(Decide, "C", "2026-11-05", outcome="approved", actor="赵敏")
    return [at_t01, at_t02, up]


async def _seed(settings: NodeSettings, cluster: Cluster) -> None:
    db = await open_database(settings.db_url)
    try:
        directory = read_directory(settings.path(settings.node.directory))
        store = Store(db, node_id="C", key=read_key(settings.path(settings.node.key_file)), directory=directory)
        await store.start()
        await seed_store(store, stories(), cluster.layout.keys)
    finally:
        await db.dispose()


def test_each_person_is_scored_where_their_step_was_taken(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "county", towns=2, villages_per_town=1, open_demo=True)
    settings = load_settings(cluster.nodes["C"].config)
    asyncio.run(_seed(settings, cluster))
    with TestClient(create_app(settings)) as client:
        body = client.get("/api/office/assessment", params=Q).json()
        people = sorted((s["name"], s["centre"], s["errands"]) for s in body["staff"])
        assert people == [("王芳", "T01", 1), ("王芳", "T02", 1), ("赵敏", "县民政局", 1)], people
        assert [s["rank"] for s in body["staff"]] == [1, 1, 1]  # three equal totals share the first place

        # an entry for T02's 王芳 lands on her row, not on T01's
        r = client.post(
            "/api/office/assessment/entries",
            json={
                **Q,
                "target": "staff",
                "subject": "王芳",
                "centre": "河口乡便民服务中心",
                "item": "late",
                "by": "周明",
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["centre"] == "T02"  # the centre chosen by its name is kept as its id
        body = client.get("/api/office/assessment", params=Q).json()
        scores = {(s["name"], s["centre"]): (s["total"], s["rank"]) for s in body["staff"]}
        assert scores == {("王芳", "T01"): (100, 1), ("赵敏", "县民政局"): (100, 1), ("王芳", "T02"): (98, 3)}
        unknown = client.post(
            "/api/office/assessment/entries",
            json={**Q, "target": "staff", "subject": "王芳", "centre": "火星乡", "item": "late", "by": "周明"},
        )
        assert unknown.status_code == 400 and "火星乡" in unknown.json()["message_zh"]

        page = client.get("/office/assessment/", params=Q).text
        assert page.count('id="staff-王芳') == 2 and 'id="staff-王芳-' in page  # two rows, ids unique
        assert '<datalist id="subjects">' in page and '<option value="T01">城关镇便民服务中心</option>' in page
        assert '<option value="县民政局">县民政局</option>' in page  # the county's departments to score under


def test_equal_totals_share_a_rank_and_the_grade_quota() -> None:
    staff = ["甲", "乙", "丙", "丁"]
    records = [
        ErrandRecord(errand=f"E{i}", handler=n, centre="T01", answered_on="2026-11-02") for i, n in enumerate(staff)
    ]
    result = assess(default_rules(), Q4, records, [entry("丁", "late")], [], calendar=CAL, as_of=AS_OF)
    assert sorted(s.rank for s in result.staff) == [1, 1, 1, 4]  # not 1, 2, 3, 4
    assert sum(s.grade == "excellent" for s in result.staff) == 4
