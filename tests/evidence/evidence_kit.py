"""A small county really run in-process, and ways to tamper with one node's database.

``county_story(net)`` drives errands through their lives with ``ErrandService`` and
syncs after every round, so every stream of the county ends up with several signed,
chained batches (one per sync round), exactly as in production.

``build_template(dir)`` runs that story once on SQLite files; ``open_copy`` opens a fresh
copy of those files for one test, so each test may tamper freely without paying for the
story again.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update

from protocol.batch import open_frame
from protocol.topology import Directory
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext
from sanji.forms import ActionForm, RegisterForm
from sanji.layout import Layout, county_layout
from sanji.service import ErrandService
from sanji.store import Database, Store, open_database
from sanji.store import schema as t
from sanji.sync.driver import sync_once
from sanji.sync.server import SyncServer
from sanji.sync.transport import LocalTransport
from tests.conftest import CALENDAR
from tests.materials_kit import mains

Net = Any  # tests/conftest.py Network, or a County below

VILLAGE = "T01V01"
TOWN = "T01"
COUNTY = "C"


async def act(net: Net, node: str, errand: str, kind: str, **fields: Any) -> None:
    form = ActionForm(kind=kind, actor=f"{node} 工作人员", **fields)  # type: ignore[arg-type]
    await net.service(node).act(errand, form)


async def register(net: Net, village: str, n: int, tag: str) -> list[str]:
    """The first errand is a county matter (低保, escalated); the others the township decides (临时救助)."""
    ids = []
    for i in range(n):
        matter = "MZ-001" if i == 0 else "MZ-003"
        proj = await net.service(village).register(
            RegisterForm(matter=matter, applicant_name=f"村民{tag}{i}", materials=mains(matter), actor="代办员 李建国")
        )
        ids.append(proj.errand)
    return ids


async def county_story(net: Net) -> dict[str, list[str]]:
    """Errands at two villages, moved over four sync rounds: every stream gets 3+ batches."""
    errands: dict[str, list[str]] = {}
    for village in ("T01V01", "T01V02"):
        errands[village] = await register(net, village, 3, village[-1])
    await net.sync_all()  # batch 1 of each village stream: registrations
    for village, ids in errands.items():
        for errand in ids:
            await act(net, village, errand, "submit")
    await net.sync_all()  # batch 2: submissions
    for village, ids in errands.items():
        for errand in ids:
            await act(net, TOWN, errand, "receive")
            await act(net, TOWN, errand, "accept", errand_kind="上报件" if errand == ids[0] else "承诺件")
        await act(net, village, ids[1], "note", text="材料已补齐")
        await act(net, village, ids[2], "note", text="申请人来电询问进度")
    await net.sync_all()  # batch 3: notes from the villages; town batch 1
    for ids in errands.values():
        await act(net, TOWN, ids[0], "escalate", department="县民政局")
        await act(net, TOWN, ids[1], "decide", outcome="approved", document="镇〔2024〕7号")
        await act(net, TOWN, ids[1], "send_result")
    await net.sync_all()
    for village, ids in errands.items():
        await act(net, COUNTY, ids[0], "receive")
        await act(
            net,
            COUNTY,
            ids[0],
            "decide",
            outcome="refused",
            document="民政〔2024〕3号",
            reasons="家庭人均收入高于当地低保标准",
        )
        await act(net, village, ids[1], "receive")
        await act(net, village, ids[1], "deliver", confirmed_by="申请人", signature="签名")
        await act(net, village, ids[2], "note", text="第三次来电")
    await net.sync_all()
    return errands


@dataclass
class County:
    """Stores of a county on SQLite files, each child linked to its parent in-process."""

    layout: Layout
    stores: dict[str, Store]
    dbs: list[Database] = field(default_factory=list)
    contexts: dict[str, NodeContext] = field(default_factory=dict)

    @property
    def directory(self) -> Directory:
        return self.layout.directory

    def service(self, node: str) -> ErrandService:
        return ErrandService(self.stores[node], self.contexts[node])

    async def sync_all(self) -> None:
        """Every child syncs bottom-up (pushes climb), then top-down (pulls descend)."""
        d = self.directory
        kids = sorted((n for n in self.stores if d.parent(n)), key=lambda n: (-len(d.path(n)), n))
        for node in [*kids, *reversed(kids)]:
            parent = d.parent(node)
            assert parent is not None
            await sync_once(self.stores[node], LocalTransport(SyncServer(self.stores[parent])))

    async def close(self) -> None:
        for db in self.dbs:
            await db.dispose()


async def open_county(layout: Layout, base: Path) -> County:
    county = County(layout=layout, stores={})
    for entry in layout.entries:
        db = await open_database(f"sqlite:///{base / entry.id}.db")
        county.dbs.append(db)
        store = Store(db, node_id=entry.id, key=layout.keys[entry.id], directory=layout.directory)
        await store.start()
        county.stores[entry.id] = store
        # The catalogue binds (nothing is accepted without one); the built-in calendar counts the deadlines.
        county.contexts[entry.id] = context = NodeContext(store, CALENDAR)
        await context.load()
    return county


async def hold_catalogue(county: County) -> None:
    """Every node holds the county's catalogue, as after its first exchange."""
    await county.contexts[COUNTY].publish(default_catalogue())
    blob = await county.contexts[COUNTY].catalogue_blob()
    assert blob is not None
    for node, context in county.contexts.items():
        if node != COUNTY:
            await context.offer(blob)


async def build_template(base: Path) -> tuple[Layout, dict[str, list[str]]]:
    layout = county_layout(1, 2)
    county = await open_county(layout, base)
    try:
        await hold_catalogue(county)
        errands = await county_story(county)
    finally:
        await county.close()
    return layout, errands


def copy_files(template: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for path in template.iterdir():
        shutil.copy2(path, into / path.name)


async def open_copy(layout: Layout, template: Path, into: Path) -> County:
    await asyncio.to_thread(copy_files, template, into)
    return await open_county(layout, into)


# -- tampering (what an insider with the database file could do) ------------------------------------


async def frame_row(store: Store, origin: str, scope: str, seq: int) -> tuple[bytes, bytes]:
    async with store.db.reader.connect() as conn:
        row = (
            await conn.execute(
                select(t.batches.c.frame, t.batches.c.hash).where(
                    t.batches.c.origin == origin, t.batches.c.scope == scope, t.batches.c.seq == seq
                )
            )
        ).one()
    return bytes(row[0]), bytes(row[1])


def batch_contents(store: Store, frame: bytes) -> tuple[set[str], set[str]]:
    """(errand ids, action ids) a frame carries."""
    batch = open_frame(frame, store.directory)
    return {a.errand for a in batch.actions}, {a.id for a in batch.actions}


def _where(origin: str, scope: str, seq: int) -> Any:
    c = t.batches.c
    return (c.origin == origin) & (c.scope == scope) & (c.seq == seq)


async def set_frame(store: Store, origin: str, scope: str, seq: int, **values: Any) -> None:
    async with store.db.writer.begin() as conn:
        await conn.execute(update(t.batches).where(_where(origin, scope, seq)).values(**values))


async def delete_batch(store: Store, origin: str, scope: str, seq: int) -> None:
    async with store.db.writer.begin() as conn:
        await conn.execute(delete(t.batches).where(_where(origin, scope, seq)))


async def set_digest(store: Store, errand: str, digest: str) -> None:
    async with store.db.writer.begin() as conn:
        await conn.execute(update(t.errands).where(t.errands.c.id == errand).values(digest=digest))


async def set_action_body(store: Store, action_id: str, body: bytes) -> None:
    async with store.db.writer.begin() as conn:
        await conn.execute(update(t.actions).where(t.actions.c.id == action_id).values(body=body))


async def stream_length(store: Store, origin: str, scope: str) -> int:
    async with store.db.reader.connect() as conn:
        seq = await conn.scalar(select(t.streams.c.seq).where(t.streams.c.origin == origin, t.streams.c.scope == scope))
    return int(seq or 0)
