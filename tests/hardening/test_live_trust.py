"""Trust that holds while nodes run: a revocation written by another process counts at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from sanji.forms import ActionForm, RegisterForm
from sanji.store import Store, open_database
from sanji.store import schema as t
from sanji.store.trustbook import TrustBook
from tests.trust.trust_net import TrustNet, certified_net


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[TrustNet]:
    built = await certified_net(tmp_path, villages=2)
    try:
        yield built
    finally:
        await built.close()


async def register(net: TrustNet, village: str) -> str:
    proj = await net.service(village).register(RegisterForm(matter="低保", applicant_name="张三", actor="李"))
    await net.service(village).act(proj.errand, ActionForm(kind="submit", actor="李"))
    return proj.errand


async def revoke_from_another_process(net: TrustNet, node: str, village: str) -> None:
    """What `sanji trust revoke --config <node>` does: its own connection and book on the running node's database."""
    db = await open_database(f"sqlite:///{net.base / node}.db")
    try:
        running = net.stores[node]
        store = Store(db, node_id=node, key=running.key, directory=running.directory)
        await store.start()
        book = TrustBook(store, required=True)
        await book.load()
        await book.revoke(village, reason="笔记本被盗 laptop stolen")
    finally:
        await db.dispose()


async def test_a_cli_revocation_is_enforced_by_the_running_township_and_county(net: TrustNet) -> None:
    await register(net, "T01V01")
    await net.sync_all()
    stolen = net.stores["T01V01"].key.key_id
    await revoke_from_another_process(net, "T01", "T01V01")
    # The running township has not been told anything; its next request from the village is refused.
    after = await register(net, "T01V01")
    with pytest.raises(Exception, match="revoked or replaced"):
        await net.sync("T01V01")
    assert await net.stores["T01"].errand(after) is None
    assert net.stores["T01"].directory.is_retired(stolen)
    # Cycle 2: the township's next exchange takes the revocation to the county, which refuses the key.
    await net.sync("T01")
    assert net.stores["C"].directory.is_retired(stolen)
    await net.stores["T01V01"].seal_outbox(force=True)
    frames = await net.stores["T01V01"].frames_for_node("C")
    outcome = await net.stores["C"].receive(frames, peer="file:T01V01")
    assert {r.error for r in outcome.results if r.status == "refused"} == {"revoked_key"}
    assert await net.stores["C"].errand(after) is None
    # The sister village is untouched.
    other = await register(net, "T01V02")
    await net.sync("T01V02")
    await net.sync("T01")
    assert await net.stores["C"].errand(other) is not None


async def test_a_refresh_costs_one_query_when_nothing_changed(net: TrustNet) -> None:
    book = net.books["T01"]
    assert await book.refresh() is False
    await revoke_from_another_process(net, "T01", "T01V02")
    assert await book.refresh() is True
    assert await book.refresh() is False
    async with net.stores["T01"].db.reader.connect() as conn:
        kinds = [str(k) for k in (await conn.execute(select(t.trust_docs.c.kind))).scalars()]
    assert "revocation" in kinds
