"""A node's own duties: 超时默许 on overdue matters that allow it, and the applicant's SMS, once."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from sanji.catalogue import default_catalogue
from sanji.context import NodeContext
from sanji.duties import FileSmsSender, deemed_approvals, queue_result_messages, send_queued
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.workcalendar import load_calendar
from tests.conftest import NetworkFactory


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
            RegisterForm(matter=matter, applicant_name="周桂英", applicant_phone="13907301234", actor="代办员")
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


async def test_result_sms_is_queued_once_and_sent(network: NetworkFactory, tmp_path: Path) -> None:
    net = await network(1, 1)
    ctx = await contexts(net)
    matter = next(m for m in default_catalogue().matters if not m.department and not m.immediate)
    errand = await walk_to_town_desk(net, ctx, matter.code)
    town = ErrandService(net.stores["T01"], ctx["T01"])
    await town.act(errand, ActionForm(kind="decide", actor="窗口", outcome="approved"))
    await town.act(errand, ActionForm(kind="send_result", actor="窗口"))
    await net.sync_all(2)
    village = net.stores["T01V01"]
    assert await queue_result_messages(village, ctx["T01V01"]) == 0  # still on its way: not received yet
    await ErrandService(village, ctx["T01V01"]).act(errand, ActionForm(kind="receive", actor="代办员"))
    assert await queue_result_messages(village, ctx["T01V01"]) == 1
    assert await queue_result_messages(village, ctx["T01V01"]) == 0  # once only
    log = tmp_path / "sms.log"
    assert await send_queued(village, FileSmsSender(log)) == 1
    assert await send_queued(village, FileSmsSender(log)) == 0
    line = log.read_text(encoding="utf-8")
    assert "13907301234" in line and matter.name in line and "准予" in line
