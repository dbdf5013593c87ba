"""Archived attachments fetched back (issue 16): the archive tests' real SQLite tree (C, T01, T01V01), the
township's own sync endpoints served over real HTTP on loopback, the village asking over its signed requests.

Stand-ins only where a real node cannot misbehave on purpose: a parent that answers altered or short bytes,
or hangs (``Parent`` of the link-failure tests, answering what the test scripts).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import msgspec
import pytest
import uvicorn
from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException
from sqlalchemy import select, update

from protocol.archive import DAY_S
from protocol.errors import SanjiError
from protocol.session import BlobGet, BlobGetReply
from sanji.cli.main import main
from sanji.context import NodeContext
from sanji.store import Store
from sanji.store import schema as t
from sanji.sync.driver import sync_once
from sanji.sync.fetch_back import MAX_FETCHES, STILL_FETCHING_S, ArchivedElsewhere, FetchBack, Links
from sanji.sync.requests_auth import RequestSigner
from sanji.sync.server import SyncServer
from sanji.sync.transport import HttpTransport, Transport
from sanji.web.errors import http_error_handler, sanji_error_handler
from sanji.web.sync_routes import SyncController
from tests.conftest import CALENDAR
from tests.network.test_link_failures import Parent
from tests.store import test_archive as archive_kit
from tests.store.test_archive import T, Tree, V, _snapshot

LATER = time.time() + 91 * DAY_S
tree = archive_kit.tree  # the archive tests' fixture: C, T01 and T01V01, three errands, their scans


@asynccontextmanager
async def serving_sync(store: Store) -> AsyncIterator[str]:
    """``store``'s node answering ``/sync/v1/*`` (the real controller, admission and all) on a loopback port."""
    server = SyncServer(store)
    app = Litestar(
        route_handlers=[SyncController],
        dependencies={"sync": Provide(lambda: server, sync_to_thread=False)},
        exception_handlers={SanjiError: sanji_error_handler, HTTPException: http_error_handler},
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    http = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws="none"))
    task = asyncio.create_task(http.serve(sockets=[sock]))
    try:
        for _ in range(1500):  # uvicorn says it started by a flag, not an event
            if http.started:
                break
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        http.should_exit = True
        await task
        sock.close()


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed again: nobody listens there


def links(*urls: str, timeout: float = 5.0) -> tuple[Links, list[int]]:
    """The links a fetch tries, and how often it asked for them (once per fetch)."""
    asked: list[int] = []

    async def make() -> Sequence[Transport]:
        asked.append(1)
        return [HttpTransport(url, timeout=timeout) for url in urls]

    return make, asked


async def archived(tree: Tree) -> str:
    """The closed errand's attachment, archived at the village (the township holds it whole)."""
    closed = tree.blobs["closed"]
    done = await tree.stores[V].archive_blobs(after_days=90, now=LATER)
    assert [c.hash for c in done.archived] == [closed]
    return closed


async def test_opening_an_archived_attachment_fetches_it_back_whole(tree: Tree) -> None:
    village, closed = tree.stores[V], await archived(tree)
    _, _, original = await tree.stores[T].blob_read(closed, 0, 1 << 20)
    async with serving_sync(tree.stores[T]) as township:
        make, asked = links(township)
        fetch = FetchBack(village, make, max_bytes=1 << 20)
        # Three desks open it at once: one fetch, all three get the bytes.
        got = await asyncio.gather(*(fetch.open(closed) for _ in range(3)))
        assert got == [original] * 3 and len(asked) == 1
        assert hashlib.sha256(original).hexdigest() == closed and len(original) == 50_000
        assert await village.archived_blob(closed) is None  # held again: the mark is gone
        assert await village.blob_read(closed, 0, 1 << 20) == (50_000, 50_000, original)
        assert await fetch.open(closed) is None and len(asked) == 1  # not archived any more: nothing to fetch
        # Held again, it stays after_days from when it came back (as if it came back on day 90: kept on day 91)...
        async with village.db.write() as conn:
            await conn.execute(update(t.blobs).where(t.blobs.c.hash == closed).values(updated_at=LATER - DAY_S))
        assert (await village.archive_plan(after_days=90, now=LATER)).kept["held_recently"] == [closed]
        async with village.db.write() as conn:
            await conn.execute(update(t.blobs).where(t.blobs.c.hash == closed).values(updated_at=time.time()))
        # ... and may then be archived again (the township's acknowledgement still stands).
        assert [c.hash for c in (await village.archive_blobs(after_days=90, now=LATER)).archived] == [closed]
        # A dark township: the village goes round it to the next ancestor it knows, as its sync does.
        make, _ = links(dead_url(), township)
        assert await FetchBack(village, make, max_bytes=1 << 20).open(closed) == original
    # Larger than this node takes: not fetched at all, and the refusal says where it is held.
    assert [c.hash for c in (await village.archive_blobs(after_days=90, now=LATER)).archived] == [closed]
    with pytest.raises(SanjiError, match=f"held at {T}"):
        await FetchBack(village, links(dead_url())[0], max_bytes=1000).open(closed)


async def test_a_dark_parent_leaves_it_archived_and_says_so(tree: Tree) -> None:
    village, closed = tree.stores[V], await archived(tree)
    before = await _snapshot(village)
    make, _ = links(dead_url())
    with pytest.raises(ArchivedElsewhere, match=f"held at {T}") as away:
        await FetchBack(village, make, max_bytes=1 << 20).open(closed)
    assert away.value.retryable and away.value.retry_after > 0
    assert await _snapshot(village) == before  # mark, hash and size as they were: nothing lost, nothing half-kept
    # A parent that accepts the connection and never answers: the fetch gives up within its timeout.
    hanging = await Parent(lambda _c, _r: "hang").start()
    try:
        make, _ = links(hanging.url, timeout=30.0)
        started = time.monotonic()
        with pytest.raises(ArchivedElsewhere, match="within 1 s"):
            await FetchBack(village, make, max_bytes=1 << 20, timeout=5.0, limit=1.0).open(closed)
        assert time.monotonic() - started < 4
    finally:
        await hanging.stop()
    assert await _snapshot(village) == before


class Tampering(Parent):
    """A parent answering the attachment's chunks altered (``flip``) or cut short (``short``)."""

    def __init__(self, original: bytes, how: str) -> None:
        super().__init__()
        self.original = original
        self.how = how

    def answer(self, path: str, body: bytes) -> msgspec.Struct:
        if not path.endswith("/blob/get"):
            return super().answer(path, body)
        asked = msgspec.msgpack.decode(body, type=BlobGet)
        data = self.original[asked.offset : asked.offset + asked.max_bytes]
        size = len(self.original)
        if self.how == "flip" and asked.offset == 0:
            data = bytes([data[0] ^ 1]) + data[1:]
        if self.how == "short":
            size, data = size - 10, data[: max(0, size - 10 - asked.offset)]
        if self.how == "long" and asked.offset + len(data) == size:
            data += b"more"
        return BlobGetReply(size=size, offset=asked.offset, data=data, available=size)


@pytest.mark.parametrize("how", ["flip", "short", "long"])
async def test_wrong_bytes_from_a_parent_are_refused_and_nothing_is_kept(tree: Tree, how: str) -> None:
    village, closed = tree.stores[V], await archived(tree)
    _, _, original = await tree.stores[T].blob_read(closed, 0, 1 << 20)
    before = await _snapshot(village)
    liar = await Tampering(original, how).start()
    try:
        make, _ = links(liar.url)
        with pytest.raises(ArchivedElsewhere) as away:
            await FetchBack(village, make, max_bytes=1 << 20).open(closed)
        assert liar.paths.count("/sync/v1/blob/get") >= 1
    finally:
        await liar.stop()
    assert await _snapshot(village) == before
    # Logged, as any altered input is; what is shown names the node asked, never its address.
    assert f"{T}: refused its answer" in away.value.message and "127.0.0.1" not in away.value.message
    async with village.db.reader.connect() as conn:
        rows = (await conn.execute(select(t.events.c.kind, t.events.c.detail))).all()
    said = [str(detail) for kind, detail in rows if kind == "attachment_refused"]
    assert len(said) == 1 and closed in said[0]
    if how == "flip":
        assert "does not hash" in said[0]
    # The store checks again under its write lock: bytes that are not the attachment never land.
    with pytest.raises(SanjiError):
        await village.restore_archived(closed, original[:-1] + b"x")
    assert await _snapshot(village) == before


async def test_restore_fetches_back_everything_before_a_laptop_goes_offline(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    village = tree.stores[V]
    await tree.sync()  # the township acknowledges the attachment it had not: both closed errands' go
    done = await village.archive_blobs(after_days=90, now=LATER)
    gone = sorted(c.hash for c in done.archived)
    assert gone == sorted([tree.blobs["closed"], tree.blobs["unacked"]])
    config = tree.workdir / V / "node.toml"

    def write_config(parent: str, *, port: int | None = None) -> None:
        # The village's own port: nobody answers there (the node is not running) unless the test says.
        port = port or int(dead_url().rsplit(":", 1)[1])
        config.write_text(
            f'[node]\nid = "{V}"\nrole = "village"\nkey_file = "node.key"\ndirectory = "../directory.json"\n'
            f'db = "sqlite:///{tree.workdir / V}.db"\nhost = "127.0.0.1"\nport = {port}\n\n'
            f'[parent]\nurl = "{parent}"\n',
            encoding="utf-8",
        )

    def restore(*args: str) -> int:
        return main(["archive", "--config", str(config), "--restore", *args])

    write_config(dead_url())  # the township is dark: nothing comes back, and the command says so
    assert await asyncio.to_thread(restore, "--all") == 1
    said = capsys.readouterr().out
    assert said.index("已取回 0 个附件，共 0 字节；2 个仍在归档中") < said.index(
        "restored 0 attachment(s), 0 bytes; 2 still"
    )
    for digest in gone:  # why each stayed archived, Chinese first
        line = next(line for line in said.splitlines() if line.startswith(f"未取回 {digest[:16]}"))
        assert "字节：附件已归档，暂时无法从上级节点取回 not restored: " in line, line
    assert await asyncio.to_thread(restore) == 2  # which ones: --errand ID or --all
    capsys.readouterr()
    # An errand not held here is an error, not "restored 0".
    assert await asyncio.to_thread(restore, "--errand", "E-nosuch") == 2
    out, err = capsys.readouterr()
    assert "no errand 'E-nosuch' is held at T01V01" in err and "restored" not in out
    async with serving_sync(tree.stores[T]) as township:
        # The node itself answers on its port: its signed requests and the command's would race; refused.
        write_config(township, port=int(township.rsplit(":", 1)[1]))
        assert await asyncio.to_thread(restore, "--all") == 2
        out, err = capsys.readouterr()
        assert f"节点 {V} 正在运行" in err and f"Node {V} is running" in err and "restored" not in out
        assert "/api/archive/restore" in err and "-d '{}'" in err  # how to ask the node itself
        assert await village.archived_blob(tree.blobs["closed"]) is not None
        write_config(township)
        # By receipt number, as `sanji errand` takes it.
        receipt = str(((await village.errand(tree.errands["closed"])) or {})["receipt"])
        assert await asyncio.to_thread(restore, "--errand", receipt, "--json") == 0
        shown = json.loads(capsys.readouterr().out)
        assert [r["hash"] for r in shown["restored"]] == [tree.blobs["closed"]] and shown["not_restored"] == []
        assert await asyncio.to_thread(restore, "--all") == 0
        out = capsys.readouterr().out
        assert f"已取回 {tree.blobs['unacked'][:16]}" in out and "restored 1 attachment(s), 50000 bytes" in out
    for digest in gone:
        assert await village.archived_blob(digest) is None
        size, held, data = await village.blob_read(digest, 0, 1 << 20)
        assert (size, held) == (50_000, 50_000) and hashlib.sha256(data).hexdigest() == digest
    assert await asyncio.to_thread(restore, "--all") == 0  # nothing archived: nothing to do
    assert "restored 0 attachment(s)" in capsys.readouterr().out


class SlowPush:
    """A loopback link to ``upstream`` on which a push crawls (``delay`` s before its bytes go on): a big
    push on a slow line. ``pushing`` is set once a push is on its way. ``slow``: which requests crawl."""

    def __init__(self, upstream: str, delay: float, slow: bytes = b"POST /sync/v1/push") -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.delay = delay
        self.slow = slow
        self.pushing = asyncio.Event()
        self._listener: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._listener = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._listener.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        assert self._listener is not None
        self._listener.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._listener.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool) -> None:
        try:
            while chunk := await reader.read(1 << 16):
                if up and chunk.startswith(self.slow):
                    self.pushing.set()
                    await asyncio.sleep(self.delay)
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer, up=True)),
            asyncio.create_task(self._pipe(up_reader, writer, up=False)),
        ]
        self._pipes.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self._pipes.difference_update(pipes)


async def test_a_fetch_back_during_a_sync_session_takes_turns_and_nothing_is_refused(tree: Tree) -> None:
    """The parent takes a node's counter only above the last it accepted, once the body has come: a
    blob/get signed while a slow push is still crossing must wait for the push's answer, or it lands
    first and the push is refused as stale."""
    village, township, closed = tree.stores[V], tree.stores[T], await archived(tree)
    await archive_kit._register(tree.desks[V], random.Random(7), b"new scan" * 100)  # something to push
    signer = RequestSigner(V, village)  # the node's one signer, as NodeRuntime makes it
    async with serving_sync(township) as direct:
        slow = SlowPush(direct, delay=1.0)
        link = HttpTransport(await slow.start(), timeout=10.0)
        try:
            session = asyncio.create_task(sync_once(village, link, signer=signer))
            await asyncio.wait_for(slow.pushing.wait(), 10)  # the push is signed and on its way
            make, _ = links(direct)
            fetch = FetchBack(village, make, max_bytes=1 << 20, signer=signer)
            got, report = await asyncio.gather(fetch.open(closed), session)
        finally:
            await link.close()
            await slow.stop()
    assert got is not None and hashlib.sha256(got).hexdigest() == closed
    assert report.pushed >= 1 and link.retries == 0
    async with township.db.reader.connect() as conn:
        refused = (
            await conn.execute(select(t.sync_counters.c.refused).where(t.sync_counters.c.child == V))
        ).scalar_one()
        kinds = (await conn.execute(select(t.events.c.kind))).scalars().all()
    assert refused == 0 and "stale_request" not in kinds  # every request taken at its first sending


async def test_closing_stops_a_fetch_in_flight_and_keeps_nothing(tree: Tree) -> None:
    """At shutdown the node closes its fetch back before its database: a fetch waiting on a hanging
    parent stops then, nothing of it is written, and no new one starts."""
    village, closed = tree.stores[V], await archived(tree)
    before = await _snapshot(village)
    hanging = await Parent(lambda _c, _r: "hang").start()
    try:
        make, _ = links(hanging.url, timeout=30.0)
        fetch = FetchBack(village, make, max_bytes=1 << 20, timeout=120.0)
        page = asyncio.create_task(fetch.open(closed))
        for _ in range(500):
            if hanging.requests:
                break
            await asyncio.sleep(0.01)
        assert hanging.requests == 1  # asked, and waiting for an answer that never comes
        started = time.monotonic()
        await fetch.close()
        assert time.monotonic() - started < 5
        with pytest.raises(ArchivedElsewhere, match="shutting down"):
            await page  # the page waiting on it is told so (a 503), not cancelled itself
        with pytest.raises(ArchivedElsewhere, match="shutting down"):
            await fetch.open(closed)
    finally:
        await hanging.stop()
    assert await _snapshot(village) == before


async def test_the_timeout_covers_the_wait_for_a_slot(tree: Tree) -> None:
    """Every slot busy (other attachments fetched on a slow link): a page still hears within the timeout."""
    village, closed = tree.stores[V], await archived(tree)
    make, asked = links(dead_url())
    fetch = FetchBack(village, make, max_bytes=1 << 20, timeout=1.0)
    for _ in range(MAX_FETCHES):
        await fetch._slots.acquire()  # as MAX_FETCHES fetches of other attachments hold them
    started = time.monotonic()
    with pytest.raises(ArchivedElsewhere, match="within 1 s") as away:
        await fetch.open(closed)
    assert time.monotonic() - started < 5 and asked == []  # never got as far as a link
    assert away.value.retry_after == STILL_FETCHING_S  # it waits on for a slot: try again shortly
    await fetch.close()
    assert await village.archived_blob(closed) is not None


async def test_a_fetch_goes_on_after_the_page_stops_waiting(tree: Tree) -> None:
    """A slow link: the page hears 503 (try again shortly) while the fetch goes on; the next open waits
    for the same fetch, which keeps the attachment whole."""
    village, closed = tree.stores[V], await archived(tree)
    async with serving_sync(tree.stores[T]) as direct:
        slow = SlowPush(direct, delay=0.6, slow=b"POST /sync/v1/blob/get")  # 50 KB: two chunks, 1.2 s
        make, asked = links(await slow.start())
        fetch = FetchBack(village, make, max_bytes=1 << 20, timeout=0.3)
        try:
            with pytest.raises(ArchivedElsewhere, match="being fetched back") as away:
                await fetch.open(closed)
            assert away.value.retry_after == STILL_FETCHING_S
            assert await village.archived_blob(closed) is not None  # not yet: nothing half-kept
            fetch.timeout = 10.0
            got = await fetch.open(closed)  # the same fetch, not a new one
            assert got is not None and hashlib.sha256(got).hexdigest() == closed and len(asked) == 1
        finally:
            await fetch.close()
            await slow.stop()
    assert await village.archived_blob(closed) is None


async def test_fetching_back_counts_against_the_daily_attachment_budget(tree: Tree) -> None:
    village, closed = tree.stores[V], await archived(tree)
    context = NodeContext(village, CALENDAR)
    day = context.today().isoformat()
    spent = await village.add_traffic("blob", 10_000, day=day)  # with the sync sessions' attachments
    context.daily_blob_budget = spent  # today's attachment bytes are spent
    before = await _snapshot(village)
    async with serving_sync(tree.stores[T]) as township:
        make, _ = links(township)
        with pytest.raises(ArchivedElsewhere, match="budget"):
            await FetchBack(village, make, max_bytes=1 << 20, context=context).open(closed)
        assert await _snapshot(village) == before and (await village.traffic(day))["blob"] == spent
        context.daily_blob_budget = 0  # no limit: it comes back, and what it took is counted
        got = await FetchBack(village, make, max_bytes=1 << 20, context=context).open(closed)
    assert got is not None and (await village.traffic(day))["blob"] == spent + 50_000
