"""A village whose township is down syncs with the county instead; the township catches up later."""

from __future__ import annotations

import asyncio

import pytest

from protocol.errors import RouteError
from protocol.session import CursorsRequest
from sanji.forms import ActionForm, RegisterForm
from sanji.sync.driver import SyncDriver, sync_once
from sanji.sync.transport import LocalTransport
from tests.conftest import NetworkFactory


async def test_village_goes_round_a_dark_township(network: NetworkFactory) -> None:
    net = await network(1, 2)
    village = net.service("T01V01")
    ids = []
    for i in range(3):
        errand = (await village.register(RegisterForm(matter="MZ-001", applicant_name=f"张{i}", actor="代办"))).errand
        await village.act(errand, ActionForm(kind="submit", actor="代办"))
        ids.append(errand)
    net.transports["T01V01"].down = True  # the township is dark
    to_county = LocalTransport(net.servers["C"])
    driver = SyncDriver(net.stores["T01V01"], net.transports["T01V01"], interval=0.05, fallbacks=[to_county])
    driver.start()
    try:
        for _ in range(400):
            exchanges = (await net.stores["T01V01"].status())["exchanges"]
            if sorted(await net.stores["C"].digests()) == sorted(ids) and exchanges.get("C", {}).get("last_ok_at"):
                break
            await asyncio.sleep(0.05)
    finally:
        await driver.stop()
    assert sorted(await net.stores["C"].digests()) == sorted(ids)
    assert (await net.stores["T01V01"].status())["exchanges"]["C"]["last_ok_at"]
    assert await net.stores["T01"].digests() == {}
    # The township comes back and catches up from the county; then everything agrees.
    net.transports["T01V01"].down = False
    await net.sync_all(2)
    assert sorted(await net.stores["T01"].digests()) == sorted(ids)
    assert not await net.divergence()


async def test_a_node_outside_the_subtree_is_refused(network: NetworkFactory) -> None:
    net = await network(2, 1)
    with pytest.raises(RouteError, match="not a child"):
        await net.servers["T01"].cursors(CursorsRequest(sender="T02V01"))
    with pytest.raises(RouteError):
        await sync_once(net.stores["T02V01"], LocalTransport(net.servers["T01"]))
