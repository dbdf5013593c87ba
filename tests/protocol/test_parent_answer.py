"""The parent's answers (``protocol.exchange.parent_cursors``/``parent_pull``): which facts it asks, when it seals."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from protocol_kit import TOWN_ID, VILLAGE_ID, new_layout

from protocol.exchange import (
    MAX_PULL_BYTES,
    ConfirmChild,
    Cursors,
    FramesForChild,
    HeldAbove,
    HeldForChild,
    OutboxSize,
    PositionsConfirmed,
    SealOutbox,
    parent_cursors,
    parent_pull,
)
from protocol.session import Cursor, CursorsRequest, PullRequest
from protocol.stream import StreamKey

HELD = {StreamKey(TOWN_ID, VILLAGE_ID): 3}
BELOW = {StreamKey(VILLAGE_ID, VILLAGE_ID): 5}


def run(
    steps: Generator[Any, Any, Any], *, reclaim: dict[StreamKey, int], confirmed: bool, outbox: int
) -> tuple[Any, list[str]]:
    asked: list[str] = []
    answer: Any = None
    while True:
        try:
            command = steps.send(answer)
        except StopIteration as done:
            return done.value, asked
        asked.append(type(command).__name__)
        answer = {
            HeldForChild: HELD,
            ConfirmChild: reclaim,
            PositionsConfirmed: confirmed,
            OutboxSize: outbox,
            SealOutbox: None,
            Cursors: BELOW,
            HeldAbove: {},
            FramesForChild: ([b"frame"], False),
        }[type(command)]


def request() -> CursorsRequest:
    return CursorsRequest(sender=VILLAGE_ID, ancestor_streams=(Cursor(TOWN_ID, VILLAGE_ID, 3),))


@pytest.mark.parametrize(("confirmed", "outbox", "seals"), [(True, 2, True), (True, 0, False), (False, 2, False)])
def test_fresh_actions_are_sealed_before_down_only_once_positions_are_confirmed(
    confirmed: bool, outbox: int, seals: bool
) -> None:
    answer, asked = run(
        parent_cursors(new_layout().directory, request()), reclaim={}, confirmed=confirmed, outbox=outbox
    )
    assert ("SealOutbox" in asked) is seals
    assert asked.index("Cursors") > asked.index("ConfirmChild")
    assert answer.down == (Cursor(VILLAGE_ID, VILLAGE_ID, 5),) and answer.cursors == (Cursor(TOWN_ID, VILLAGE_ID, 3),)


def test_a_parent_taking_batches_back_says_nothing_of_down_and_seals_nothing() -> None:
    lost = {StreamKey(TOWN_ID, VILLAGE_ID): 4}
    answer, asked = run(parent_cursors(new_layout().directory, request()), reclaim=lost, confirmed=True, outbox=9)
    assert answer.down is None and answer.reclaim == (Cursor(TOWN_ID, VILLAGE_ID, 4),)
    assert "SealOutbox" not in asked and "Cursors" not in asked


def test_a_pull_is_answered_within_the_parents_limit() -> None:
    pull = PullRequest(sender=VILLAGE_ID, at=1, cursors=(), max_bytes=10 * MAX_PULL_BYTES)
    steps = parent_pull(pull)
    assert isinstance(next(steps), PositionsConfirmed)
    assert isinstance(steps.send(False), FramesForChild)
    steps2 = parent_pull(pull)
    next(steps2)
    page = steps2.send(False)
    assert page.budget == MAX_PULL_BYTES
