"""The desk's notices as derived from its worklist and urgings (sanji.notices): kinds, order, unread."""

from __future__ import annotations

from datetime import date, timedelta

from protocol.hlc import pack
from sanji.notices import NEW_WORK, RESULT_BACK, SUPPLEMENT_ASKED, URGING, WARNING, notices_for, start_of
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


def test_each_notice_says_what_came_new_work_a_result_or_materials_asked_for() -> None:
    new = {**row("E1"), "stage": "received", "scope": "T01V01"}
    result = {**row("E2", pending_to="T01V01"), "stage": "result_down", "scope": "T01V01"}
    asked = {**row("E3", arrived=NOON - 86_400_000), "stage": "supplement", "scope": "T01V01", "holder": "T01"}
    states = {"E3": {"paused_since": pack(NOON + 5000, 0), "supplement_items": ["户口簿复印件", "收入证明"]}}
    shown = {n.url: n for n in notices_for("T01V01", [new, result, asked], states, [], today=TODAY, read_upto=NOON)}
    assert shown["/errands/E1"].kind == NEW_WORK and shown["/errands/E1"].zh.startswith("新到办件")
    assert shown["/errands/E2"].kind == RESULT_BACK
    assert shown["/errands/E2"].zh == "结果已返回 R-E2 临时救助（待签收）"
    notice = shown["/errands/E3"]
    assert notice.kind == SUPPLEMENT_ASKED and notice.zh.startswith("需补正材料 R-E3 临时救助：户口簿复印件、收入证明")
    assert notice.at_ms == NOON + 5000 and notice.unread  # when the notice was issued, not when it was registered
    # the township holding it while it waits is not the one asked: its own worklist says new work, as before
    held = notices_for("T01", [asked], states, [], today=TODAY, read_upto=0)
    assert [n.kind for n in held] == [NEW_WORK]


def test_the_desks_own_errand_waiting_for_its_next_step_is_not_called_new_work() -> None:
    # The agent registered it and has not sent it; or she delivered it and has not filed it: nothing came to her.
    own = {**row("E1"), "stage": "registered", "scope": "T01V01", "holder": "T01V01"}
    delivered = {**row("E2"), "stage": "delivered", "scope": "T01V01", "holder": "T01V01"}
    shown = {n.url: n for n in notices_for("T01V01", [own, delivered], {}, [], today=TODAY, read_upto=NOON)}
    assert (
        shown["/errands/E1"].zh == "已登记，待报送乡镇 R-E1 临时救助" and "not yet submitted" in shown["/errands/E1"].en
    )
    assert shown["/errands/E2"].zh == "已送达，待归档 R-E2 临时救助"
    assert all(n.kind == NEW_WORK for n in shown.values())  # still the desk's work, listed and counted as before
