"""The desk's notices as derived from its worklist and urgings (sanji.notices): kinds, order, unread."""

from __future__ import annotations

from datetime import date, timedelta

from protocol.hlc import pack
from sanji.notices import NEW_WORK, URGING, WARNING, notices_for, start_of
from sanji.urgings import UrgingRow

TODAY = date(2026, 12, 7)
NOON = start_of(TODAY) + 12 * 3600 * 1000


def row(errand: str, *, light: str = "green", arrived: int = NOON, pending_to: str | None = None) -> dict[str, object]:
    return {
        "id": errand,
        "receipt": f"R-{errand}",
        "matter_name": "临时救助",
        "url": f"/errands/{errand}",
        "pending_to": pending_to,
        "updated_at": pack(arrived, 0),
        "registered_at": pack(arrived, 0),
        "light": {
            "cls": light,
            "zh": {"red": "红灯 超期2个工作日", "yellow": "黄灯 剩1个工作日"}.get(light, ""),
            "en": "x",
        },
    }


def urging(status: str, *, at: int = NOON) -> UrgingRow:
    return UrgingRow(
        id=f"u-{status}",
        errand="E3",
        url="/errands/E3",
        receipt="R-E3",
        matter="MZ-003",
        applicant_name="陈桂兰",
        by="C",
        to="T01",
        window="社会救助窗口",
        text="请答复进度",
        answer_by="2026-12-09",
        at_ms=at,
        status=status,
        status_zh="",
        status_en="",
    )


def test_kinds_levels_and_what_is_unread() -> None:
    work = [row("E1", light="red", arrived=NOON - 86_400_000), row("E2", pending_to="T01")]
    states = {"E1": {"stage_since": pack(NOON - 86_400_000, 0)}}
    urgings = [urging("overdue", at=NOON + 1000), urging("answered")]
    shown = notices_for("T01", work, states, urgings, today=TODAY, read_upto=NOON - 1)
    kinds = [(n.kind, n.level, n.unread) for n in shown]
    assert kinds == [(URGING, "overdue", True), (NEW_WORK, "", True), (WARNING, "red", False), (NEW_WORK, "", False)]
    assert "（待签收）" in shown[1].zh and "督办 待答复" in shown[0].zh and "已逾期" in shown[0].zh
    assert all(n.kind != URGING or "answer due 2026-12-09" in n.en for n in shown)


def test_a_warning_read_today_is_unread_again_tomorrow() -> None:
    work = [row("E1", light="yellow", arrived=NOON - 86_400_000)]
    read_today = notices_for("T01", work, {}, [], today=TODAY, read_upto=NOON)
    assert [(n.kind, n.unread) for n in read_today] == [(WARNING, False), (NEW_WORK, False)]
    tomorrow = notices_for("T01", work, {}, [], today=TODAY + timedelta(days=1), read_upto=NOON)
    assert [(n.kind, n.unread) for n in tomorrow] == [(WARNING, True), (NEW_WORK, False)]
