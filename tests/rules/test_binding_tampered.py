"""An errand bound to an invented entry is refused at the desks, never by ``judge``.

A compromised village signs, under its real node key, a registration bound to a lenient entry (proxy
allowed, no materials, long limits, deemed approval) of the catalogue version it names. Every replica
applies it (``judge`` cannot compare the entry with a catalogue not every replica holds), but the
township that holds that version compares them (``protocol.binding.binding_refusal``): its accept is
refused with ``binding_mismatch``, nothing is written, and the errand page says so and offers no accept.
A genuine registration, under the newest version or an older one the township kept, is accepted as before.
Naming a version the township cannot have missed (v0, or one newer than any it holds) is refused as never held;
one below the oldest version it kept cannot be checked (无法核对), is said so, and is accepted as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import event, func, select, text

from protocol.actions import Register
from protocol.binding import binding_refusal
from protocol.catalogue import Catalogue, Matter
from protocol.errors import ActionRefused
from protocol.hlc import HybridClock
from protocol.refusals import Refusal, chinese, english
from protocol.stages import ANSWERED
from sanji.backup import backup, restore
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext, bound_of
from sanji.duties import deemed_approvals
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.store import Store, open_database
from sanji.store import schema as t
from sanji.store.documents import format_lost, parse_lost
from sanji.web.desk_api import errand_binding, supervision_report
from sanji.web.screens import _errand_page
from sanji.workcalendar import load_calendar
from tests.conftest import Network, NetworkFactory

VILLAGE, TOWN, COUNTY = "T01V01", "T01", "C"
CATALOGUE = default_catalogue()
# A matter the township accepts, that is not open to proxy service: the lenient entry opens it.
MATTER = next(m for m in CATALOGUE.matters if "town" in m.accept_levels and not m.proxy_allowed and not m.in_person)


def lenient(entry: Matter) -> Matter:
    return msgspec.structs.replace(
        entry,
        proxy_allowed=True,
        materials=(),
        committed_limit=entry.statutory_limit * 3 or 60,
        statutory_limit=entry.statutory_limit * 3 or 60,
        deemed_approval=True,
    )


def with_entry(catalogue: Catalogue, code: str, change: Callable[[Matter], Matter]) -> Catalogue:
    return msgspec.structs.replace(
        catalogue, matters=tuple(change(m) if m.code == code else m for m in catalogue.matters)
    )


async def contexts(net: Network) -> dict[str, NodeContext]:
    """Every node holds the county's signed catalogue (version ``CATALOGUE.version``), kept as it came."""
    out = {n: NodeContext(s, load_calendar()) for n, s in net.stores.items()}
    await out[COUNTY].publish(CATALOGUE)
    blob = await out[COUNTY].catalogue_blob()
    assert blob is not None
    for node, ctx in out.items():
        if node != COUNTY:
            await ctx.offer(blob)
    return out


async def publish_newer(net: Network, ctx: dict[str, NodeContext], version: int | None = None) -> Catalogue:
    """The county signs the next version, or ``version`` (the matter's English name revised), and every node takes
    it up."""
    newer = with_entry(
        msgspec.structs.replace(CATALOGUE, version=version or CATALOGUE.version + 1),
        MATTER.code,
        lambda m: msgspec.structs.replace(m, name_en=m.name_en + " (revised)"),
    )
    await ctx[COUNTY].publish(newer)
    blob = await ctx[COUNTY].catalogue_blob()
    assert blob is not None
    for node, c in ctx.items():
        if node != COUNTY:
            assert await c.offer(blob)
    return newer


async def registered_and_received(
    net: Network, village_ctx: NodeContext, town_ctx: NodeContext, matter: Matter = MATTER, *, in_person: bool = False
) -> str:
    """Registered at the village (by proxy unless ``in_person``), submitted, received at the township."""
    village = ErrandService(net.stores[VILLAGE], village_ctx)
    form = RegisterForm(
        matter=matter.code,
        applicant_name="周桂英",
        materials=list(matter.main_materials),
        in_person=in_person,
        actor="代办员",
        confirm_missing=True,
    )
    errand = (await village.register(form)).errand
    await village.act(errand, ActionForm(kind="submit", actor="代办员"))
    await net.sync_all(2)
    await ErrandService(net.stores[TOWN], town_ctx).act(errand, ActionForm(kind="receive", actor="窗口"))
    return errand


def compromised(ctx: NodeContext, catalogue: Catalogue, matter: Matter = MATTER) -> NodeContext:
    """The node's software, changed: it binds to a lenient entry under the version it names."""
    ctx.catalogue = with_entry(catalogue, matter.code, lenient)
    return ctx


async def accept(net: Network, ctx: NodeContext, errand: str) -> None:
    await ErrandService(net.stores[TOWN], ctx).act(errand, ActionForm(kind="accept", actor="窗口", window="综合窗口"))


def test_the_rule_compares_the_entry_with_the_held_version_field_by_field() -> None:
    entry = CATALOGUE.get(MATTER.code)
    assert entry is not None
    copy = msgspec.msgpack.decode(msgspec.msgpack.encode(entry), type=Matter)  # equal, not the same object
    assert copy is not entry and binding_refusal(copy, CATALOGUE, version=CATALOGUE.version) is None
    refused = binding_refusal(lenient(entry), CATALOGUE, version=CATALOGUE.version)
    assert refused is not None and refused.code == "binding_mismatch"
    assert refused.params["version"] == str(CATALOGUE.version)
    for name in ("proxy_allowed", "materials", "committed_limit", "deemed_approval"):
        assert name in refused.params["fields"]
    assert chinese(refused).startswith(f"登记所附事项条目（{MATTER.code}）与县级目录第{CATALOGUE.version}版不一致")
    assert "differs from the county's catalogue v" in english(refused)
    invented = msgspec.structs.replace(entry, code="X-999")
    absent = binding_refusal(invented, CATALOGUE, version=CATALOGUE.version)
    assert absent is not None and "该版目录没有此事项" in chinese(absent)
    # A 0.3.0 node carries the county's entry without the fields it does not know (``rules``, the 联办 flag): the
    # county's all the same, as every replica judges it by the old rules; anything else it changes is refused.
    assert entry.rules >= 1
    as_old = msgspec.structs.replace(entry, rules=0, joint_answers_at_departments=False)
    assert binding_refusal(as_old, CATALOGUE, version=CATALOGUE.version) is None
    old_lenient = binding_refusal(lenient(as_old), CATALOGUE, version=CATALOGUE.version)
    assert old_lenient is not None and "rules" not in old_lenient.params["fields"].split(", ")
    assert "proxy_allowed" in old_lenient.params["fields"]
    downgraded = binding_refusal(msgspec.structs.replace(entry, rules=1), CATALOGUE, version=CATALOGUE.version)
    assert downgraded is not None and downgraded.params["fields"] == "rules"
    # Cannot check: unbound, no catalogue of that version held, or a held catalogue of another version.
    assert binding_refusal(None, CATALOGUE, version=CATALOGUE.version) is None
    assert binding_refusal(lenient(entry), None, version=CATALOGUE.version) is None
    assert binding_refusal(lenient(entry), CATALOGUE, version=CATALOGUE.version + 1) is None


async def test_a_tampered_entry_is_applied_everywhere_but_refused_at_the_accepting_desk(
    network: NetworkFactory,
) -> None:
    net = await network(1, 1)
    ctx = await contexts(net)
    errand = await registered_and_received(net, compromised(ctx[VILLAGE], CATALOGUE), ctx[TOWN])
    register = await net.stores[TOWN].applied_of(errand, "register")
    assert isinstance(register, Register) and register.matter_entry == lenient(MATTER)  # judge applied it
    assert register.catalogue_version == CATALOGUE.version

    before = await net.stores[TOWN].errand(errand)
    assert before is not None and before["stage"] == "received"
    async with net.stores[TOWN].db.reader.connect() as conn:
        actions_before = await conn.scalar(select(func.count()).select_from(t.actions))
    with pytest.raises(ActionRefused) as refused:
        await accept(net, ctx[TOWN], errand)
    assert refused.value.refusal.code == "binding_mismatch"
    body = refused.value.as_dict()
    assert body["error_code"] == "binding_mismatch"
    assert str(body["message_zh"]).startswith("登记所附事项条目")
    after = await net.stores[TOWN].errand(errand)
    assert after is not None and (after["stage"], after["version"]) == ("received", before["version"])
    async with net.stores[TOWN].db.reader.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(t.actions)) == actions_before  # nothing written

    # The township can still turn it away.
    town = ErrandService(net.stores[TOWN], ctx[TOWN])
    await town.act(errand, ActionForm(kind="not_accept", actor="窗口", reasons="登记所附事项条目与县级目录不一致"))


async def test_supervision_lists_a_received_tampered_registration_and_the_verdict_stands(
    network: NetworkFactory,
) -> None:
    net = await network(1, 1)
    ctx = await contexts(net)
    tampered = await registered_and_received(net, compromised(ctx[VILLAGE], CATALOGUE), ctx[TOWN])
    genuine = await registered_and_received(net, ctx[COUNTY], ctx[TOWN], in_person=True)
    await net.sync_all(2)
    for node in (TOWN, COUNTY):
        row = await net.stores[node].errand(tampered)
        assert row is not None and [h["status"] for h in row["history"]][:1] == ["applied"]  # judge applied it
        report = await supervision_report(net.stores[node], ctx[node])
        listed = report.binding_mismatches
        assert [(m.errand, m.scope, m.version) for m in listed] == [(tampered, VILLAGE, CATALOGUE.version)], node
        assert "proxy_allowed" in listed[0].fields and listed[0].zh.startswith("登记所附事项条目")
        assert genuine not in [m.errand for m in listed]


async def test_the_errand_page_warns_and_offers_no_accept(network: NetworkFactory) -> None:
    net = await network(1, 1)
    ctx = await contexts(net)
    errand = await registered_and_received(net, compromised(ctx[VILLAGE], CATALOGUE), ctx[TOWN])
    page = await _errand_page(net.stores[TOWN], ctx[TOWN], errand)
    context: dict[str, Any] = page.context or {}
    warning = context["binding_warning"]
    assert warning is not None
    assert warning[0].startswith(f"登记所附事项条目（{MATTER.code}）与县级目录第{CATALOGUE.version}版不一致")
    assert warning[0].endswith("不得按此条目受理或办理")
    assert warning[1].startswith(f"the entry this errand was registered under ({MATTER.code}) differs")
    kinds = [f["kind"] for f in context["forms"]]
    assert "accept" not in kinds and "not_accept" in kinds

    genuine = await registered_and_received(
        net, ctx[COUNTY], ctx[TOWN], in_person=True
    )  # a county context: the true catalogue
    page = await _errand_page(net.stores[TOWN], ctx[TOWN], genuine)
    context = page.context or {}
    assert context["binding_warning"] is None and "accept" in [f["kind"] for f in context["forms"]]


async def test_the_api_and_the_command_line_say_what_the_page_says(network: NetworkFactory) -> None:
    """``GET /api/errands/{id}``'s ``binding`` and ``sanji errand show``'s line (``errand_binding``): a mismatch with
    its fields, a version the township has not received yet as behind, and nothing for a genuine registration."""
    net = await network(1, 1)
    ctx = await contexts(net)
    store = net.stores[TOWN]
    tampered = await registered_and_received(net, compromised(ctx[VILLAGE], CATALOGUE), ctx[TOWN])
    said = await errand_binding(ctx[TOWN], await store.errand_state_blob(tampered))
    assert said is not None and (said.status, said.matter, said.version) == ("mismatch", MATTER.code, CATALOGUE.version)
    assert "proxy_allowed" in said.fields and said.message_zh.startswith(f"登记所附事项条目（{MATTER.code}）")
    assert said.message.startswith(f"the entry this errand was registered under ({MATTER.code}) differs")

    village = NodeContext(net.stores[VILLAGE], load_calendar())
    village.catalogue = msgspec.structs.replace(CATALOGUE, version=CATALOGUE.version + 1)  # not yet at the township
    ahead = await registered_and_received(net, village, ctx[TOWN], in_person=True)
    said = await errand_binding(ctx[TOWN], await store.errand_state_blob(ahead))
    assert said is not None and (said.status, said.fields) == ("behind", "")
    assert f"尚未收到县级目录第{CATALOGUE.version + 1}版" in said.message_zh and "not received" in said.message

    genuine = await registered_and_received(net, ctx[COUNTY], ctx[TOWN], in_person=True)
    assert await errand_binding(ctx[TOWN], await store.errand_state_blob(genuine)) is None


async def test_a_genuine_registration_is_accepted_under_the_newest_or_an_older_held_version(
    network: NetworkFactory,
) -> None:
    net = await network(1, 1)
    ctx = await contexts(net)
    # Registered (and shipped) under version 1; the county then signs version 2 before the township accepts.
    village_v1 = NodeContext(net.stores[VILLAGE], load_calendar())
    village_v1.catalogue = CATALOGUE
    older = await registered_and_received(net, village_v1, ctx[TOWN], in_person=True)
    tampered = await registered_and_received(
        net, compromised(NodeContext(net.stores[VILLAGE], None), CATALOGUE), ctx[TOWN]
    )
    newer = await publish_newer(net, ctx)
    assert ctx[TOWN].catalogue_version == newer.version
    async with net.stores[TOWN].db.reader.connect() as conn:
        kept = (await conn.execute(text("SELECT version FROM document_versions WHERE kind = 'catalogue'"))).scalars()
        assert sorted(kept) == [CATALOGUE.version, newer.version]

    await accept(net, ctx[TOWN], older)  # bound to version 1's entry, which the township kept: the same
    row = await net.stores[TOWN].errand(older)
    assert row is not None and row["stage"] == "accepted"
    with pytest.raises(ActionRefused) as refused:  # compared with version 1, not with the newest
        await accept(net, ctx[TOWN], tampered)
    assert refused.value.refusal.code == "binding_mismatch"
    assert refused.value.refusal.params["version"] == str(CATALOGUE.version)

    # A fresh process reads version 1 again from the store, not from memory.
    fresh = NodeContext(net.stores[TOWN], load_calendar())
    await fresh.load()
    held = await fresh.held_catalogue(CATALOGUE.version)
    assert held is not None and held.version == CATALOGUE.version and held.get(MATTER.code) == MATTER

    genuine = await registered_and_received(
        net, ctx[VILLAGE], ctx[TOWN], in_person=True
    )  # the village now holds version 2
    await accept(net, ctx[TOWN], genuine)


async def test_catalogue_v0_does_not_skip_the_check(network: NetworkFactory) -> None:
    """Naming catalogue v0 does not skip the check: a bound entry always names the version it was copied from."""
    net = await network(1, 1)
    ctx = await contexts(net)
    unseen = msgspec.structs.replace(CATALOGUE, version=0)
    errand = await registered_and_received(net, compromised(ctx[VILLAGE], unseen), ctx[TOWN])
    assert await ctx[TOWN].held_catalogue(0) is None
    with pytest.raises(ActionRefused) as refused:
        await accept(net, ctx[TOWN], errand)
    assert refused.value.refusal.code == "binding_mismatch"
    assert refused.value.refusal.params["fields"] == "this node never held catalogue v0"
    assert "本节点从未收到该版目录" in chinese(refused.value.refusal)
    row = await net.stores[TOWN].errand(errand)
    assert row is not None and row["stage"] != "accepted"
    page = await _errand_page(net.stores[TOWN], ctx[TOWN], errand)
    context: dict[str, Any] = page.context or {}
    assert context["binding_warning"] is not None and "accept" not in [f["kind"] for f in context["forms"]]
    report = await supervision_report(net.stores[TOWN], ctx[TOWN])
    assert [(m.errand, m.checked) for m in report.binding_mismatches] == [(errand, True)]


async def test_a_version_newer_than_the_townships_is_refused_by_the_county_alone(network: NetworkFactory) -> None:
    """A version above any the township holds: the township may only be behind (restored from a backup, or its
    exchange failed), so it says so and takes the errand, listing nothing in 电子监察; the county, which publishes
    every version, refuses it as never published and lists it."""
    net = await network(1, 1)
    ctx = await contexts(net)
    version = CATALOGUE.version + 7
    unseen = msgspec.structs.replace(CATALOGUE, version=version)
    errand = await registered_and_received(net, compromised(ctx[VILLAGE], unseen), ctx[TOWN])
    assert await ctx[TOWN].binding_state(await net.stores[TOWN].errand_state_blob(errand)) == "behind"
    page = await _errand_page(net.stores[TOWN], ctx[TOWN], errand)
    context: dict[str, Any] = page.context or {}
    assert context["binding_warning"] is None
    said = context["binding_unchecked"]
    assert said is not None and f"尚未收到县级目录第{version}版" in said[0]
    report = await supervision_report(net.stores[TOWN], ctx[TOWN])
    assert report.binding_mismatches == []
    await accept(net, ctx[TOWN], errand)
    row = await net.stores[TOWN].errand(errand)
    assert row is not None and row["stage"] == "accepted"
    entry = bound_of(await net.stores[TOWN].errand_state_blob(errand)).matter_entry
    at_county = await ctx[COUNTY].binding_status(entry, version, VILLAGE)
    assert isinstance(at_county, Refusal) and at_county.params["fields"] == f"this node never held catalogue v{version}"


async def test_a_version_below_the_oldest_kept_cannot_be_checked_and_is_accepted(network: NetworkFactory) -> None:
    """A township that first held a catalogue at v2 (enrolled, or restored, since): an errand bound to v1 cannot be
    checked there (无法核对, said on the page and in 电子监察) and is taken; the county, which holds v1, refuses it."""
    net = await network(1, 1)
    ctx = await contexts(net)
    errand = await registered_and_received(net, compromised(ctx[VILLAGE], CATALOGUE), ctx[TOWN])
    newer = await publish_newer(net, ctx)
    store = net.stores[TOWN]
    async with store.db.writer.begin() as conn:
        await conn.execute(text(f"DELETE FROM document_versions WHERE version = {CATALOGUE.version}"))
        await conn.execute(text(f"UPDATE meta SET value = '{newer.version}' WHERE key = 'catalogue_versions_floor'"))
    town = NodeContext(store, load_calendar())
    await town.load()
    assert await town.catalogue_floor() == newer.version
    assert await town.binding_state(await store.errand_state_blob(errand)) == "unchecked"
    said = await errand_binding(town, await store.errand_state_blob(errand))  # the API's and the command line's
    assert said is not None and said.status == "unchecked" and "无法核对" in said.message_zh
    page = await _errand_page(store, town, errand)
    context: dict[str, Any] = page.context or {}
    assert context["binding_warning"] is None
    assert context["binding_unchecked"] is not None and "无法核对" in context["binding_unchecked"][0]
    report = await supervision_report(store, town)
    assert [(m.errand, m.checked) for m in report.binding_mismatches] == [(errand, False)]
    await accept(net, town, errand)
    row = await store.errand(errand)
    assert row is not None and row["stage"] == "accepted"
    # the county holds v1: the same errand, compared there, is refused
    refused = await ctx[COUNTY].binding_status(bound_of(row["state"]).matter_entry, CATALOGUE.version)
    assert isinstance(refused, Refusal) and refused.code == "binding_mismatch"


async def test_the_county_refuses_a_version_from_its_floor_up_that_it_lacks_a_township_cannot_check_it(
    network: NetworkFactory,
) -> None:
    """The county holds every version it published since 0026: one it lacks from its floor up was never published.
    A township may have skipped a version while out of touch: there the same gap cannot be checked."""
    net = await network(1, 1)
    ctx = await contexts(net)
    newer = await publish_newer(net, ctx)
    entry = MATTER
    for node in (COUNTY, TOWN):
        async with net.stores[node].db.writer.begin() as conn:
            await conn.execute(text(f"DELETE FROM document_versions WHERE version = {CATALOGUE.version}"))
        fresh = NodeContext(net.stores[node], load_calendar())
        await fresh.load()
        assert await fresh.catalogue_floor() == CATALOGUE.version
        assert fresh.catalogue_version == newer.version
        status = await fresh.binding_status(entry, CATALOGUE.version)
        if node == COUNTY:
            assert isinstance(status, Refusal)
            assert status.params["fields"] == f"this node never held catalogue v{CATALOGUE.version}"
        else:
            assert status == "unchecked"
        assert await fresh.binding_status(entry, newer.version + 1) is not None
        assert await fresh.binding_status(None, 0) is None  # unbound: nothing to check


async def test_the_county_refuses_to_decide_an_errand_a_township_bound_to_an_invented_entry(
    network: NetworkFactory,
) -> None:
    """Bound at acceptance (registered unbound by a village that held no catalogue) by a compromised township."""
    escalated = next(
        m
        for m in CATALOGUE.matters
        if m.department and "town" in m.accept_levels and "county" in m.approve_levels and not m.in_person
    )
    net = await network(1, 1)
    ctx = await contexts(net)
    bare = NodeContext(net.stores[VILLAGE], load_calendar())  # no catalogue: registered unbound
    errand = await registered_and_received(net, bare, ctx[TOWN], escalated)
    town_ctx = compromised(NodeContext(net.stores[TOWN], load_calendar()), CATALOGUE, escalated)
    town = ErrandService(net.stores[TOWN], town_ctx)
    await accept(net, town_ctx, errand)  # its own (changed) catalogue binds the errand
    await town.act(errand, ActionForm(kind="escalate", actor="窗口", department=escalated.department))
    await net.sync_all(2)
    county = ErrandService(net.stores[COUNTY], ctx[COUNTY])
    await county.act(errand, ActionForm(kind="receive", actor="县局"))
    page = await _errand_page(net.stores[COUNTY], ctx[COUNTY], errand)
    context: dict[str, Any] = page.context or {}
    assert context["binding_warning"] is not None and "decide" not in [f["kind"] for f in context["forms"]]
    with pytest.raises(ActionRefused) as refused:
        await county.act(errand, ActionForm(kind="decide", actor="县局", outcome="approved"))
    assert refused.value.refusal.code == "binding_mismatch"

    # The invented entry allows 超时默许: past the deadline the county's duty would approve it by itself; the
    # desk's check stops that too (judge alone would allow it: the entry, as carried, says so).
    row = await net.stores[COUNTY].errand(errand)
    assert row is not None and row["due"]
    after = date.fromisoformat(row["due"]) + timedelta(days=3)
    noon = datetime(after.year, after.month, after.day, 4, tzinfo=UTC)
    net.stores[COUNTY].clock = HybridClock(0, now_ms=lambda: int(noon.timestamp() * 1000))
    assert await deemed_approvals(net.stores[COUNTY], ctx[COUNTY], today=after) == []
    row = await net.stores[COUNTY].errand(errand)
    assert row is not None and row["outcome"] == ""


async def test_the_migration_keeps_the_documents_held(db_url: str) -> None:
    """0026 and 0027 on a store at 0025: the catalogue version held is copied into ``document_versions`` (the
    calendar's is not kept) and recorded as the floor."""
    from alembic import command

    from sanji.store.revisions import alembic_config

    db = await open_database(db_url, migrate=False)
    try:
        async with db.writer.begin() as conn:

            def to_0025(sync: object) -> None:
                cfg = alembic_config()
                cfg.attributes["connection"] = sync
                command.upgrade(cfg, "0025")

            await conn.run_sync(to_0025)
            for kind, version in (("catalogue", 3), ("calendar", 2)):
                await conn.execute(
                    t.documents.insert().values(
                        kind=kind, version=version, blob=b"SJC...", digest="d" * 64, received_at=1.0
                    )
                )
    finally:
        await db.dispose()
    db = await open_database(db_url)
    try:
        async with db.reader.connect() as conn:
            rows = (await conn.execute(select(t.document_versions.c.kind, t.document_versions.c.version))).all()
            floor = await conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "catalogue_versions_floor"))
        # 0027: the catalogue alone, and its lowest version recorded as the floor
        assert [tuple(r) for r in rows] == [("catalogue", 3)]
        assert floor == "3"
    finally:
        await db.dispose()


async def test_a_county_restarting_with_other_content_under_a_held_version_keeps_the_real_one(
    network: NetworkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The start-up duty signs the configured file every start: a file naming a version already held (or an older
    one) with other content is not kept, is never recorded as that version, and honest errands stay accepted."""
    net = await network(1, 1)
    ctx = await contexts(net)
    newer = await publish_newer(net, ctx)
    store = net.stores[COUNTY]
    for version in (CATALOGUE.version, newer.version, CATALOGUE.version - 1 if CATALOGUE.version > 1 else 0):
        with caplog.at_level("WARNING", logger="sanji.store"):
            kept = await store.put_document("catalogue", version, b"SJC-other-%d" % version, "e" * 64)
        assert kept is False
    async with store.db.reader.connect() as conn:
        rows = dict((await conn.execute(select(t.document_versions.c.version, t.document_versions.c.digest))).all())
    assert sorted(rows) == [CATALOGUE.version, newer.version]
    assert "e" * 64 not in rows.values()
    assert any("kept as held" in r.getMessage() for r in caplog.records)
    fresh = NodeContext(store, None)
    await fresh.load()
    held = await fresh.held_catalogue(CATALOGUE.version)
    assert held is not None and held.get(MATTER.code) == MATTER
    # calendars and rules are never compared: not recorded
    assert await store.put_document("calendar", 1, b"SJK", "f" * 64)
    async with store.db.reader.connect() as conn:
        kinds = set((await conn.execute(select(t.document_versions.c.kind))).scalars())
    assert kinds == {"catalogue"}


async def test_the_migrations_go_down_again(db_url: str) -> None:
    """0027 and 0026 downgrade: the floor and then the table are gone, and upgrading again copies the catalogue."""
    from alembic import command
    from sqlalchemy import inspect

    from sanji.store.revisions import alembic_config

    db = await open_database(db_url)
    try:
        async with db.writer.begin() as conn:
            await conn.execute(
                t.documents.insert().values(kind="catalogue", version=4, blob=b"SJC", digest="d" * 64, received_at=1.0)
            )
            await conn.execute(
                t.document_versions.insert().values(
                    kind="catalogue", version=4, blob=b"SJC", digest="d" * 64, received_at=1.0
                )
            )

            def down(sync: Any, to: str) -> tuple[list[str], int]:
                cfg = alembic_config()
                cfg.attributes["connection"] = sync
                command.downgrade(cfg, to)
                floors = sync.execute(text("SELECT COUNT(*) FROM meta WHERE key = 'catalogue_versions_floor'"))
                return inspect(sync).get_table_names(), int(floors.scalar())

            tables, floors = await conn.run_sync(down, "0026")
            assert "document_versions" in tables and floors == 0
            tables, _ = await conn.run_sync(down, "0025")
            assert "document_versions" not in tables
    finally:
        await db.dispose()
    db = await open_database(db_url)  # up again to the head
    try:
        async with db.reader.connect() as conn:
            rows = (await conn.execute(select(t.document_versions.c.kind, t.document_versions.c.version))).all()
            floor = await conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "catalogue_versions_floor"))
        assert [tuple(r) for r in rows] == [("catalogue", 4)] and floor == "4"
    finally:
        await db.dispose()


async def test_supervision_lists_an_errand_already_answered_under_a_differing_entry(network: NetworkFactory) -> None:
    """A node whose own desk did not check (its software changed) answered the errand itself: no honest desk was
    asked, so 电子监察 lists it among the answered ones (已按不一致条目办结), not only the unanswered ones."""
    decided_here = next(
        m for m in CATALOGUE.matters if "town" in m.accept_levels and m.approve_levels == ("town",) and not m.in_person
    )
    net = await network(1, 1)
    ctx = await contexts(net)
    village = compromised(ctx[VILLAGE], CATALOGUE, decided_here)
    errand = await registered_and_received(net, village, ctx[TOWN], decided_here, in_person=True)
    changed = compromised(NodeContext(net.stores[TOWN], load_calendar()), CATALOGUE, decided_here)
    town = ErrandService(net.stores[TOWN], changed)
    await accept(net, changed, errand)
    await town.act(errand, ActionForm(kind="decide", actor="窗口", outcome="approved"))
    await town.act(errand, ActionForm(kind="send_result", actor="窗口"))
    await net.sync_all(2)
    at_village = ErrandService(net.stores[VILLAGE], village)
    await at_village.act(errand, ActionForm(kind="receive", actor="代办员"))
    await at_village.act(errand, ActionForm(kind="deliver", actor="代办员", confirmed_by="周桂英", signature="周桂英"))
    await net.sync_all(2)
    row = await net.stores[TOWN].errand(errand)
    assert row is not None and row["stage"] in ANSWERED
    report = await supervision_report(net.stores[TOWN], ctx[TOWN])  # the honest process, as restarted
    listed = [m for m in report.binding_mismatches if m.errand == errand]
    assert len(listed) == 1 and listed[0].answered and listed[0].checked
    assert listed[0].zh.startswith("已按不一致条目办结")
    assert listed[0].en.startswith("answered under the differing entry")


async def test_older_versions_and_versions_not_held_are_read_once_and_entries_encoded_once(
    network: NetworkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``held_catalogue`` reads a version, or finds it missing, once (a few kept, least recently used dropped);
    电子监察 encodes the county's entry once per catalogue and code, not once per errand."""
    import protocol.binding as binding

    net = await network(1, 1)
    ctx = await contexts(net)
    newer = await publish_newer(net, ctx)
    store = net.stores[TOWN]
    async with store.db.writer.begin() as conn:
        await conn.execute(text(f"DELETE FROM document_versions WHERE version = {CATALOGUE.version}"))
    town = NodeContext(store, load_calendar())
    await town.load()
    reads: list[int] = []
    read = store.document_version

    async def counted(kind: str, version: int) -> bytes | None:
        reads.append(version)
        return await read(kind, version)

    monkeypatch.setattr(store, "document_version", counted)
    for _ in range(3):
        assert await town.held_catalogue(CATALOGUE.version) is None  # not held: asked of the store once
        assert await town.held_catalogue(newer.version + 5) is None  # newer than held: never asked
    assert reads == [CATALOGUE.version]

    encodings: list[object] = []
    encode = binding.encode

    def counting(value: object) -> bytes:
        encodings.append(value)
        return encode(value)

    monkeypatch.setattr(binding, "encode", counting)
    entry = newer.get(MATTER.code)
    assert entry is not None
    for _ in range(5):
        assert await town.binding_status(entry, newer.version) is None
    # each call encodes the errand's entry; the county's entry only the first time
    assert len(encodings) == 5 + 1


async def test_an_errand_of_another_county_is_not_compared_with_this_countys_catalogue(
    network: NetworkFactory,
) -> None:
    """A catalogue is its county's: an errand registered in another county (met at a node of this one, below a
    city) is bound to that county's catalogue, so it is not checked here, never refused by the wrong one (nor
    listed as unchecked: a city above the counties would list every errand)."""
    from sanji.layout import city_layout

    net = await network(layout=city_layout(2, 1, 1))
    villages = sorted(n for n in net.stores if n.endswith("V01"))
    ours, theirs = (next(v for v in villages if v.startswith(c)) for c in ("C1", "C2"))
    ctx = NodeContext(net.stores["C1"], load_calendar())
    await ctx.publish(CATALOGUE)
    forged = lenient(MATTER)
    status = await ctx.binding_status(forged, CATALOGUE.version, ours)
    assert isinstance(status, Refusal) and status.code == "binding_mismatch"
    assert await ctx.binding_status(forged, CATALOGUE.version, theirs) is None  # that county's desks check it
    assert await ctx.binding_status(forged, CATALOGUE.version + 9, theirs) is None


async def test_a_version_another_process_kept_meanwhile_is_taken_up_not_refused(network: NetworkFactory) -> None:
    """A hub sibling (another worker's 事项目录 screen) kept the newer version: this process, still holding the older
    one, takes it up from the store before it calls an errand bound to it never held."""
    net = await network(1, 1)
    ctx = await contexts(net)
    stale = NodeContext(net.stores[TOWN], load_calendar())
    await stale.load()
    newer = await publish_newer(net, ctx)  # kept by the other context on the same store
    assert stale.catalogue_version == CATALOGUE.version
    entry = newer.get(MATTER.code)
    assert await stale.binding_status(entry, newer.version) is None
    assert stale.catalogue_version == newer.version


async def test_a_floor_typed_wrong_by_hand_is_no_floor_not_a_broken_desk(network: NetworkFactory) -> None:
    """deploy/README's repair edits ``catalogue_versions_floor`` by hand: a value that is not a version is taken as
    unset (logged), and the desk still checks a tampered binding."""
    net = await network(1, 1)
    ctx = await contexts(net)
    errand = await registered_and_received(net, compromised(ctx[VILLAGE], CATALOGUE), ctx[TOWN])
    store = net.stores[COUNTY]
    async with store.db.writer.begin() as conn:
        await conn.execute(text("UPDATE meta SET value = 'N+1' WHERE key = 'catalogue_versions_floor'"))
    assert await store.meta_value("catalogue_versions_floor") == "N+1"
    county = NodeContext(store, load_calendar())
    await county.load()
    assert await county.catalogue_floor() is None
    entry = bound_of(await net.stores[TOWN].errand_state_blob(errand)).matter_entry
    status = await county.binding_status(entry, CATALOGUE.version, VILLAGE)
    assert isinstance(status, Refusal) and status.code == "binding_mismatch"


@contextmanager
def reads_of(store: Store, table: str) -> Iterator[list[str]]:
    """The statements ``store``'s database runs that read ``table`` (its reader's and writer's engines)."""
    seen: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if f"FROM {table} " in " ".join(statement.split()) + " ":
            seen.append(statement)

    engines = {id(e.sync_engine): e.sync_engine for e in (store.db.writer, store.db.reader)}
    for engine in engines.values():
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        for engine in engines.values():
            event.remove(engine, "before_cursor_execute", count)


async def test_a_kept_version_that_does_not_read_is_read_once_and_not_held(
    network: NetworkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A version whose kept bytes no longer decode is not held, as far as a desk can tell: the county refuses an
    errand bound to it (from its floor up) every time, and reads it from the database (and logs it) once."""
    net = await network(1, 1)
    ctx = await contexts(net)
    errand = await registered_and_received(net, ctx[VILLAGE], ctx[TOWN], in_person=True)  # bound to v1, genuine
    await publish_newer(net, ctx)
    store = net.stores[COUNTY]
    async with store.db.writer.begin() as conn:
        await conn.execute(
            t.document_versions.update()
            .where(t.document_versions.c.version == CATALOGUE.version)
            .values(blob=b"SJC-damaged")
        )
    county = NodeContext(store, load_calendar())
    await county.load()
    entry = bound_of(await net.stores[TOWN].errand_state_blob(errand)).matter_entry
    with caplog.at_level("WARNING", logger="sanji.context"), reads_of(store, "document_versions") as reads:
        for _ in range(20):
            status = await county.binding_status(entry, CATALOGUE.version, VILLAGE)
            assert isinstance(status, Refusal) and "never held" in status.params["fields"]
    assert len(reads) == 1
    assert sum("does not read" in r.getMessage() for r in caplog.records) == 1


async def test_versions_above_the_newest_look_for_a_newer_catalogue_once_in_a_short_while(
    network: NetworkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worklist of errands naming versions above the county's newest (each refused as never published) reads the
    catalogue once, not once per errand; a sibling's publication is taken up once that short while has passed."""
    import sanji.context

    net = await network(1, 1)
    ctx = await contexts(net)
    store = net.stores[COUNTY]
    county = NodeContext(store, load_calendar())
    await county.load()
    with reads_of(store, "documents") as reads:
        for n in range(100):
            status = await county.binding_status(MATTER, CATALOGUE.version + 1 + n % 5, VILLAGE)
            assert isinstance(status, Refusal) and "never held" in status.params["fields"]
    assert len(reads) == 1

    newer = await publish_newer(net, ctx)  # kept by another process of the county (another context, one store)
    entry = newer.get(MATTER.code)
    monkeypatch.setattr(sanji.context, "NEWER_CATALOGUE_LOOK_S", 0.0)  # the while has passed
    with reads_of(store, "documents") as reads:
        assert await county.binding_status(entry, newer.version, VILLAGE) is None
        assert await county.binding_status(entry, newer.version, VILLAGE) is None  # held now: no look
    assert county.catalogue_version == newer.version and len(reads) == 1


def test_a_version_a_restore_may_have_lost_is_unchecked_and_one_never_published_refused() -> None:
    """From the floor up, a version not held is refused as never published, except in a range lost in a restore
    (``lost``: the versions published after the copy was taken, up to the next one kept; open until then)."""
    entry = CATALOGUE.get(MATTER.code)
    v = CATALOGUE.version
    ranges = [(v + 2, v + 4), (v + 6, None)]
    for version, refused in ((v + 1, True), (v + 2, False), (v + 4, False), (v + 5, True), (v + 8, False)):
        status = binding_refusal(entry, None, version=version, newest=v + 10, every_version_from=v, lost=ranges)
        assert (status is not None and status.code == "binding_mismatch") is refused, version
    status = binding_refusal(entry, None, version=v + 11, newest=v + 10, every_version_from=v, lost=ranges)
    assert status is not None  # above the newest: refused, lost or not


def test_the_lost_ranges_read_and_write_back_alike() -> None:
    assert parse_lost(None) == parse_lost("") == []
    assert parse_lost("4-4,6-") == [(4, 4), (6, None)]
    assert format_lost([(4, 4), (6, None)]) == "4-4,6-"
    assert parse_lost("4") is None and parse_lost("x-") is None and parse_lost("4-y") is None


async def test_lost_ranges_typed_wrong_by_hand_refuse_no_version_as_never_published(
    network: NetworkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A value of ``catalogue_versions_lost`` that does not read says nothing of what was published: below the
    newest, no version not held is refused as never published (logged), rather than honest errands refused."""
    net = await network(1, 1)
    ctx = await contexts(net)
    newer = await publish_newer(net, ctx, CATALOGUE.version + 2)
    county = NodeContext(net.stores[COUNTY], load_calendar())
    await county.load()
    entry = newer.get(MATTER.code)
    status = await county.binding_status(entry, CATALOGUE.version + 1, VILLAGE)
    assert isinstance(status, Refusal) and "never held" in status.params["fields"]
    await net.stores[COUNTY].set_meta("catalogue_versions_lost", "from 4 on")
    county = NodeContext(net.stores[COUNTY], load_calendar())
    await county.load()
    with caplog.at_level("WARNING", logger="sanji.context"):
        assert await county.binding_status(entry, CATALOGUE.version + 1, VILLAGE) == "unchecked"
    assert any("not ranges of versions" in r.getMessage() for r in caplog.records)


async def test_a_county_restored_from_an_older_backup_refuses_no_lost_version_and_still_never_published_ones(
    network: NetworkFactory, tmp_path: Path
) -> None:
    """The county published v1 and v3 (never v2), backed up, then published v4 and v5; restored from that copy, it
    lacks v4, which it did publish (townships hold it, errands are bound to it). Its floor (v1) alone would call v4
    never published and refuse those honest errands; the restore records v4 up as maybe lost, v5 (published again
    at start) ends that range, so v4 cannot be checked (无法核对), while v2, which the copy knows was never
    published, is still refused, and v1, which the copy holds, is checked as before. Restored again from a later
    copy, it adds the next range and keeps the first."""
    await restored_county_case(network, tmp_path, None)


async def test_a_county_on_postgres_restored_from_an_older_backup_records_what_it_may_have_lost(
    network: NetworkFactory, tmp_path: Path, pg_url: str
) -> None:
    await restored_county_case(network, tmp_path, pg_url)


async def restored_county_case(network: NetworkFactory, tmp_path: Path, pg_url: str | None) -> None:
    net = await network(1, 1, county_url=pg_url)
    ctx = await contexts(net)
    v1 = CATALOGUE.version
    tampered = await registered_and_received(net, compromised(ctx[VILLAGE], CATALOGUE), ctx[TOWN])
    v3 = await publish_newer(net, ctx, v1 + 2)  # v2 never published
    store = net.stores[COUNTY]
    url = pg_url or str(store.db.url)
    copy = await asyncio.to_thread(backup, url, tmp_path / "backups", node=COUNTY)
    v4 = await publish_newer(net, ctx, v1 + 3)
    genuine = await registered_and_received(net, ctx[VILLAGE], ctx[TOWN], in_person=True)  # bound to v4
    v5 = msgspec.structs.replace(v4, version=v4.version + 1)
    await ctx[COUNTY].publish(v5)
    entries = {e: bound_of(await net.stores[TOWN].errand_state_blob(e)).matter_entry for e in (tampered, genuine)}
    assert await ctx[COUNTY].binding_status(entries[genuine], v4.version, VILLAGE) is None

    async def never_held(county: NodeContext, version: int) -> None:
        status = await county.binding_status(entries[genuine], version, VILLAGE)
        assert isinstance(status, Refusal) and "never held" in status.params["fields"], (version, status)

    await never_held(ctx[COUNTY], v1 + 1)
    await store.db.dispose()
    await asyncio.to_thread(restore, url, copy.path)
    db = await open_database(url)
    try:
        back = Store(db, node_id=COUNTY, key=net.layout.keys[COUNTY], directory=net.directory)
        await back.start()
        assert await back.meta_value("catalogue_versions_floor") == str(v1)  # kept, not forgotten
        assert await back.meta_value("catalogue_versions_lost") == f"{v4.version}-"
        county = NodeContext(back, load_calendar())
        await county.load()
        assert county.catalogue_version == v3.version and await county.catalogue_floor() == v1
        await never_held(county, v4.version)  # above the newest held, until the county publishes again
        await county.publish(v5)  # the catalogue file the county loads at start
        assert await back.meta_value("catalogue_versions_lost") == f"{v4.version}-{v4.version}"
        assert await county.binding_status(entries[genuine], v4.version, VILLAGE) == "unchecked"
        await never_held(county, v1 + 1)  # the copy held v1 and v3 and not v2: never published
        status = await county.binding_status(entries[tampered], v1, VILLAGE)  # the copy holds v1
        assert isinstance(status, Refusal) and "proxy_allowed" in status.params["fields"]
        await never_held(county, v5.version + 1)  # above the newest

        # a later copy (v5 newest, v4 lost) restored after v6 and v7 were published: v6 lost too, v4 still
        again = await asyncio.to_thread(backup, url, tmp_path / "backups", node=COUNTY)
        v7 = msgspec.structs.replace(v4, version=v5.version + 2)
        await county.publish(msgspec.structs.replace(v4, version=v5.version + 1))
        await county.publish(v7)
    finally:
        await db.dispose()
    await asyncio.to_thread(restore, url, again.path)
    db = await open_database(url)
    try:
        back = Store(db, node_id=COUNTY, key=net.layout.keys[COUNTY], directory=net.directory)
        await back.start()
        county = NodeContext(back, load_calendar())
        await county.load()
        await county.publish(v7)
        lost = f"{v4.version}-{v4.version},{v5.version + 1}-{v5.version + 1}"
        assert await back.meta_value("catalogue_versions_lost") == lost
        for version in (v4.version, v5.version + 1):
            assert await county.binding_status(entries[genuine], version, VILLAGE) == "unchecked"
        await never_held(county, v1 + 1)
        assert await county.binding_status(entries[genuine], v7.version, VILLAGE) is None
    finally:
        await db.dispose()
