"""Archiving attachments off a village (issue 16): real SQLite files for C, T01 and T01V01, staff steps through
``ErrandService``, ``sync_once`` between them, the attachments' bytes travelling up as they do in service."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.corpus import TITLES, Desk, next_form, pick_matter
from protocol.archive import DAY_S
from protocol.stages import ANSWERED, REGISTERED
from protocol.topology import COUNTY, TOWN, VILLAGE
from sanji.archive_duty import ArchiveSchedule
from sanji.catalogue import default_catalogue
from sanji.cli.main import main
from sanji.context import NodeContext
from sanji.demo.population import person
from sanji.evidence import verify
from sanji.forms import ActionForm, RegisterForm
from sanji.keys import write_directory, write_key
from sanji.layout import county_layout
from sanji.service import ErrandService
from sanji.store import Database, Store, open_database
from sanji.store import schema as t
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from tests.conftest import CALENDAR

V, T, C = "T01V01", "T01", "C"


@dataclass
class Tree:
    workdir: Path
    stores: dict[str, Store]
    desks: dict[str, Desk]
    blobs: dict[str, str]  # errand label -> attachment hash
    errands: dict[str, str]  # label -> errand id

    async def sync(self) -> None:
        for node, parent in ((V, T), (T, C), (V, T)):
            await sync_once(self.stores[node], LocalTransport(SyncServer(self.stores[parent])))


async def _register(desk: Desk, rng: random.Random, scan: bytes) -> tuple[str, str]:
    who, what = person(rng), pick_matter(rng)
    made = await desk.service.register(
        RegisterForm(
            matter=what.code,
            applicant_name=who.name,
            applicant_id_number=who.id_number,
            applicant_phone=who.phone,
            materials=["身份证复印件", "户口簿复印件", "申请书"],
            summary=f"{who.name}申请{what.name}",
            actor=desk.actor,
        )
    )
    form = ActionForm(kind="attach", actor=desk.actor, name="身份证.jpg", mime="image/jpeg")
    await desk.service.attach(made.errand, form, scan)  # the bytes kept with the step, as a desk's upload
    return made.errand, hashlib.sha256(scan).hexdigest()


@pytest.fixture
async def tree(tmp_path: Path) -> AsyncIterator[Tree]:
    async with grown(tmp_path) as built:
        yield built


@asynccontextmanager
async def grown(tmp_path: Path, urls: Mapping[str, str] | None = None) -> AsyncIterator[Tree]:
    """The tree, each node's database at ``urls[node]`` (a SQLite file in ``tmp_path`` for any not named)."""
    layout = county_layout(1, 1)
    rng = random.Random(16)
    dbs: list[Database] = []
    stores: dict[str, Store] = {}
    desks: dict[str, Desk] = {}
    catalogue = default_catalogue()
    try:
        for node, role in ((C, COUNTY), (T, TOWN), (V, VILLAGE)):
            write_key(tmp_path / node / "node.key", layout.keys[node])
            db = await open_database((urls or {}).get(node) or f"sqlite:///{tmp_path / node}.db")
            dbs.append(db)
            store = Store(db, node_id=node, key=layout.keys[node], directory=layout.directory)
            await store.start()
            stores[node] = store
            context = NodeContext(store, CALENDAR)
            context.catalogue = catalogue
            desks[node] = Desk(node, role, f"{TITLES[role]} 王芳", ErrandService(store, context))
        built = Tree(tmp_path, stores, desks, {}, {})
        # closed: its whole life; unacked: the same, but the township's acknowledgement never came back;
        # open: registered and left there (its attachment goes up all the same).
        for label in ("closed", "unacked", "open"):
            built.errands[label], built.blobs[label] = await _register(desks[V], rng, rng.randbytes(50_000))
        for _ in range(40):
            moved = 0
            for desk in desks.values():
                for errand in await desk.service.store.worklist():
                    if errand["id"] == built.errands["open"]:
                        continue
                    form = next_form(desk, errand, rng)
                    if form is not None:
                        await desk.service.act(errand["id"], form)
                        moved += 1
            await built.sync()
            if not moved:
                break
        write_directory(tmp_path / "directory.json", layout.entries)
        async with stores[V].db.write() as conn:
            await conn.execute(delete(t.blob_acks).where(t.blob_acks.c.hash == built.blobs["unacked"]))
        yield built
    finally:
        for db in dbs:
            await db.dispose()


async def _blob_rows(conn: AsyncConnection) -> dict[str, tuple[int, int, bool, str]]:
    b = t.blobs.c
    rows = await conn.execute(select(b.hash, b.size, b.received, b.complete, b.data))
    return {h: (int(s), int(r), bool(c), hashlib.sha256(bytes(d)).hexdigest()) for h, s, r, c, d in rows}


async def _snapshot(store: Store) -> tuple[dict[str, tuple[int, int, bool, str]], list[tuple[str, ...]]]:
    async with store.db.reader.connect() as conn:
        marks = [tuple(map(str, row)) for row in await conn.execute(select(t.blob_archive))]
        return await _blob_rows(conn), marks


async def test_only_old_closed_acknowledged_attachments_are_archived(tree: Tree) -> None:
    village = tree.stores[V]
    stages = {label: ((await village.errand(e)) or {}).get("stage") for label, e in tree.errands.items()}
    assert stages["closed"] in ANSWERED and stages["unacked"] in ANSWERED and stages["open"] == REGISTERED
    assert await village.blobs_to_send(T) == {tree.blobs["unacked"]: 50_000}  # its ack never came back

    # Today nothing is old enough; 91 days on, only the acknowledged closed errand's attachment goes.
    today = await village.archive_plan(after_days=90)
    assert today.archivable == [] and sorted(today.kept) == ["errand_open", "too_recent"]
    later = time.time() + 91 * DAY_S
    before = await _snapshot(village)
    plan = await village.archive_plan(after_days=90, now=later)
    assert [c.hash for c in plan.archivable] == [tree.blobs["closed"]] and plan.archivable[0].held_at == T
    assert plan.kept == {"errand_open": [tree.blobs["open"]], "unacknowledged": [tree.blobs["unacked"]]}
    assert await _snapshot(village) == before  # a dry run changes nothing

    done = await village.archive_blobs(after_days=90, now=later)
    assert [c.hash for c in done.archived] == [tree.blobs["closed"]] and done.bytes_freed == 50_000
    rows, marks = await _snapshot(village)
    closed = tree.blobs["closed"]
    assert rows[closed] == (50_000, 0, True, hashlib.sha256(b"").hexdigest())  # hash and size kept, no bytes
    assert marks == [(closed, "50000", T, str(later))]
    for label in ("unacked", "open"):
        assert rows[tree.blobs[label]] == before[0][tree.blobs[label]]  # untouched, bytes and all
    archived = await village.archived_blob(closed)
    assert archived is not None and f"held at {T}" in archived.where()
    # The township still holds it whole; the village neither sends nor asks for it again.
    size, held, data = await tree.stores[T].blob_read(closed, 0, 1 << 20)
    assert (size, held) == (50_000, 50_000) and hashlib.sha256(data).hexdigest() == closed
    assert closed not in await village.blobs_to_send(T) and closed not in await village.blobs_wanted()
    await tree.sync()
    assert (await _snapshot(village))[0][closed] == rows[closed]
    # That exchange sent the unacknowledged attachment again and the township acknowledged it: it goes now.
    again = await village.archive_blobs(after_days=90, now=later)
    assert [c.hash for c in again.archived] == [tree.blobs["unacked"]] and again.already == 1

    # Evidence: the archived attachment passes by its kept hash and size; an altered one does not.
    report = await verify(village, workers=1)
    assert report.ok, report.problems
    assert report.attachments_archived == 2 and report.attachments == 1
    async with village.db.write() as conn:
        await conn.execute(update(t.blobs).where(t.blobs.c.hash == tree.blobs["open"]).values(data=b"x" * 50_000))
    kinds = [p.kind for p in (await verify(village, workers=1)).problems]
    assert kinds == ["attachment_altered"]


async def test_parents_keep_bytes_children_fetch_and_a_file_held_again_is_no_longer_archived(tree: Tree) -> None:
    later = time.time() + 91 * DAY_S
    # The township holds the same old closed attachments, acknowledged by the county, but villages fetch
    # from it (a replaced laptop re-syncs from its parent): only a node with no children archives.
    town = await tree.stores[T].archive_plan(after_days=90, now=later)
    assert town.archivable == [] and tree.blobs["closed"] in town.kept["has_children"]
    assert (await tree.stores[T].archive_blobs(after_days=90, now=later)).archived == []
    with pytest.raises(ValueError, match="finite"):
        await tree.stores[V].archive_plan(after_days=float("nan"), now=later)  # nan would let everything go

    village, closed = tree.stores[V], tree.blobs["closed"]
    assert [c.hash for c in (await village.archive_blobs(after_days=90, now=later)).archived] == [closed]
    # A peer offering the bytes again hears "not held" and may send them; whole again, the mark goes.
    assert await village.blob_append(closed, 50_000, 0, b"") == (0, False)
    # The same scan attached again to a new errand: held again, no longer answered as archived.
    scan = (await tree.stores[T].blob_read(closed, 0, 1 << 20))[2]
    assert await village.put_blob(scan) == closed
    assert await village.archived_blob(closed) is None
    size, held, data = await village.blob_read(closed, 0, 1 << 20)
    assert (size, held) == (50_000, 50_000) and data == scan


async def test_an_archive_that_breaks_off_drops_nothing(tree: Tree) -> None:
    village = tree.stores[V]
    later = time.time() + 91 * DAY_S
    before = await _snapshot(village)

    async def power_cut(conn: AsyncConnection) -> None:
        raise RuntimeError("killed mid-archive")

    village.db.add_commit_hook(power_cut)  # the transaction that marks and drops never commits
    with pytest.raises(RuntimeError):
        await village.archive_blobs(after_days=90, now=later)
    village.db.commit_hooks.remove(power_cut)
    assert await _snapshot(village) == before
    # Nothing an ancestor has not acknowledged is dropped, whatever the age.
    async with village.db.write() as conn:
        await conn.execute(delete(t.blob_acks))
    plan = await village.archive_blobs(after_days=0, now=later)
    assert plan.archived == [] and await _snapshot(village) == before
    # An acknowledgement from a node that is not an ancestor proves nothing.
    async with village.db.write() as conn:
        await conn.execute(t.blob_acks.insert().values(peer="T02", hash=tree.blobs["closed"]))
    assert (await village.archive_blobs(after_days=0, now=later)).archived == []


async def test_the_command_and_the_duty(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    """``sanji archive --dry-run`` lists and changes nothing, ``--apply`` archives, ``sanji verify`` passes."""
    village = tree.stores[V]
    config = tree.workdir / V / "node.toml"
    config.write_text(
        f'[node]\nid = "{V}"\nrole = "village"\nkey_file = "node.key"\ndirectory = "../directory.json"\n'
        f'db = "sqlite:///{tree.workdir / V}.db"\n\n[archive]\nafter_days = 0\n',
        encoding="utf-8",
    )
    before = await _snapshot(village)
    assert await asyncio.to_thread(main, ["archive", "--config", str(config), "--dry-run", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [a["hash"] for a in shown["attachments"]] == [tree.blobs["closed"]] and not shown["applied"]
    assert shown["kept"] == {"errand_open": 1, "unacknowledged": 1}
    assert await _snapshot(village) == before
    assert await asyncio.to_thread(main, ["archive", "--config", str(config), "--apply"]) == 0
    out = capsys.readouterr().out
    assert f"已归档 {tree.blobs['closed'][:16]}" in out and "archived (held at" in out
    assert "保留 1 个：尚无上级节点确认持有它 kept 1: no ancestor has acknowledged" in out
    assert (await village.archived_blob(tree.blobs["closed"])) is not None
    assert await asyncio.to_thread(main, ["verify", "store", "--config", str(config)]) == 0
    assert "1 archived" in capsys.readouterr().out
    # The duty archives what was acknowledged since (nothing new here: the unacknowledged one stays).
    assert await ArchiveSchedule(village, interval_hours=24, after_days=0).once() == 0
    await tree.sync()  # the township acknowledges the one it had not
    assert await ArchiveSchedule(village, interval_hours=24, after_days=0).once() == 1
