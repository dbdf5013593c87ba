"""Store behaviour on PostgreSQL: every SQLite store test again (and the attachment rows' tests), plus two hub
processes on one database.

The shared tests are imported from ``test_store_sqlite`` and collected here a second
time; this module's ``db_url`` (a fresh PostgreSQL database, see ``pg_url``) overrides
the SQLite default of tests/conftest.py, so ``open_store`` opens PostgreSQL stores.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from test_attachment_index import (  # noqa: F401 -- collected again here, against PostgreSQL
    test_the_kept_rows_answer_what_decoding_every_attach_action_answered,
    test_the_migration_fills_the_rows_from_the_attach_actions_held,
)
from test_store_sqlite import (  # noqa: F401 -- collected again here, against PostgreSQL
    TOWN,
    VILLAGE,
    StoreOpener,
    chain,
    counts,
    expected_digests,
    register,
    standard_batches,
    statuses,
    submit,
    test_a_crash_after_a_push_is_written_leaves_nothing,
    test_a_kept_row_that_cannot_be_trusted_is_projected_again,
    test_a_node_on_the_path_changed_makes_its_errands_be_projected_again,
    test_a_push_continues_what_this_process_wrote_without_reading_it_back,
    test_a_push_that_fails_part_way_leaves_memory_as_what_was_committed,
    test_a_registration_refused_for_a_node_not_enrolled_is_judged_again_once_it_is,
    test_a_restarted_store_never_issues_a_time_before_one_it_used,
    test_actions_in_any_order_and_any_batches_leave_what_projecting_everything_leaves,
    test_an_action_out_of_bounds_stays_refused_when_its_errand_is_projected_again,
    test_an_enrollment_leaves_kept_rows_to_be_continued,
    test_an_errand_another_process_wrote_since_is_read_back_not_continued,
    test_apply_is_atomic,
    test_batches_in_order_are_folded_onto_the_kept_rows_which_equal_a_full_projection,
    test_database_of_another_node_refuses_to_start,
    test_errands_are_found_by_receipt_id_matter_or_name_newest_first,
    test_forked_batch_is_quarantined_and_never_applied,
    test_forwarding_pages_respect_the_budget_across_streams,
    test_local_action_refused_by_rules_writes_nothing,
    test_migrations_build_exactly_the_declared_schema,
    test_out_of_order_batches_are_held_then_applied,
    test_receive_is_idempotent,
    test_tampered_frame_is_refused_and_only_logged,
    test_the_authors_copy_replaces_a_forged_foreign_copy_whole,
    test_the_clock_mark_keeps_the_greatest_of_every_process_on_one_database,
)

from protocol.actions import Action
from protocol.stream import StreamKey
from sanji.layout import Layout
from sanji.store import Store

pytestmark = pytest.mark.postgres


@pytest.fixture
def db_url(pg_url: str) -> str:
    return pg_url


def many_batches(errands: int) -> list[list[Action]]:
    """One batch per step: register and submit ``errands`` errands, interleaved."""
    batches: list[list[Action]] = []
    for n in range(errands):
        batches.append([register(f"P{n}", 10 * n)])
    for n in range(errands):
        batches.append([submit(f"P{n}", 10 * n + 1)])
    return batches


async def two_hubs(open_store: StoreOpener) -> tuple[Store, Store]:
    """Two Store objects, each with its own engine and pool, on the same database: two hub processes."""
    a = await open_store(TOWN)
    b = await open_store(TOWN)
    assert not a.db.is_sqlite
    assert a.db is not b.db and a.db.writer is not b.db.writer
    assert a.instance_id == b.instance_id
    return a, b


async def test_two_hub_processes_receive_the_same_frames_concurrently(open_store: StoreOpener, layout: Layout) -> None:
    a, b = await two_hubs(open_store)
    batches = many_batches(6)
    frames = chain(layout, batches)

    out_a, out_b = await asyncio.gather(a.receive(frames, peer=VILLAGE), b.receive(frames, peer=VILLAGE))

    for seq, (ra, rb) in enumerate(zip(out_a.results, out_b.results, strict=True), start=1):
        assert ra.seq == rb.seq == seq
        assert sorted([ra.status, rb.status]) == ["duplicate", "stored"], (seq, ra, rb)
    assert out_a.applied_batches + out_b.applied_batches == len(frames)
    assert out_a.applied_actions + out_b.applied_actions == sum(len(x) for x in batches)

    c = await counts(a)
    assert c == await counts(b)
    assert (c["batches"], c["actions"], c["errands"], c["held_batches"], c["quarantine"]) == (
        len(frames),
        sum(len(x) for x in batches),
        6,
        0,
        0,
    )
    assert await a.cursors_where() == {StreamKey(VILLAGE, VILLAGE): len(frames)}
    expected = expected_digests(layout, batches)
    assert await a.digests() == expected
    assert await b.digests() == expected
    for n in range(6):
        row = await b.errand(f"P{n}")
        assert row is not None and row["stage"] == "submitted" and row["version"] == 2


async def test_two_hub_processes_with_frames_in_different_orders(open_store: StoreOpener, layout: Layout) -> None:
    a, b = await two_hubs(open_store)
    batches = many_batches(5)
    frames = chain(layout, batches)
    shuffled = frames[:]
    random.Random(7).shuffle(shuffled)

    out_a, out_b, out_c = await asyncio.gather(
        a.receive(list(reversed(frames)), peer=VILLAGE),
        b.receive(shuffled, peer=VILLAGE),
        a.receive(frames, peer=VILLAGE),
    )

    for outcome in (out_a, out_b, out_c):
        assert set(statuses(outcome)) <= {"stored", "duplicate", "held"}
    assert out_a.applied_batches + out_b.applied_batches + out_c.applied_batches == len(frames)
    c = await counts(a)
    assert (c["batches"], c["actions"], c["held_batches"], c["quarantine"]) == (
        len(frames),
        sum(len(x) for x in batches),
        0,
        0,
    )
    assert await b.cursors_where() == {StreamKey(VILLAGE, VILLAGE): len(frames)}
    assert await a.digests() == expected_digests(layout, batches)
    # and anything sent once more is a plain duplicate on either hub
    assert statuses(await b.receive(frames, peer=VILLAGE)) == ["duplicate"] * len(frames)
