"""Two county hub processes on one PostgreSQL database, as a load balancer would run them (issue 15).

Each township talks to its own hub process and falls back to the other; county desks act at both hubs on
the same errands at once, so both processes seal the county's streams and apply pushes concurrently. One
hub is killed mid-run and its township goes round it to the other. Nothing may be applied twice, lost,
forked or quarantined, and every errand ends delivered with the same digest at every node on its path.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from sanji.client import NodeClient
from sanji.demo.cluster import Cluster, NodeProcess, free_port
from sanji.demo.staff import Desk, Tally, check_convergence, register_errands, work_desk
from sanji.parent_watch import launcher_env

pytestmark = pytest.mark.processes

ERRANDS_PER_VILLAGE = 6


def _second_hub(cluster: Cluster, port: int) -> NodeProcess:
    """Hub B: the county's own key and configuration, another port, the same database."""
    first = cluster.nodes["C"]
    home = cluster.workdir / "C-b"
    home.mkdir()
    for key in first.config.parent.glob("node*.key"):
        shutil.copy2(key, home / key.name)
    text = re.sub(r"(?m)^port = \d+$", f"port = {port}", first.config.read_text(encoding="utf-8"))
    config = home / "node.toml"
    config.write_text(text, encoding="utf-8")
    return NodeProcess(id="C", role="county", config=config, port=port, log=home / "node.log")


def _spawn(cluster: Cluster, node: NodeProcess) -> None:
    cmd = [sys.executable, "-m", "sanji.cli.main", "county", "serve", "--config", str(node.config)]
    cmd += ["--log-level", "warning", "--db", str(cluster.county_db)]
    with node.log.open("ab") as log:
        node.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**launcher_env()}
        )


def _point_at(cluster: Cluster, town: str, primary: int, fallback: int) -> None:
    config = cluster.nodes[town].config
    text = config.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^url = "http://127\.0\.0\.1:\d+"$', f'url = "http://127.0.0.1:{primary}"', text)
    text = text.replace("[parent]\n", "[parent]\n" + f'fallback_urls = ["http://127.0.0.1:{fallback}"]\n', 1)
    config.write_text(text, encoding="utf-8")


@pytest.fixture
async def two_hubs(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[Cluster, NodeProcess, dict[str, Desk]]]:
    cluster = Cluster.prepare(
        tmp_path / "county",
        towns=2,
        villages_per_town=1,
        interval=0.3,
        max_backoff=1.0,
        county_db=pg_url,
        open_demo=True,
    )
    hub_a = cluster.nodes["C"]
    hub_b = _second_hub(cluster, free_port())
    _point_at(cluster, "T01", hub_a.port, hub_b.port)
    _point_at(cluster, "T02", hub_b.port, hub_a.port)
    await asyncio.to_thread(cluster.start, "C")
    _spawn(cluster, hub_b)
    await asyncio.to_thread(_wait_answers, hub_b)
    await asyncio.to_thread(cluster.start)
    desks = {n.id: Desk(n.id, n.role, NodeClient(n.url)) for n in cluster.nodes.values()}
    desks["C-b"] = Desk("C", "county", NodeClient(hub_b.url))
    try:
        yield cluster, hub_b, desks
    finally:
        for desk in desks.values():
            await desk.client.close()
        if hub_b.proc is not None and hub_b.proc.poll() is None:
            hub_b.proc.terminate()
            hub_b.proc.wait(timeout=30)
        await asyncio.to_thread(cluster.stop)


def _wait_answers(node: NodeProcess, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.proc is not None and node.proc.poll() is not None:
            raise RuntimeError(f"hub B exited with {node.proc.returncode}; see {node.log}")
        try:
            if httpx.get(node.url + "/api/node", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"hub B did not answer within {timeout}s; see {node.log}")


async def test_two_hub_processes_on_one_database_lose_and_double_nothing(
    two_hubs: tuple[Cluster, NodeProcess, dict[str, Desk]], pg_url: str
) -> None:
    cluster, hub_b, desks = two_hubs
    rng = random.Random(15)
    tally = Tally()
    villages = [desks["T01V01"], desks["T02V01"]]
    ids = await register_errands(villages, 2 * ERRANDS_PER_VILLAGE, rng, tally)
    for errand_id in ids:
        village = desks[errand_id.rsplit("-", 1)[0]]
        await village.client.act(errand_id, kind="submit", actor="代办员")
    everyone = list(desks.values())
    # Both hubs' desks work the same errands at once; halfway, hub A dies and T01 goes round it to hub B.
    killed = restarted = False
    deadline = time.monotonic() + 240
    check = None
    county_view: dict[str, str] = {}
    while time.monotonic() < deadline:
        # While hub A is dark no county desk acts, so whatever changes at the county came up from a township.
        live = [d for d in everyone if not (killed and not restarted and d.node_id == "C")]
        steps = sum(await asyncio.gather(*(work_desk(d, rng, tally) for d in live)))
        if not killed and tally.actions >= 20:
            cluster.kill("C")
            killed = True
            county_view = await desks["C-b"].client.digests()
        if killed and not restarted:
            # Hub A stays dark until T01's work reaches the county through hub B: the fallback carries it.
            now = await desks["C-b"].client.digests()
            if any(now.get(e) != county_view.get(e) for e in ids if e.startswith("T01V01-")):
                await asyncio.to_thread(cluster.start, "C")
                restarted = True
        if restarted:
            check = await check_convergence([d for n, d in desks.items() if n != "C-b"], cluster.layout.directory)
            closed = (await desks["C-b"].client.errands(stage="closed", limit=1000))["items"]
            if steps == 0 and check.converged and check.errands == len(ids) and len(closed) == len(ids):
                break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"no convergence within 240 s (killed={killed}, restarted={restarted}): {check}")

    # The two hub processes read the same rows: the same digests, and nothing held twice or forked.
    assert await desks["C"].client.digests() == await desks["C-b"].client.digests()
    conn = await asyncpg.connect(pg_url)
    try:
        # Every stream's cursor stands at its last batch with no gap below it: no batch lost or numbered twice.
        gaps = await conn.fetch(
            "SELECT s.origin, s.scope, s.seq, (SELECT count(*) FROM batches b WHERE b.origin = s.origin"
            " AND b.scope = s.scope) AS held FROM streams s"
        )
        delivered_twice = await conn.fetchval(
            "SELECT count(*) FROM (SELECT errand FROM actions WHERE kind = 'deliver' AND status = 'applied'"
            " GROUP BY errand HAVING count(*) > 1) d"
        )
        quarantined = await conn.fetch("SELECT origin, scope, seq, reason FROM quarantine")
    finally:
        await conn.close()
    assert [dict(r) for r in gaps if r["seq"] != r["held"]] == []
    assert len(gaps) >= 4  # the villages', townships' and the county's streams towards them
    assert delivered_twice == 0
    assert [dict(r) for r in quarantined] == []
    # Each hub process served the exchanges that reached it, and says how long they took (/metrics).
    async with httpx.AsyncClient(timeout=10) as client:
        served = (await client.get(hub_b.url + "/metrics")).text
    for endpoint in ("cursors", "push"):
        found = re.search(rf'^sanji_sync_served_seconds_count{{endpoint="{endpoint}"}} (\S+)$', served, re.MULTILINE)
        assert found and float(found.group(1)) > 0, f"hub B served no {endpoint} request"
    for log in (cluster.nodes["C"].log, hub_b.log):
        assert "Traceback" not in log.read_text(encoding="utf-8", errors="replace"), log
