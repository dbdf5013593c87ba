"""The SMS gateway adapter and its durable outbox, against a real HTTP gateway on loopback.

A township's real store; staff act through ``ErrandService``; the applicant's phone is sealed to
the errand's path and opened only when a message is handed over. The gateway fails on command.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from sms_gateway import Gateway, start_gateway
from sqlalchemy import update

from protocol.actions import Supervise
from protocol.batch import GENESIS, seal
from protocol.catalogue import sign_catalogue
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext
from sanji.forms import ActionForm, RegisterForm
from sanji.layout import Layout, county_layout
from sanji.notify.gateway import HttpGateway
from sanji.notify.outbox import DEAD, PENDING, SENT, Outbox, backoff
from sanji.notify.settings import SmsSection
from sanji.notify.worker import Notifier
from sanji.service import ErrandService
from sanji.store import Store, open_database
from sanji.store import schema as t
from sanji.workcalendar import load_calendar

PHONE = "13907301234"
LEADER = "13900000001"
DIRECTOR = "13900000009"
WINDOW = "13900000002"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class LaterContext(NodeContext):
    """The same node, asked about a business day ``days_ahead`` from now (the warnings' view of the future)."""

    days_ahead = 0

    def today(self) -> date:
        return super().today() + timedelta(days=self.days_ahead)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw, server = start_gateway()
    try:
        yield gw
    finally:
        _stop(server)


def _stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


@pytest.fixture
async def township(tmp_path: Path) -> AsyncIterator[tuple[Store, LaterContext, Layout]]:
    layout = county_layout(1, 1)
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 't01.db'}")
    try:
        store = Store(db, node_id="T01", key=layout.keys["T01"], directory=layout.directory)
        await store.start()
        context = LaterContext(store, load_calendar())
        await context.offer(sign_catalogue(default_catalogue(), layout.keys["C"]))
        yield store, context, layout
    finally:
        await db.dispose()


def settings_for(gw: Gateway, **extra: object) -> SmsSection:
    fields: dict[str, object] = {
        "gateway": "http",
        "url": gw.url,
        "account": "county",
        "base_delay": 10.0,
        "max_delay": 60.0,
        "max_attempts": 3,
        "director": DIRECTOR,
        "leaders": {"社会救助窗口": LEADER},
    }
    fields.update(extra)
    return SmsSection(**fields)  # type: ignore[arg-type]


async def walk_in(service: ErrandService, *, decide: bool) -> str:
    proj = await service.register(
        RegisterForm(
            matter="MZ-003",
            applicant_name="张秀英",
            applicant_phone=PHONE,
            in_person=True,
            materials=["申请书", "身份证复印件", "户口簿复印件"],
            actor="王芳",
            role="窗口A岗",
        )
    )
    errand = proj.errand
    steps = [ActionForm(kind="accept", actor="王芳", errand_kind="承诺件")]
    if decide:
        steps += [
            ActionForm(kind="request_supplement", actor="王芳", items=["困难情况证明材料"]),
            ActionForm(kind="materials_received", actor="王芳", items=["困难情况证明材料"]),
            ActionForm(kind="extend", actor="李主任", role="中心主任", days=2, reasons="需入户核查"),
            ActionForm(kind="decide", actor="王芳", outcome="approved", document="临救〔2026〕8号"),
        ]
    for form in steps:
        await service.act(errand, form)
    return errand


async def test_events_retries_backoff_and_exactly_once(
    township: tuple[Store, LaterContext, Layout], gateway: Gateway
) -> None:
    store, context, _ = township
    await walk_in(ErrandService(store, context), decide=True)
    clock = Clock()
    settings = settings_for(gateway)
    notifier = Notifier(store, context, Outbox(store, settings, clock=clock), HttpGateway(settings), interval=60)
    gateway.fail_next(2, 503)
    first = await notifier.run_once()
    assert first == {"queued": 4, "sent": 2, "retry": 2, "dead": 0}
    rows = {r["event"]: r for r in await notifier.outbox.rows()}
    assert set(rows) == {"accepted", "supplement", "extended", "result"}
    assert all(r["shown_to"] == "139****1234" for r in rows.values())  # the number is not kept at rest
    waiting = [r for r in rows.values() if r["status"] == PENDING]
    assert len(waiting) == 2 and {r["next_at"] for r in waiting} == {clock.now + 10.0}
    assert "503" in waiting[0]["last_error"]
    assert await notifier.run_once() == {"queued": 0, "sent": 0, "retry": 0, "dead": 0}  # not due yet
    clock.now += 10
    assert (await notifier.run_once())["sent"] == 2
    texts = {r["text"] for r in gateway.delivered.values()}
    assert len(gateway.delivered) == 4 and all(r["body"]["phone"] == PHONE for r in gateway.requests)
    assert any(t.startswith("【三级联办】您申请的临时救助申请") and "已受理，承诺" in t for t in texts)
    assert any("需补正材料：困难情况证明材料" in t for t in texts)
    assert any("延长至" in t and "需入户核查" in t for t in texts)
    assert any("已办结：准予" in t and "河口乡便民服务中心窗口" not in t and "窗口领取结果" in t for t in texts)
    assert all(r["headers"]["idempotency-key"] == r["body"]["key"] for r in gateway.requests)

    # a restart: a new outbox over the same database queues nothing again
    again = Notifier(store, context, Outbox(store, settings, clock=clock), HttpGateway(settings), interval=60)
    assert await again.run_once() == {"queued": 0, "sent": 0, "retry": 0, "dead": 0}
    # a crash between sending and recording: the row is still pending, it is resent under the same key
    async with store.db.writer.begin() as conn:
        await conn.execute(
            update(t.sms_outbox).where(t.sms_outbox.c.event == "result").values(status=PENDING, sent_at=None)
        )
    assert (await again.run_once())["sent"] == 1
    assert len(gateway.delivered) == 4 and gateway.duplicates == 1  # the gateway delivered it once
    await notifier.gateway.close()
    await again.gateway.close()


async def test_dead_letters_cap_permanent_refusal_and_retry(
    township: tuple[Store, LaterContext, Layout], gateway: Gateway
) -> None:
    store, context, _ = township
    await walk_in(ErrandService(store, context), decide=False)  # one message: accepted
    clock = Clock()
    settings = settings_for(gateway)
    outbox = Outbox(store, settings, clock=clock)
    notifier = Notifier(store, context, outbox, HttpGateway(settings), interval=60)
    gateway.fail_next(3, 500)
    for attempt in range(1, 4):
        tally = await notifier.run_once()
        clock.now += backoff(settings, attempt)
    assert tally["dead"] == 1
    (dead,) = await outbox.rows(DEAD)
    assert dead["attempts"] == 3 and "500" in dead["last_error"]
    assert [backoff(settings, n) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]  # doubles, capped
    assert await outbox.retry(dead["id"]) and not await outbox.retry(dead["id"])
    gateway.fail_next(1, 400)  # a permanent refusal: dead at once, no waiting out the attempts
    assert (await notifier.run_once())["dead"] == 1
    assert await outbox.retry(dead["id"])
    assert (await notifier.run_once())["sent"] == 1
    assert [r["status"] for r in await outbox.rows()] == [SENT]
    await notifier.gateway.close()


async def test_yellow_and_red_warnings_go_to_the_leader_and_the_director(
    township: tuple[Store, LaterContext, Layout], gateway: Gateway
) -> None:
    store, context, _ = township
    errand = await walk_in(ErrandService(store, context), decide=False)
    clock = Clock()
    settings = settings_for(gateway)
    outbox = Outbox(store, settings, clock=clock)
    notifier = Notifier(store, context, outbox, HttpGateway(settings), interval=60)
    await notifier.run_once()  # acceptance only: the deadline is ten working days away
    assert {r["event"] for r in await outbox.rows()} == {"accepted"}
    (row,) = [r for (r,) in [(r,) for r in (await store.errands(limit=5))[0]] if r["id"] == errand]
    due = date.fromisoformat(row["due"])
    context.days_ahead = (due - context.today()).days  # the due day: yellow
    await notifier.run_once()
    context.days_ahead += 4  # past it: red (still inside the calendar library's years)
    await notifier.run_once()
    await notifier.run_once()  # nothing more: each warning once per errand, level and deadline
    warnings = sorted(
        (r["event"], r["recipient"], r["contact"]) for r in await outbox.rows() if r["event"] != "accepted"
    )
    assert warnings == [
        ("warning_red", "director", ""),
        ("warning_red", "leader", "社会救助窗口"),
        ("warning_yellow", "director", ""),
        ("warning_yellow", "leader", "社会救助窗口"),
    ]
    phones = sorted(r["phone"] for r in gateway.delivered.values() if "电子监察" in r["text"])
    assert phones == sorted([DIRECTOR, DIRECTOR, LEADER, LEADER])
    red = next(r["text"] for r in gateway.delivered.values() if "已超期" in r["text"])
    assert red.startswith("【电子监察】社会救助窗口：办件") and row["due"] in red
    await notifier.gateway.close()


def test_bad_templates_and_gateway_settings_are_refused() -> None:
    assert SmsSection().problems() == []
    problems = SmsSection(gateway="http", url="ftp://x", templates={"result": "{nope}", "party": "x"}).problems()
    assert len(problems) == 3
    assert any("unknown placeholder nope" in p for p in problems)


async def test_an_urging_goes_to_the_urged_window_s_phone_once_and_not_after_the_answer(
    township: tuple[Store, LaterContext, Layout], gateway: Gateway
) -> None:
    """The county's 督办 arrives as a signed batch; the township owes its window one SMS for it."""
    store, context, layout = township
    service = ErrandService(store, context)
    errand = await walk_in(service, decide=False)
    answered_errand = await walk_in(service, decide=False)
    now = store.clock.now()

    def urging(id: str, on: str) -> Supervise:
        return Supervise(
            id=id,
            errand=on,
            scope="T01",
            node="C",
            actor="督查员 孙丽",
            role="监察督查",
            at=now,
            text="请加快办理",
            answer_by=(context.today() + timedelta(days=5)).isoformat(),
            to="T01",
            window="社会救助窗口",
        )

    frame = seal(
        key=layout.keys["C"],
        origin="C",
        scope="T01",
        audience=layout.directory.audience("C", "T01"),
        seq=1,
        prev=GENESIS,
        created=now,
        actions=[urging("u1", errand), urging("u2", answered_errand)],
    )
    await store.receive([frame], peer="C")
    await service.act(answered_errand, ActionForm(kind="answer_urging", actor="王芳", text="已办理"))
    settings = settings_for(gateway, windows={"社会救助窗口": WINDOW})
    outbox = Outbox(store, settings, clock=Clock())
    notifier = Notifier(store, context, outbox, HttpGateway(settings), interval=60)
    await notifier.run_once()
    await notifier.run_once()  # nothing more: once per urging
    urged = [r for r in await outbox.rows() if r["event"] == "urging"]
    assert [(r["key"], r["recipient"], r["contact"], r["status"]) for r in urged] == [
        ("urging:u1:window", "window", "社会救助窗口", SENT)
    ]
    (sent,) = [r for r in gateway.delivered.values() if "督办" in r["text"]]
    assert sent["phone"] == WINDOW and "请加快办理" in sent["text"] and urging("u1", errand).answer_by in sent["text"]
    await notifier.gateway.close()
