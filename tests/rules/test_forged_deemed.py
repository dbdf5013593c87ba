"""超时默许 is a checkable fact: a forged deemed decision is refused wherever it arrives, and kept.

A township signs, in its own stream, a deemed approval on the day of acceptance for a matter
whose catalogue entry has no deemed rule. The county applies the batch (the signature and the
chain are good) but ``judge`` refuses the action: it is kept with its reason for the audit, the
errand stays with the township, and supervision lists no deemed approval. A real one, written by
the county's duties after the deadline, is listed with the window that answers for it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from protocol.actions import Decide
from protocol.batch import open_frame, seal
from protocol.binding import DEEMED_ROLE, SYSTEM_ACTOR
from protocol.hlc import HybridClock, pack
from protocol.refusals import english, refuse
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext
from sanji.duties import deemed_approvals
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.store import schema as t
from sanji.web.desk_api import supervision_report
from sanji.workcalendar import load_calendar
from tests.conftest import Network, NetworkFactory

VILLAGE, TOWN, COUNTY = "T01V01", "T01", "C"


async def contexts(net: Network) -> dict[str, NodeContext]:
    out = {n: NodeContext(s, load_calendar()) for n, s in net.stores.items()}
    await out[COUNTY].publish(default_catalogue())
    blob = await out[COUNTY].catalogue_blob()
    assert blob is not None
    for node, ctx in out.items():
        if node != COUNTY:
            await ctx.offer(blob)
    return out


async def accepted_at_town(net: Network, ctx: dict[str, NodeContext], matter: str) -> str:
    village = ErrandService(net.stores[VILLAGE], ctx[VILLAGE])
    town = ErrandService(net.stores[TOWN], ctx[TOWN])
    materials = [m.name for m in default_catalogue().get(matter).materials]  # type: ignore[union-attr]
    errand = (
        await village.register(
            RegisterForm(matter=matter, applicant_name="周桂英", materials=materials, actor="代办员")
        )
    ).errand
    await village.act(errand, ActionForm(kind="submit", actor="代办员"))
    await net.sync_all(2)
    await town.act(errand, ActionForm(kind="receive", actor="窗口"))
    await town.act(errand, ActionForm(kind="accept", actor="窗口", window="综合窗口"))
    await net.sync_all(2)
    return errand


async def town_stream_tip(net: Network) -> tuple[int, bytes]:
    """The township's last batch in its stream about the village's errands, as the county holds it."""
    tip = (0, b"")
    for frame in await net.stores[TOWN].frames_for_node(COUNTY):
        batch = open_frame(frame, net.directory)
        if batch.origin == TOWN and batch.scope == VILLAGE and batch.payload.seq > tip[0]:
            tip = (batch.payload.seq, batch.hash)
    assert tip[0] > 0
    return tip


async def test_a_forged_deemed_decision_is_refused_at_the_county_and_kept(network: NetworkFactory) -> None:
    net = await network(1, 1)
    ctx = await contexts(net)
    matter = next(m for m in default_catalogue().matters if not m.deemed_approval and not m.department)
    errand = await accepted_at_town(net, ctx, matter.code)
    before = await net.stores[COUNTY].errand(errand)
    assert before is not None and before["stage"] == "accepted"

    # The township's window cannot even ask for it at the desk.
    refused = ErrandService(net.stores[TOWN], ctx[TOWN])
    form = ActionForm(kind="decide", actor=SYSTEM_ACTOR, outcome="approved", deemed=True)
    try:
        await refused.act(errand, form)
    except Exception as exc:
        assert getattr(exc, "refusal", None) == refuse("system_only")
    else:
        raise AssertionError("a desk wrote a deemed approval")

    # So it forges one: signed by its own key, in its own stream, the day of acceptance.
    seq, prev = await town_stream_tip(net)
    forged = Decide(
        id="forged-deemed",
        errand=errand,
        scope=VILLAGE,
        node=TOWN,
        actor=SYSTEM_ACTOR,
        role=DEEMED_ROLE,
        at=HybridClock().now(),
        base=before["version"],
        outcome="approved",
        deemed=True,
        document="超时默许",
    )
    frame = seal(
        key=net.layout.keys[TOWN],
        origin=TOWN,
        scope=VILLAGE,
        audience=net.directory.audience(TOWN, VILLAGE),
        seq=seq + 1,
        prev=prev,
        created=forged.at,
        actions=[forged],
    )
    outcome = await net.stores[COUNTY].receive([frame], peer=TOWN)
    assert outcome.applied_batches == 1  # a well-signed, well-chained batch ...

    async with net.stores[COUNTY].db.reader.connect() as conn:
        row = (
            await conn.execute(
                select(t.actions.c.status, t.actions.c.reason, t.actions.c.body).where(t.actions.c.id == forged.id)
            )
        ).one()
    # ... whose action is refused by the rule and kept, verbatim, for the audit.
    assert row.status == "rejected"
    assert row.reason == english(refuse("deemed_not_allowed", matter=matter.code))
    after = await net.stores[COUNTY].errand(errand)
    assert after is not None and after["stage"] == "accepted" and after["outcome"] == ""
    report = await supervision_report(net.stores[COUNTY], ctx[COUNTY])
    assert report.deemed == []


async def test_a_real_deemed_approval_is_listed_with_the_window_that_answers(network: NetworkFactory) -> None:
    net = await network(1, 1)
    ctx = await contexts(net)
    matter = next(m for m in default_catalogue().matters if m.deemed_approval and m.department)
    errand = await accepted_at_town(net, ctx, matter.code)
    town = ErrandService(net.stores[TOWN], ctx[TOWN])
    await town.act(errand, ActionForm(kind="escalate", actor="窗口", department=matter.department))
    await net.sync_all(2)
    county = ErrandService(net.stores[COUNTY], ctx[COUNTY])
    await county.act(errand, ActionForm(kind="receive", actor="县局"))
    row = await net.stores[COUNTY].errand(errand)
    assert row is not None and row["due"]
    due = date.fromisoformat(row["due"])
    # On the due date itself nothing is deemed; the rule checks the decision's own signed time.
    noon = datetime(due.year, due.month, due.day, 4, tzinfo=UTC)
    net.stores[COUNTY].clock = HybridClock(0, now_ms=lambda: int(noon.timestamp() * 1000))
    assert await deemed_approvals(net.stores[COUNTY], ctx[COUNTY], today=due + timedelta(days=1)) == []
    later = noon + timedelta(days=1)
    net.stores[COUNTY].clock = HybridClock(
        pack(int(noon.timestamp() * 1000), 0), now_ms=lambda: int(later.timestamp() * 1000)
    )
    assert await deemed_approvals(net.stores[COUNTY], ctx[COUNTY], today=due + timedelta(days=1)) == [errand]
    report = await supervision_report(net.stores[COUNTY], ctx[COUNTY])
    assert [(d.errand, d.responsible, d.window, d.due) for d in report.deemed] == [
        (errand, TOWN, "综合窗口", row["due"])
    ]
    await net.sync_all(2)
    assert not await net.divergence()
