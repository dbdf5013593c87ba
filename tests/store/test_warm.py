"""sanji.store.warm: what a process keeps of the errands it projected, bounded, handed out as copies."""

from __future__ import annotations

from protocol.errand import Projection
from sanji.store.intake import ActionRow
from sanji.store.warm import WarmErrands


def projection(errand: str, digest: str, waiting: tuple[str, ...] = ()) -> Projection:
    return Projection(errand=errand, state=None, main=(), notes=(), rejected={}, waiting=waiting, digest=digest)


def rows(errand: str, n: int) -> list[ActionRow]:
    return [ActionRow(f"{errand}-{i}", errand, i, "note", "applied", "", b"") for i in range(n)]


def test_only_the_row_this_process_wrote_is_taken() -> None:
    warm = WarmErrands(100)
    warm.keep({"E1": (projection("E1", "d1", ("w",)), "b1")}, {"E1": rows("E1", 3)})
    assert warm.take("E1", ("d2", 1, "b1")) is None  # another digest: written elsewhere since
    assert warm.take("E1", ("d1", 0, "b1")) is None  # as many waiting? no: something was decided
    assert warm.take("E1", ("d1", 1, "b2")) is None  # projected under another tree or release
    taken = warm.take("E1", ("d1", 1, "b1"))
    assert taken is not None and [r.id for r in taken.rows] == ["E1-0", "E1-1", "E1-2"]
    assert (warm.taken, warm.missed) == (1, 3)


def test_what_is_handed_out_is_a_copy_a_rolled_back_call_cannot_change() -> None:
    warm = WarmErrands(100)
    warm.keep({"E1": (projection("E1", "d1"), "b")}, {"E1": rows("E1", 2)})
    first = warm.take("E1", ("d1", 0, "b"))
    assert first is not None
    first.rows[0].status = "rejected"  # what a call does to the rows it holds, then rolls back
    again = warm.take("E1", ("d1", 0, "b"))
    assert again is not None and again.rows[0].status == "applied"


def test_the_errands_taken_longest_ago_go_first_past_the_bound() -> None:
    warm = WarmErrands(10)
    for e in ("E1", "E2", "E3"):
        warm.keep({e: (projection(e, e), "b")}, {e: rows(e, 4)})
    assert len(warm) == 2  # 12 rows > 10: E1, kept first and never taken since, is dropped
    assert warm.take("E1", ("E1", 0, "b")) is None
    assert warm.take("E2", ("E2", 0, "b")) is not None  # E2 is now the one taken last
    warm.keep({"E4": (projection("E4", "E4"), "b")}, {"E4": rows("E4", 4)})
    assert warm.take("E3", ("E3", 0, "b")) is None
    assert warm.take("E2", ("E2", 0, "b")) is not None
    warm.keep({"E5": (projection("E5", "E5"), "b")}, {"E5": rows("E5", 11)})  # alone past the bound
    assert warm.take("E5", ("E5", 0, "b")) is None and len(warm) == 2
