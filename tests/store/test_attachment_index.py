"""The kept attachment rows (``sanji.store.attached``, migration 0030) answer what decoding every applied attach
action answered. ``test_store_postgres`` runs these again on PostgreSQL.

A county store takes real signed frames and local steps: attachments on several errands, one attached twice to
one errand, one waiting for its registration and then applied, one out of bounds (refused), one applied and
then refused when its node leaves the errand's path, one refused and then applied when a node comes onto it.
After every step the rows are exactly the applied attach actions' and every read equals what the code before
the rows computed (kept below as the oracle)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec
import pytest
from sqlalchemy import select
from test_store_sqlite import TOWN, VILLAGE, StoreOpener, at, chain, failing_once, note, register, statuses

from protocol.actions import Action, Attach
from protocol.batch import frame_hash
from protocol.bounds import MAX_ATTACHMENT_BYTES
from protocol.encoding import decode_action
from sanji.evidence import verify
from sanji.layout import Layout
from sanji.store import Store, open_database
from sanji.store import schema as t
from sanji.store.intake import Intake
from sanji.store.revisions import alembic_config

OTHER_TOWN = "T02"


def scan(label: str) -> bytes:
    return f"扫描件 {label} ".encode() * 40


def digest(label: str) -> str:
    return hashlib.sha256(scan(label)).hexdigest()


def attach(errand: str, i: int, label: str, node: str = VILLAGE, scope: str = VILLAGE, size: int = 0) -> Attach:
    return Attach(
        id=f"a{i:04d}-{errand}",
        errand=errand,
        scope=scope,
        node=node,
        actor="李代办",
        role="代办员",
        at=at(i),
        blob=digest(label),
        size=size or len(scan(label)),
        name=f"{label}.jpg",
        mime="image/jpeg",
    )


# -- the oracle: what the store computed before the rows, every applied attach action decoded ---------------


async def _applied_attaches(store: Store, scopes: Iterable[str] | None = None) -> list[tuple[str, str, Action]]:
    a = t.actions.c
    query = select(a.id, a.errand, a.body).where(a.kind == "attach", a.status == "applied")
    if scopes is not None:
        query = query.where(a.scope.in_(list(scopes)))
    async with store.db.reader.connect() as conn:
        return [(aid, errand, decode_action(body)) for aid, errand, body in await conn.execute(query)]


async def old_attachments(store: Store, scopes: Iterable[str] | None = None) -> dict[str, int]:
    return {
        str(getattr(x, "blob", "")): int(getattr(x, "size", 0)) for _, _, x in await _applied_attaches(store, scopes)
    }


async def old_attachment_errands(store: Store, blob: str) -> list[str]:
    return sorted({e for _, e, x in await _applied_attaches(store) if getattr(x, "blob", "") == blob})


async def old_blobs_wanted(store: Store) -> dict[str, int]:
    named = await old_attachments(store)
    async with store.db.reader.connect() as conn:
        complete = set((await conn.execute(select(t.blobs.c.hash).where(t.blobs.c.complete.is_(True)))).scalars())
    return {h: size for h, size in named.items() if h not in complete}


async def old_blobs_to_send(store: Store, peer: str) -> dict[str, int]:
    named = await old_attachments(store)
    b = t.blobs.c
    async with store.db.reader.connect() as conn:
        complete = set((await conn.execute(select(b.hash).where(b.complete.is_(True), b.received == b.size))).scalars())
        acked = set((await conn.execute(select(t.blob_acks.c.hash).where(t.blob_acks.c.peer == peer))).scalars())
    return {h: size for h, size in named.items() if h in complete and h not in acked}


async def index_rows(store: Store) -> set[tuple[str, str, int, str, str]]:
    c = t.attachments.c
    async with store.db.reader.connect() as conn:
        rows = await conn.execute(select(c.action, c.blob, c.size, c.errand, c.scope))
        return {(str(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4])) for r in rows}


async def check_same(store: Store, labels: Iterable[str]) -> dict[str, list[str]]:
    """Every read the rows serve equals the oracle's; returns each attachment's errands."""
    want = {
        (aid, str(getattr(x, "blob", "")), int(getattr(x, "size", 0)), e, x.scope)
        for aid, e, x in await _applied_attaches(store)
    }
    assert await index_rows(store) == want
    assert await store.attachments() == await old_attachments(store)
    for node in (TOWN, OTHER_TOWN, VILLAGE, "C"):
        scopes = store.directory.subtree(node)
        named = await old_attachments(store, scopes)
        assert await store.attachments(scopes=scopes) == named
        for label in labels:
            assert await store.attachment_named(digest(label), scopes=scopes) == (digest(label) in named)
    errands = {}
    for label in labels:
        errands[label] = await store.attachment_errands(digest(label))
        assert errands[label] == await old_attachment_errands(store, digest(label))
    assert await store.blobs_wanted() == await old_blobs_wanted(store)
    for peer in (TOWN, "C", OTHER_TOWN):
        assert await store.blobs_to_send(peer) == await old_blobs_to_send(store, peer)
    return errands


LABELS = ("shared", "twice", "late", "huge", "moved", "local", "never")


def moved_village(layout: Layout, parent: str) -> Layout:
    """``layout`` with the village under ``parent``: the township it left is off its errands' path."""
    entries = [msgspec.structs.replace(e, parent=parent) if e.id == VILLAGE else e for e in layout.entries]
    return Layout(entries=entries, keys=layout.keys)


@pytest.mark.parametrize("pushes", ["one_push", "frame_by_frame"])
async def test_the_kept_rows_answer_what_decoding_every_attach_action_answered(
    open_store: StoreOpener, layout: Layout, monkeypatch: pytest.MonkeyPatch, pushes: str
) -> None:
    county = await open_store("C")
    if pushes == "frame_by_frame":  # the end-of-push writes failed: every frame writes its own rows
        monkeypatch.setattr(Intake, "flush", failing_once(Intake.flush))
    village = [
        [register("E1", 1), attach("E1", 2, "shared"), register("E2", 3), attach("E2", 4, "shared")],
        [attach("E2", 5, "twice"), attach("E2", 6, "twice"), register("E4", 7)],
        [attach("E4", 8, "huge", size=MAX_ATTACHMENT_BYTES + 1)],  # out of bounds: refused
        [attach("E5", 9, "never")],  # an errand never registered: waits
    ]
    town = [
        [attach("E3", 20, "late", node=TOWN)],  # before its registration: waits
        [attach("E1", 21, "moved", node=TOWN)],  # applied, until the village leaves the township
    ]
    frames = chain(layout, village)
    assert statuses(await county.receive([*frames, *chain(layout, town, origin=TOWN)], peer=TOWN)) == ["stored"] * 6
    await county.put_blob(scan("shared"))
    await county.blob_append(digest("twice"), len(scan("twice")), 0, scan("twice")[:100])  # partly held
    await county.put_blob(scan("moved"))
    await county.ack_blob(TOWN, digest("shared"))
    errands = await check_same(county, LABELS)
    assert errands["shared"] == ["E1", "E2"] and errands["twice"] == ["E2"] and errands["moved"] == ["E1"]
    assert errands["late"] == errands["huge"] == errands["never"] == []

    # The registration the town's attach waited for: applied now.
    later = chain(layout, [[register("E3", 10)]], start=5, prev=frame_hash(frames[-1]))
    assert statuses(await county.receive(later, peer=TOWN)) == ["stored"]
    assert (await check_same(county, LABELS))["late"] == ["E3"]

    # A local step: attached here, the bytes kept with it.
    await county.act("E2", lambda _before, now: _local(now), attachment=scan("local"))
    assert (await check_same(county, LABELS))["local"] == ["E2"]

    # The village moves under the other township: re-judged, the town's attach on E1 is off the path now.
    moved = moved_village(layout, OTHER_TOWN)
    county.use_directory(moved.directory)
    after = chain(moved, [[note("E1", 11, "搬到另一个乡镇")]], start=6, prev=frame_hash(later[-1]))
    assert statuses(await county.receive(after, peer=OTHER_TOWN)) == ["stored"]
    assert (await check_same(county, LABELS))["moved"] == []

    # And back: the same attach is applied again once its errand is judged under the old tree.
    county.use_directory(layout.directory)
    back = chain(layout, [[note("E1", 12, "回到原乡镇")]], start=7, prev=frame_hash(after[-1]))
    assert statuses(await county.receive(back, peer=TOWN)) == ["stored"]
    errands = await check_same(county, LABELS)
    assert errands["moved"] == ["E1"] and errands["shared"] == ["E1", "E2"]
    assert len(await index_rows(county)) == 7  # "twice" twice, one row each

    # `sanji verify store` checks the rows against the applied attach actions: one lost is reported.
    assert not [p for p in (await verify(county, workers=1)).problems if p.kind == "attachment_row"]
    lost = sorted(await index_rows(county))[0][0]
    async with county.db.writer.begin() as conn:
        await conn.execute(t.attachments.delete().where(t.attachments.c.action == lost))
    (problem,) = [p for p in (await verify(county, workers=1)).problems if p.kind == "attachment_row"]
    assert lost in problem.message and "has no row" in problem.message


def _local(now: int) -> Attach:
    made = attach("E2", 30, "local", node="C")
    return msgspec.structs.replace(made, id=f"local-{now}", at=now)


async def test_the_migration_fills_the_rows_from_the_attach_actions_held(
    open_store: StoreOpener, layout: Layout, db_url: str
) -> None:
    """0030 on a store holding attach actions: the rows it writes are those the store keeps as it goes."""
    from alembic import command

    county = await open_store("C")
    village = [
        [register("E1", 1), attach("E1", 2, "shared"), register("E2", 3), attach("E2", 4, "shared")],
        [attach("E2", 5, "twice"), attach("E2", 6, "twice")],
        [attach("E2", 8, "huge", size=MAX_ATTACHMENT_BYTES + 1), attach("E5", 9, "never")],
    ]
    assert statuses(await county.receive(chain(layout, village), peer=TOWN)) == ["stored"] * 3
    kept = await index_rows(county)
    assert len(kept) == 4
    await county.db.dispose()

    db = await open_database(db_url, migrate=False)
    try:
        async with db.writer.begin() as conn:

            def to_0029(sync: object) -> None:
                cfg = alembic_config()
                cfg.attributes["connection"] = sync
                command.downgrade(cfg, "0029")

            await conn.run_sync(to_0029)
    finally:
        await db.dispose()

    again = await open_store("C")  # migrates to head
    assert await index_rows(again) == kept
    await check_same(again, LABELS)
