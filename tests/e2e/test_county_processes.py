"""Real node processes on loopback: errands travel, nodes die and come back, nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sanji.client import NodeClient
from sanji.demo.cluster import Cluster
from sanji.demo.staff import Desk, Tally, check_convergence, register_errands, work_desk

pytestmark = pytest.mark.processes


@pytest.fixture
async def county(tmp_path: Path) -> AsyncIterator[tuple[Cluster, dict[str, Desk]]]:
    cluster = Cluster.prepare(
        tmp_path / "county",
        towns=1,
        villages_per_town=2,
        interval=0.3,
        max_backoff=1.0,
        budget_bytes=4096,
        open_demo=True,
    )
    await asyncio.to_thread(cluster.start)
    desks = {n.id: Desk(n.id, n.role, NodeClient(n.url)) for n in cluster.nodes.values()}
    try:
        yield cluster, desks
    finally:
        for desk in desks.values():
            await desk.client.close()
        await asyncio.to_thread(cluster.stop)


async def settle(cluster: Cluster, desks: dict[str, Desk], *, expect: int, within: float = 180.0) -> None:
    """Play every desk until all ``expect`` errands are delivered and replicas agree.

    Sixty errands played to the end through four nodes take well under a minute on an idle machine;
    a loaded 2-core one (the release's own reference) needed more, with nothing lost or wrong."""
    rng = random.Random(7)
    tally = Tally()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        steps = sum(await asyncio.gather(*(work_desk(d, rng, tally) for d in desks.values())))
        check = await check_convergence(list(desks.values()), cluster.layout.directory)
        closed = (await desks["C"].client.errands(stage="closed", limit=1000))["items"]
        if steps == 0 and check.converged and check.errands == expect and len(closed) == expect:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no convergence within {within}s: {check}")


async def test_errand_travels_down_and_back(county: tuple[Cluster, dict[str, Desk]]) -> None:
    cluster, desks = county
    tally = Tally()
    [errand_id] = await register_errands([desks["T01V01"]], 1, random.Random(1), tally)
    await desks["T01V01"].client.act(errand_id, kind="submit", actor="代办员")
    await settle(cluster, desks, expect=1)
    detail = {n: await d.client.errand(errand_id) for n, d in desks.items() if n != "T01V02"}
    assert {d["digest"] for d in detail.values()} == {detail["C"]["digest"]}
    history = [h["kind"] for h in detail["C"]["history"] if h["status"] == "applied"]
    assert history[0] == "register" and history[-3:] == ["deliver", "rate", "close"]
    assert history.count("handoff") == history.count("receive") >= 2
    # The other village never sees it: a node holds only errands it is on the path of.
    assert errand_id not in await desks["T01V02"].client.digests()


async def test_village_killed_mid_sync_loses_and_doubles_nothing(county: tuple[Cluster, dict[str, Desk]]) -> None:
    cluster, desks = county
    village = desks["T01V01"]
    tally = Tally()
    ids = await register_errands([village], 60, random.Random(2), tally)
    # Kill as soon as the township has part of the backlog: a push is under way.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        streams = (await desks["T01"].client.node())["streams"]
        if any(s["origin"] == "T01V01" and s["seq"] >= 1 for s in streams):
            break
        await asyncio.sleep(0.02)
    cluster.kill("T01V01")
    await asyncio.to_thread(cluster.start, "T01V01")
    for errand_id in ids:
        await village.client.act(errand_id, kind="submit", actor="代办员")
    await settle(cluster, desks, expect=len(ids))
    hub = await desks["C"].client.digests()
    assert sorted(hub) == sorted(ids)  # every acknowledged registration arrived, none twice
    node = await village.client.node()
    assert node["quarantined_batches"] == 0 and node["queue_length"] == 0


async def test_township_down_delays_but_loses_nothing(county: tuple[Cluster, dict[str, Desk]]) -> None:
    cluster, desks = county
    cluster.stop("T01")
    tally = Tally()
    ids = await register_errands([desks["T01V01"], desks["T01V02"]], 10, random.Random(3), tally)
    for errand_id in ids:  # the villages keep working while their township is dark
        desk = desks[errand_id.rsplit("-", 1)[0]]
        await desk.client.act(errand_id, kind="submit", actor="代办员")
    await asyncio.sleep(1.0)
    node = await desks["T01V01"].client.node()
    assert node["queue_length"] > 0
    assert node["exchanges"]["T01"]["last_error"]
    await asyncio.to_thread(cluster.start, "T01")
    await settle(cluster, desks, expect=len(ids))
    assert sorted(await desks["C"].client.digests()) == sorted(ids)


def test_demo_short_form_converges(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sanji.cli.main",
            "demo",
            "--errands",
            "20",
            "--until-converged",
            "--json",
            "--workdir",
            str(tmp_path / "demo"),
            "--timeout",
            "240",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["converged"] is True
    assert result["errands"] == 20 and result["delivered"] == 20 and result["closed"] == 20
    assert sum(result["nodes"]["C"].values()) == 20
    assert result["seconds"] > 0
