"""A village learns where its ancestors are from its parent and goes round a dark township by itself."""

from __future__ import annotations

import asyncio

from sanji.forms import ActionForm, RegisterForm
from sanji.sync.addresses import clean, learned
from sanji.sync.driver import SyncDriver
from sanji.sync.transport import Transport
from tests.conftest import NetworkFactory

COUNTY_URL = "https://county.example:8443"


async def test_village_learns_the_county_and_goes_round_a_dark_township(network: NetworkFactory) -> None:
    net = await network(1, 1)
    net.servers["T01"].addresses = (("C", COUNTY_URL),)  # what a township tells: its parent, where it reaches it
    village = net.stores["T01V01"]
    to_township = net.signed("T01V01")
    opened: list[str] = []

    def link_for(url: str) -> Transport:
        opened.append(url)
        return net.signed("T01V01", to="C")  # the county's URL, served in-process

    driver = SyncDriver(village, to_township, interval=0.05, max_backoff=0.2, link_for=link_for)
    assert driver.fallbacks == []  # nothing configured by hand
    driver.start()
    try:
        for _ in range(200):
            if await learned(village):
                break
            await asyncio.sleep(0.05)
        assert await learned(village) == (("C", COUNTY_URL),)
        assert opened == [COUNTY_URL]
        to_township.down = True  # the township goes dark
        service = net.service("T01V01")
        ids = []
        for i in range(5):
            form = RegisterForm(matter="MZ-001", applicant_name=f"王{i}", actor="代办")
            errand = (await service.register(form)).errand
            await service.act(errand, ActionForm(kind="submit", actor="代办"))
            ids.append(errand)
        for _ in range(400):
            if sorted(await net.stores["C"].digests()) == sorted(ids):
                break
            await asyncio.sleep(0.05)
        assert sorted(await net.stores["C"].digests()) == sorted(ids)
        assert await net.stores["T01"].digests() == {}
    finally:
        await driver.stop()
    to_township.down = False
    await net.sync_all(2)
    assert not await net.divergence()  # the township caught up when it returned


def test_only_ancestors_with_web_addresses_are_kept() -> None:
    ancestors = ["C", "T01"]
    said = [
        ["C", "https://c.example/"],
        ["T02", "https://elsewhere.example"],  # not an ancestor of this node
        ["T01", "file:///etc/passwd"],  # not a web address
        ["C", "https://again.example"],  # once each
        "junk",
        ["T01", "http://t01.lan:8100"],
    ]
    assert clean(said, ancestors=ancestors) == (("C", "https://c.example"), ("T01", "http://t01.lan:8100"))
    assert clean("not a list", ancestors=ancestors) == ()
