"""Real processes on loopback: a captured sync request is refused at the township and at the county.

The county and the township run as processes, enrolled by token; the village's requests are
signed here with the village's own key file, byte for byte as its driver signs them, and
"captured": sent once (accepted), then sent again unchanged, later, or to another node.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from protocol.session import CursorsRequest, PullRequest, PushRequest
from sanji.client import NodeClient
from sanji.demo.cluster import Cluster
from tests.hardening.hard_kit import PatientCluster, events, send, send_fresh, signed_post

pytestmark = [pytest.mark.processes, pytest.mark.timeout(900)]  # enrolling three processes is slow on a busy machine


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = PatientCluster.prepare(
        tmp_path_factory.mktemp("fresh") / "county",
        towns=1,
        villages_per_town=1,
        interval=0.3,
        enroll=True,
        open_demo=True,
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_a_replayed_pull_is_refused_at_the_township_and_elsewhere(county: Cluster) -> None:
    pull, first = send_fresh(county, "T01V01", "T01", "/sync/v1/pull", PullRequest(sender="T01V01", at=0, cursors=()))
    assert first.status_code == 200
    time.sleep(1.0)  # the running village keeps syncing meanwhile
    replay = send(pull)
    assert replay.status_code == 401 and replay.json()["error"] == "stale_request"
    # The same captured bytes sent to the county: addressed to the township, refused there too.
    moved = send(pull, to="C", cluster=county)
    assert moved.status_code == 401 and moved.json()["error"] == "wrong_recipient"


def test_a_replayed_pull_is_refused_at_the_county(county: Cluster) -> None:
    pull, first = send_fresh(county, "T01V01", "C", "/sync/v1/pull", PullRequest(sender="T01V01", at=0, cursors=()))
    assert first.status_code == 200  # the county serves its whole subtree (a fallback link)
    replay = send(pull)
    assert replay.status_code == 401 and replay.json()["error"] == "stale_request"
    town, first = send_fresh(county, "T01", "C", "/sync/v1/pull", PullRequest(sender="T01", at=0, cursors=()))
    assert first.status_code == 200
    assert send(town).json()["error"] == "stale_request"


def test_a_replayed_cursors_request_takes_no_lease_and_raises_no_false_alarm(county: Cluster) -> None:
    time.sleep(1.0)
    before = len(events(county, "T01", "stale_lease"))
    with sqlite3.connect(county.nodes["T01V01"].config.parent / "node.db") as conn:  # as the driver sends it
        (instance,) = conn.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()
    cursors = signed_post(
        county, "T01V01", "T01", "/sync/v1/cursors", CursorsRequest(sender="T01V01", instance=instance)
    )
    captured = cursors.content, dict(cursors.headers)
    # The capture is replayed after the village has synced on: refused before any lease is handed out.
    time.sleep(1.0)
    for _ in range(5):
        answer = send(cursors)
        assert answer.status_code == 401 and answer.json()["error"] == "stale_request", answer.text
    assert (cursors.content, dict(cursors.headers)) == captured
    time.sleep(1.5)
    assert len(events(county, "T01", "stale_lease")) == before
    # At most one event row about the refused replays, however many there were.
    assert len(events(county, "T01", "stale_request")) <= 2


def test_deeply_nested_bodies_get_a_clear_4xx_on_every_sync_endpoint(county: Cluster) -> None:
    nested = b"\x81\xa1x" + b"\x91" * 3000 + b"\xc0"  # 3 KB, 3000 deep, under a key nobody reads
    for path in ("/sync/v1/cursors", "/sync/v1/push", "/sync/v1/pull", "/sync/v1/blob/put", "/sync/v1/blob/get",
                 "/sync/v1/enroll"):  # fmt: skip
        unsigned = httpx.post(
            county.nodes["T01"].url + path, content=nested, headers={"content-type": "application/msgpack"}
        )
        assert 400 <= unsigned.status_code < 500, (path, unsigned.status_code, unsigned.text)
        if path != "/sync/v1/enroll":
            _, signed = send_fresh(county, "T01V01", "T01", path, nested)
            assert signed.status_code == 400 and signed.json()["error"] == "malformed_batch", (path, signed.text)
    log = (county.nodes["T01"].config.parent / "node.log").read_text(encoding="utf-8", errors="replace")
    assert "RecursionError" not in log and "Traceback" not in log


def test_hundreds_of_refused_frames_write_a_bounded_number_of_rows(county: Cluster) -> None:
    before = len(events(county, "T01"))
    junk = tuple(b"SJB\x01" + bytes([i % 256]) * 80 for i in range(502))
    _, answer = send_fresh(county, "T01V01", "T01", "/sync/v1/push", PushRequest(sender="T01V01", at=0, frames=junk))
    assert answer.status_code == 200
    results = msgspec.msgpack.decode(answer.content)["results"]
    assert len(results) == 502 and all(r["status"] == "refused" for r in results)
    time.sleep(0.5)
    added = events(county, "T01")[before:]
    refused = [e for e in added if e["kind"] in ("refused", "refused_more")]
    assert len(refused) <= 4
    assert sum(int(e["detail"].get("count", 1)) for e in refused) == 502  # type: ignore[union-attr]


def test_the_real_village_goes_on_syncing_through_all_of_it(county: Cluster) -> None:
    async def run() -> None:
        village, hub = NodeClient(county.nodes["T01V01"].url), NodeClient(county.nodes["C"].url)
        try:
            made = await village.register(matter="MZ-001", applicant_name="王五", actor="代办员")
            errand = made["errand"]
            await village.act(errand, kind="submit", actor="代办员")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if errand in await hub.digests():
                    return
                await asyncio.sleep(0.3)
            raise AssertionError("the village's errand did not reach the county")
        finally:
            await village.close()
            await hub.close()

    asyncio.run(run())
