"""Several nodes in one process, linked by LocalTransport: errands travel, links fail, bytes are budgeted."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from protocol.errors import RouteError
from protocol.session import PullRequest, PullResponse, PushRequest, PushResponse
from sanji.forms import ActionForm, RegisterForm
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from tests.materials_kit import mains

Net = Any  # tests/conftest.py Network
NetworkFactory = Callable[..., Awaitable[Net]]


async def register(
    net: Net, village: str, n: int, *, summary: str = "", submit: bool = True, matter: str = "MZ-001"
) -> list[str]:
    service = net.service(village)
    ids = []
    for i in range(n):
        proj = await service.register(
            RegisterForm(
                matter=matter, applicant_name=f"村民{i}", materials=mains(matter), actor="李代办", summary=summary
            )
        )
        if submit:
            await service.act(proj.errand, ActionForm(kind="submit", actor="李代办"))
        ids.append(proj.errand)
    return ids


async def act(net: Net, node: str, errand: str, kind: str, **fields: Any) -> None:
    await net.service(node).act(errand, ActionForm(kind=kind, actor=f"{node}-staff", **fields))  # type: ignore[arg-type]


async def stage_on(net: Net, errand: str, nodes: list[str]) -> set[tuple[str, str | None]]:
    out = set()
    for node in nodes:
        row = await net.stores[node].errand(errand)
        assert row is not None, f"{errand} missing at {node}"
        out.add((row["stage"], row["pending_to"]))
    return out


# -- the whole journey -----------------------------------------------------------------------


async def journey(net: Net) -> None:
    village, town, county = "T01V01", "T01", "C"
    path = [county, town, village]
    (errand,) = await register(net, village, 1)
    await net.sync_all()
    assert await stage_on(net, errand, path) == {("submitted", town)}

    await act(net, town, errand, "receive")
    await act(net, town, errand, "accept", errand_kind="上报件")
    await act(net, town, errand, "escalate", department="县民政局")
    await net.sync_all()
    assert await stage_on(net, errand, path) == {("escalated", county)}

    await act(net, county, errand, "receive")
    await act(net, county, errand, "decide", outcome="approved", department="县民政局", document="民政〔2024〕1号")
    await act(net, county, errand, "send_result")
    await net.sync_all()
    assert await stage_on(net, errand, path) == {("result_down", town)}

    await act(net, town, errand, "receive")
    await act(net, town, errand, "send_result")
    await net.sync_all()
    assert await stage_on(net, errand, path) == {("result_down", village)}

    await act(net, village, errand, "receive")
    await act(net, village, errand, "deliver", confirmed_by="张三", signature="张三")
    await net.sync_all()

    rows = [await net.stores[n].errand(errand) for n in path]
    assert all(r is not None for r in rows)
    assert len({r["digest"] for r in rows}) == 1  # type: ignore[index]
    for r in rows:
        finished = ("delivered", village, "approved", "县民政局")
        assert (r["stage"], r["holder"], r["outcome"], r["department"]) == finished
        assert r["version"] == 12 and len(r["history"]) == 12
        assert {h["status"] for h in r["history"]} == {"applied"}
    for other in net.stores:
        if other not in path:
            assert await net.stores[other].errand(errand) is None  # only the errand's path holds it
    assert await net.divergence() == []
    assert not net.failures


async def test_errand_travels_village_to_county_and_back(network: NetworkFactory) -> None:
    await journey(await network(2, 2))


@pytest.mark.postgres
async def test_errand_journey_with_county_on_postgres(network: NetworkFactory, pg_url: str) -> None:
    net = await network(2, 2, county_url=pg_url)
    assert not net.stores["C"].db.is_sqlite and net.stores["T01"].db.is_sqlite
    await journey(net)


# -- a township offline ----------------------------------------------------------------------


async def test_township_link_down_nothing_lost_then_converges(network: NetworkFactory) -> None:
    net = await network(2, 2)
    cut: LocalTransport = net.transports["T01"]
    cut.down = True

    early = await register(net, "T01V01", 3) + await register(net, "T01V02", 2)
    other = await register(net, "T02V01", 2)
    await net.sync_all()
    assert {n for n, _ in net.failures} == {"T01"}

    county = await net.digests("C")
    assert set(other) <= set(county)
    assert not set(early) & set(county)  # nothing of T01 got through
    for e in early:  # but the township has every village's errand, identical to the village's copy
        assert await stage_on(net, e, ["T01", e.rsplit("-", 1)[0]]) == {("submitted", "T01")}

    # The township keeps working offline; villages keep registering, one village link flaps too.
    for e in early[:3]:
        await act(net, "T01", e, "receive")
        await act(net, "T01", e, "accept", errand_kind="上报件")
        await act(net, "T01", e, "escalate", department="县民政局")
    net.transports["T01V02"].down = True
    late = await register(net, "T01V01", 2) + await register(net, "T01V02", 2)
    await net.sync_all(2)
    net.transports["T01V02"].down = False
    late += await register(net, "T01V02", 1)
    await net.sync_all(2)

    assert not set(early + late) & set(await net.digests("C"))
    status = await net.stores["T01"].status()
    assert status["queue_length"] > 0 and status["held_batches"] == 0
    assert any("T01" in p for p in await net.divergence())

    cut.down = False
    net.failures.clear()
    await net.sync_all()
    assert not net.failures
    assert await net.divergence() == []
    county = await net.digests("C")
    assert set(early + late + other) <= set(county)
    assert (await net.stores["T01"].status())["queue_length"] == 0

    # The escalated errands now finish at the county and come all the way back.
    for e in early[:3]:
        await act(net, "C", e, "receive")
        await act(net, "C", e, "decide", outcome="refused", department="县民政局", reasons="不符合条件")
        await act(net, "C", e, "send_result")
    await net.sync_all()
    for e in early[:3]:
        await act(net, "T01", e, "receive")
        await act(net, "T01", e, "send_result")
    await net.sync_all()
    for e in early[:3]:
        village = e.rsplit("-", 1)[0]
        await act(net, village, e, "receive")
        await act(net, village, e, "deliver", confirmed_by="村民", signature="纸质送达回证已签字")
    await net.sync_all()
    assert await net.divergence() == []
    for e in early + late + other:
        row = await net.stores["C"].errand(e)
        assert row is not None
        assert {h["status"] for h in row["history"]} == {"applied"}  # nothing lost, nothing rejected
        assert row["stage"] == ("delivered" if e in early[:3] else "submitted")


# -- duplicates and replays ----------------------------------------------------------------------


async def test_replayed_pushes_and_pulls_change_nothing(network: NetworkFactory) -> None:
    net = await network(1, 2)
    village, town = net.stores["T01V01"], net.stores["T01"]
    await register(net, "T01V01", 3)
    await village.seal_outbox(force=True)
    frames, more = await village.frames_for_parent({}, 10**6)
    assert frames and not more

    def push(sender: str, fs: list[bytes]) -> Awaitable[PushResponse]:
        return net.signed(sender, to="T01").push(PushRequest(sender=sender, at=village.clock.now(), frames=tuple(fs)))

    first = await push("T01V01", frames)
    assert [r.status for r in first.results] == ["stored"] * len(frames)
    # Every signed request spends a counter (sync_counters): bookkeeping of requests, not data.
    before = {k: v for k, v in (await net.row_counts("T01")).items() if k != "sync_counters"}
    digests = await town.digests()
    assert len(digests) == 3

    for replay in (frames, frames[::-1], frames + frames):
        again = await push("T01V01", replay)
        assert [r.status for r in again.results] == ["duplicate"] * len(replay)
    # a sibling relaying the same signed frames is harmless too
    assert {r.status for r in (await push("T01V02", frames)).results} == {"duplicate"}
    assert {k: v for k, v in (await net.row_counts("T01")).items() if k != "sync_counters"} == before
    assert await town.digests() == digests
    with pytest.raises(RouteError):
        await push("T02", frames)  # not a child of T01 at all

    await net.sync_all()
    county_before = await net.row_counts("C")
    county_digests = await net.digests("C")
    replay_up = await net.signed("T01").push(PushRequest(sender="T01", at=town.clock.now(), frames=tuple(frames)))
    assert {r.status for r in replay_up.results} == {"duplicate"}
    assert await net.row_counts("C") == county_before
    assert await net.digests("C") == county_digests

    # A pull replayed from scratch (cursors lost) brings only duplicates to the village.
    await net.service("T01").act(next(iter(digests)), ActionForm(kind="receive", actor="王"))
    await net.sync_all()
    village_before = await net.row_counts("T01V01")
    pulled = await net.signed("T01V01").pull(PullRequest(sender="T01V01", at=town.clock.now(), cursors=()))
    assert pulled.frames
    outcome = await village.receive(pulled.frames, peer="T01")
    assert {r.status for r in outcome.results} == {"duplicate"}
    assert await net.row_counts("T01V01") == village_before
    assert await net.divergence() == []


# -- byte budgets ------------------------------------------------------------------------------


async def test_tiny_budget_many_rounds_still_converge(network: NetworkFactory) -> None:
    budget = 1000  # a single-action batch is ~450-700 bytes: one or two fit, a long one never does
    net = await network(2, 2, budget=budget)
    pulls: list[PullResponse] = []
    pushes: list[PushRequest] = []

    for transport in net.transports.values():

        def watch(t: LocalTransport = transport) -> None:
            real_pull, real_push = t.pull, t.push

            async def pull(request: PullRequest) -> PullResponse:
                assert request.max_bytes == budget
                response = await real_pull(request)
                pulls.append(response)
                return response

            async def push(request: PushRequest) -> PushResponse:
                pushes.append(request)
                return await real_push(request)

            t.pull, t.push = pull, push  # type: ignore[method-assign]

        watch()

    async def step(node: str, errand: str, kind: str, **fields: Any) -> None:
        await act(net, node, errand, kind, **fields)
        await net.stores[node].seal_outbox(force=True)  # one action per batch: many small frames in many streams

    errands: list[str] = []
    for village in ("T01V01", "T01V02", "T02V01", "T02V02"):
        for summary in ("", "", secrets.token_hex(700)):  # the long one makes a frame bigger than the budget
            (e,) = await register(net, village, 1, summary=summary, submit=False, matter="MZ-003")
            await net.stores[village].seal_outbox(force=True)
            await step(village, e, "submit")
            errands.append(e)
    await net.sync_all()
    assert await net.divergence() == []

    # Townships decide at once (即办件); the county annotates everything, in many streams.
    for n, e in enumerate(errands):
        await step(e[:3], e, "receive")
        await step(e[:3], e, "accept", errand_kind="即办件")
        await step("C", e, "note", text="督办：请按时办结 " + secrets.token_hex(700 if n % 3 == 2 else 40))
        await step(e[:3], e, "decide", outcome="approved")
        await step(e[:3], e, "send_result")
    await net.sync_all()
    for e in errands:
        village = e.rsplit("-", 1)[0]
        await step(village, e, "receive")
        await step(village, e, "deliver", confirmed_by="村民", signature="纸质送达回证已签字")
    await net.sync_all()

    assert await net.divergence() == []
    assert not net.failures
    for e in errands:
        assert await stage_on(net, e, ["C", e[:3], e.rsplit("-", 1)[0]]) == {("delivered", None)}

    def within_budget(frames: tuple[bytes, ...]) -> bool:
        return len(frames) == 1 or sum(len(f) for f in frames) <= budget

    over = [[len(f) for f in m.frames] for m in [*pulls, *pushes] if not within_budget(m.frames)]
    assert over == []
    assert any(len(p.frames) == 1 and len(p.frames[0]) > budget for p in pulls)  # the one allowed overrun
    assert any(len(p.frames) == 1 and len(p.frames[0]) > budget for p in pushes)
    assert any(len(p.frames) > 1 for p in pulls) and any(len(p.frames) > 1 for p in pushes)
    assert sum(p.more for p in pulls) >= 10  # the budget really split the work into many exchanges


# -- the idle exchange ---------------------------------------------------------------------------


async def test_an_idle_exchange_is_one_request_and_fresh_work_still_comes_down_at_once(
    network: NetworkFactory,
) -> None:
    """The parent tells what it holds for the child's subtree in the opening reply, its own fresh actions
    sealed first: a child that holds all of it does not pull (issue 15: an idle exchange ≤ 1 request)."""
    net = await network()
    village, town = "T01V01", "T01"
    (errand,) = await register(net, village, 1)
    await net.sync_all(rounds=2)
    idle = await net.sync_node(village)
    assert idle is not None and (idle.requests, idle.pushed, idle.pulled) == (1, 0, 0)

    # The township acts: the very next exchange of the village brings it down (cursors, then one pull).
    await act(net, town, errand, "receive")
    fresh = await net.sync_node(village)
    assert fresh is not None and fresh.pulled >= 1 and fresh.requests == 2
    row = await net.stores[village].errand(errand)
    assert row is not None and row["stage"] == "received"
    again = await net.sync_node(village)
    assert again is not None and (again.requests, again.pulled) == (1, 0)


async def test_a_child_pulls_as_before_from_a_parent_that_does_not_say_what_it_holds(
    network: NetworkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parent of an earlier release sends no ``down``: the child pulls every time, and misses nothing."""
    net = await network()
    answer = SyncServer.cursors

    async def without_down(self: SyncServer, request: Any, signed: Any = None) -> Any:
        return msgspec.structs.replace(await answer(self, request, signed), down=None)

    monkeypatch.setattr(SyncServer, "cursors", without_down)
    village, town = "T01V01", "T01"
    (errand,) = await register(net, village, 1)
    await net.sync_all(rounds=2)
    idle = await net.sync_node(village)
    assert idle is not None and (idle.requests, idle.pulled) == (2, 0)
    await act(net, town, errand, "receive")
    fresh = await net.sync_node(village)
    assert fresh is not None and fresh.pulled >= 1
