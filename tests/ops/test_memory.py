"""sanji.memory gives freed heap back on glibc and does nothing elsewhere; links share one CA store."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sanji import memory
from sanji.config import load_settings
from sanji.context import NodeContext
from sanji.demo.cluster import Cluster
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.store import Store, open_database
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import HttpTransport, LocalTransport, tls_for
from sanji.tiers import desk
from sanji.web.app import NodeRuntime
from tests.conftest import CALENDAR, CATALOGUE

GLIBC = sys.platform.startswith("linux") and (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")

# Small blocks come from malloc's heap; one in a hundred is kept, so the freed ones lie between live
# ones and glibc cannot shrink the heap from its top: only malloc_trim hands those pages back.
SCATTERED = """
import sys
from sanji import memory

def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))

blocks = [bytearray(2000) for _ in range(40_000)]
kept = blocks[::100]
del blocks
before = rss_kb()
trimmed = memory.trim()
print(trimmed, before - rss_kb(), len(kept))
"""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_trim_hands_scattered_free_pages_back_on_glibc() -> None:
    out = subprocess.run([sys.executable, "-c", SCATTERED], capture_output=True, text=True, check=True, timeout=60)
    trimmed, released_kb, _ = out.stdout.split()
    assert trimmed == "True"
    assert int(released_kb) > 40_000  # most of the ≈ 79 MB freed between the kept blocks


# Run in a fresh interpreter: what it freezes would otherwise outlive this test in the test process.
SETTLED = """
import gc, weakref
from sanji import memory

class Node:
    pass

garbage = Node()
garbage.me = garbage  # a cycle only the collector frees
dead = weakref.ref(garbage)
del garbage
kept = [[] for _ in range(10_000)]
frozen = memory.settle_heap()
later = []
walked = {id(o) for o in gc.get_objects()}
print(dead() is None, frozen >= len(kept), id(kept[0]) in walked, id(later) in walked)
"""


def test_settling_the_heap_frees_cycles_first_then_leaves_start_up_out_of_every_collection() -> None:
    out = subprocess.run([sys.executable, "-c", SETTLED], capture_output=True, text=True, check=True, timeout=60)
    freed_first, counted, start_up_walked, later_walked = out.stdout.split()
    assert freed_first == "True"  # start-up's garbage was collected, not frozen
    assert counted == "True"
    assert start_up_walked == "False"  # a full collection no longer walks what start-up left alive
    assert later_walked == "True"  # what the node makes afterwards is collected as before


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_arenas_are_limited_on_glibc_unless_the_operator_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert memory.available()
    assert memory.limit_arenas(8)  # the allocator's own default for this machine's cores is at least 8
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert not memory.limit_arenas(8)


@pytest.mark.skipif(GLIBC, reason="only elsewhere")
def test_elsewhere_nothing_is_done() -> None:  # pragma: no cover - run on musl or another system
    assert not memory.available()
    assert not memory.trim()
    assert not memory.limit_arenas()


async def test_https_links_share_one_ca_store_and_plain_links_load_none() -> None:
    verifying = tls_for("https://county.example:8443")
    assert verifying is tls_for("HTTPS://another.example")
    assert verifying.cert_store_stats()["x509_ca"] > 0  # the CA store httpx would load (SSL_CERT_FILE honoured)
    plain = tls_for("http://127.0.0.1:8100")
    assert plain.cert_store_stats()["x509_ca"] == 0  # trusts nobody: a plain link that met TLS would fail
    links = [HttpTransport("https://county.example:8443"), HttpTransport("http://127.0.0.1:8100")]
    for link in links:
        await link.close()


class _SlowHeap:
    """The real ``memory.trim``, after a pause standing in for a long walk of a large heap; notes its thread."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.threads: list[int] = []
        self.finished: list[float] = []

    def __call__(self) -> bool:
        self.threads.append(threading.get_ident())
        time.sleep(self.pause)  # blocking, as malloc_trim is
        done = memory.trim()
        self.finished.append(time.monotonic())
        return done


async def test_a_trim_runs_in_a_worker_thread_and_the_event_loop_keeps_running() -> None:
    heap = _SlowHeap(pause=1.0)
    trimmer = memory.BackgroundTrim(heap)
    trimmer.request()  # returns at once: the walk is the executor's
    for _ in range(5):  # the loop keeps ticking meanwhile (on the loop the first tick would wait a second)
        await asyncio.sleep(0.01)
    ticked = time.monotonic()
    assert trimmer.trims == 0
    await trimmer.wait()
    assert trimmer.trims == 1 and heap.finished[0] > ticked
    assert heap.threads and heap.threads[0] != threading.get_ident()


async def test_requests_during_a_trim_fold_into_one_more() -> None:
    heap = _SlowHeap(pause=0.3)
    trimmer = memory.BackgroundTrim(heap)
    for _ in range(4):  # a burst of exchanges
        trimmer.request()
        await asyncio.sleep(0)
    await trimmer.close()
    assert trimmer.trims == 2 and len(heap.threads) == 2


async def test_a_node_trims_off_the_loop_after_an_exchange_that_moved_work_only(tmp_path: Path) -> None:
    """Real stores and a real exchange: the village's report goes to its runtime's observer, as the driver's does."""
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1)
    settings = {n: load_settings(cluster.nodes[n].config) for n in ("T01", "T01V01")}
    dbs = {n: await open_database(s.db_url) for n, s in settings.items()}
    try:
        stores = {}
        for node, db in dbs.items():
            stores[node] = Store(db, node_id=node, key=cluster.layout.keys[node], directory=cluster.layout.directory)
            await stores[node].start()
        context = NodeContext(stores["T01V01"], CALENDAR)
        context.catalogue = CATALOGUE
        service = ErrandService(stores["T01V01"], context)
        errand = (await service.register(RegisterForm(matter="MZ-001", applicant_name="村民", actor="李代办"))).errand
        await service.act(errand, ActionForm(kind="submit", actor="李代办"))
        runtime = NodeRuntime(settings["T01V01"], desk("village"))
        link = LocalTransport(SyncServer(stores["T01"]))
        moved = await sync_once(stores["T01V01"], link)
        assert moved.pushed
        runtime._trim_after_work(moved, None)
        await runtime.trimmer.wait()
        assert runtime.trimmer.trims == 1
        idle = await sync_once(stores["T01V01"], link)
        while idle.pushed or idle.pulled:  # the township's answers, then nothing more to move
            idle = await sync_once(stores["T01V01"], link)
        runtime._trim_after_work(idle, None)
        runtime._trim_after_work(None, RuntimeError("the link is down"))
        await runtime.trimmer.close()
        assert runtime.trimmer.trims == 1  # an idle or failed exchange does not walk the heap
    finally:
        for db in dbs.values():
            await db.dispose()


# The app as `sanji county serve` builds it, started in a fresh interpreter (its freeze stays there).
SERVED = """
import gc, sys
from litestar.testing import TestClient
from sanji.cli.serve import served_app
from sanji.config import load_settings

before = gc.get_freeze_count()
with TestClient(served_app(load_settings(sys.argv[1]))) as client:
    started = gc.get_freeze_count()
    healthy = client.get("/healthz").status_code
print("settled:", before, started > 10_000, healthy)
"""


def test_a_served_node_leaves_start_up_out_of_garbage_collection_once_started(tmp_path: Path) -> None:
    cluster = Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1)
    config = str(cluster.nodes["C"].config)
    out = subprocess.run(
        [sys.executable, "-c", SERVED, config], capture_output=True, text=True, check=True, timeout=120
    )
    said = [line for line in out.stdout.splitlines() if line.startswith("settled:")]  # the node prints more
    _, before, settled, healthy = said[-1].split()
    assert (before, settled, healthy) == ("0", "True", "200")
