"""督办 urgings as a node holds them: for the urged desk's home page and the county's supervision screen.

Everything is derived from the errands' projected states (``ErrandState.urgings``, kept by
``protocol.errand`` under ``protocol.urging``'s rules) and the applied answers; nothing is stored.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

import msgspec

from protocol.hlc import wall_ms
from protocol.urging import STATUS_LABELS, Urging, status
from sanji.auth import roles
from sanji.store import Store


class UrgingRow(msgspec.Struct, kw_only=True):
    id: str
    errand: str
    url: str
    receipt: str
    matter: str
    applicant_name: str
    by: str
    to: str
    window: str
    text: str
    answer_by: str
    at_ms: int
    status: str  # protocol.urging: open / answered / overdue
    status_zh: str
    status_en: str
    answer: str = ""  # the answer's text
    answered_at_ms: int = 0


async def urging_rows(store: Store, today: date, *, to: str | None = None, limit: int = 500) -> list[UrgingRow]:
    """Urgings on errands this node holds, newest first; ``to`` keeps those addressed to one desk."""
    urged = [u for u in await store.annotations("supervise", limit=limit) if u.get("answer_by")]
    if not urged:
        return []
    texts = {str(u["id"]): str(u.get("text", "")) for u in urged}
    answers = {str(a["id"]): str(a.get("text", "")) for a in await store.annotations("answer_urging", limit=limit)}
    states = await store.errand_states(sorted({str(u["errand"]) for u in urged}))
    out: list[UrgingRow] = []
    for errand_id, state in states.items():
        for held in state.get("urgings", ()):
            urging = msgspec.convert(held, Urging)
            if urging.id not in texts or (to is not None and urging.to != to):
                continue
            shown = status(urging, today)
            zh, en = STATUS_LABELS[shown]
            out.append(
                UrgingRow(
                    id=urging.id,
                    errand=errand_id,
                    url="/errands/" + quote(errand_id, safe=""),
                    receipt=str(state.get("receipt") or errand_id),
                    matter=str(state.get("matter", "")),
                    applicant_name=str(state.get("applicant_name", "")),
                    by=urging.by,
                    to=urging.to,
                    window=urging.window,
                    text=texts[urging.id],
                    answer_by=urging.answer_by,
                    at_ms=wall_ms(urging.at),
                    status=shown,
                    status_zh=zh,
                    status_en=en,
                    answer=answers.get(urging.answer, ""),
                    answered_at_ms=wall_ms(urging.answered_at) if urging.answered_at else 0,
                )
            )
    out.sort(key=lambda r: (-r.at_ms, r.id))
    return out


# How a desk says who answers an urging it lists but may not answer: one naming no window, shown to an account
# sitting at a window. The centre's head is how a window clerk names the account with no window that answers it.
CENTRE_ANSWERS = ("由中心负责人答复", "answered by the centre's head")


def seen_at_window(rows: list[UrgingRow], node: str, window: str) -> list[UrgingRow]:
    """The urgings an account sitting at ``window`` is shown ('' : every row, as the whole node's account and the
    open demo desk see them): those addressed to ``node`` that name its window, and those naming no window (urged
    before the errand had one). The latter stay in view although only a whole-node account may answer them
    (``answerable``): the window staff should still know their centre was urged about the errand, and each screen
    says the centre's head answers it (``CENTRE_ANSWERS``) instead of offering them an answer."""
    if not window:
        return rows
    return [r for r in rows if r.to == node and r.window in (window, "")]


def answerable(row: UrgingRow, node: str, window: str) -> bool:
    """Whether an account sitting at ``window`` ('' : the whole node's) at ``node`` may answer ``row``: the rule the
    write asks (``roles.window_answers``, after ``protocol.urging``'s: only the desk urged), so the home page, the
    badge and /supervision count and offer only what the answer would not be refused."""
    return row.to == node and roles.window_answers(window, row.window)


def counts(rows: list[UrgingRow]) -> dict[str, Any]:
    tally = {"open": 0, "answered": 0, "overdue": 0}
    for row in rows:
        tally[row.status] += 1
    return tally
