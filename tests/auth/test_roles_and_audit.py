"""Role rules (one table), A/B posts, complaints for supervisors only, and the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from auth_kit import GOOD, add, app, bearer, events, login, prepare, token, with_service
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import update

import sanji.auth.book
from protocol.topology import COUNTY, TOWN, VILLAGE
from sanji.auth import events as ev
from sanji.auth import roles
from sanji.auth.service import AuthService
from sanji.store import schema as t

Client = TestClient[Litestar]

PNG = {"content-type": "image/png"}  # an attachment is a photo or a scan (protocol.scans)


# -- the table ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "kind", "node_role", "acting_for", "holder", "refused"),
    [
        ("village_agent", "register", VILLAGE, "", "", ""),
        ("village_agent", "decide", VILLAGE, "", "", "may not take the step 'decide'"),
        ("village_agent", "register", TOWN, "", "", "does not work at a town node"),
        ("window_a", "decide", TOWN, "", "", ""),
        ("window_a", "decide", COUNTY, "", "", "only a department approver"),
        ("director", "decide", COUNTY, "", "", "only a department approver"),
        ("approver", "decide", COUNTY, "", "", ""),
        ("approver", "decide", TOWN, "", "", "does not work at a town node"),
        ("window_b", "accept", TOWN, "", "", "only acting for an A post"),
        ("window_b", "note", TOWN, "", "", ""),
        ("window_b", "accept", TOWN, "王芳", "window_a", ""),
        ("window_b", "accept", TOWN, "周明", "supervisor", "is not an A post"),
        ("window_b", "accept", TOWN, "无此人", "", "is not an A post"),
        ("window_a", "accept", TOWN, "李强", "window_b", "only a B post"),
        ("supervisor", "supervise", COUNTY, "", "", ""),
        ("supervisor", "accept", TOWN, "", "", "may not take the step 'accept'"),
        ("inspector", "supervise", TOWN, "", "", ""),
        ("admin", "note", TOWN, "", "", "may not take the step 'note'"),
    ],
)
def test_the_role_table(role: str, kind: str, node_role: str, acting_for: str, holder: str, refused: str) -> None:
    reason = roles.action_refusal(role, kind, node_role, acting_for=acting_for, acting_for_role=holder)
    assert (reason == "") if not refused else (refused in reason), reason


def test_only_supervisors_and_inspectors_see_complaints_and_never_against_themselves() -> None:
    complaint = {"kind": "complain", "against": "王芳", "text": "推诿"}
    assert roles.complaint_visible("supervisor", "周明", complaint)
    assert roles.complaint_visible("inspector", "钱纪", complaint)
    assert not roles.complaint_visible("supervisor", "王芳", complaint)
    for role in ("window_a", "window_b", "director", "approver", "village_agent", "admin", None):
        assert not roles.complaint_visible(role, "周明", complaint), role


@pytest.mark.parametrize("node", ["C", "T01", "T01V01"])
def test_every_route_of_every_tier_is_classified(tmp_path: Path, node: str) -> None:
    """Each tier's own app (county-only routes included), looked up as the guard looks: by path format.

    Every non-public route and method has its own ROUTES entry (none falls back to the default by
    accident), and ``route_requirement`` on Litestar's untyped path format gives that entry.
    """
    checked = 0
    for route in app(prepare(tmp_path, node)).routes:
        for method in sorted(getattr(route, "methods", ())):
            need = roles.route_requirement(method, route.path_format)
            if need == roles.PUBLIC:
                assert method == "OPTIONS" or roles.route_requirement(method, route.path) == roles.PUBLIC
                continue
            key = ("GET" if method == "HEAD" else method, route.path.rstrip("/") or "/")
            assert key in roles.ROUTES, f"{node}: {method} {route.path} has no ROUTES entry"
            assert need == roles.ROUTES[key], (node, method, route.path_format, need, roles.ROUTES[key])
            checked += 1
    assert checked > 20


# -- a township with its posts -----------------------------------------------------------------------


@dataclass
class Town:
    config: Path
    client: Client
    tokens: dict[str, str]

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**bearer(self.tokens[who]), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def act(self, who: str, errand: str, **body: Any) -> Any:
        return self.call(who, "POST", f"/api/errands/{errand}/actions", json={"actor": "typed", **body})


STAFF = {"王芳": "window_a", "李强": "window_b", "陈主任": "director", "周明": "supervisor", "钱纪": "inspector"}


@pytest.fixture
def town(tmp_path: Path) -> Iterator[Town]:
    config = prepare(tmp_path, "T01", required=True)
    for name, role in STAFF.items():
        add(config, name, role)
    tokens = {name: token(config, name) for name in STAFF}
    with TestClient(app(config)) as client:
        yield Town(config, client, tokens)


def registered(town: Town) -> str:
    r = town.call("王芳", "POST", "/api/errands", json={**GOOD, "in_person": True, "mandate": False})
    assert r.status_code == 201, r.text
    return str(r.json()["errand"])


def test_a_b_post_acts_for_an_a_post_and_it_is_recorded(town: Town) -> None:
    errand = registered(town)
    r = town.act("李强", errand, kind="accept", errand_kind="承诺件")
    assert r.status_code == 403 and "acting for an A post" in r.json()["message"]
    assert town.act("李强", errand, kind="accept", acting_for="周明").status_code == 403
    assert town.act("王芳", errand, kind="accept", acting_for="李强").status_code == 403
    r = town.act("李强", errand, kind="accept", errand_kind="承诺件", acting_for="王芳")
    assert r.status_code == 201, r.text
    history = town.call("王芳", "GET", f"/api/errands/{errand}").json()["history"]
    accept = next(h for h in history if h["kind"] == "accept")
    assert (accept["actor"], accept["role"], accept["acting_for"]) == ("李强", "窗口B岗", "王芳")
    taken = [e for e in events(town.config, errand=errand, event="action") if isinstance(e, ev.ActionTaken)]
    assert [(e.kind, e.actor, e.acting_for, e.account, e.via) for e in taken] == [
        ("register", "王芳", "", "王芳", "token"),
        ("accept", "李强", "王芳", "李强", "token"),
    ]
    assert taken[1].action_id == accept["id"] and taken[1].role == "窗口B岗"
    denied = [e for e in events(town.config, event="denied") if isinstance(e, ev.AccessDenied)]
    assert [(e.actor, e.what, e.errand) for e in denied] == [("李强", "accept", errand)] * 2 + [
        ("王芳", "accept", errand)
    ]


def test_a_village_agent_cannot_decide(tmp_path: Path) -> None:
    config = prepare(tmp_path, "T01V01", required=True)
    add(config, "李建国", "village_agent")
    secret = token(config, "李建国")
    with TestClient(app(config)) as client:
        errand = client.post("/api/errands", json=GOOD, headers=bearer(secret)).json()["errand"]
        r = client.post(
            f"/api/errands/{errand}/actions",
            json={"kind": "decide", "actor": "x", "outcome": "approved"},
            headers=bearer(secret),
        )
        assert r.status_code == 403 and "may not take the step 'decide'" in r.json()["message"]
        assert client.get("/api/supervision", headers=bearer(secret)).status_code == 403


def test_complaints_are_for_supervisors_and_inspectors_only(town: Town) -> None:
    errand = registered(town)
    for against in ("王芳", "周明"):
        r = town.act("李强", errand, kind="complain", text=f"{against}推诿", against=against)
        assert r.status_code == 201, r.text

    def complaints(who: str) -> list[str]:
        history = town.call(who, "GET", f"/api/errands/{errand}").json()["history"]
        return [h["text"] for h in history if h["kind"] == "complain"]

    assert complaints("王芳") == [] and complaints("李强") == [] and complaints("陈主任") == []
    assert complaints("周明") == ["王芳推诿"]  # never the one against himself
    assert complaints("钱纪") == ["王芳推诿", "周明推诿"]
    assert town.call("王芳", "GET", "/api/supervision").status_code == 403
    assert town.call("陈主任", "GET", "/api/supervision").json()["complaints"] == []
    assert [c["text"] for c in town.call("钱纪", "GET", "/api/supervision").json()["complaints"]] == [
        "周明推诿",
        "王芳推诿",
    ]
    read = [e for e in events(town.config, event="read_complaints") if isinstance(e, ev.ComplaintsRead)]
    assert [(e.actor, e.count, e.where) for e in read] == [
        ("周明", 1, "/api"),
        ("钱纪", 2, "/api"),
        ("钱纪", 2, "/api/supervision"),
    ]
    town.client.headers.pop("Authorization", None)
    login(town.client, "陈主任")
    assert "仅监察督查和纪检人员可见" in town.client.get("/supervision").text
    login(town.client, "钱纪")
    page = town.client.get("/supervision").text
    assert "王芳推诿" in page and "周明推诿" in page
    assert "王芳推诿" in town.client.get(f"/errands/{errand}").text


# -- the audit log -----------------------------------------------------------------------------------


def test_reads_of_personal_data_are_audited(town: Town) -> None:
    errand = registered(town)
    assert town.call("王芳", "GET", f"/api/errands/{errand}").status_code == 200
    assert town.call("李强", "GET", f"/print/{errand}/receipt").status_code == 200
    put = town.call(
        "王芳", "POST", f"/api/errands/{errand}/attachments?name=scan.png&actor=x", content=b"\x89PNG scan", headers=PNG
    )
    assert put.status_code == 201, put.text
    history = town.call("王芳", "GET", f"/api/errands/{errand}").json()["history"]
    digest = next(h for h in history if h["kind"] == "attach")["blob"]
    assert town.call("陈主任", "GET", f"/api/attachments/{digest}").content == b"\x89PNG scan"
    login(town.client, "周明")
    assert town.client.get(f"/errands/{errand}").status_code == 200
    reads = [e for e in events(town.config, event="read") if isinstance(e, ev.PersonalDataRead)]
    assert [(e.actor, e.role, e.what, e.node) for e in reads] == [
        ("王芳", "窗口A岗", "errand", "T01"),
        ("李强", "窗口B岗", "document:receipt", "T01"),
        ("王芳", "窗口A岗", "errand", "T01"),
        ("陈主任", "中心主任", "attachment", "T01"),
        ("周明", "监察督查", "errand", "T01"),
    ]
    assert reads[3].detail == digest and all(e.at > 0 for e in reads)
    assert [e.via for e in reads] == ["token"] * 4 + ["session"]


def test_an_action_and_its_audit_event_commit_together(town: Town, monkeypatch: pytest.MonkeyPatch) -> None:
    errand = registered(town)
    version = town.call("王芳", "GET", f"/api/errands/{errand}").json()["version"]
    real = sanji.auth.book.insert_event

    async def failing(conn: Any, event: ev.Event) -> None:
        if isinstance(event, ev.ActionTaken):
            raise RuntimeError("the audit table is full")
        await real(conn, event)

    monkeypatch.setattr(sanji.auth.book, "insert_event", failing)
    r = town.act("王芳", errand, kind="note", text="不应留下")
    assert r.status_code == 500
    monkeypatch.setattr(sanji.auth.book, "insert_event", real)
    after = town.call("王芳", "GET", f"/api/errands/{errand}").json()
    assert after["version"] == version and not [h for h in after["history"] if h["kind"] == "note"]
    assert town.act("王芳", errand, kind="note", text="留下").status_code == 201
    notes = [e for e in events(town.config, errand=errand, event="action") if isinstance(e, ev.ActionTaken)]
    assert [e.kind for e in notes] == ["register", "note"]


def test_refused_actions_are_audited_and_the_chain_shows_tampering(town: Town) -> None:
    errand = registered(town)
    r = town.act("王芳", errand, kind="deliver", confirmed_by="张秀英")
    assert r.status_code == 409
    refused = [e for e in events(town.config, event="action_refused") if isinstance(e, ev.ActionRefused)]
    assert [(e.actor, e.kind, e.errand) for e in refused] == [("王芳", "deliver", errand)] and refused[0].reason

    async def check(service: AuthService) -> tuple[list[int], list[int]]:
        intact = await service.book.verify_chain()
        async with service.book.db.writer.begin() as conn:
            await conn.execute(update(t.audit_events).where(t.audit_events.c.id == 2).values(actor="别人"))
            await conn.execute(update(t.audit_events).where(t.audit_events.c.id == 2).values(body='{"event":"logout"}'))
        return intact, await service.book.verify_chain()

    intact, broken = with_service(town.config, check)
    assert intact == [] and broken == [2]


def test_a_route_with_parameters_is_classified_as_the_guard_sees_it() -> None:
    """The guard looks routes up by Litestar's path format, without parameter types; the table writes them."""
    assert roles.route_requirement("POST", "/errands/{errand_id}/reveal") == roles.REVEAL
    assert roles.route_requirement("POST", "/errands/{errand_id:str}/reveal") == roles.REVEAL
    assert roles.route_requirement("GET", "/api/errands/{errand_id}") == roles.PERSONAL
    assert roles.route_requirement("POST", "/office/sms/{row_id}/retry") == roles.SUPERVISION
    assert roles.route_requirement("POST", "/admin/accounts/tokens/{token_id}/revoke") == roles.ACCOUNTS
