"""A node's own duties: 超时默许 on overdue matters that allow it, and the applicant's SMS, once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import select

from protocol.hlc import HybridClock
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext
from sanji.duties import Duties, FileSmsSender, deemed_approvals, mask_phone, queue_result_messages, send_queued
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.store import Store
from sanji.store import schema as t
from sanji.workcalendar import load_calendar
from tests.conftest import Network, NetworkFactory
from tests.materials_kit import mains


def clock_on(day: date) -> HybridClock:
    """A hybrid clock reading noon (China Standard Time) of ``day``."""
    noon = datetime(day.year, day.month, day.day, 4, tzinfo=UTC)
    return HybridClock(0, now_ms=lambda: int(noon.timestamp() * 1000))


async def contexts(net: object) -> dict[str, NodeContext]:
    stores = net.stores  # type: ignore[attr-defined]
    calendar = load_calendar()
    out = {n: NodeContext(s, calendar) for n, s in stores.items()}
    await out["C"].publish(default_catalogue())
    blob = await out["C"].catalogue_blob()
    assert blob is not None
    for node, ctx in out.items():
        if node != "C":
            assert await ctx.offer(blob)
    return out


async def walk_to_town_desk(net: object, ctx: dict[str, NodeContext], matter: str) -> str:
    sync_all = net.sync_all  # type: ignore[attr-defined]
    stores = net.stores  # type: ignore[attr-defined]
    village = ErrandService(stores["T01V01"], ctx["T01V01"])
    town = ErrandService(stores["T01"], ctx["T01"])
    errand = (
        await village.register(
            RegisterForm(
                matter=matter,
                applicant_name="周桂英",
                applicant_phone="13907301234",
                materials=mains(matter),
                actor="代办员",
            )
        )
    ).errand
    await village.act(errand, ActionForm(kind="submit", actor="代办员"))
    await sync_all(2)
    await town.act(errand, ActionForm(kind="receive", actor="窗口"))
    await town.act(errand, ActionForm(kind="accept", actor="窗口", errand_kind="承诺件"))
    return errand


async def test_overdue_matter_with_deemed_approval_is_approved_by_the_system(network: NetworkFactory) -> None:
    net = await network(1, 1)
    ctx = await contexts(net)
    matter = next(m for m in default_catalogue().matters if m.deemed_approval and m.department)
    errand = await walk_to_town_desk(net, ctx, matter.code)
    town = ErrandService(net.stores["T01"], ctx["T01"])
    await town.act(errand, ActionForm(kind="escalate", actor="窗口", department=matter.department))
    await net.sync_all(2)
    await ErrandService(net.stores["C"], ctx["C"]).act(errand, ActionForm(kind="receive", actor="县局"))
    row = await net.stores["C"].errand(errand)
    assert row is not None and row["due"], "accepting computes the deadline from the catalogue"
    due = date.fromisoformat(row["due"])
    assert await deemed_approvals(net.stores["C"], ctx["C"], today=due) == []  # not late yet
    assert await deemed_approvals(net.stores["T01"], ctx["T01"], today=due + timedelta(days=9)) == []  # not held
    # A newer catalogue without 超时默许 for the matter does not take back what the errand's own entry promised
    # (judge asks the bound entry; so does the duty).
    newer = default_catalogue()
    changed = tuple(
        msgspec.structs.replace(m, deemed_approval=False) if m.code == matter.code else m for m in newer.matters
    )
    assert await ctx["C"].publish(msgspec.structs.replace(newer, version=newer.version + 1, matters=changed))
    assert ctx["C"].matter(matter.code) is not None and not ctx["C"].matter(matter.code).deemed_approval  # type: ignore[union-attr]
    # The deemed decision carries its own signed time, and judge checks that the deadline had passed
    # by then: the county's clock is set to the day after the deadline, as it would read then.
    net.stores["C"].clock = clock_on(due + timedelta(days=1))
    assert await deemed_approvals(net.stores["C"], ctx["C"], today=due + timedelta(days=1)) == [errand]
    row = await net.stores["C"].errand(errand)
    assert row is not None and row["stage"] == "decided" and row["outcome"] == "approved"
    decision = next(h for h in row["history"] if h["kind"] == "decide")
    assert decision["deemed"] is True and "超时默许" in decision["document"]
    await net.sync_all(2)
    assert not await net.divergence()


async def test_overdue_matter_without_deemed_approval_waits_for_a_person(network: NetworkFactory) -> None:
    net = await network(1, 1)
    ctx = await contexts(net)
    matter = next(m for m in default_catalogue().matters if not m.deemed_approval and not m.department)
    errand = await walk_to_town_desk(net, ctx, matter.code)
    far = date.today() + timedelta(days=60)
    assert await deemed_approvals(net.stores["T01"], ctx["T01"], today=far) == []
    row = await net.stores["T01"].errand(errand)
    assert row is not None and row["stage"] == "accepted"


async def result_waiting_at_the_village(net: Network, ctx: dict[str, NodeContext]) -> tuple[str, str]:
    """An errand whose approval has come back to the village; (errand id, matter name)."""
    matter = next(m for m in default_catalogue().matters if not m.department and not m.immediate)
    errand = await walk_to_town_desk(net, ctx, matter.code)
    town = ErrandService(net.stores["T01"], ctx["T01"])
    await town.act(errand, ActionForm(kind="decide", actor="窗口", outcome="approved"))
    await town.act(errand, ActionForm(kind="send_result", actor="窗口"))
    await net.sync_all(2)
    village = net.stores["T01V01"]
    assert await queue_result_messages(village, ctx["T01V01"]) == 0  # still on its way: not received yet
    await ErrandService(village, ctx["T01V01"]).act(errand, ActionForm(kind="receive", actor="代办员"))
    return errand, matter.name


async def notification_rows(store: Store) -> list[dict[str, Any]]:
    async with store.db.reader.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(t.notifications))).mappings().all()]


def database_bytes(root: Path, node: str) -> bytes:
    """Every byte of ``node``'s SQLite database under ``root``: the file and its WAL."""
    return b"".join(path.read_bytes() for path in sorted(root.rglob(f"{node}.db*")))


class RecordingSender:
    """An SMS gateway that keeps what it was handed, and can be made to fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.down = False

    async def send(self, phone: str, text: str) -> None:
        if self.down:
            raise ConnectionError("gateway unreachable")
        self.sent.append((phone, text))


async def test_result_sms_is_queued_once_and_sent(network: NetworkFactory, tmp_path: Path) -> None:
    net = await network(1, 1)
    ctx = await contexts(net)
    _, matter_name = await result_waiting_at_the_village(net, ctx)
    village = net.stores["T01V01"]
    assert await queue_result_messages(village, ctx["T01V01"]) == 1
    assert await queue_result_messages(village, ctx["T01V01"]) == 0  # once only
    log = tmp_path / "sms.log"
    assert await send_queued(village, FileSmsSender(log)) == 1
    assert await send_queued(village, FileSmsSender(log)) == 0
    line = log.read_text(encoding="utf-8")
    # The log sits on the laptop's disk: the number is masked; the message itself needs no number.
    assert "139****1234" in line and matter_name in line and "准予" in line
    assert "13907301234" not in line


def test_phones_are_masked_to_the_first_three_and_last_four_digits() -> None:
    assert mask_phone("13907301234") == "139****1234"
    assert mask_phone("139****1234") == "139****1234"  # masking twice changes nothing
    assert mask_phone("0731-8888888") == "073*****8888"
    assert mask_phone("123456") == "****56"
    assert mask_phone("") == ""


async def test_the_sms_queue_never_holds_the_phone_in_clear(network: NetworkFactory, tmp_path: Path) -> None:
    net = await network(1, 1)
    ctx = await contexts(net)
    errand, _ = await result_waiting_at_the_village(net, ctx)
    village = net.stores["T01V01"]
    assert await queue_result_messages(village, ctx["T01V01"]) == 1
    [queued] = await notification_rows(village)
    assert queued["errand"] == errand and queued["phone"] == "139****1234" and queued["sent_at"] is None

    gateway = RecordingSender()
    gateway.down = True
    assert await send_queued(village, gateway) == 0
    [failed] = await notification_rows(village)
    assert failed["sent_at"] is None and "ConnectionError" in failed["error"] and failed["phone"] == "139****1234"

    gateway.down = False
    assert await send_queued(village, gateway) == 1
    assert [phone for phone, _ in gateway.sent] == ["13907301234"]  # the gateway gets the real number
    [sent] = await notification_rows(village)
    assert sent["sent_at"] is not None and sent["error"] == "" and sent["phone"] == "139****1234"

    # Nowhere in the village's database file: the registration is sealed, the queue masked.
    held = database_bytes(tmp_path, "T01V01")
    assert "周桂英".encode() in held  # the right files: the applicant's name stays in clear
    assert b"13907301234" not in held


async def test_rows_queued_by_older_software_are_sent_and_then_masked(network: NetworkFactory) -> None:
    net = await network(1, 1)
    ctx = await contexts(net)
    errand, _ = await result_waiting_at_the_village(net, ctx)
    village = net.stores["T01V01"]
    # Before phones were masked, the queue kept the number itself, sent or not.
    assert await village.queue_notification(errand, "result", "13907301234", "旧消息")
    assert await village.queue_notification("OLD-ERRAND", "result", "13800001111", "早已发出")
    old = next(r for r in await notification_rows(village) if r["errand"] == "OLD-ERRAND")
    await village.mark_notification(old["id"])

    gateway = RecordingSender()
    duties = Duties(village, ctx["T01V01"], gateway)
    await duties.run_once()
    assert gateway.sent == [("13907301234", "旧消息")]  # queued once already: not queued again
    rows = {r["errand"]: r for r in await notification_rows(village)}
    assert rows[errand]["phone"] == "139****1234" and rows[errand]["sent_at"] is not None
    assert rows["OLD-ERRAND"]["phone"] == "138****1111"  # sent long ago: masked on the first round


async def test_a_message_whose_phone_cannot_be_read_waits_with_a_reason(network: NetworkFactory) -> None:
    net = await network(1, 1)
    village = net.stores["T01V01"]
    assert await village.queue_notification("NO-SUCH-ERRAND", "result", "139****1234", "无号码")
    gateway = RecordingSender()
    assert await send_queued(village, gateway) == 0
    assert gateway.sent == []
    [row] = await notification_rows(village)
    assert row["sent_at"] is None and "cannot be read" in row["error"]
