"""督办 with an answer due, and its answer: who may urge, who may answer, judged alike everywhere.

The rules live in ``protocol.urging`` and ``judge`` asks them of every annotation; here they are
checked on projections (the replica's view), on the desk menu, and on a township's real SQLite
store receiving signed batches — the same codes wherever the action comes from.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from protocol_kit import AT0, COUNTY_ID, ERRAND, TOWN_ID, VILLAGE_ID, happy_path, make
from sqlalchemy import select

from protocol.actions import Action, AnswerUrging, Supervise
from protocol.batch import GENESIS, frame_hash, seal
from protocol.binding import business_date
from protocol.errand import project
from protocol.menu import allowed_steps
from protocol.refusals import english, refuse
from protocol.topology import Directory, NodeEntry
from protocol.urging import ANSWERED, MAX_URGING_DAYS, OPEN, OVERDUE, status, urge_refusal
from sanji.layout import Layout
from sanji.store import Store, open_database
from sanji.store import schema as t

TODAY = business_date(AT0)
ACCEPTED = 4  # happy_path's first four actions: registered, submitted, received, accepted at T01


def urge(
    id: str = "u1",
    *,
    node: str = COUNTY_ID,
    to: str = TOWN_ID,
    answer_by: str | None = None,
    kind: str = "督办",
    at: int = AT0 + 10_000,
) -> Action:
    return make(
        Supervise,
        node=node,
        id=id,
        at=at,
        kind_of_supervision=kind,
        text="请于五个工作日内办结并答复",
        answer_by=answer_by or (TODAY + timedelta(days=7)).isoformat(),
        to=to,
        window="民政窗口",
    )


def answer(id: str = "a1", *, node: str = TOWN_ID, urging: str = "u1", text: str = "已加快办理", at: int = 0) -> Action:
    return make(AnswerUrging, node=node, id=id, at=at or AT0 + 20_000, urging=urging, text=text)


def base() -> list[Action]:
    return happy_path(escalate=True)[:ACCEPTED]


def verdict(actions: list[Action], directory: Directory, action_id: str) -> str:
    proj = project(ERRAND, actions, directory)
    return "applied" if action_id in proj.notes else proj.rejected.get(action_id, "missing")


def test_a_county_urging_is_kept_open_until_the_urged_desk_answers(directory: Directory) -> None:
    proj = project(ERRAND, [*base(), urge()], directory)
    assert proj.state is not None and "u1" in proj.notes
    (urging,) = proj.state.urgings
    assert (urging.to, urging.window, urging.by, urging.answer) == (TOWN_ID, "民政窗口", COUNTY_ID, "")
    assert status(urging, TODAY) == OPEN
    assert status(urging, TODAY + timedelta(days=8)) == OVERDUE

    proj = project(ERRAND, [*base(), urge(), answer()], directory)
    assert proj.state is not None and proj.rejected == {}
    (urging,) = proj.state.urgings
    assert urging.answer == "a1" and status(urging, TODAY + timedelta(days=30)) == ANSWERED


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (urge(node=TOWN_ID), refuse("urging_level", node=TOWN_ID)),
        (urge(node=VILLAGE_ID), refuse("urging_level", node=VILLAGE_ID)),
        (urge(kind="纠错"), refuse("urging_kind", kind="纠错")),
        (urge(to="T02"), refuse("urging_target", to="T02")),
        (
            urge(answer_by=(TODAY - timedelta(days=1)).isoformat()),
            refuse(
                "urging_answer_by",
                answer_by=(TODAY - timedelta(days=1)).isoformat(),
                earliest=TODAY.isoformat(),
                latest=(TODAY + timedelta(days=MAX_URGING_DAYS)).isoformat(),
            ),
        ),
        (
            urge(answer_by=(TODAY + timedelta(days=MAX_URGING_DAYS + 1)).isoformat()),
            refuse(
                "urging_answer_by",
                answer_by=(TODAY + timedelta(days=MAX_URGING_DAYS + 1)).isoformat(),
                earliest=TODAY.isoformat(),
                latest=(TODAY + timedelta(days=MAX_URGING_DAYS)).isoformat(),
            ),
        ),
        (  # protocol.bounds refuses it first, as any day field that is not a day
            urge(answer_by="2024-02-30"),
            refuse("out_of_bounds", detail="answer_by '2024-02-30' is not a day of the calendar (YYYY-MM-DD)"),
        ),
    ],
    ids=["township", "village", "not-督办", "off-path", "past", "too-far", "no-such-day"],
)
def test_who_may_urge_and_until_when(directory: Directory, action: Action, expected: object) -> None:
    assert verdict([*base(), action], directory, action.id) == str(expected)


def test_urging_today_and_at_the_limit_are_allowed(directory: Directory) -> None:
    for days in (0, MAX_URGING_DAYS):
        action = urge(answer_by=(TODAY + timedelta(days=days)).isoformat())
        assert verdict([*base(), action], directory, "u1") == "applied"


def test_a_plain_supervision_remark_needs_no_answer_and_is_unchanged(directory: Directory) -> None:
    remark = make(Supervise, node="T01", id="s1", at=AT0, kind_of_supervision="纠错", text="请更正")
    proj = project(ERRAND, [*base(), remark], directory)
    assert "s1" in proj.notes and proj.state is not None and proj.state.urgings == ()


@pytest.mark.parametrize(
    ("actions", "extra", "expected"),
    [
        ([], answer(), refuse("no_open_urging", urging="u1")),
        ([urge()], answer(urging="u9"), refuse("no_open_urging", urging="u9")),
        ([urge()], answer(node=VILLAGE_ID), refuse("urging_not_addressed", node=VILLAGE_ID, to=TOWN_ID)),
        ([urge()], answer(node=COUNTY_ID), refuse("urging_not_addressed", node=COUNTY_ID, to=TOWN_ID)),
        ([urge()], answer(text="  "), refuse("answer_text_missing")),
        ([urge(), answer()], answer("a2", at=AT0 + 30_000), refuse("urging_answered", urging="u1")),
    ],
    ids=["no-urging", "unknown-urging", "village", "county", "empty", "twice"],
)
def test_who_may_answer(directory: Directory, actions: list[Action], extra: Action, expected: object) -> None:
    assert verdict([*base(), *actions, extra], directory, extra.id) == str(expected)


def test_urging_and_answer_survive_the_errand_moving_on(directory: Directory) -> None:
    """The holder changes after the urging (escalated, decided, result down): neither turns refused."""
    actions = [*happy_path(escalate=True), urge(), answer()]
    proj = project(ERRAND, actions, directory)
    assert {"u1", "a1"} <= set(proj.notes) and proj.rejected == {}


def test_the_projection_does_not_depend_on_arrival_order(directory: Directory) -> None:
    actions = [*base(), urge(), answer(), answer("a2", at=AT0 + 30_000), urge("u2", to=VILLAGE_ID)]
    first = project(ERRAND, actions, directory)
    rng = random.Random(3)
    for _ in range(10):
        rng.shuffle(actions)
        again = project(ERRAND, actions, directory)
        assert again.digest == first.digest and again.state == first.state
    assert first.rejected == {"a2": str(refuse("urging_answered", urging="u1"))}


def test_the_menu_offers_the_answer_only_to_the_urged_desk_while_it_is_open(directory: Directory) -> None:
    def offered(actions: list[Action], node: str) -> bool:
        state = project(ERRAND, actions, directory).state
        return "answer_urging" in allowed_steps(state, node, directory)

    assert not offered(base(), TOWN_ID)
    assert offered([*base(), urge()], TOWN_ID)
    assert not offered([*base(), urge()], VILLAGE_ID) and not offered([*base(), urge()], COUNTY_ID)
    assert not offered([*base(), urge(), answer()], TOWN_ID)


async def test_a_received_batch_is_judged_by_the_same_rule(tmp_path: Path, layout: Layout) -> None:
    """A township's SQLite store receives the county's urging and a village's answer to it, signed:
    the village was not urged, so its answer is refused with the code the projection gives."""
    directory = layout.directory
    db = await open_database(f"sqlite:///{tmp_path / 'township.db'}")
    try:
        store = Store(db, node_id=TOWN_ID, key=layout.keys[TOWN_ID], directory=directory)
        await store.start()
        registered, submitted = happy_path(escalate=False)[:2]
        forged = answer("a-village", node=VILLAGE_ID)

        def frame(origin: str, seq: int, prev: bytes, actions: list[Action]) -> bytes:
            return seal(
                key=layout.keys[origin],
                origin=origin,
                scope=VILLAGE_ID,
                audience=directory.audience(origin, VILLAGE_ID),
                seq=seq,
                prev=prev,
                created=AT0,
                actions=actions,
            )

        first = frame(VILLAGE_ID, 1, GENESIS, [registered, submitted])
        await store.receive([first], peer=VILLAGE_ID)
        await store.receive([frame(COUNTY_ID, 1, GENESIS, [urge()])], peer=COUNTY_ID)
        await store.receive([frame(VILLAGE_ID, 2, frame_hash(first), [forged])], peer=VILLAGE_ID)
        async with db.reader.connect() as conn:
            rows = dict((await conn.execute(select(t.actions.c.id, t.actions.c.reason))).all())
            statuses = dict((await conn.execute(select(t.actions.c.id, t.actions.c.status))).all())
        expected = refuse("urging_not_addressed", node=VILLAGE_ID, to=TOWN_ID)
        assert statuses["u1"] == "applied"
        assert (statuses["a-village"], rows["a-village"]) == ("rejected", english(expected))
        assert verdict([registered, submitted, urge(), forged], directory, "a-village") == str(expected)
        state = (await store.errand_states([ERRAND]))[ERRAND]
        assert [u["id"] for u in state["urgings"]] == ["u1"] and state["urgings"][0]["answer"] == ""
    finally:
        await db.dispose()


def test_a_county_may_not_urge_the_city_above_it() -> None:
    """A city reads only: an urging addressed to it could never be answered and would stay overdue."""
    tree = Directory(
        [
            NodeEntry(id="S", role="city"),
            NodeEntry(id="C1", role="county", parent="S"),
            NodeEntry(id="C1T01", role="town", parent="C1"),
            NodeEntry(id="C1T01V01", role="village", parent="C1T01"),
        ]
    )
    path = tree.path("C1T01V01")

    def urging_to(to: str) -> object:
        day = TODAY.isoformat()
        return urge_refusal(node="C1", kind="督办", to=to, answer_by=day, at=AT0, path=path, directory=tree)

    assert urging_to("S") == refuse("urging_target", to="S")
    assert urging_to("C1T01") is None
