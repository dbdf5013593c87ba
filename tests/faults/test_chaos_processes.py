"""Real node processes whose every child→parent link runs through a FaultProxy.

One county (C; T01 > T01V01; T02 > T02V01) serves the whole module, so the errands of every
test add up: after each test, everything registered so far must be at the county, identical on
its whole path, with nothing held, quarantined or still queued anywhere. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sanji.client import NodeClient
from sanji.demo.cluster import Cluster
from sanji.demo.staff import Convergence, Desk, Tally, check_convergence, register_errands, work_desk

pytestmark = pytest.mark.processes

VILLAGES = ("T01V01", "T02V01")
TOWNS = ("T01", "T02")
REGISTERED: list[str] = []  # every errand registered in this module, in order


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir: Path = tmp_path_factory.mktemp("chaos") / "county"
    county = Cluster.prepare(
        workdir,
        towns=2,
        villages_per_town=1,
        interval=0.3,
        max_backoff=1.0,
        budget_bytes=4096,  # many small pushes and pulls: more requests for the faults to hit
        proxies=True,
        proxy_seed=11,
        open_demo=True,
    )
    try:
        county.start()
        yield county
    finally:
        county.stop()


@pytest.fixture
async def desks(cluster: Cluster) -> AsyncIterator[dict[str, Desk]]:
    cluster.heal_links()
    await asyncio.to_thread(cluster.start)  # whatever an earlier test left stopped
    made = {n.id: Desk(n.id, n.role, NodeClient(n.url)) for n in cluster.nodes.values()}
    try:
        yield made
    finally:
        cluster.heal_links()
        for desk in made.values():
            await desk.client.close()


async def work_all(desks: dict[str, Desk], rng: random.Random, tally: Tally) -> int:
    return sum(await asyncio.gather(*(work_desk(d, rng, tally) for d in desks.values())))


async def converged(cluster: Cluster, desks: dict[str, Desk], *, within: float) -> Convergence:
    """Wait (no desk work: traffic has stopped) until replicas agree, nothing is missing, held or queued."""
    deadline = time.monotonic() + within
    problems: list[str] = ["not checked yet"]
    check: Convergence | None = None
    while time.monotonic() < deadline:
        check = await check_convergence(list(desks.values()), cluster.layout.directory)
        nodes: dict[str, dict[str, Any]] = dict(
            zip(desks, await asyncio.gather(*(d.client.node() for d in desks.values())), strict=True)
        )
        hub = set(check.by_node["C"])
        problems = []
        if not check.converged:
            problems.append(f"mismatched {check.mismatched[:5]} misplaced {check.misplaced[:5]}")
        if missing := set(REGISTERED) - hub:
            problems.append(f"{len(missing)} registered errands not at the county, e.g. {sorted(missing)[:3]}")
        if extra := hub - set(REGISTERED):
            problems.append(f"the county holds errands nobody registered: {sorted(extra)[:3]}")
        for node_id, node in nodes.items():
            if node["held_batches"] or node["quarantined_batches"] or node["queue_length"]:
                problems.append(
                    f"{node_id}: held {node['held_batches']} quarantined {node['quarantined_batches']} "
                    f"queue {node['queue_length']} last error {node.get('exchanges', {})}"
                )
        if not problems:
            return check
        await asyncio.sleep(0.3)
    raise AssertionError(f"no convergence within {within}s: {problems}")


async def assert_nothing_doubled(desks: dict[str, Desk], ids: list[str]) -> None:
    """At the county, each errand has one registration and no action twice."""
    for errand_id in ids:
        detail = await desks["C"].client.errand(errand_id)
        action_ids = [h["id"] for h in detail["history"]]
        assert len(action_ids) == len(set(action_ids)), errand_id
        assert [h["kind"] for h in detail["history"] if h["status"] == "applied"].count("register") == 1


async def test_drops_and_latency_lose_nothing_and_double_nothing(cluster: Cluster, desks: dict[str, Desk]) -> None:
    """30 % of exchanges cut mid-transfer, 60 ms each way, while 40 errands are registered and worked.

    ``per_request``: a keep-alive connection meets the 30 % again at every request, not once in its life.
    """
    for proxy in cluster.proxies.values():
        proxy.set(latency_ms=60, drop_p=0.3, drop_span=1500, per_request=True)
    rng, tally = random.Random(21), Tally()
    ids = await register_errands([desks[v] for v in VILLAGES], 40, rng, tally)
    REGISTERED.extend(ids)
    until = time.monotonic() + 14
    while time.monotonic() < until:
        await work_all(desks, rng, tally)
        await asyncio.sleep(0.3)
    cut = {child: p.stats.dropped for child, p in cluster.proxies.items()}
    assert sum(cut.values()) >= 10, cut  # the faults really hit
    assert tally.actions > 40  # and the staff got work done through them
    cluster.heal_links()
    await converged(cluster, desks, within=45)
    await assert_nothing_doubled(desks, ids)


async def test_township_and_village_killed_during_sync(cluster: Cluster, desks: dict[str, Desk]) -> None:
    rng, tally = random.Random(22), Tally()
    for proxy in cluster.proxies.values():
        proxy.set(latency_ms=40)  # widen the window in which a session is under way
    town, village = rng.choice(TOWNS), rng.choice(VILLAGES)

    async def held_of_village() -> int:
        streams = (await desks[town].client.node())["streams"]
        return max((s["seq"] for s in streams if s["origin"] == f"{town}V01"), default=0)

    before = await held_of_village()
    ids = await register_errands([desks[v] for v in VILLAGES], 20, rng, tally)
    REGISTERED.extend(ids)
    for errand_id in ids:
        await desks[errand_id.rsplit("-", 1)[0]].client.act(errand_id, kind="submit", actor="代办员")
    # Kill the township as soon as it holds part of this backlog: a push is under way.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if await held_of_village() > before:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(rng.uniform(0.0, 0.3))
    cluster.kill(town)
    await asyncio.sleep(rng.uniform(0.1, 0.6))
    cluster.kill(village)
    await asyncio.sleep(rng.uniform(0.2, 1.0))
    await asyncio.to_thread(cluster.start, town)
    await asyncio.to_thread(cluster.start, village)
    until = time.monotonic() + 5
    while time.monotonic() < until:  # the staff carry on after the restart
        await work_all(desks, rng, tally)
        await asyncio.sleep(0.3)
    cluster.heal_links()
    await converged(cluster, desks, within=40)
    await assert_nothing_doubled(desks, ids)


async def test_partitioned_township_catches_up_after_healing(cluster: Cluster, desks: dict[str, Desk]) -> None:
    rng, tally = random.Random(23), Tally()
    link = cluster.link("T01")
    link.set(blackhole=True)  # T01 cannot reach the county; its village still reaches T01
    await asyncio.sleep(0.1)
    crossed = link.stats.bytes_up + link.stats.bytes_down
    ids = await register_errands([desks[v] for v in VILLAGES], 16, rng, tally)
    REGISTERED.extend(ids)
    cut_off = [i for i in ids if i.startswith("T01V01-")]
    reachable = [i for i in ids if i.startswith("T02V01-")]
    held_at_least, deadline = time.monotonic() + 6, time.monotonic() + 20
    while time.monotonic() < deadline:  # the other township's errands still climb
        await work_all(desks, rng, tally)
        hub = await desks["C"].client.digests()
        town = await desks["T01"].client.digests()
        if set(reachable) <= set(hub) and set(cut_off) <= set(town) and time.monotonic() > held_at_least:
            break
        await asyncio.sleep(0.3)
    assert set(reachable) <= set(hub), "the healthy township's errands did not reach the county"
    assert set(cut_off) <= set(town), "the village could not reach its own township"
    assert not set(cut_off) & set(hub), "errands crossed a partitioned link"
    assert link.stats.bytes_up + link.stats.bytes_down == crossed, "bytes crossed a partitioned link"
    link.set(blackhole=False)
    await converged(cluster, desks, within=40)
    await assert_nothing_doubled(desks, ids)
