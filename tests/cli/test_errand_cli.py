"""``sanji errand`` at a township: the desk's steps from the command line, under the API's rules."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import TestClient

from protocol.refusals import Refusal, bilingual
from sanji.auth import events as ev
from sanji.auth.book import AuthBook
from sanji.auth.passwords import hash_password
from sanji.cli.common import os_user
from sanji.config import load_settings
from sanji.store import open_database
from tests.auth.auth_kit import login
from tests.cli.errand_kit import PASSWORD, add_accounts, sanji
from tests.screens.screens_kit import MZ003_ALL, make_app, prepared_node

TOWN = "T01"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def town(tmp_path: Path) -> str:
    """A township with the catalogue; a window A post, a B post, an inspector, an admin, a disabled account,
    and a county approver (who does not work at a township)."""
    cluster, _ = prepared_node(tmp_path, TOWN)
    config = cluster.nodes[TOWN].config
    add_accounts(
        config,
        [
            ("王芳", "window_a"),
            ("赵敏", "window_b"),
            ("孙纪", "inspector"),
            ("离职", "window_a"),
            ("管理员", "admin"),
        ],
    )
    assert sanji("accounts", "disable", "--config", str(config), "--name", "离职")[0] == 0
    _add_out_of_level(str(config), "钱审", "approver")
    return str(config)


def _add_out_of_level(config: str, name: str, role: str) -> None:
    """An account whose post does not work at this node's level (``sanji accounts add`` refuses one;
    a database carried over from a county node may still hold it): written straight into the book."""
    settings = load_settings(config)

    async def add() -> None:
        db = await open_database(settings.db_url, migrate=False)
        try:
            event = ev.AccountChanged(at=0.0, node=settings.node.id, name=name, change="added", staff_role=role)
            await AuthBook(db).add_account(name, role, hash_password(PASSWORD), now=0.0, event=event)
        finally:
            await db.dispose()

    asyncio.run(add())


def _register(config: str, tmp: Path, **body: object) -> str:
    path = tmp / "body.json"
    form = {"matter": "MZ-003", "applicant_name": "张秀英", "applicant_phone": "13812345678"}
    form |= {"materials": list(MZ003_ALL), "in_person": True, "actor": "王芳", **body}
    path.write_text(json.dumps(form, ensure_ascii=False), encoding="utf-8")
    code, out, err = sanji("errand", "register", "--config", config, "--account", "王芳", "--json", str(path))
    assert code == 0, err
    errand, receipt, action = out.strip().split("\t")
    assert errand.startswith(f"{TOWN}-") and receipt and len(action) == 32
    return errand


def _events(config: str) -> list[ev.Event]:
    db_url = load_settings(config).db_url

    async def read() -> list[ev.Event]:
        db = await open_database(db_url, migrate=False)
        try:
            return await AuthBook(db).events(limit=1000)
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_accept_through_the_cli_lists_shows_and_audits(town: str, tmp_path: Path) -> None:
    errand = _register(town, tmp_path)
    code, out, _ = sanji("errand", "show", "--config", town, errand, "--account", "王芳", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["id"] == errand and shown["stage"] == "registered" and shown["post"] == "window_a"
    assert {"accept", "not_accept", "withdraw", "note"} <= set(shown["steps"])
    register = shown["history"][0]
    assert register["applicant"]["phone"] == "138****5678" and register["applicant"]["masked"]
    assert "13812345678" not in out  # masked as the API shows it
    # An inspector's post is offered no intake step; the screens ask the same role table.
    _, out, _ = sanji("errand", "show", "--config", town, errand, "--post", "inspector", "--json")
    assert json.loads(out)["steps"] == ["note"]  # supervision is offered at the county

    code, out, err = sanji("errand", "act", "--config", town, "--account", "王芳", errand, "accept", "--json")
    assert code == 0, err
    taken = json.loads(out)
    assert taken["errand"] == errand and taken["stage"] == "accepted" and taken["version"] == 2
    assert set(taken) == {"action", "errand", "receipt", "stage", "holder", "version", "digest"}

    code, out, _ = sanji("errand", "list", "--config", town, "--stage", "accepted", "--json")
    page = json.loads(out)
    assert code == 0 and page["total"] == 1 and page["items"][0]["id"] == errand
    assert page["items"][0]["deadline"]["level"] in ("normal", "yellow", "red")
    code, out, _ = sanji("errand", "list", "--config", town)
    assert code == 0 and out.startswith(f"{errand}\t{taken['receipt']}\tMZ-003\taccepted\t")
    # The text show finds the errand by its receipt number too, and lists the steps now.
    code, out, _ = sanji("errand", "show", "--config", town, taken["receipt"], "--post", "window_a")
    assert code == 0 and errand in out and "steps now for window_a:" in out and "accept\t王芳 窗口A岗" in out

    taken_events = [e for e in _events(town) if isinstance(e, ev.ActionTaken) and e.errand == errand]
    assert [(e.kind, e.account, e.via, e.actor) for e in taken_events] == [
        ("register", "王芳", "cli", "王芳"),
        ("accept", "王芳", "cli", "王芳"),
    ]
    assert taken_events[1].action_id == taken["action"]
    reads = [e for e in _events(town) if isinstance(e, ev.PersonalDataRead) and e.errand == errand]
    assert reads and {e.via for e in reads} == {"cli"} and "王芳" in {e.account for e in reads}
    # No password is asked: every event of the command line names the OS user who ran it.
    cli_events = [e for e in _events(town) if e.via == "cli"]
    assert cli_events and {e.os_user for e in cli_events} == {os_user()}
    code, out, _ = sanji("accounts", "log", "--config", town, "--errand", errand)
    assert code == 0 and f"[王芳 via cli, OS user {os_user()}]" in out


def test_a_refused_step_exits_2_with_the_code_in_both_languages(town: str, tmp_path: Path) -> None:
    errand = _register(town, tmp_path)
    assert sanji("errand", "act", "--config", town, "--account", "王芳", errand, "accept")[0] == 0
    code, out, err = sanji("errand", "act", "--config", town, "--account", "王芳", errand, "accept")
    assert code == 2 and out == ""
    first, zh, en = err.strip().split("\n")
    assert first.startswith("refused: ")
    refusal = Refusal(code=first.removeprefix("refused: "), params={})  # type: ignore[arg-type]
    assert zh and en and refusal.code == "accept_stage"
    code, _, err = sanji("errand", "act", "--config", town, "--account", "王芳", errand, "accept", "--json")
    body = json.loads(err)
    assert code == 2 and body["error"] == "action_refused" and body["error_code"] == "accept_stage"
    assert (body["message_zh"], body["message"]) == bilingual(Refusal(code="accept_stage", params=body["params"]))
    assert (zh, en) == (body["message_zh"], body["message"])
    refused = [e for e in _events(town) if isinstance(e, ev.ActionRefused) and e.errand == errand]
    assert refused and refused[-1].via == "cli" and refused[-1].account == "王芳"


def test_only_an_active_account_with_the_post_acts(town: str, tmp_path: Path) -> None:
    errand = _register(town, tmp_path)
    for name in ("无此人", "离职", "钱审"):
        code, out, err = sanji("errand", "act", "--config", town, "--account", name, errand, "accept")
        assert (code, out) == (2, "") and err.startswith("error: ") and "not an active staff account" in err
    # Each refused --account is a denied event: the name tried, by whom at the keyboard, and why.
    tried = [e for e in _events(town) if isinstance(e, ev.AccessDenied) and e.what == f"cli act {errand} accept"]
    assert [(e.actor, e.account, e.via, e.os_user) for e in tried] == [
        (name, f"cli:{os_user()}", "cli", os_user()) for name in ("无此人", "离职", "钱审")
    ]
    assert [e.reason for e in tried] == [
        "no such account",
        "the account is disabled",
        "a department approver does not work at a town node",
    ]
    code, _, _ = sanji("errand", "show", "--config", town, errand, "--account", "无此人")
    assert code == 2 and any(isinstance(e, ev.AccessDenied) and e.what == f"cli show {errand}" for e in _events(town))
    code, _, err = sanji("errand", "act", "--config", town, "--account", "孙纪", errand, "accept")
    assert code == 2 and err.startswith("denied: 纪检无权办理“受理”") and "may not take the step 'accept'" in err
    # A B post acts only for an A post of this node, as at the API.
    code, _, err = sanji("errand", "act", "--config", town, "--account", "赵敏", errand, "accept")
    assert code == 2 and err.startswith("denied: ") and "acting for" in err
    args = ("errand", "act", "--config", town, "--account", "赵敏", errand, "accept", "--field", "acting_for=王芳")
    code, out, err = sanji(*args)
    assert code == 0 and len(out.strip()) == 32, err
    denied = [e for e in _events(town) if isinstance(e, ev.AccessDenied) and e.errand == errand]
    assert [(e.account, e.via, e.what) for e in denied] == [("孙纪", "cli", "accept"), ("赵敏", "cli", "accept")]
    # Reading an errand's detail needs the post the API's route needs: an administrator has none.
    code, out, err = sanji("errand", "show", "--config", town, errand, "--account", "管理员")
    assert (code, out) == (2, "") and err.startswith("denied: 本岗位（管理员）无权") and "administrator" in err


def test_bad_arguments_exit_2_with_a_clear_message(town: str, tmp_path: Path) -> None:
    errand = _register(town, tmp_path)
    base = ("errand", "act", "--config", town, "--account", "王芳", errand, "note")
    cases = {
        ("--field", "text"): "is not key=value",
        ("--field", "actor=别人"): "the command line fills it",
        ("--field", "days=many"): "days",
        ("--field", "colour=red"): "colour",
    }
    for extra, said in cases.items():
        code, _, err = sanji(*base, *extra)
        assert code == 2 and err.startswith("error: ") and said in err, (extra, err)
    assert sanji("errand", "act", "--config", town, "--account", "王芳", errand, "fly")[0] == 2  # argparse
    # A step that carries a file is not the command line's: it says where to upload instead.
    code, out, err = sanji("errand", "act", "--config", town, "--account", "王芳", errand, "attach")
    assert (code, out) == (2, "") and "does not upload" in err and "/api/errands/{id}/attachments" in err
    assert "attach" not in sanji("errand", "act", "--help")[1].split("the step:")[1]
    assert sanji("errand", "list", "--config", town, "--stage", "done")[0] == 2  # argparse names the stages
    code, _, err = sanji("errand", "list", "--config", town, "--limit", "0")
    assert code == 2 and "--limit" in err
    code, _, err = sanji("errand", "show", "--config", town, "T01-0000000000000000")
    assert code == 2 and "no errand" in err
    code, _, err = sanji("errand", "list", "--config", str(tmp_path / "none.toml"))
    assert code == 2 and err.startswith("error: ")
    (tmp_path / "bad.json").write_text('{"matter": "MZ-003"}', encoding="utf-8")
    code, _, err = sanji(
        "errand", "register", "--config", town, "--account", "王芳", "--json", str(tmp_path / "bad.json")
    )
    assert code == 2 and "applicant_name" in err
    # A note with text is a step like any other: exit 0, the new action's id.
    code, out, err = sanji(*base, "--field", "text=已电话告知申请人")
    assert code == 0 and len(out.strip()) == 32, err


def test_the_installed_command_exits_2_with_the_refusal(town: str, tmp_path: Path) -> None:
    """The same through a fresh ``sanji`` process: what a cron job sees (exit status, stderr)."""
    errand = _register(town, tmp_path)
    argv = [sys.executable, "-m", "sanji.cli.main", "errand", "act", "--config", town, "--account", "王芳", errand]
    done = subprocess.run([*argv, "decide"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr.splitlines()[0].startswith("refused: ")
    done = subprocess.run([*argv, "accept"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0 and len(done.stdout.strip()) == 32, done.stderr


def test_show_offers_the_steps_the_errand_page_offers(town: str, tmp_path: Path) -> None:
    """``sanji errand show`` and the errand page ask one function: the same steps for the same post."""
    errand = _register(town, tmp_path)
    offered: dict[str, list[str]] = {}
    with TestClient(app=make_app(load_settings(town))) as client:
        for name, post in (("王芳", "window_a"), ("赵敏", "window_b"), ("孙纪", "inspector")):
            login(client, name, PASSWORD)
            page = client.get(f"/errands/{errand}")
            assert page.status_code == 200, page.text
            on_page = re.findall(r'<input type="hidden" name="kind" value="([a-z_]+)">', page.text)
            code, out, err = sanji("errand", "show", "--config", town, errand, "--account", name, "--json")
            assert code == 0, err
            shown = json.loads(out)
            assert shown["post"] == post and shown["steps"] == on_page, (name, on_page)
            offered[post] = on_page
            client.cookies.clear()
    assert {"accept", "not_accept"} <= set(offered["window_a"]) and "attach" not in offered["window_a"]
    assert offered["window_b"] == offered["window_a"]  # a B post is offered A's steps, taken acting for A
    assert offered["inspector"] == ["note"]


def test_show_warns_of_a_binding_that_is_not_the_countys_and_offers_no_step_judged_by_it(
    town: str, tmp_path: Path
) -> None:
    """The stored state's bound entry changed (as a tampered registration leaves it): ``show`` says so first."""
    errand = _register(town, tmp_path)

    async def tamper() -> None:
        import msgspec
        from sqlalchemy import select, update

        from sanji.store import schema as t

        db = await open_database(load_settings(town).db_url)
        try:
            async with db.writer.begin() as conn:
                blob = await conn.scalar(select(t.errands.c.state).where(t.errands.c.id == errand))
                state = msgspec.msgpack.decode(blob)
                state["matter_entry"]["committed_limit"] += 30
                state["matter_entry"]["materials"] = []
                tampered = msgspec.msgpack.encode(state)
                await conn.execute(update(t.errands).where(t.errands.c.id == errand).values(state=tampered))
        finally:
            await db.dispose()

    def api_binding() -> object:
        with TestClient(app=make_app(load_settings(town))) as client:
            login(client, "王芳", PASSWORD)
            r = client.get(f"/api/errands/{errand}")
            assert r.status_code == 200, r.text
            return r.json()["binding"]

    code, out, err = sanji("errand", "show", "--config", town, errand, "--account", "王芳", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["binding_mismatch"] == "" and shown["binding"] is None and "accept" in shown["steps"]
    assert api_binding() is None
    code, out, err = sanji("errand", "show", "--config", town, errand, "--account", "王芳")
    assert code == 0, err
    assert not any(line.startswith(("WARNING", "NOTE")) for line in out.splitlines())  # bound fine: nothing said
    asyncio.run(tamper())
    code, out, err = sanji("errand", "show", "--config", town, errand, "--account", "王芳", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["binding_mismatch"].startswith("登记所附事项条目（MZ-003）与县级目录第")
    assert "committed_limit" in shown["binding_mismatch"] and " / the entry this errand" in shown["binding_mismatch"]
    binding = shown["binding"]
    assert binding["status"] == "mismatch" and binding["matter"] == "MZ-003"
    assert "committed_limit" in binding["fields"] and "materials" in binding["fields"]
    assert binding["message_zh"].startswith("登记所附事项条目（MZ-003）") and "differs" in binding["message"]
    assert api_binding() == binding  # the API says what the command line says
    assert "accept" not in shown["steps"] and "not_accept" in shown["steps"]
    code, out, err = sanji("errand", "show", "--config", town, errand, "--account", "王芳")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[-2].startswith("WARNING 登记所附事项条目")
    assert lines[-1].split(": ")[1].split(", ") == shown["steps"]


def test_show_says_an_entry_it_cannot_check_yet_and_offers_its_steps(town: str, tmp_path: Path) -> None:
    """Bound to a version this township has not received (its villages may be ahead of it): ``show`` and the API
    say so (behind), Chinese first, and the steps stay offered: the county checks it."""
    errand = _register(town, tmp_path)

    async def ahead() -> None:
        import msgspec
        from sqlalchemy import select, update

        from sanji.store import schema as t

        db = await open_database(load_settings(town).db_url)
        try:
            async with db.writer.begin() as conn:
                state = msgspec.msgpack.decode(
                    await conn.scalar(select(t.errands.c.state).where(t.errands.c.id == errand))
                )
                state["catalogue_version"] += 5
                ahead = msgspec.msgpack.encode(state)
                await conn.execute(update(t.errands).where(t.errands.c.id == errand).values(state=ahead))
        finally:
            await db.dispose()

    asyncio.run(ahead())
    code, out, err = sanji("errand", "show", "--config", town, errand, "--account", "王芳", "--json")
    assert code == 0, err
    shown = json.loads(out)
    binding = shown["binding"]
    assert shown["binding_mismatch"] == "" and binding["status"] == "behind" and binding["fields"] == ""
    assert "尚未收到县级目录第" in binding["message_zh"] and "not received" in binding["message"]
    assert "accept" in shown["steps"]
    code, out, err = sanji("errand", "show", "--config", town, errand, "--account", "王芳")
    assert code == 0, err
    (note,) = [line for line in out.splitlines() if line.startswith("NOTE ")]
    assert note == f"NOTE {binding['message_zh']} / {binding['message']}"
    with TestClient(app=make_app(load_settings(town))) as client:
        login(client, "王芳", PASSWORD)
        r = client.get(f"/api/errands/{errand}")
        assert r.status_code == 200, r.text
        assert r.json()["binding"] == binding


def test_an_errand_missing_a_main_material_is_not_accepted_from_the_command_line(town: str, tmp_path: Path) -> None:
    """The desk's one door (``ErrandService``, ``protocol.binding.acceptance_refusal``): ``show`` does not offer
    acceptance while a main material (主件) is missing and says which; ``act accept`` exits 2 with the refusal."""
    errand = _register(town, tmp_path, materials=["申请书", "身份证复印件", "困难情况证明材料"])
    code, out, _ = sanji("errand", "show", "--config", town, "--account", "王芳", errand, "--json")
    shown = json.loads(out)
    assert code == 0 and "accept" not in shown["steps"] and "not_accept" in shown["steps"]
    assert shown["materials"]["missing_main"] == ["户口簿复印件"] and shown["materials"]["missing_secondary"] == []
    code, out, _ = sanji("errand", "show", "--config", town, "--account", "王芳", errand)
    assert code == 0 and "缺少材料 materials missing: 主件 main 户口簿复印件" in out
    code, _, err = sanji("errand", "act", "--config", town, "--account", "王芳", errand, "accept", "--json")
    body = json.loads(err)
    assert code == 2 and body["error_code"] == "accept_mains_missing", err
    assert body["message_zh"].startswith("主件不齐，不能受理：缺少户口簿复印件") and "一次性告知" in body["message_zh"]
    code, out, _ = sanji("errand", "show", "--config", town, "--account", "王芳", errand, "--json")
    assert json.loads(out)["version"] == 1  # nothing written
