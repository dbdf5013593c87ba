"""A second running copy of a node: detected from its leases, frozen, reported up to the county."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.topology import VILLAGE
from sanji.context import NodeContext
from sanji.forms import ActionForm, RegisterForm
from sanji.store import Store, open_database
from sanji.store import schema as t
from sanji.store.clones import CloneFrozen
from sanji.store.together import together
from sanji.store.trustbook import TrustBook
from sanji.sync.driver import sync_once
from sanji.sync.transport import LocalTransport
from sanji.sync.trust_step import ChildTrust
from sanji.workcalendar import load_calendar
from tests.trust.trust_net import TrustNet, certified_net


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[TrustNet]:
    built = await certified_net(tmp_path, villages=1)
    try:
        yield built
    finally:
        await built.close()


async def register(store: Store) -> str:
    from sanji.service import ErrandService

    service = ErrandService(store)
    proj = await service.register(RegisterForm(matter="低保", applicant_name="张三", actor="李"))
    await service.act(proj.errand, ActionForm(kind="submit", actor="李"))
    return proj.errand


async def clone_of(net: TrustNet, node: str) -> tuple[Store, LocalTransport, ChildTrust]:
    """A full copy of ``node``'s database (and key) started beside the original."""
    src, dst = net.base / f"{node}.db", net.base / f"{node}-copy.db"
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    db = await open_database(f"sqlite:///{dst}")
    net.dbs.append(db)
    original = net.stores[node]
    store = Store(db, node_id=node, key=original.key, directory=original.directory)
    await store.start()
    book = TrustBook(store, required=True)
    await book.load()
    assert store.instance_id == original.instance_id  # a disk copy: the same database instance
    return store, LocalTransport(net.servers[net.parents[node] or ""]), ChildTrust(book)


async def kinds(store: Store) -> list[str]:
    async with store.db.reader.connect() as conn:
        return [str(k) for k in (await conn.execute(select(t.events.c.kind))).scalars()]


async def test_two_running_copies_are_frozen_and_the_county_is_told(net: TrustNet) -> None:
    await register(net.stores["T01V01"])
    await net.sync_all()
    copy, copy_link, copy_trust = await clone_of(net, "T01V01")
    outcomes: list[str] = []
    for _ in range(3):  # the two copies take turns, as two laptops on their timers would
        for store, link, trust in (
            (net.stores["T01V01"], net.transports["T01V01"], net.child_trust["T01V01"]),
            (copy, copy_link, copy_trust),
        ):
            await register(store)
            try:
                await sync_once(store, link, trust=trust)
                outcomes.append("ok")
            except CloneFrozen:
                outcomes.append("frozen")
    assert outcomes.count("frozen") >= 4 and outcomes[-2:] == ["frozen", "frozen"]  # neither copy is heard
    town = net.stores["T01"]
    logged = await kinds(town)
    assert logged.count("clone_detected") == 1 and logged.count("stale_lease") <= 3
    # Shown at the township, and reported up with its next exchange: the county's /api/node lists it.
    assert [a["node"] for a in (await town.status())["alarms"]] == ["T01V01"]
    context = NodeContext(town, load_calendar())  # as a running node's: exchanges carry reports
    await context.load()
    await sync_once(town, net.transports["T01"], context=context, trust=net.child_trust["T01"])
    alarms = (await net.stores["C"].status())["alarms"]
    assert [a["node"] for a in alarms] == ["T01V01"] and "clone_detected" in alarms[0]["message"]
    # Nothing either copy wrote after the freeze is at the township.
    frozen_at = len(await town.digests())
    await register(net.stores["T01V01"])
    with pytest.raises(CloneFrozen):
        await net.sync("T01V01")
    assert len(await town.digests()) == frozen_at


async def test_a_freeze_written_twice_by_the_group_commit_is_announced_once(
    net: TrustNet, caplog: pytest.LogCaptureFixture
) -> None:
    await net.sync_all()
    town, book, village = net.stores["T01"], net.books["T01"], net.stores["T01V01"]
    instance = village.instance_id
    async with town.db.reader.connect() as conn:
        handed = str(await conn.scalar(select(t.child_leases.c.lease).where(t.child_leases.c.child == "T01V01")))
    second = await book.check_child("T01V01", instance=instance, lease=handed)
    await book.check_child("T01V01", instance=instance, lease=handed)  # one copy asks again with the first lease
    # ... and the other presents the second, handed out before a newer one it never saw: two copies.

    async def failing(conn: AsyncConnection) -> None:
        """Another request's write in the same transaction, refused by the database after the freeze was written."""
        await conn.execute(insert(t.child_leases).values(child="T01V01", lease="x", instance="", at=0.0))

    caplog.set_level(logging.WARNING, logger="sanji.sync")
    frozen, refused = await asyncio.gather(
        book.check_child("T01V01", instance=instance, lease=second), together(town.db, failing), return_exceptions=True
    )
    assert isinstance(frozen, CloneFrozen) and isinstance(refused, IntegrityError)
    # The batch was rolled back and the freeze written again alone: one freeze, one event, one log line.
    assert (await kinds(town)).count("clone_detected") == 1
    assert sum("two running copies of T01V01" in r.getMessage() for r in caplog.records) == 1


async def test_a_restored_backup_and_lost_replies_are_not_a_clone(net: TrustNet) -> None:
    village = net.stores["T01V01"]
    await register(village)
    await net.sync_all()
    backup, _, _ = await clone_of(net, "T01V01")  # taken now ...
    for _ in range(3):
        await register(village)
        await net.sync("T01V01")  # ... and the original goes on for a while
    # The laptop dies; its backup is restored and syncs from then on. No second copy ever runs.
    net.stores["T01V01"] = backup
    net.child_trust["T01V01"] = ChildTrust(TrustBook(backup, required=True))
    await net.child_trust["T01V01"].book.load()
    for _ in range(3):
        await net.sync("T01V01")
    assert "clone_detected" not in await kinds(net.stores["T01"])


async def test_re_enrolling_the_genuine_machine_ends_the_freeze(net: TrustNet) -> None:
    await net.sync_all()
    copy, copy_link, copy_trust = await clone_of(net, "T01V01")
    pairs = [
        (net.stores["T01V01"], net.transports["T01V01"], net.child_trust["T01V01"]),
        (copy, copy_link, copy_trust),
    ]
    for _ in range(2):
        for store, link, trust in pairs:
            try:
                await sync_once(store, link, trust=trust)
            except CloneFrozen:
                pass
    assert "clone_detected" in await kinds(net.stores["T01"])
    fresh = await net.enroll("T01V01", VILLAGE, "T01", machine="-genuine")
    await net.sync("T01V01")  # the re-enrolled machine is heard again
    assert "clone_cleared" in await kinds(net.stores["T01"])
    with pytest.raises(Exception, match="revoked or replaced"):  # the copied key is retired
        await sync_once(copy, copy_link, trust=copy_trust)
    assert fresh.key.key_id != copy.key.key_id
