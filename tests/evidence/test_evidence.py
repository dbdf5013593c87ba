"""sanji.evidence: a clean store verifies clean; every kind of tampering is reported where it happened.

The stores are real: a county of one township and two villages runs in-process
(tests/evidence/evidence_kit.py: built once per module, copied for each test), staff move
errands with ``ErrandService`` and every node syncs after each round, so the county holds
several signed, chained batches in every stream. Tampering is done the way an insider with the database file would:
UPDATE/DELETE on the SQLite file.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from evidence_kit import (
    COUNTY,
    TOWN,
    VILLAGE,
    County,
    act,
    batch_contents,
    build_template,
    delete_batch,
    frame_row,
    open_copy,
    set_action_body,
    set_digest,
    set_frame,
    stream_length,
)
from sqlalchemy import insert, select, update

from protocol.actions import Note
from protocol.batch import GENESIS, frame_hash, open_frame, seal
from protocol.encoding import decode_action, encode
from protocol.errors import SanjiError
from protocol.signing import SigningKey
from sanji import evidence
from sanji.evidence import KINDS, EvidenceReport, Problem, export_errand, verify, verify_bundle
from sanji.forms import RegisterForm
from sanji.layout import Layout
from sanji.store import Store
from sanji.store import schema as t

Net = County
STREAM = f"{VILLAGE}->{VILLAGE}"  # the village's own stream, as the county holds it


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, dict[str, list[str]], Path]:
    """The county story, run once per module on SQLite files."""
    base = tmp_path_factory.mktemp("county-template")
    layout, errands = asyncio.run(build_template(base))
    return layout, errands, base


@pytest.fixture
async def county(
    template: tuple[Layout, dict[str, list[str]], Path], tmp_path: Path
) -> AsyncIterator[tuple[County, dict[str, list[str]]]]:
    """A private copy of the template county for one test to tamper with."""
    layout, errands, base = template
    net = await open_copy(layout, base, tmp_path / "county")
    try:
        assert await stream_length(net.stores[COUNTY], VILLAGE, VILLAGE) >= 4
        yield net, errands
    finally:
        await net.close()


def kinds(report: EvidenceReport) -> Counter[str]:
    return Counter(p.kind for p in report.problems)


def only(report: EvidenceReport, kind: str) -> list[Problem]:
    return [p for p in report.problems if p.kind == kind]


def assert_consequences_only(report: EvidenceReport, errands: set[str], actions: set[str]) -> None:
    """Besides the batch problem: a digest problem for exactly ``errands``, an unbacked history row for
    exactly ``actions`` -- the actions the missing or refused batch carried -- and nothing else."""
    assert {p.errand for p in only(report, "digest_mismatch")} == errands
    unbacked = {p.message.split()[1] for p in only(report, "action_unbacked")}
    assert unbacked == actions
    assert {p.errand for p in only(report, "action_unbacked")} <= errands


# -- clean stores -----------------------------------------------------------------------------------


async def test_every_node_of_a_real_county_verifies_clean(county: tuple[Net, Any]) -> None:
    net, errands = county
    for node in (COUNTY, TOWN, VILLAGE, "T01V02"):
        report = await verify(net.stores[node], workers=1)
        assert report.ok, [str(p) for p in report.problems]
        assert report.batches == report.batches_verified > 0
        assert report.actions == report.stored_actions  # every history row compared with a signed copy
    county_report = await verify(net.stores[COUNTY], workers=1)
    assert county_report.errands == sum(len(ids) for ids in errands.values())
    assert county_report.streams == 6  # 3 writers x 2 village scopes


async def test_the_process_pool_finds_what_one_process_finds(county: tuple[Net, Any]) -> None:
    net, _ = county
    store = net.stores[COUNTY]
    clean = await verify(store, workers=2, chunk_bytes=1)  # one batch per chunk: chains stitched across chunks
    assert clean.ok and clean.workers == 2, [str(p) for p in clean.problems]
    await delete_batch(store, VILLAGE, VILLAGE, 2)
    await set_digest(store, (await store.digests()).popitem()[0], "0" * 64)
    pooled = await verify(store, workers=2, chunk_bytes=1, errands_per_shard=1)
    single = await verify(store, workers=1)
    assert pooled.problems == single.problems and not pooled.ok


async def test_worker_reads_are_rechecked_in_the_snapshot_when_the_node_wrote_meanwhile(
    county: tuple[Net, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pool workers read their shard's rows from the SQLite file themselves, in snapshots later than
    the one the frames were read in; when the node committed meanwhile, problems are re-checked."""
    net, errands = county
    store = net.stores[COUNTY]
    await set_digest(store, errands[VILLAGE][0], "0" * 64)
    quiet = await verify(store, workers=2)
    assert "phase2_rechecked_in_snapshot" not in quiet.timings
    monkeypatch.setattr(evidence._Fence, "changed", lambda self: True)
    busy = await verify(store, workers=2)
    assert busy.timings["phase2_rechecked_in_snapshot"] == 1
    assert busy.problems == quiet.problems == (await verify(store, workers=1)).problems
    assert [p.kind for p in busy.problems] == ["digest_mismatch"]


async def test_own_unsealed_actions_count_as_evidence(county: tuple[Net, Any]) -> None:
    net, errands = county
    village = net.stores[VILLAGE]
    await act(net, VILLAGE, errands[VILLAGE][2], "note", text="尚未同步的备注")
    report = await verify(village, workers=1)
    assert report.ok, [str(p) for p in report.problems]
    assert report.outbox_actions == 1


# -- tampering with batches ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["signature", "payload"])
async def test_a_changed_byte_in_a_stored_frame_is_reported_at_that_batch(county: tuple[Net, Any], where: str) -> None:
    net, _ = county
    store = net.stores[COUNTY]
    frame, _ = await frame_row(store, VILLAGE, VILLAGE, 2)
    errands, action_ids = batch_contents(store, frame)
    position = len(frame) - 1 if where == "signature" else len(frame) // 2
    changed = bytearray(frame)
    changed[position] ^= 0x01
    await set_frame(store, VILLAGE, VILLAGE, 2, frame=bytes(changed))

    report = await verify(store, workers=1)
    (refused,) = only(report, "frame_refused")
    assert (refused.stream, refused.seq) == (STREAM, 2)
    assert "changed after it was stored" in refused.message
    if where == "signature":
        assert "signature does not match" in refused.message
    assert set(kinds(report)) <= {"frame_refused", "digest_mismatch", "action_unbacked"}
    assert_consequences_only(report, errands, action_ids)


async def test_a_batch_deleted_from_the_middle_of_a_stream_is_a_gap(county: tuple[Net, Any]) -> None:
    net, _ = county
    store = net.stores[COUNTY]
    frame, _ = await frame_row(store, VILLAGE, VILLAGE, 2)
    errands, action_ids = batch_contents(store, frame)
    await delete_batch(store, VILLAGE, VILLAGE, 2)

    report = await verify(store, workers=1)
    (gap,) = only(report, "gap")
    assert (gap.stream, gap.seq) == (STREAM, 2)
    assert gap.message == "batch 2 is missing: the stream goes from batch 1 to 3"
    assert set(kinds(report)) == {"gap", "digest_mismatch", "action_unbacked"}
    assert_consequences_only(report, errands, action_ids)
    assert all("no verified batch carries" in p.message for p in only(report, "digest_mismatch"))


async def test_the_first_and_the_last_batch_deleted(county: tuple[Net, Any]) -> None:
    net, _ = county
    store = net.stores[COUNTY]
    last = await stream_length(store, VILLAGE, VILLAGE)
    await delete_batch(store, VILLAGE, VILLAGE, 1)
    await delete_batch(store, VILLAGE, VILLAGE, last)
    report = await verify(store, workers=1)
    (gap,) = only(report, "gap")
    assert (gap.stream, gap.seq) == (STREAM, 1) and "batch 1 is missing" in gap.message
    (cursor,) = only(report, "cursor_mismatch")
    assert cursor.stream == STREAM and f"says {last} batches" in cursor.message


async def test_swapped_frames_are_reported_as_misfiled(county: tuple[Net, Any]) -> None:
    net, _ = county
    store = net.stores[COUNTY]
    frame2, hash2 = await frame_row(store, VILLAGE, VILLAGE, 2)
    frame3, hash3 = await frame_row(store, VILLAGE, VILLAGE, 3)
    await set_frame(store, VILLAGE, VILLAGE, 2, frame=frame3, hash=hash3)
    await set_frame(store, VILLAGE, VILLAGE, 3, frame=frame2, hash=hash2)

    report = await verify(store, workers=1)
    assert [(p.kind, p.stream, p.seq) for p in report.problems] == [
        ("misfiled", STREAM, 2),
        ("misfiled", STREAM, 3),
    ]
    assert "holds batch 3 of T01V01->T01V01" in report.problems[0].message


async def test_a_frame_copied_over_another_breaks_the_chain_story(county: tuple[Net, Any]) -> None:
    net, _ = county
    store = net.stores[COUNTY]
    frame2, hash2 = await frame_row(store, VILLAGE, VILLAGE, 2)
    lost, lost_actions = batch_contents(store, (await frame_row(store, VILLAGE, VILLAGE, 3))[0])
    await set_frame(store, VILLAGE, VILLAGE, 3, frame=frame2, hash=hash2)
    report = await verify(store, workers=1)
    (misfiled,) = only(report, "misfiled")
    assert (misfiled.stream, misfiled.seq) == (STREAM, 3)
    assert_consequences_only(report, lost, lost_actions)


async def test_a_changed_hash_column_is_reported_alone(county: tuple[Net, Any]) -> None:
    net, _ = county
    store = net.stores[COUNTY]
    await set_frame(store, VILLAGE, VILLAGE, 2, hash=bytes(32))
    report = await verify(store, workers=1)
    assert [(p.kind, p.stream, p.seq) for p in report.problems] == [("hash_mismatch", STREAM, 2)]


async def test_a_broken_chain_link_is_reported_at_the_later_batch(county: tuple[Net, Any]) -> None:
    """A validly signed batch 2 that names the wrong predecessor (an origin that forked its stream)."""
    net, _ = county
    store = net.stores[COUNTY]
    original = store.directory
    frame2, _ = await frame_row(store, VILLAGE, VILLAGE, 2)
    batch2 = open_frame(frame2, original)
    forked = seal(
        key=net.layout.keys[VILLAGE],
        origin=VILLAGE,
        scope=VILLAGE,
        audience=batch2.payload.audience,
        seq=2,
        prev=GENESIS,  # names the genesis hash instead of batch 1
        created=batch2.payload.created,
        actions=batch2.actions,
    )
    await set_frame(store, VILLAGE, VILLAGE, 2, frame=forked, hash=frame_hash(forked))
    report = await verify(store, workers=1)
    # batch 2 does not name batch 1, and batch 3 names the original batch 2, not this one
    assert [(p.kind, p.stream, p.seq) for p in report.problems] == [
        ("chain_broken", STREAM, 2),
        ("chain_broken", STREAM, 3),
    ]
    assert "names 0000000000000000… as its predecessor" in report.problems[0].message


async def test_a_batch_signed_with_an_unknown_key_is_refused(county: tuple[Net, Any]) -> None:
    net, _ = county
    store = net.stores[COUNTY]
    frame2, _ = await frame_row(store, VILLAGE, VILLAGE, 2)
    original = open_frame(frame2, store.directory)
    forged = seal(
        key=SigningKey.generate(),
        origin=VILLAGE,
        scope=VILLAGE,
        audience=original.payload.audience,
        seq=2,
        prev=original.prev,
        created=original.payload.created,
        actions=original.actions,
    )
    await set_frame(store, VILLAGE, VILLAGE, 2, frame=forged, hash=frame_hash(forged))
    report = await verify(store, workers=1)
    (refused,) = only(report, "frame_refused")
    assert refused.seq == 2 and "unknown key" in refused.message


# -- tampering with what the store derived ------------------------------------------------------------


async def test_a_wrong_stored_digest_is_reported_for_that_errand_only(county: tuple[Net, Any]) -> None:
    net, errands = county
    store = net.stores[COUNTY]
    victim = errands["T01V02"][1]
    await set_digest(store, victim, "ab" * 32)
    report = await verify(store, workers=1)
    (problem,) = report.problems
    assert (problem.kind, problem.errand) == ("digest_mismatch", victim)
    assert problem.message.startswith("stored digest abababababababab… differs from ")


async def test_a_rewritten_history_row_is_reported(county: tuple[Net, Any]) -> None:
    """The history the screens show comes from `actions`: rewriting who acted must not go unnoticed."""
    net, errands = county
    store = net.stores[COUNTY]
    row = await store.errand(errands[VILLAGE][1])
    assert row is not None
    target = next(h for h in row["history"] if h["kind"] == "accept")
    action = decode_action(await _body(store, target["id"]))
    forged = type(action)(**{**{f: getattr(action, f) for f in action.__struct_fields__}, "actor": "某某"})
    await set_action_body(store, action.id, encode(forged))
    report = await verify(store, workers=1)
    (problem,) = report.problems
    assert (problem.kind, problem.errand) == ("action_altered", errands[VILLAGE][1])
    assert "actor: '某某' stored" in problem.message


async def test_a_history_row_with_no_signed_batch_is_unbacked(county: tuple[Net, Any]) -> None:
    net, errands = county
    store = net.stores[COUNTY]
    errand = errands[VILLAGE][2]
    fake = Note(
        id="f" * 32, errand=errand, scope=VILLAGE, node=TOWN, actor="冒名", role="x", at=1 << 40, text="插入的记录"
    )
    async with store.db.writer.begin() as conn:
        await conn.execute(
            insert(t.actions).values(
                id=fake.id,
                errand=errand,
                scope=VILLAGE,
                node=TOWN,
                kind="note",
                base=0,
                at=fake.at,
                body=encode(fake),
                status="applied",
                reason="",
            )
        )
    report = await verify(store, workers=1)
    (problem,) = report.problems
    assert (problem.kind, problem.errand) == ("action_unbacked", errand)
    assert fake.id in problem.message and "note by 冒名" in problem.message


async def test_a_changed_status_is_reported(county: tuple[Net, Any]) -> None:
    net, errands = county
    store = net.stores[COUNTY]
    errand = errands[VILLAGE][0]
    row = await store.errand(errand)
    assert row is not None
    async with store.db.writer.begin() as conn:
        await conn.execute(
            update(t.actions)
            .where(t.actions.c.id == row["history"][-1]["id"])
            .values(status="rejected", reason="被篡改")
        )
    report = await verify(store, workers=1)
    (problem,) = report.problems
    assert problem.kind == "status_mismatch" and "stored as rejected (被篡改)" in problem.message


async def test_a_kept_attachment_row_no_applied_action_names_is_reported(county: tuple[Net, Any]) -> None:
    net, errands = county
    store = net.stores[COUNTY]
    errand = errands[VILLAGE][0]
    async with store.db.writer.begin() as conn:  # as if a write had left a row behind: offered, named by nothing
        await conn.execute(
            insert(t.attachments).values(action="A-none", blob="ab" * 32, size=3, errand=errand, scope=VILLAGE)
        )
    report = await verify(store, workers=1)
    (problem,) = report.problems
    assert problem.kind == "attachment_row" and "A-none" in problem.message and problem.errand == errand
    async with store.db.writer.begin() as conn:
        await conn.execute(t.attachments.delete())
    assert (await verify(store, workers=1)).ok  # the story holds no attach action: no row is owed


async def test_problem_kinds_are_documented() -> None:
    assert set(KINDS) >= {
        "frame_refused",
        "misfiled",
        "hash_mismatch",
        "gap",
        "chain_broken",
        "cursor_mismatch",
        "digest_mismatch",
        "action_unbacked",
        "action_altered",
        "status_mismatch",
    }


async def _body(store: Store, action_id: str) -> bytes:
    async with store.db.reader.connect() as conn:
        body = await conn.scalar(select(t.actions.c.body).where(t.actions.c.id == action_id))
    assert body is not None
    return bytes(body)


# -- a relay pre-empting an action id (found while writing the audit) ------------------------------------


async def preempt_an_action(network: Any) -> tuple[Store, Store]:
    """The township, which relays the village's batches, writes a copy of them into its own stream and
    delivers that to the county first, then the genuine batch. Returns (county, village)."""
    net = await network(1, 1)
    village, county_store = net.stores[VILLAGE], net.stores[COUNTY]
    await net.service(VILLAGE).register(RegisterForm(matter="MZ-001", applicant_name="张三", actor="代办员"))
    await village.seal_outbox(force=True)
    (genuine,) = await village.frames_for_node(COUNTY)
    opened = open_frame(genuine, net.directory)
    copy_frame = seal(
        key=net.layout.keys[TOWN],
        origin=TOWN,
        scope=VILLAGE,
        audience=net.directory.audience(TOWN, VILLAGE),
        seq=1,
        prev=GENESIS,
        created=opened.payload.created,
        actions=opened.actions,
    )
    await county_store.receive([copy_frame], peer=TOWN)
    await county_store.receive([genuine], peer=TOWN)
    return county_store, village


async def test_a_relay_cannot_suppress_an_action_by_sending_a_copy_first(network: Any) -> None:
    county_store, village = await preempt_an_action(network)
    assert (await county_store.digests()) == (await village.digests())


async def test_the_audit_flags_a_suppressed_action(network: Any) -> None:
    """Whatever the store does with the copy, the audit is clean exactly when the county still agrees."""
    county_store, village = await preempt_an_action(network)
    agrees = (await county_store.digests()) == (await village.digests())
    report = await verify(county_store, workers=1)
    assert report.ok == agrees, [str(p) for p in report.problems]
    if not agrees:
        assert set(kinds(report)) == {"status_mismatch", "digest_mismatch"}
        (status,) = only(report, "status_mismatch")
        assert "stored as foreign" in status.message and "valid copy is in batch 1 of T01V01->T01V01" in status.message


# -- evidence bundles -----------------------------------------------------------------------------------


async def test_export_and_verify_bundle_round_trip(county: tuple[Net, Any]) -> None:
    net, errands = county
    store = net.stores[COUNTY]
    errand = errands[VILLAGE][0]  # escalated: village, township and county all acted
    bundle = json.loads(json.dumps(await export_errand(store, errand), ensure_ascii=False))
    assert bundle["problems"] == []
    row = await store.errand(errand)
    assert row is not None
    assert bundle["digest"] == {"stored": row["digest"], "recomputed": row["digest"]}
    assert [h["id"] for h in bundle["history"]] == [h["id"] for h in row["history"]]
    for entry in bundle["history"]:
        assert entry["actor"] and entry["role"] and entry["node"] and entry["time"].endswith("+08:00")
        assert entry["status"] == entry["stored_status"] == "applied"
        assert entry["evidence"] == "signed" and entry["carried_in"]
    assert {h["node"] for h in bundle["history"]} == {VILLAGE, TOWN, COUNTY}
    assert {(s["origin"], s["scope"]) for s in bundle["streams"]} == {(n, VILLAGE) for n in (VILLAGE, TOWN, COUNTY)}

    report = verify_bundle(bundle)
    assert report.ok, report.problems
    assert report.digest == row["digest"] and report.keys_from == "bundle"
    assert report.signed_actions == len(bundle["history"]) and report.unsigned_actions == 0
    trusted = verify_bundle(bundle, net.directory)
    assert trusted.ok and trusted.keys_from == "directory", trusted.problems


async def test_a_bundle_from_a_village_with_unsealed_actions(county: tuple[Net, Any]) -> None:
    net, errands = county
    errand = errands[VILLAGE][2]
    await act(net, VILLAGE, errand, "note", text="还没同步")
    bundle = await export_errand(net.stores[VILLAGE], errand)
    assert [h["evidence"] for h in bundle["history"]].count("unsealed") == 1
    report = verify_bundle(bundle, net.directory)
    assert report.ok and report.unsigned_actions == 1, report.problems
    assert any("not sealed" in n for n in report.notes)


async def test_exporting_an_unknown_errand_is_a_clear_error(county: tuple[Net, Any]) -> None:
    net, _ = county
    with pytest.raises(SanjiError, match="not held at C"):
        await export_errand(net.stores[COUNTY], "T01V01-nope")


def _flip_hex(text: str, at: int) -> str:
    return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1 :]


def tamper_frame(b: dict[str, Any]) -> None:
    f = b["frames"][0]
    f["frame"] = _flip_hex(f["frame"], len(f["frame"]) // 2)


def tamper_actor(b: dict[str, Any]) -> None:
    b["history"][1]["actor"] = "替罪羊"


def tamper_action_copy(b: dict[str, Any]) -> None:
    b["history"][1]["action"]["actor"] = "替罪羊"
    b["history"][1]["actor"] = "替罪羊"


def tamper_time(b: dict[str, Any]) -> None:
    b["history"][2]["time"] = "2020-01-01T08:00:00+08:00"


def tamper_chain(b: dict[str, Any]) -> None:
    s = next(s for s in b["streams"] if len(s["chain"]) > 1)
    s["chain"][0] = "00" * 32


def tamper_drop_history(b: dict[str, Any]) -> None:
    del b["history"][3]


def tamper_digest(b: dict[str, Any]) -> None:
    b["digest"]["recomputed"] = b["digest"]["stored"] = "cd" * 32


def tamper_status(b: dict[str, Any]) -> None:
    b["history"][1]["status"] = "rejected"


def tamper_state(b: dict[str, Any]) -> None:
    b["state"]["outcome"] = "approved"


def tamper_drop_frame(b: dict[str, Any]) -> None:
    del b["frames"][0]


def tamper_key(b: dict[str, Any]) -> None:
    other = SigningKey.generate()
    for node in b["nodes"]:
        for key in node["keys"]:
            if key["node"] == VILLAGE:
                key["public_key"] = other.public_bytes.hex()


def tamper_structure(b: dict[str, Any]) -> None:
    del b["streams"]


@pytest.mark.parametrize(
    "tamper",
    [
        tamper_frame,
        tamper_actor,
        tamper_action_copy,
        tamper_time,
        tamper_chain,
        tamper_drop_history,
        tamper_digest,
        tamper_status,
        tamper_state,
        tamper_drop_frame,
        tamper_key,
        tamper_structure,
    ],
)
async def test_a_tampered_bundle_fails(county: tuple[Net, Any], tamper: Any) -> None:
    net, errands = county
    bundle = json.loads(json.dumps(await export_errand(net.stores[COUNTY], errands[VILLAGE][0]), ensure_ascii=False))
    assert verify_bundle(bundle).ok
    changed = copy.deepcopy(bundle)
    tamper(changed)
    report = verify_bundle(changed)
    assert not report.ok and report.problems
    assert not verify_bundle(changed, net.directory).ok


async def test_a_bundle_signed_by_a_substitute_key_passes_only_without_the_directory(
    county: tuple[Net, Any],
) -> None:
    """Someone who re-signs every frame with keys of their own can fool a check that trusts the bundle's
    keys; the county's directory exposes it. The report says where its keys came from."""
    net, errands = county
    bundle = json.loads(json.dumps(await export_errand(net.stores[COUNTY], errands["T01V02"][1]), ensure_ascii=False))
    fake_keys: dict[str, SigningKey] = {}
    chains = {(s["origin"], s["scope"]): s["chain"] for s in bundle["streams"]}
    for f in sorted(bundle["frames"], key=lambda f: (f["origin"], f["scope"], f["seq"])):
        batch = open_frame(bytes.fromhex(f["frame"]), net.directory)
        key = fake_keys.setdefault(batch.origin, SigningKey.generate())
        chain = chains[(batch.origin, batch.scope)]
        forged = seal(
            key=key,
            origin=batch.origin,
            scope=batch.scope,
            audience=batch.payload.audience,
            seq=batch.seq,
            prev=bytes.fromhex(chain[batch.seq - 2]) if batch.seq > 1 else GENESIS,
            created=batch.payload.created,
            actions=batch.actions,
        )
        chain[batch.seq - 1] = frame_hash(forged).hex()
        f["frame"], f["hash"] = forged.hex(), frame_hash(forged).hex()
    for node in bundle["nodes"]:
        fake = fake_keys.get(node["id"])
        node["keys"] = (
            [
                {
                    "node": node["id"],
                    "key_id": fake.key_id,
                    "algorithm": "ed25519",
                    "public_key": fake.public_bytes.hex(),
                    "revoked": False,
                }
            ]
            if fake
            else []
        )
    alone = verify_bundle(bundle)
    assert alone.ok and alone.keys_from == "bundle"
    assert any("taken from the bundle itself" in n for n in alone.notes)
    checked = verify_bundle(bundle, net.directory)
    assert not checked.ok
    assert any("not that node's key in the directory" in p for p in checked.problems)


def test_verify_bundle_never_raises_on_garbage() -> None:
    for garbage in ({}, {"format": "sanji-evidence/1"}, {"format": "sanji-evidence/1", "errand": "x", "nodes": 3}):
        report = verify_bundle(garbage)
        assert not report.ok and report.problems


def test_bundle_reports_are_plain_data(tmp_path: Path) -> None:
    report = verify_bundle({"format": "nope"})
    assert json.loads(json.dumps(report.as_dict()))["ok"] is False
