"""容缺 promise dates are followed by the node's duties: a reminder on the day, termination after it."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from sanji.duties import follow_promises
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.store import schema as t
from tests.conftest import NetworkFactory
from tests.rules.test_forged_deemed import TOWN, VILLAGE, contexts


async def test_a_lapsed_promise_is_reminded_then_terminated(network: NetworkFactory) -> None:
    net = await network(1, 1)
    ctx = await contexts(net)
    village = ErrandService(net.stores[VILLAGE], ctx[VILLAGE])
    town = ErrandService(net.stores[TOWN], ctx[TOWN])
    main = ["申请书", "身份证复印件", "户口簿复印件"]
    form = RegisterForm(
        matter="MZ-003", applicant_name="周桂英", applicant_phone="13907301234", materials=main, actor="代办员"
    )
    errand = (await village.register(form)).errand
    await village.act(errand, ActionForm(kind="submit", actor="代办员"))
    await net.sync_all(2)
    await town.act(errand, ActionForm(kind="receive", actor="窗口"))
    promised = date.today() + timedelta(days=10)
    owed = ["困难情况证明材料"]
    await town.act(errand, ActionForm(kind="accept", actor="窗口", provisional=owed, promise_by=promised.isoformat()))

    assert await follow_promises(net.stores[TOWN], ctx[TOWN], today=promised - timedelta(days=1)) == (0, [])
    assert await follow_promises(net.stores[TOWN], ctx[TOWN], today=promised) == (1, [])
    assert await follow_promises(net.stores[TOWN], ctx[TOWN], today=promised) == (0, [])  # once
    async with net.stores[TOWN].db.reader.connect() as conn:
        texts = (await conn.execute(select(t.notifications.c.text, t.notifications.c.phone))).all()
    assert len(texts) == 1 and "困难情况证明材料" in texts[0].text and texts[0].phone == "139****1234"

    assert await follow_promises(net.stores[TOWN], ctx[TOWN], today=promised + timedelta(days=1)) == (0, [errand])
    row = await net.stores[TOWN].errand(errand)
    assert row is not None and row["stage"] == "decided" and row["outcome"] == "terminated"
    end = next(h for h in row["history"] if h["kind"] == "terminate")
    assert "容缺" in end["reason"] and promised.isoformat() in end["reason"]
    await net.sync_all(2)
    assert not await net.divergence()
