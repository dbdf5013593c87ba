"""What screens call an errand's stage: an errand ended without a decision on what was asked is not 已办结."""

from __future__ import annotations

import pytest

from protocol.errand import OUTCOMES
from protocol.stages import DECIDED, DELIVERED, STAGE_LABELS, STAGES, stage_label


@pytest.mark.parametrize(
    ("outcome", "says"),
    [
        ("approved", "已办结"),
        ("refused", "已办结"),
        ("not_accepted", "不予受理"),
        ("returned", "已退回"),
        ("terminated", "已终止"),
        ("withdrawn", "已撤回"),
    ],
)
def test_a_decided_errand_is_said_as_what_happened(outcome: str, says: str) -> None:
    assert outcome in OUTCOMES
    assert stage_label(DECIDED, outcome).startswith(says)


def test_other_stages_keep_their_words() -> None:
    assert stage_label(DELIVERED, "returned") == STAGE_LABELS[DELIVERED]
    assert all(stage_label(s) == STAGE_LABELS[s] for s in STAGES)
