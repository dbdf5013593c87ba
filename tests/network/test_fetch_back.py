"""Archived attachments fetched back (issue 16): the archive tests' real SQLite tree (C, T01, T01V01), the
township's own sync endpoints served over real HTTP on loopback, the village asking over its signed requests.

Stand-ins only where a real node cannot misbehave on purpose: a parent that answers altered or short bytes,
or hangs (``Parent`` of the link-failure tests, answering what the test scripts).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
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
from sanji.store import Store
from sanji.store import schema as t
from sanji.sync.fetch_back import ArchivedElsewhere, FetchBack, Links
from sanji.sync.server import SyncServer
from sanji.sync.transport import HttpTransport, Transport
from sanji.web.errors import http_error_handler, sanji_error_handler
from sanji.web.sync_routes import SyncController
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
            await FetchBack(village, make, max_bytes=1 << 20, timeout=1.0).open(closed)
        assert time.monotonic() - started < 5
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
    if how == "flip":
        assert "does not hash" in away.value.message
        async with village.db.reader.connect() as conn:
            kinds = (await conn.execute(select(t.events.c.kind))).scalars().all()
        assert "attachment_refused" in kinds  # logged, as any altered input is
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

    def write_config(parent: str) -> None:
        config.write_text(
            f'[node]\nid = "{V}"\nrole = "village"\nkey_file = "node.key"\ndirectory = "../directory.json"\n'
            f'db = "sqlite:///{tree.workdir / V}.db"\n\n[parent]\nurl = "{parent}"\n',
            encoding="utf-8",
        )

    def restore(*args: str) -> int:
        return main(["archive", "--config", str(config), "--restore", *args])

    write_config(dead_url())  # the township is dark: nothing comes back, and the command says so
    assert await asyncio.to_thread(restore, "--all") == 1
    assert "restored 0 attachment(s), 0 bytes; 2 still archived" in capsys.readouterr().out
    assert await asyncio.to_thread(restore) == 2  # which ones: --errand ID or --all
    capsys.readouterr()
    async with serving_sync(tree.stores[T]) as township:
        write_config(township)
        assert await asyncio.to_thread(restore, "--errand", tree.errands["closed"], "--json") == 0
        shown = json.loads(capsys.readouterr().out)
        assert [r["hash"] for r in shown["restored"]] == [tree.blobs["closed"]] and shown["not_restored"] == []
        assert await asyncio.to_thread(restore, "--all") == 0
        out = capsys.readouterr().out
        assert f"restored {tree.blobs['unacked'][:16]}" in out and "restored 1 attachment(s), 50000 bytes" in out
    for digest in gone:
        assert await village.archived_blob(digest) is None
        size, held, data = await village.blob_read(digest, 0, 1 << 20)
        assert (size, held) == (50_000, 50_000) and hashlib.sha256(data).hexdigest() == digest
    assert await asyncio.to_thread(restore, "--all") == 0  # nothing archived: nothing to do
    assert "restored 0 attachment(s)" in capsys.readouterr().out
