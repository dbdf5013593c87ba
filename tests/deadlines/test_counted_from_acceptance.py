"""A deadline moved by a pause or an extension is counted from the acceptance, in the limit's own unit.

The desk (a closed 补正, a 延期) and the 暂定 correction duty count it the same way
(``sanji.context.due_from_acceptance``). Dates checked by hand against the 2025 notice (国庆节、中秋节
10月1日至8日放假调休，9月28日（周日）、10月11日（周六）上班) and 2026's (国庆节 10月1日至7日).

Before: a calendar-day limit (信访 and the like) was pushed by working days, an extension moved a deadline
already rolled past National Day, and the correction duty counted a 补正 taken before the acceptance (when
no whole-errand clock ran) and dropped the stage clock's pauses.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from protocol import actions as a
from protocol.binding import business_date
from protocol.deadlines import WorkCalendar, compute_due
from protocol.errand import ErrandState, judge, step
from protocol.topology import Directory
from sanji.calendar_duty import corrected
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext, due_from_acceptance
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.workcalendar import bound_calendar, library_data, load_calendar
from tests.conftest import NetworkFactory
from tests.materials_kit import mains

CST = timezone(timedelta(hours=8))
CAL = WorkCalendar(years=library_data().years, holidays=library_data().holidays, workdays=library_data().workdays)


def at(y: int, m: int, d: int) -> int:
    """A hybrid-clock time at 10:00 China Standard Time on that day."""
    return int(datetime(y, m, d, 10, tzinfo=CST).timestamp() * 1000) << 16


def accept_on(day: date, limit: int, unit: str) -> a.Accept:
    when = at(day.year, day.month, day.day)
    due = compute_due(day, limit, unit, calendar=CAL)  # type: ignore[arg-type]
    return a.Accept(
        id="acc", errand="E1", scope="T01V01", node="T01", actor="王", role="窗口A岗", at=when, base=3,
        errand_kind="承诺件", due=due.isoformat(), limit_days=limit, limit_unit=unit,  # type: ignore[arg-type]
    )  # fmt: skip


def test_an_extension_of_a_calendar_day_limit_counts_from_the_acceptance_not_the_rolled_deadline() -> None:
    accept = accept_on(date(2025, 9, 1), 30, "calendar")
    assert accept.due == "2025-10-09"  # 10-01 is National Day: rolled to the first working day after the holiday
    # 30 + 10 calendar days from 09-01 is 10-11, a Saturday worked (调休上班): due then, not 10-20.
    assert due_from_acceptance(accept, (), 10, calendar=CAL, date_of=business_date) == "2025-10-11"


def test_a_pause_counts_in_the_limits_unit() -> None:
    pause = ((at(2025, 9, 5), at(2025, 9, 19)),)  # 14 calendar days, 10 working days
    calendar_limit = accept_on(date(2025, 9, 1), 30, "calendar")
    assert due_from_acceptance(calendar_limit, pause, 0, calendar=CAL, date_of=business_date) == "2025-10-15"
    working_limit = accept_on(date(2025, 9, 1), 20, "working")
    assert working_limit.due == "2025-09-28"  # the 20th working day after 09-01 is the Sunday worked
    # 20 + 10 working days: 09-29, 09-30, (10-01..08 off) 10-09, 10-10, 10-11 (Saturday worked), 10-13..17.
    assert due_from_acceptance(working_limit, pause, 0, calendar=CAL, date_of=business_date) == "2025-10-17"


def test_a_pause_before_the_acceptance_stopped_no_whole_errand_clock() -> None:
    accept = accept_on(date(2025, 9, 22), 10, "working")
    before = (at(2025, 9, 2), at(2025, 9, 19))  # 一次性告知 at the township before it accepted
    assert due_from_acceptance(accept, (before,), 0, calendar=CAL, date_of=business_date) == accept.due


def _walk(actions: list[Any], directory: Directory) -> ErrandState:
    state: ErrandState | None = None
    for action in actions:
        assert judge(state, action, directory) is None, action
        state = step(state, action)
    assert state is not None
    return state


async def test_the_correction_duty_counts_as_the_desk_did(network: NetworkFactory) -> None:
    """暂定 correction, with a 补正 before the acceptance and the stage clock paused by it: nothing to correct
    when the provisional year turns out as the statute said (before: 12 working days added to the whole
    deadline, and the stage deadline lost its pause)."""
    net = await network(1, 1)
    context = NodeContext(net.stores["T01"], CAL)
    await context.load()
    matter = default_catalogue().get("MZ-001")
    assert matter is not None and matter.limit_unit == "working"
    bound = bound_calendar(library_data(), None, this_year=2026)
    cal = bound.effective
    common = {"errand": "E1", "scope": "T01V01", "actor": "王", "role": "窗口A岗"}
    register = a.Register(
        **common, id="r", node="T01V01", at=at(2026, 11, 2), base=0, matter="MZ-001", receipt="R1",
        applicant=a.Applicant(name="郑九"), matter_entry=matter, catalogue_version=1,
        materials=matter.main_materials,
    )  # fmt: skip
    submit = a.HandOff(**common, id="s", node="T01V01", at=at(2026, 11, 2), base=1, to="T01", purpose="submit")
    stage_due = compute_due(date(2026, 11, 3), matter.township_limit, "working", calendar=cal)
    receive = a.Receive(**common, id="v", node="T01", at=at(2026, 11, 3), base=2, stage_due=stage_due.isoformat())
    items = ("家庭收入及财产状况声明",)
    ask = a.RequestSupplement(**common, id="q", node="T01", at=at(2026, 11, 4), base=3, items=items)
    paused = cal.working_days_between(date(2026, 11, 4), date(2026, 11, 20))
    pushed = cal.add_working_days(stage_due, paused).isoformat()
    back = a.MaterialsReceived(**common, id="m", node="T01", at=at(2026, 11, 20), base=4, items=items, stage_due=pushed)
    due = compute_due(date(2026, 11, 23), 30, "working", calendar=cal)
    accept = a.Accept(
        **common, id="acc", node="T01", at=at(2026, 11, 23), base=5, errand_kind="承诺件", due=due.isoformat(),
        limit_days=30, limit_unit="working", due_provisional=True,
    )  # fmt: skip
    state = _walk([register, submit, receive, ask, back, accept], net.directory)
    assert state.pauses and state.stage_due == pushed
    assert corrected(state, accept, context, bound) == (due.isoformat(), pushed, True, False)


async def test_the_desk_extends_a_calendar_day_limit_in_calendar_days_from_the_acceptance(
    network: NetworkFactory,
) -> None:
    net = await network(1, 1)
    calendar = load_calendar()
    contexts = {n: NodeContext(s, calendar) for n, s in net.stores.items()}
    await contexts["C"].publish(default_catalogue())
    blob = await contexts["C"].catalogue_blob()
    assert blob is not None
    for node in ("T01", "T01V01"):
        assert await contexts[node].offer(blob)
    village = ErrandService(net.stores["T01V01"], contexts["T01V01"])
    town = ErrandService(net.stores["T01"], contexts["T01"])
    matter = default_catalogue().get("FP-001")  # 政府扶贫救助保险理赔: 20 calendar days
    assert matter is not None and matter.limit_unit == "calendar"
    errand = (
        await village.register(
            RegisterForm(matter=matter.code, applicant_name="周桂英", materials=mains(matter.code), actor="代办员")
        )
    ).errand
    await village.act(errand, ActionForm(kind="submit", actor="代办员"))
    await net.sync_all(2)
    await town.act(errand, ActionForm(kind="receive", actor="窗口"))
    await town.act(errand, ActionForm(kind="accept", actor="窗口", errand_kind="承诺件"))
    row = await net.stores["T01"].errand(errand)
    assert row is not None and row["due"]
    accepted = next(h for h in row["history"] if h["kind"] == "accept")
    accepted_on = contexts["T01"].date_of(accepted["at"])
    effective = contexts["T01"].provisional_calendar
    assert effective is not None
    assert row["due"] == compute_due(accepted_on, 20, "calendar", calendar=effective).isoformat()
    form = ActionForm(
        kind="extend", actor="张主任", role="中心主任", days=10, reasons="需实地核查", applicant_informed=True
    )
    await town.act(errand, form)
    row = await net.stores["T01"].errand(errand)
    assert row is not None
    assert row["due"] == compute_due(accepted_on, 20, "calendar", extensions_days=10, calendar=effective).isoformat()
