"""Where an account sits: its county department and its window — kept in the store (migration 0025), set
and cleared by ``sanji accounts add/edit``, audited, and judged by the one rule (``roles.place_refusal``)."""

from __future__ import annotations

import argparse
import asyncio
import io
from pathlib import Path

import msgspec
import pytest
from alembic import command
from auth_kit import PASSWORD, events, prepare, with_service
from sqlalchemy import insert, text

from protocol.errand import ErrandState
from protocol.topology import COUNTY
from protocol.urging import Urging
from sanji.auth import events as ev
from sanji.auth import places, roles
from sanji.auth.book import AuthBook
from sanji.auth.service import AuthService
from sanji.catalogue.loader import default_catalogue
from sanji.cli import accounts_cmd
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.demo.staff import DEMO_PASSWORD, seed_accounts
from sanji.forms import ActionForm, RegisterForm
from sanji.store import open_database
from sanji.store import schema as t
from sanji.store.revisions import alembic_config, code_head
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from tests.web.test_department_inbox import open_county


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sanji")
    sub = parser.add_subparsers(dest="command", required=True)
    accounts_cmd.add_parser(sub)
    return parser.parse_args(argv)


def run(argv: list[str]) -> int:
    args = parse(argv)
    result: int = args.func(args)
    return result


def placed(config: Path, name: str) -> tuple[str, str]:
    async def work(service: AuthService) -> tuple[str, str]:
        account = await service.book.account(name=name)
        assert account is not None
        return account.department, account.window

    result: tuple[str, str] = with_service(config, work)
    return result


def test_the_command_line_sets_and_clears_department_and_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    county, town = prepare(tmp_path / "a", "C"), prepare(tmp_path / "b", "T01")
    add = ["accounts", "add", "--config", str(county), "--name", "赵敏", "--role", "approver", "--password-stdin"]
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert run([*add, "--department", "县民政局"]) == 0
    assert "acting for department 县民政局" in capsys.readouterr().out
    assert placed(county, "赵敏") == ("县民政局", "")

    assert accounts_cmd.run_add(str(town), "王芳", "window_a", PASSWORD, window="综合窗口") == 0
    assert run(["accounts", "edit", "--config", str(town), "--name", "王芳", "--window", "社会救助窗口"]) == 0
    assert placed(town, "王芳") == ("", "社会救助窗口")
    assert run(["accounts", "edit", "--config", str(county), "--name", "赵敏", "--department", "县人社局"]) == 0
    assert run(["accounts", "edit", "--config", str(county), "--name", "赵敏", "--window", "社会救助窗口"]) == 0
    assert placed(county, "赵敏") == ("县人社局", "社会救助窗口")  # a flag left out keeps its value
    assert run(["accounts", "edit", "--config", str(county), "--name", "赵敏", "--department", ""]) == 0
    assert placed(county, "赵敏") == ("", "社会救助窗口")
    assert accounts_cmd.run_list(str(county)) == 0
    assert "赵敏\tapprover\t部门审批\t已启用 active" in capsys.readouterr().out

    # What does not fit: a department below the county, a window at a village, a post that sits nowhere.
    assert run(["accounts", "edit", "--config", str(town), "--name", "王芳", "--department", "县民政局"]) == 2
    assert accounts_cmd.run_add(str(county), "周明", "supervisor", PASSWORD, department="县民政局") == 2
    assert accounts_cmd.run_add(str(county), "钱某", "approver", PASSWORD, department=" 县民政局") == 2
    assert accounts_cmd.run_add(str(county), "钱某", "approver", PASSWORD, department="县民\n政局") == 2
    assert run(["accounts", "edit", "--config", str(county), "--name", "赵敏"]) == 2
    assert run(["accounts", "edit", "--config", str(county), "--name", "无此人", "--window", "x"]) == 2
    out = capsys.readouterr().out
    assert "only a window post, director or department approver at the county carries a department" in out
    assert "no spaces at either end" in out and "give --department or --window" in out and "no account" in out
    assert placed(town, "王芳") == ("", "社会救助窗口")

    changes = [
        (e.name, e.change, e.department, e.window)
        for e in events(county, event="account")
        if isinstance(e, ev.AccountChanged)
    ]
    assert changes == [
        ("赵敏", "added", "县民政局", ""),
        ("赵敏", "placed", "县人社局", ""),
        ("赵敏", "placed", "县人社局", "社会救助窗口"),
        ("赵敏", "placed", "", "社会救助窗口"),
    ]


def test_the_command_line_refuses_a_place_the_catalogue_does_not_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``prepare`` gives the node the county's catalogue: a department or window it does not name is refused with
    exit status 2 and both languages, and nothing is written; a place kept as it is is not checked again."""
    county, town = prepare(tmp_path / "a", "C"), prepare(tmp_path / "b", "T01")
    assert accounts_cmd.run_add(str(county), "赵敏", "approver", PASSWORD, department="县民证局") == 2
    out = capsys.readouterr().out
    assert "error: " in out and "没有“县民证局”这个部门" in out and "name a department “县民证局”" in out
    assert "请从列表中选择" not in out and "from the list" not in out  # the command line shows no list
    assert "可选：" in out and " 等 " in out and "known: " in out and " more" in out  # ten of the catalogue's names
    known = out.split("known: ")[1]
    assert "县民政局" in known or "县人社局" in known
    assert accounts_cmd.run_add(str(town), "王芳", "window_a", PASSWORD, window="综合") == 2
    out = capsys.readouterr().out
    assert "没有“综合”这个窗口" in out and "name a window “综合”" in out and "综合窗口" in out
    assert accounts_cmd.run_add(str(town), "王芳", "window_a", PASSWORD, window="综合窗口") == 0
    assert run(["accounts", "edit", "--config", str(town), "--name", "王芳", "--window", "九号窗口"]) == 2
    assert placed(town, "王芳") == ("", "综合窗口")
    assert not [e for e in events(county, event="account") if isinstance(e, ev.AccountChanged)]

    # A place set before the check (or before the catalogue changed) stays, and changing the other one works.
    assert accounts_cmd.run_add(str(county), "赵敏", "approver", PASSWORD, department="县民政局") == 0
    asyncio.run(_seat_directly(county, "赵敏", "县老部门", ""))
    assert run(["accounts", "edit", "--config", str(county), "--name", "赵敏", "--window", "综合窗口"]) == 0
    assert placed(county, "赵敏") == ("县老部门", "综合窗口")


async def _seat_directly(config: Path, name: str, department: str, window: str) -> None:
    """Where an account sat before places were checked: written straight into the store."""
    db = await open_database(load_settings(config).db_url)
    try:
        async with db.writer.begin() as conn:
            values = {"department": department, "window": window}
            await conn.execute(t.accounts.update().where(t.accounts.c.name == name).values(**values))
    finally:
        await db.dispose()


def test_a_node_holding_no_catalogue_takes_any_place(tmp_path: Path) -> None:
    """Before its first exchange a node holds no catalogue and cannot tell a typo from a real name: it takes what
    is typed, as before (``roles.unknown_place``)."""
    cluster = Cluster.prepare(tmp_path / "bare", towns=1, villages_per_town=1, open_demo=True)
    county, town = cluster.nodes["C"].config, cluster.nodes["T01"].config
    assert accounts_cmd.run_add(str(county), "赵敏", "approver", PASSWORD, department="县民证局") == 0
    assert accounts_cmd.run_add(str(town), "王芳", "window_a", PASSWORD, window="一号窗口") == 0
    assert placed(county, "赵敏") == ("县民证局", "") and placed(town, "王芳") == ("", "一号窗口")


def test_a_window_an_errand_was_assigned_to_is_known(tmp_path: Path) -> None:
    """A township may name its windows its own way at 承办 (the form takes the catalogue's as a default only):
    a window an errand held here was assigned to seats an account although the catalogue does not name it."""

    async def assigned() -> Path:
        county = await open_county(tmp_path, open_demo=False)
        try:
            service = county.service("T01")
            entry = default_catalogue().get("MZ-001")
            assert entry is not None
            materials = [m.name for m in entry.materials if not m.optional]
            form = RegisterForm(matter="MZ-001", applicant_name="周大娘", materials=materials, actor="窗口")
            errand = (await service.register(form)).errand
            await service.act(errand, ActionForm(kind="accept", actor="窗口", errand_kind="承诺件", window="三号窗口"))
            return county.cluster.nodes["T01"].config
        finally:
            await county.close()

    town = asyncio.run(assigned())
    assert accounts_cmd.run_add(str(town), "王芳", "window_a", PASSWORD, window="三号窗口") == 0
    assert accounts_cmd.run_add(str(town), "李红", "window_a", PASSWORD, window="四号窗口") == 2


def test_a_village_agent_carries_no_window(tmp_path: Path) -> None:
    village = prepare(tmp_path, "T01V01")
    assert accounts_cmd.run_add(str(village), "李建国", "village_agent", PASSWORD, window="代办窗口") == 2
    assert accounts_cmd.run_add(str(village), "李建国", "village_agent", PASSWORD) == 0


async def test_the_migration_keeps_every_account_acting_for_its_whole_node(db_url: str) -> None:
    """0025 on a store at 0024 that holds an account: it keeps it, with no department and no window."""
    db = await open_database(db_url, migrate=False)
    try:
        async with db.writer.begin() as conn:

            def to_0024(sync: object) -> None:
                cfg = alembic_config()
                cfg.attributes["connection"] = sync
                command.upgrade(cfg, "0024")

            await conn.run_sync(to_0024)
            columns = {row[1] for row in await conn.execute(text("PRAGMA table_info(accounts)"))}
            assert "department" not in columns and "window" not in columns
            await conn.execute(
                insert(t.accounts).values(
                    name="王芳", role="window_a", password_hash="x", active=True, failed_logins=0,
                    locked_until=0.0, created_at=1.0, must_change_password=False,
                )
            )  # fmt: skip
    finally:
        await db.dispose()

    db = await open_database(db_url)  # migrates to head
    try:
        book = AuthBook(db)
        account = await book.account(name="王芳")
        assert account is not None and (account.role, account.department, account.window) == ("window_a", "", "")
        async with db.reader.connect() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        assert version == code_head()  # every migration since 0024 ran, 0025 among them
    finally:
        await db.dispose()


# -- the rule ------------------------------------------------------------------------------------------


def _state(**facts: object) -> ErrandState:
    return ErrandState(id="E", scope="T01V01", matter="M", applicant_name="A", stage="accepted", holder="T01", **facts)  # type: ignore[arg-type]


def test_the_place_rule() -> None:
    joint = _state(subtasks={"县农业农村局": "pending", "县住建局": "pending"}, department="县自然资源局")
    mine = {"department": "县农业农村局", "window": ""}
    assert roles.place_refusal("subtask_done", joint, **mine, named_department="县农业农村局") is None
    refused = roles.place_refusal("subtask_done", joint, **mine, named_department="县住建局")
    assert refused is not None and refused.refusal == "other_department_subtask"
    assert (refused.kind, refused.errand) == ("subtask_done", "E")  # what its audit row names
    assert (refused.actor, refused.role) == ("", "")  # the rule knows no person: the guard signs it
    assert refused.signed_by("赵农", "部门审批人员") is refused and (refused.actor, refused.role) == (
        "赵农",
        "部门审批人员",
    )
    refused = roles.place_refusal("decide", joint, **mine)  # the errand is 县自然资源局's
    assert refused is not None and refused.refusal == "other_department_errand"
    assert roles.place_offers("subtask_done", joint, "C", **mine)
    assert not roles.place_offers("subtask_done", joint, "C", department="县医保局", window="")
    assert not roles.place_offers("note", joint, "C", **mine)

    own = _state(department="县民政局")
    assert roles.place_refusal("decide", own, department="县民政局", window="") is None
    refused = roles.place_refusal("decide", own, department="县民政局", window="", named_department="县人社局")
    assert refused is not None and refused.refusal == "other_department_decision"
    assert roles.place_refusal("note", _state(), department="县民政局", window="") is None  # not escalated

    # Not escalated, but bound to a matter 县民政局 approves: another department's clerk may not decide it.
    dibao = default_catalogue().get("MZ-001")
    assert dibao is not None and dibao.department == "县民政局"
    held = _state(matter_entry=dibao)
    for kind in ("decide", "terminate", "extend", "note"):
        refused = roles.place_refusal(kind, held, department="县人社局", window="")
        assert refused is not None and refused.refusal == "other_department_matter", kind
    assert refused.as_dict()["message_zh"] == "该事项由县民政局审批，本账号属于县人社局，不能办理"
    assert roles.place_refusal("decide", held, department="县民政局", window="") is None
    assert not roles.place_offers("decide", held, "C", department="县人社局", window="")

    urgings = (
        Urging(id="u1", by="C", to="T01", window="综合窗口", answer_by="2026-12-01", at=1),
        Urging(id="u2", by="C", to="T01", window="社会救助窗口", answer_by="2026-12-01", at=2),
    )
    urged = _state(urgings=urgings)
    assert roles.urging_for(urged, "T01", "社会救助窗口") == "u2"
    assert roles.urging_for(urged, "T01", "") == "u1"
    assert roles.place_refusal("answer_urging", urged, department="", window="社会救助窗口", urging="u2") is None
    refused = roles.place_refusal("answer_urging", urged, department="", window="社会救助窗口", urging="u1")
    assert refused is not None and refused.refusal == "other_window_urging"
    assert refused.as_dict()["message_zh"] == "该督办督促的是综合窗口，本账号属于社会救助窗口，不能答复"
    body = refused.as_dict()  # the 403's body: the guard's fields, the refusal's, and the step refused
    assert {k: body[k] for k in ("error", "error_code", "kind", "errand")} == {
        "error": "forbidden",
        "error_code": "other_window_urging",
        "kind": "answer_urging",
        "errand": "E",
    }
    assert {"message", "hint", "retryable", "params"} <= body.keys()
    assert not roles.place_offers("answer_urging", urged, "T01", department="", window="民政窗口")

    for kind in ("subtask_done", "decide", "answer_urging", "receive"):  # neither: the whole node, never refused
        assert roles.place_refusal(kind, joint, department="", window="", named_department="x", urging="u9") is None


def test_the_demo_seeds_department_clerks_and_window_staff(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=True)
    configs = {n: cluster.nodes[n].config for n in ("C", "T01", "T01V01")}
    lines = asyncio.run(seed_accounts(configs))
    assert [line.split(":")[0] for line in lines] == ["C", "T01"]  # a village station has no such posts
    asyncio.run(seed_accounts(configs))  # again: nothing doubled, nothing refused
    assert placed(configs["C"], "赵敏") == ("县民政局", "") and placed(configs["T01"], "李红") == ("", "社会救助窗口")

    async def login(service: AuthService) -> tuple[str, str]:
        principal = (await service.login("钱进", DEMO_PASSWORD)).principal
        return principal.role, principal.department

    assert with_service(configs["C"], login) == ("approver", "县人社局")


async def test_a_department_live_errands_still_name_is_known(tmp_path: Path) -> None:
    """An errand keeps the entry it was bound under: after a catalogue renames or drops a department, the 上报件
    escalated to it and the 联办 sub-tasks it owes still name it, and a clerk can be seated there to work them."""
    county = await open_county(tmp_path, open_demo=False)
    try:
        await county.escalate("T01", "MZ-001", "县民政局", "张秀英")
        window = county.service("T01")
        entry = default_catalogue().get("MZ-007")  # 医疗救助: 县医保局 joins
        assert entry is not None
        materials = [m.name for m in entry.materials if not m.optional]
        form = RegisterForm(matter="MZ-007", applicant_name="村民甲", materials=materials, actor="窗口 王芳")
        errand = (await window.register(form)).errand
        accept = ActionForm(kind="accept", actor="窗口 王芳", errand_kind="联办件", co_departments=["县医保局"])
        await window.act(errand, accept)
        await sync_once(county.stores["T01"], LocalTransport(SyncServer(county.stores["C"])))

        catalogue = default_catalogue()
        gone = {"县民政局", "县医保局"}
        renamed = msgspec.structs.replace(
            catalogue,
            matters=tuple(
                msgspec.structs.replace(
                    m,
                    department="县民政事务局" if m.department in gone else m.department,
                    joint_departments=tuple(d for d in m.joint_departments if d not in gone),
                )
                for m in catalogue.matters
            ),
        )
        assert not gone & places.catalogue_places(renamed)[0]
        store = county.stores["C"]
        known = await places.known_places(store.db, renamed, "C")
        assert known is not None and gone <= known.departments and "县民政事务局" in known.departments
        assert roles.unknown_place("县民政局", "", known) is None
        assert roles.unknown_place("县医保局", "", known) is None
        refused = roles.unknown_place("县老部门", "", known)
        assert refused is not None and refused[0] == "department"
        zh, en = refused[1]  # each language on its own, so a screen puts each in its own span
        assert "没有“县老部门”这个部门" in zh and "“县老部门”" in en and "没有" not in en and "Neither" not in zh
        assert await places.departments_in_use(store.db, "C") == gone
        # The township leads the 联办件 but sent the 上报件 on: its inbox names no department.
        assert await places.departments_in_use(county.stores["T01"].db, "T01") == {"县医保局"}
    finally:
        await county.close()


def test_a_window_given_a_duty_phone_is_known(tmp_path: Path) -> None:
    """A window the settings give a duty phone (``[sms.windows]``) seats an account before any errand is
    assigned there, at the command line as on the accounts page (both ask ``places.known_places``)."""
    town = prepare(tmp_path, "T01")
    assert accounts_cmd.run_add(str(town), "王芳", "window_a", PASSWORD, window="七号窗口") == 2
    with town.open("a", encoding="utf-8") as f:
        f.write('\n[sms.windows]\n"七号窗口" = "13800000007"\n')
    assert load_settings(town).sms.windows == {"七号窗口": "13800000007"}
    assert accounts_cmd.run_add(str(town), "王芳", "window_a", PASSWORD, window="七号窗口") == 0
    assert accounts_cmd.run_add(str(town), "李红", "window_a", PASSWORD, window="八号窗口") == 2
    assert placed(town, "王芳") == ("", "七号窗口")


async def test_the_windows_in_use_are_those_held_here_first_by_name(tmp_path: Path) -> None:
    """``windows_in_use`` reads the errands this node holds (by the ``(holder, window)`` index alone, migration
    0028: no row read, no sort), the first ``at_most`` by name: the county's copies of a township's errands offer
    its staff no township window, and past the bound the set is the same on every read."""
    county = await open_county(tmp_path, open_demo=False)
    try:
        service = county.service("T01")
        entry = default_catalogue().get("MZ-001")
        assert entry is not None
        materials = [m.name for m in entry.materials if not m.optional]
        for applicant, window in (("甲", "五号窗口"), ("乙", "三号窗口"), ("丙", "四号窗口")):
            form = RegisterForm(matter="MZ-001", applicant_name=applicant, materials=materials, actor="窗口")
            errand = (await service.register(form)).errand
            accept = ActionForm(kind="accept", actor="窗口", errand_kind="承诺件", window=window)
            await service.act(errand, accept)
        await sync_once(county.stores["T01"], LocalTransport(SyncServer(county.stores["C"])))
        town, hub = county.stores["T01"].db, county.stores["C"].db
        async with hub.reader.connect() as conn:
            copies = await conn.execute(text("SELECT count(*) FROM errands WHERE window = '三号窗口'"))
            assert copies.scalar() == 1  # the county holds a copy, assigned there
        assert await places.windows_in_use(town, "T01") == {"三号窗口", "四号窗口", "五号窗口"}
        assert await places.windows_in_use(hub, "C") == frozenset()
        first = set(sorted(["三号窗口", "四号窗口", "五号窗口"])[:2])  # by code point: 三, 五, 四
        assert await places.windows_in_use(town, "T01", at_most=2) == first == {"三号窗口", "五号窗口"}
        async with town.reader.connect() as conn:
            sql = str(places.windows_query("T01").compile(town.reader, compile_kwargs={"literal_binds": True}))
            plan = [str(row[-1]) for row in await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
        # covering: the windows come from the index; in its order: no temporary tree for DISTINCT or ORDER BY
        assert plan == ["SEARCH errands USING COVERING INDEX ix_errands_holder_window (holder=?)"], plan
    finally:
        await county.close()


@pytest.mark.postgres
async def test_postgresql_reads_the_windows_in_use_from_the_index_alone(pg_url: str) -> None:
    """Migration 0028 on PostgreSQL: ``(holder, window)``, and the query, its node bound, takes it."""
    db = await open_database(pg_url)
    try:
        async with db.reader.connect() as conn:
            definition = (
                await conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_errands_holder_window'"))
            ).scalar_one()
            await conn.execute(text("SET enable_seqscan = off"))  # an empty table: a scan would cost nothing
            await conn.execute(text("SET plan_cache_mode = force_generic_plan"))  # the node bound, not known
            query = places.windows_query("T01", 500).compile(dialect=conn.dialect)
            params = tuple(query.params[name] for name in query.positiontup or ())
            plan = [str(r[0]) for r in await conn.exec_driver_sql(f"EXPLAIN {query.string}", params)]
    finally:
        await db.dispose()
    assert definition.endswith('(holder, "window")'), definition
    assert any("Index Only Scan using ix_errands_holder_window" in step for step in plan), plan


def test_a_department_reveals_what_reached_the_county_for_it() -> None:
    """``roles.reveal_refusal`` on states no illustrative matter reaches over the apps: an errand registered at
    the county itself, and a 联办 sub-task under the old rule (the lead window answers it, not the department)."""
    dibao = default_catalogue().get("MZ-001")
    joint_entry = default_catalogue().get("ZR-001")
    assert dibao is not None and joint_entry is not None
    minzheng = {"department": "县民政局", "window": ""}
    registered = {"kind": "register", "node": "C", "status": "applied"}

    at_county = msgspec.structs.replace(_state(matter_entry=dibao), holder="C", scope="C")  # registered there
    assert roles.reveal_refusal(at_county, "C", COUNTY, **minzheng, history=[registered], role="approver") is None
    refused = roles.reveal_refusal(at_county, "C", COUNTY, department="县人社局", window="", history=[registered])
    assert refused is not None and refused.refusal == "other_department_matter"
    # Held at T01, with only the county's 督办 and note in its copy: not on the county's desk.
    afar = [{"kind": k, "node": "C", "status": "applied"} for k in ("supervise", "note", "attach", "subtask_done")]
    held = _state(matter_entry=dibao)
    refused = roles.reveal_refusal(held, "C", COUNTY, **minzheng, history=afar, role="approver")
    assert refused is not None and refused.refusal == "not_escalated_to_department"
    assert refused.message_zh.startswith("该办件由T01办理，尚未上报县民政局")
    # A main-line step the county tried and the rule rejected brings nothing either.
    rejected = [{"kind": "receive", "node": "C", "status": "rejected"}]
    assert roles.reveal_refusal(held, "C", COUNTY, **minzheng, history=rejected) is not None
    # Escalated to it (the hand-off applied, on its way): on its path before it signs for it.
    escalated = msgspec.structs.replace(held, department="县民政局", stage="escalated", pending_to="C")
    assert roles.reveal_refusal(escalated, "C", COUNTY, **minzheng, role="approver") is None

    old_joint = _state(matter_entry=msgspec.structs.replace(joint_entry, joint_answers_at_departments=False))
    old_joint.subtasks = {"县住建局": "pending"}
    zhujian = {"department": "县住建局", "window": ""}
    assert roles.reveal_refusal(old_joint, "C", COUNTY, **zhujian) is not None  # T01 answers for it
    new_joint = _state(matter_entry=joint_entry, subtasks={"县住建局": "pending"})
    assert roles.reveal_refusal(new_joint, "C", COUNTY, **zhujian) is None  # answered at its own desk here
    # Acting for the whole hub: an approver answers any department's sub-task, a window clerk none.
    assert roles.reveal_refusal(new_joint, "C", COUNTY, department="", window="", role="approver") is None
    refused = roles.reveal_refusal(new_joint, "C", COUNTY, department="", window="", role="window_b")
    assert refused is not None and refused.refusal == "post_elsewhere"
    for post in ("director", "supervisor", "village_agent"):  # no place binds them: the role decides
        assert roles.reveal_refusal(held, "C", COUNTY, department="", window="", role=post) is None
