"""sanji.store.warm: what a process keeps of the errands it projected, bounded, handed out shared and changed
only as copies (``ActionRow.shared``)."""

from __future__ import annotations

import asyncio
from typing import cast

from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.actions import Action
from protocol.errand import ErrandState, Projection
from sanji.store.intake import ActionRow, Intake, KeptRow
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


def taken(warm: WarmErrands, errand: str, token: tuple[str, int, str]) -> Intake:
    """An intake that took ``errand`` warm, as ``Intake.ensure`` does once it has read the errand's row."""
    intake = Intake(defer=True, warm=warm)  # defer: a replaced row is written at the end, not now
    intake.kept[errand] = KeptRow(errand, None, token[0], token[2], "", token[1])
    intake.actions[errand] = []
    assert intake._take_warm([errand]) == []
    return intake


def test_a_call_changes_copies_a_rolled_back_call_leaves_the_warm_rows_as_committed() -> None:
    warm = WarmErrands(100)
    warm.keep(
        {"E1": (projection("E1", "d1"), "b"), "E2": (projection("E2", "d2"), "b")},
        {"E1": rows("E1", 2), "E2": rows("E2", 1)},
    )
    first = taken(warm, "E1", ("d1", 0, "b"))
    shared = first.actions["E1"][1]
    first.set_status("E1-0", "rejected", "why")  # what a call does to the rows it holds, then rolls back
    moved = ActionRow("E1-1", "E2", 0, "note", "new", "", b"")
    first.actions["E2"] = []
    assert (
        asyncio.run(
            first.replace(
                cast(AsyncConnection, None),
                cast(Action, moved),
                {"id": "E1-1", "errand": "E2", "base": 0, "kind": "note", "status": "new", "reason": "", "body": b"x"},
            )
        )
        == "E1"
    )
    # The call sees its changes: the rows it changed are its own copies, in its lists and by id.
    assert [(r.id, r.status) for r in first.actions["E1"]] == [("E1-0", "rejected")]
    assert first.actions["E2"] == [first._rows["E1-1"]] and first._rows["E1-1"] is not shared
    assert not any(r.shared for r in (*first.actions["E1"], *first.actions["E2"]))
    again = warm.take("E1", ("d1", 0, "b"))
    assert again is not None
    assert [(r.id, r.errand, r.status, r.body) for r in again.rows] == [
        ("E1-0", "E1", "applied", b""),
        ("E1-1", "E1", "applied", b""),
    ]
    assert all(r.shared for r in again.rows)
    # A row it only read is the warm row itself, not a copy.
    assert taken(warm, "E1", ("d1", 0, "b")).actions["E1"][1] is again.rows[1]


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


def test_the_main_lines_state_is_kept_only_beside_the_projection_it_belongs_to() -> None:
    """``Warm.line`` (``protocol.errand.Replayed``) is taken from ``lines`` only when it was kept beside the
    very projection written: a line of an earlier projection of the errand would continue the wrong one."""
    warm = WarmErrands(100)
    written, stale = projection("E1", "d1"), projection("E1", "d0")
    line = ErrandState(
        id="E1", scope="T01V01", matter="低保", applicant_name="张三", stage="registered", holder="T01V01"
    )
    warm.keep(
        {"E1": (written, "b"), "E2": (projection("E2", "d2"), "b")},
        {"E1": rows("E1", 1), "E2": rows("E2", 1)},
        {"E1": (written, line), "E2": (stale, line)},
    )
    one, two = warm.take("E1", ("d1", 0, "b")), warm.take("E2", ("d2", 0, "b"))
    assert one is not None and one.line is line
    assert two is not None and two.line is None
    intake = taken(warm, "E1", ("d1", 0, "b"))
    assert intake.line_of(intake.warm_projections["E1"]) is line
    assert intake.line_of(stale) is None
