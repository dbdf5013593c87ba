"""In-app notices for the person at a desk, derived from what the node already holds.

Five kinds: new work (an errand that came into this desk's worklist), a result come back (结果已返回: the errand
is on its way down, or held here, with its result), materials asked for (需补正材料: a one-time notice issued on an
errand this desk registered, which its agent must bring), deadline warnings (黄灯/红灯 on an errand in its
worklist) and 督办 urgings addressed to this desk and not yet answered. Each has
a time; a notice is unread when its time is after the account's "read up to" mark
(``sanji.store.notice_reads``), the only thing kept. A warning's time is the start of today, so a
light still on comes back each working day after it was marked read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

import msgspec

from protocol.deadlines import CHINA_STANDARD_TIME
from protocol.hlc import wall_ms
from protocol.stages import DELIVERED, REGISTERED, RESULT_DOWN, RESULT_READY, SUPPLEMENT
from sanji.urgings import UrgingRow, answerable

NEW_WORK, WARNING, URGING = "new_work", "warning", "urging"
RESULT_BACK, SUPPLEMENT_ASKED = "result_back", "supplement_asked"


class Notice(msgspec.Struct, kw_only=True):
    kind: str
    at_ms: int
    zh: str
    en: str
    url: str
    level: str = ""  # red / yellow for warnings, overdue for an urging past its date
    unread: bool = True
    # False: an urging the account may not answer (one naming no window, shown at a window): said, never counted
    answerable: bool = True


def start_of(day: date) -> int:
    return int(datetime.combine(day, time(0), CHINA_STANDARD_TIME).timestamp() * 1000)


def arrived_ms(row: dict[str, Any], state: dict[str, Any], node: str) -> int:
    """When an errand came into ``node``'s worklist: the hand-off on its way here, the receipt here, or, for one
    this node registered and is asked materials for, the one-time notice (the pause it started)."""
    if _asked_materials(row, node) and state.get("paused_since"):
        return wall_ms(int(state["paused_since"]))
    if row.get("pending_to") == node:
        return wall_ms(int(row.get("updated_at") or 0))
    return wall_ms(int(state.get("stage_since") or row.get("registered_at") or 0))


def _asked_materials(row: dict[str, Any], node: str) -> bool:
    """An errand ``node`` registered, waiting for the materials a one-time notice asked for (``Views.worklist``
    lists it here, wherever it is held: the registering desk's agent brings them)."""
    return row.get("stage") == SUPPLEMENT and row.get("scope") == node


def _name(row: dict[str, Any]) -> str:
    return f"{row.get('receipt') or row['id']} {row.get('matter_name') or row.get('matter', '')}".strip()


# What came to a desk, by kind: the Chinese and English words, filled with the errand's name, the items asked
# for (``listed_*``) and whether it is still on its way here (``to_receive_*``).
_WORK_WORDS = {
    SUPPLEMENT_ASKED: (
        "需补正材料 {name}{listed_zh}（一次性告知，请补交）",
        "Materials requested (one-time notice): {name}{listed_en}; bring them (补交材料)",
    ),
    RESULT_BACK: ("结果已返回 {name}{to_receive_zh}", "Result back: {name}{to_receive_en}"),
    NEW_WORK: ("新到办件 {name}{to_receive_zh}", "New work: {name}{to_receive_en}"),
}


# Work that did not come from anywhere: the desk's own errand waiting for its next step. "新到办件" would have the
# agent look for something new when it is the errand she registered herself (not yet sent) or delivered (not filed).
_STAGE_WORDS = {
    REGISTERED: ("已登记，待报送乡镇 {name}", "Registered, not yet submitted to the township: {name}"),
    DELIVERED: ("已送达，待归档 {name}", "Delivered, to close and file: {name}"),
}


def _work_kind(row: dict[str, Any], node: str) -> str:
    if _asked_materials(row, node):
        return SUPPLEMENT_ASKED
    return RESULT_BACK if row.get("stage") in (RESULT_DOWN, RESULT_READY) else NEW_WORK


def _work_notice(row: dict[str, Any], state: dict[str, Any], node: str, at_ms: int) -> Notice:
    """What came to this desk: materials asked for, a result come back, or new work; saying which."""
    kind = _work_kind(row, node)
    arriving = row.get("pending_to") == node
    items = [str(i) for i in state.get("supplement_items") or ()]
    words = {
        "name": _name(row),
        "to_receive_zh": "（待签收）" if arriving else "",
        "to_receive_en": " (to receive)" if arriving else "",
        "listed_zh": "：" + "、".join(items) if items else "",
        "listed_en": ": " + ", ".join(items) if items else "",
    }
    zh, en = _STAGE_WORDS.get(row.get("stage", ""), _WORK_WORDS[kind]) if kind == NEW_WORK else _WORK_WORDS[kind]
    return Notice(kind=kind, at_ms=at_ms, zh=zh.format(**words), en=en.format(**words), url=row["url"])


def notices_for(
    node: str,
    worklist: Sequence[dict[str, Any]],
    states: dict[str, dict[str, Any]],
    urgings: Sequence[UrgingRow],
    *,
    today: date,
    read_upto: int,
    window: str = "",
) -> list[Notice]:
    """The desk's notices, newest first. ``worklist`` rows are the home page's views (with ``light``).

    ``window``: the account's ('' : the whole node's). An urging it may not answer (``sanji.urgings.answerable``)
    is listed, saying the centre's head answers it, and is never unread: the badge counts only what the account
    can act on, and 全部标为已读 could not clear what it never may answer."""
    out: list[Notice] = []
    for row in worklist:
        name = _name(row)
        state = states.get(row["id"], {})
        out.append(_work_notice(row, state, node, arrived_ms(row, state, node)))
        light = row.get("light", {})
        if light.get("cls") in ("red", "yellow"):
            out.append(
                Notice(
                    kind=WARNING,
                    at_ms=start_of(today),
                    zh=f"{light['zh']} {name}",
                    en=f"Deadline warning ({light['en']}): {name}",
                    url=row["url"],
                    level=light["cls"],
                )
            )
    for urging in urgings:
        if urging.status == "answered":
            continue
        overdue = urging.status == "overdue"
        ours = answerable(urging, node, window)
        out.append(
            Notice(
                kind=URGING,
                at_ms=urging.at_ms,
                zh=("督办 待答复" if ours else "督办本中心")
                + f" {urging.receipt}：{urging.text}（答复期限 {urging.answer_by}"
                + ("，已逾期）" if overdue else "）"),
                en=("Urging" if ours else "Urging to the centre")
                + f", answer due {urging.answer_by}"
                + (" — overdue" if overdue else "")
                + f": {urging.receipt}",
                url=urging.url,
                level="overdue" if overdue else "",
                answerable=ours,
            )
        )
    for notice in out:
        notice.unread = notice.answerable and notice.at_ms > read_upto
    out.sort(key=lambda n: (not n.unread, -n.at_ms, n.kind, n.url))
    return out
