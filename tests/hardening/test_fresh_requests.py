"""Fresh, addressed sync requests in one process: a captured request gives an attacker nothing."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import select

from protocol.session import CursorsRequest, PullRequest
from sanji.forms import ActionForm, RegisterForm
from sanji.store import schema as t
from sanji.sync.freshness import RequestCounters
from sanji.sync.requests_auth import COUNTER, RequestSigner, SignedRequest, StaleRequest, WrongRecipient
from tests.trust.trust_net import TrustNet, certified_net


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[TrustNet]:
    built = await certified_net(tmp_path, villages=1)
    try:
        yield built
    finally:
        await built.close()


async def register(net: TrustNet, village: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        proj = await net.service(village).register(RegisterForm(matter="低保", applicant_name=f"村民{i}", actor="李"))
        await net.service(village).act(proj.errand, ActionForm(kind="submit", actor="李"))
        ids.append(proj.errand)
    return ids


def capture(net: TrustNet, sender: str, to: str, path: str, body: msgspec.Struct) -> SignedRequest:
    raw = msgspec.msgpack.encode(body)
    return RequestSigner(sender, net.stores[sender]).sign(path, raw, recipient=to)


def again(signed: SignedRequest) -> SignedRequest:
    """The captured request as an eavesdropper would send it: same bytes, not yet admitted anywhere."""
    replay = copy.copy(signed)
    replay.admitted = False
    return replay


async def kinds(net: TrustNet, node: str) -> list[str]:
    async with net.stores[node].db.reader.connect() as conn:
        return [str(k) for k in (await conn.execute(select(t.events.c.kind))).scalars()]


async def test_a_pull_captured_when_empty_returns_nothing_later(net: TrustNet) -> None:
    await net.sync_all()
    request = PullRequest(sender="T01V01", at=0, cursors=())
    captured = capture(net, "T01V01", "T01", "/sync/v1/pull", request)
    first = await net.servers["T01"].pull(request, captured)
    assert first.frames == ()
    ids = await register(net, "T01V01", 3)  # later actions of that village, with names and summaries
    await net.sync_all()
    assert len(await net.stores["T01"].digests()) == len(ids)
    with pytest.raises(StaleRequest, match="not above"):
        await net.servers["T01"].pull(request, again(captured))
    # Addressed to the township: useless at the county, which serves the same subtree.
    with pytest.raises(WrongRecipient, match="addressed to 'T01'"):
        await net.servers["C"].pull(request, again(captured))


async def test_a_replayed_cursors_request_takes_no_lease(net: TrustNet) -> None:
    await net.sync_all()
    town = net.stores["T01"]
    instance = net.stores["T01V01"].instance_id
    request = CursorsRequest(sender="T01V01", instance=instance)
    captured = capture(net, "T01V01", "T01", "/sync/v1/cursors", request)
    await net.sync("T01V01")  # the village goes on; its counter moves past the capture
    async with town.db.reader.connect() as conn:
        lease = await conn.scalar(select(t.child_leases.c.lease).where(t.child_leases.c.child == "T01V01"))
    for _ in range(50):
        with pytest.raises(StaleRequest):
            await net.servers["T01"].cursors(request, again(captured))
    async with town.db.reader.connect() as conn:
        assert lease == await conn.scalar(select(t.child_leases.c.lease).where(t.child_leases.c.child == "T01V01"))
        refused = await conn.scalar(select(t.sync_counters.c.refused).where(t.sync_counters.c.child == "T01V01"))
    logged = await kinds(net, "T01")
    assert "stale_lease" not in logged
    assert logged.count("stale_request") == 1 and refused == 49  # one row, the rest counted
    await net.sync("T01V01")  # and the genuine village is not disturbed
    assert "stale_lease" not in await kinds(net, "T01")


async def test_a_node_whose_counter_went_back_recovers_in_the_same_session(net: TrustNet) -> None:
    await net.sync_all()
    saved = COUNTER.last
    COUNTER.last = 0
    try:
        # The clock reads 1970 (a laptop with a dead battery): the parent's record decides.
        import time

        real = time.time_ns
        time.time_ns = lambda: 0  # type: ignore[assignment]
        try:
            ids = await register(net, "T01V01", 1)
            await net.sync("T01V01")
        finally:
            time.time_ns = real  # type: ignore[assignment]
    finally:
        COUNTER.last = max(COUNTER.last, saved)
    assert sorted(await net.stores["T01"].digests()) == ids


async def test_an_altered_counter_or_recipient_breaks_the_signature(net: TrustNet) -> None:
    await net.sync_all()  # the county learns the village's certificate
    request = PullRequest(sender="T01V01", at=0, cursors=())
    captured = capture(net, "T01V01", "T01", "/sync/v1/pull", request)
    bumped = again(captured)
    bumped.counter += 10**9
    with pytest.raises(Exception, match="signature does not match"):
        await net.servers["T01"].pull(request, bumped)
    readdressed = again(capture(net, "T01V01", "T01", "/sync/v1/pull", request))
    readdressed.recipient = "C"
    with pytest.raises(Exception, match="signature does not match"):
        await net.servers["C"].pull(request, readdressed)


async def counters_of(net: TrustNet, node: str) -> dict[str, int]:
    async with net.stores[node].db.reader.connect() as conn:
        rows = (await conn.execute(select(t.sync_counters.c.child, t.sync_counters.c.counter))).all()
    return {str(child): int(counter) for child, counter in rows}


async def test_requests_arriving_together_are_admitted_in_one_write(net: TrustNet) -> None:
    county = net.stores["C"]
    writes: list[int] = []

    async def count(_conn: object) -> None:
        writes.append(1)

    county.db.add_commit_hook(count)
    counters = RequestCounters(county)
    children = [f"X{i:02d}" for i in range(40)]
    await asyncio.gather(*(counters.admit(c, 100 + i, path="/sync/v1/cursors") for i, c in enumerate(children)))
    # The first request's write starts at once; the 39 arriving meanwhile share the next one.
    assert len(writes) <= 2
    held = await counters_of(net, "C")
    assert {c: held[c] for c in children} == {c: 100 + i for i, c in enumerate(children)}


async def test_requests_written_together_are_judged_in_the_order_they_came(net: TrustNet) -> None:
    county = net.stores["C"]
    counters = RequestCounters(county)
    await counters.admit("X01", 10, path="/sync/v1/cursors")
    outcomes = await asyncio.gather(
        *(counters.admit("X01", n, path="/sync/v1/cursors") for n in (50, 30, 70, 70)), return_exceptions=True
    )
    # As if one by one: 50 taken, 30 is below it, 70 taken, the second 70 is a replay of it.
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], StaleRequest) and outcomes[1].last == 50
    assert isinstance(outcomes[3], StaleRequest) and outcomes[3].last == 70
    assert (await counters_of(net, "C"))["X01"] == 70
    assert (await kinds(net, "C")).count("stale_request") == 1  # logged once a minute per child, with the count
    with pytest.raises(StaleRequest, match="not above 70"):
        await counters.admit("X01", 70, path="/sync/v1/pull")
