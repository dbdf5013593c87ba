"""A city above two counties, in one process: the same protocol one level up.

Each county is laid out exactly as a root county is and syncs to the city as a township syncs to
it (the same driver, signed batches, hash chains). Errands of both counties climb to the city,
which holds them all and may act on none; neither county ever holds the other's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from protocol.errors import ActionRefused, SanjiError, SignatureError
from protocol.session import PushRequest
from protocol.signing import SigningKey
from protocol.topology import CITY, COUNTY
from sanji.context import NodeContext
from sanji.forms import ActionForm
from sanji.layout import city_layout
from sanji.office.assess import run_assessment
from sanji.office.ledger import LedgerFilter
from sanji.office.source import ledger
from sanji.office.stats import group
from sanji.sync.requests_auth import Unauthenticated
from sanji.web.screens import offered_steps
from sanji.workcalendar import load_calendar
from tests.conftest import CATALOGUE
from tests.network.test_inprocess_sync import act, register, stage_on

Net = Any  # tests/conftest.py Network
NetworkFactory = Callable[..., Awaitable[Net]]

CITY_ID = "S"
COUNTIES = {"C1": ("C1T01", "C1T01V01"), "C2": ("C2T01", "C2T01V01")}


async def city_net(network: NetworkFactory, *, city_url: str | None = None) -> Net:
    net = await network(layout=city_layout(2, 1, 1), county_url=city_url)  # county_url: the hub at the top
    assert net.directory.role(CITY_ID) == CITY and net.directory.parent(CITY_ID) is None
    assert {c: net.directory.parent(c) for c in COUNTIES} == {"C1": CITY_ID, "C2": CITY_ID}
    assert all(net.directory.role(c) == COUNTY for c in COUNTIES)
    return net


async def escalated_to_county(net: Net, county: str, errand: str) -> None:
    """An errand the county's department decides: up to the county, decided, and back down to the village."""
    town, village = COUNTIES[county]
    path = [CITY_ID, county, town, village]
    await act(net, town, errand, "receive")
    await act(net, town, errand, "accept", errand_kind="上报件")
    await act(net, town, errand, "escalate", department="县民政局")
    await net.sync_all()
    assert await stage_on(net, errand, path) == {("escalated", county)}
    await act(net, county, errand, "receive")
    await act(net, county, errand, "decide", outcome="approved", department="县民政局", document="民政〔2026〕1号")
    await act(net, county, errand, "send_result")
    await net.sync_all()
    await act(net, town, errand, "receive")
    await act(net, town, errand, "send_result")
    await net.sync_all()
    await act(net, village, errand, "receive")
    await act(net, village, errand, "deliver", confirmed_by="张三", signature="张三")


async def test_both_counties_errands_climb_to_the_city_and_stay_out_of_each_other(network: NetworkFactory) -> None:
    net = await city_net(network)
    mine = {county: await register(net, village, 2) for county, (_, village) in COUNTIES.items()}
    await net.sync_all()
    for county, (town, village) in COUNTIES.items():
        for errand in mine[county]:
            assert await stage_on(net, errand, [CITY_ID, county, town, village]) == {("submitted", town)}

    # One errand of each county lives its whole life; the other is refused at its township.
    for county, (town, _) in COUNTIES.items():
        first, second = mine[county]
        await escalated_to_county(net, county, first)
        await act(net, town, second, "receive")
        await act(net, town, second, "not_accept", reasons="材料不属实")
    await net.sync_all(2)

    assert await net.divergence() == []  # equal digests on every path, nothing leaked, nothing waiting
    assert not net.failures
    city = await net.digests(CITY_ID)
    assert set(city) == {e for errands in mine.values() for e in errands}  # the city holds both counties'
    for county, (town, village) in COUNTIES.items():
        other = next(c for c in COUNTIES if c != county)
        for node in (county, town, village):
            held = await net.digests(node)
            assert set(held) == set(mine[county])  # only its own county's errands, never the other's
            assert all(held[e] == city[e] for e in held)
        first, second = mine[county]
        row = await net.stores[CITY_ID].errand(first)
        assert row is not None and (row["stage"], row["outcome"]) == ("delivered", "approved")
        assert {h["status"] for h in row["history"]} == {"applied"}
        refused = await net.stores[CITY_ID].errand(second)
        assert refused is not None and (refused["stage"], refused["outcome"]) == ("decided", "not_accepted")
        for node in (other, *COUNTIES[other]):
            for errand in mine[county]:
                assert await net.stores[node].errand(errand) is None

    # The city's office reads ledgers and statistics over both counties; node= narrows to one county.
    context = NodeContext(net.stores[CITY_ID], load_calendar())
    rows = await ledger(net.stores[CITY_ID], context, LedgerFilter())
    assert {r.errand for r in rows} == set(city)
    assert {line.key: line.volume for line in group(rows, "township")} == {"C1T01": 2, "C2T01": 2}
    narrowed = await ledger(net.stores[CITY_ID], context, LedgerFilter(node="C2"))
    assert {r.errand for r in narrowed} == set(mine["C2"])


@pytest.mark.postgres
async def test_a_city_hub_on_postgres_holds_both_counties(network: NetworkFactory, pg_url: str) -> None:
    net = await city_net(network, city_url=pg_url)
    assert not net.stores[CITY_ID].db.is_sqlite and net.stores["C1"].db.is_sqlite
    mine = {county: await register(net, village, 1) for county, (_, village) in COUNTIES.items()}
    await net.sync_all()
    for county, (errand,) in mine.items():
        await escalated_to_county(net, county, errand)
    await net.sync_all(2)
    assert await net.divergence() == []
    assert set(await net.digests(CITY_ID)) == {e for errands in mine.values() for e in errands}


async def test_the_city_reads_and_acts_on_nothing(network: NetworkFactory) -> None:
    net = await city_net(network)
    (errand,) = await register(net, "C1T01V01", 1)
    await net.sync_all()
    before = await net.digests(CITY_ID)
    for form in (
        ActionForm(kind="note", actor="市督查", text="请加快办理"),
        ActionForm(kind="supervise", actor="市督查", text="督办"),
        ActionForm(kind="receive", actor="市窗口"),
    ):
        with pytest.raises(ActionRefused) as refused:
            await net.service(CITY_ID).act(errand, form)
        assert refused.value.refusal is not None and refused.value.refusal.code == "regional_reads_only"
    assert await net.digests(CITY_ID) == before
    assert (await net.stores[CITY_ID].status())["queue_length"] == 0
    # The menu asks the same rule: the city's errand page offers nothing, the county's still a note.
    state = (await net.stores[CITY_ID].errand_states([errand]))[errand]
    assert offered_steps(state, CITY_ID, net.directory) == []
    assert "note" in offered_steps(state, "C1", net.directory)


async def test_a_tampered_or_foreign_batch_is_refused_as_before(network: NetworkFactory) -> None:
    net = await city_net(network)
    await register(net, "C1T01V01", 1)
    (theirs,) = await register(net, "C2T01V01", 1)
    await net.sync_all()
    county_b, city = net.stores["C2"], net.stores[CITY_ID]
    await net.service("C2").act(theirs, ActionForm(kind="note", actor="县窗口", text="县里的备注"))
    await county_b.seal_outbox(force=True)
    frames, _ = await county_b.frames_for_parent({}, 10**6)
    own = [f for f in frames if f not in set((await net.stores["C2T01"].frames_for_parent({}, 10**6))[0])]
    assert own, "county B sealed its own batch about its village's errand"

    # County B's batch handed to county A: not addressed there, refused, nothing applied.
    county_a = net.stores["C1"]
    before = await county_a.digests()
    outcome = await county_a.receive(own, peer=CITY_ID)
    assert {(r.status, r.error) for r in outcome.results} == {("refused", "wrong_route")}
    assert await county_a.digests() == before

    # County A cannot push to the city as if it were B.
    with pytest.raises(Unauthenticated):
        await net.signed("C1").push(PushRequest(sender="C2", at=county_a.clock.now(), frames=tuple(own)))

    # A flipped byte, or county B's batch signed with a key that is not B's, is refused at the city.
    flipped = own[0][: len(own[0]) // 2] + bytes([own[0][len(own[0]) // 2] ^ 1]) + own[0][len(own[0]) // 2 + 1 :]
    for bad in (flipped, _resigned(own[0], SigningKey.generate())):
        result = (await city.receive([bad], peer="C2")).results[0]
        assert (result.status, result.error) == ("refused", "bad_signature")
    held_before = (await city.digests())[theirs]
    assert held_before != (await county_b.digests())[theirs]  # the note did not get in

    # The genuine batch still goes in, and the tree converges.
    await net.sync_all()
    assert await net.divergence() == []
    assert (await city.digests())[theirs] == (await county_b.digests())[theirs] != held_before


def _resigned(frame: bytes, key: SigningKey) -> bytes:
    """The same head and payload under another key's signature (the key id kept, the signature not the holder's)."""
    signature_length = 64
    body = frame[:-signature_length]
    return body + key.sign(body)


async def test_each_county_below_the_city_publishes_and_assesses_for_its_own_subtree(network: NetworkFactory) -> None:
    net = await city_net(network)
    await register(net, "C1T01V01", 1)
    await register(net, "C2T01V01", 1)
    await net.sync_all()
    contexts = {n: NodeContext(s, load_calendar()) for n, s in net.stores.items()}
    for context in contexts.values():
        await context.load()
    await contexts["C1"].publish(CATALOGUE)  # county C1's catalogue, checked against C1's keys only
    assert contexts["C1"].catalogue is not None
    blob = await contexts["C1"].catalogue_blob()
    assert blob is not None
    assert await contexts["C1T01"].offer(blob)  # its own township takes it
    with pytest.raises(SignatureError):
        await contexts["C2T01"].offer(blob)  # the other county's township does not
    with pytest.raises(SignatureError):
        await contexts[CITY_ID].offer(blob)  # nor does the city, which publishes nothing
    with pytest.raises(SanjiError):
        await contexts[CITY_ID].publish(CATALOGUE)

    _rules, result = await run_assessment(net.stores["C1"], contexts["C1"], "2026Q4")
    assert [c.centre for c in result.centres] == ["C1T01"]  # its own township, not the other county's
