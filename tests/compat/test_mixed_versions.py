"""A tree of mixed releases works: the previous release (tests/compat/previous_release.toml) and this one,
as real processes on loopback, each run from its own tree; errands go up to the county, results come down,
every replica agrees. A store this release migrated is refused by the previous one, naming both."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from sanji.client import NodeClient
from sanji.demo.cluster import Cluster
from sanji.demo.staff import Desk, Tally, check_convergence, register_errands, work_desk
from sanji.store.revisions import code_head

from .releases import Release, current, previous

pytestmark = pytest.mark.processes

ERRANDS = 8  # enough that both kinds of matter occur: decided at the township, and escalated to the county


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Release]:
    where = tmp_path_factory.mktemp("releases")
    found = {"old": previous(where), "new": current(where)}
    assert _numbers(found["old"].version) < _numbers(found["new"].version), (
        "tests/compat/previous_release.toml names this release: move it to the release before"
    )
    return found


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


MIXES = {
    "old-county_new-township_old-village": {"C": "old", "T01": "new", "T01V01": "old"},
    "new-county_old-township_new-village": {"C": "new", "T01": "old", "T01V01": "new"},
}


@pytest.fixture(params=sorted(MIXES))
async def mixed(
    request: pytest.FixtureRequest, releases: dict[str, Release], tmp_path: Path
) -> AsyncIterator[tuple[Cluster, dict[str, Desk], dict[str, Release]]]:
    cluster = Cluster.prepare(
        tmp_path / "county", towns=1, villages_per_town=1, interval=0.3, max_backoff=1.0, open_demo=True
    )
    running = {node: releases[which] for node, which in MIXES[request.param].items()}
    cluster.trees = {node: release.import_path for node, release in running.items()}
    await asyncio.to_thread(cluster.start)
    desks = {n.id: Desk(n.id, n.role, NodeClient(n.url)) for n in cluster.nodes.values()}
    try:
        yield cluster, desks, running
    finally:
        for desk in desks.values():
            await desk.client.close()
        await asyncio.to_thread(cluster.stop)


async def _version(url: str) -> str:
    """The release a node says it is, once from its metadata (``/healthz``) and once from its code (the API's
    schema carries ``sanji.__version__``): both must name the release the test meant to run."""
    async with httpx.AsyncClient() as client:
        said = str((await client.get(url + "/healthz")).json()["version"])
        schema = await client.get(url + "/schema/openapi.json")
    assert schema.status_code == 200, schema.text[:200]
    assert schema.json()["info"]["version"] == said, f"{url}: metadata says {said}, the code another release"
    return said


async def test_mixed_tree_carries_errands_up_and_results_down(
    mixed: tuple[Cluster, dict[str, Desk], dict[str, Release]],
) -> None:
    cluster, desks, running = mixed
    for node, release in running.items():  # each node runs the release the mix says, not the installed one
        assert await _version(cluster.nodes[node].url) == release.version, node
    tally = Tally()
    ids = await register_errands([desks["T01V01"]], ERRANDS, random.Random(11), tally)
    for errand_id in ids:
        await desks["T01V01"].client.act(errand_id, kind="submit", actor="代办员")
    rng = random.Random(5)
    deadline = time.monotonic() + 180
    while True:
        steps = sum(await asyncio.gather(*(work_desk(d, rng, tally) for d in desks.values())))
        check = await check_convergence(list(desks.values()), cluster.layout.directory)
        closed = (await desks["T01V01"].client.errands(stage="closed", limit=1000))["items"]
        if steps == 0 and check.converged and len(closed) == ERRANDS and check.errands == ERRANDS:
            break
        assert time.monotonic() < deadline, f"{running}: no convergence in 180 s: {check}, {len(closed)} closed"
        await asyncio.sleep(0.3)
    hub = await desks["C"].client.digests()
    village = await desks["T01V01"].client.digests()
    assert sorted(hub) == sorted(ids) and hub == village  # every errand reached the county; the same state
    decided_at_county = 0
    for errand_id in ids:
        history = (await desks["C"].client.errand(errand_id))["history"]
        applied = [h for h in history if h["status"] == "applied"]
        assert applied[0]["kind"] == "register" and applied[-1]["kind"] == "close"
        decided_at_county += any(h["kind"] == "decide" and h["node"] == "C" for h in applied)
    # The county's own decisions came down through the other release to be delivered at the village.
    assert decided_at_county > 0, "no errand was escalated to the county: choose another seed"
    assert tally.errors == []


def _head(tree: Path) -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(tree / "sanji" / "store" / "migrations"))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


async def test_upgrade_then_going_back_a_release(releases: dict[str, Release], tmp_path: Path) -> None:
    """A village's store: made by the previous release, upgraded by this one, then the previous one again."""
    old, new = releases["old"], releases["new"]
    cluster = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=True)
    village = cluster.nodes["T01V01"]
    client = NodeClient(village.url)
    try:
        cluster.trees["T01V01"] = old.import_path
        await asyncio.to_thread(cluster.start, "T01V01")  # no parent running: a village works offline
        [errand_id] = await register_errands([Desk("T01V01", "village", client)], 1, random.Random(3), Tally())
        await asyncio.to_thread(cluster.stop, "T01V01")

        cluster.trees["T01V01"] = new.import_path
        await asyncio.to_thread(cluster.start, "T01V01")
        assert await _version(village.url) == new.version
        before = (await client.digests())[errand_id]
        await asyncio.to_thread(cluster.stop, "T01V01")

        cluster.trees["T01V01"] = old.import_path
        if _head(old.tree) == code_head():
            # Same schema: the previous release opens the store this one wrote, errand intact.
            await asyncio.to_thread(cluster.start, "T01V01")
            assert await _version(village.url) == old.version
            assert (await client.digests())[errand_id] == before
            return
        with pytest.raises(RuntimeError, match="exited"):
            await asyncio.to_thread(cluster.start, "T01V01")
        log = village.log.read_text(encoding="utf-8")
        assert f"this store was migrated by sanji {new.version}" in log
        assert f"this is sanji {old.version}" in log
        if _numbers(old.version) >= (0, 4, 0):  # 0.3.0 lost its hint in a traceback; `serve` says it since 0.4.0
            assert f"Install sanji {new.version} or later" in log
    finally:
        await client.close()
        await asyncio.to_thread(cluster.stop)
