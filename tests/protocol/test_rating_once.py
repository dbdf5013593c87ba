"""One rating per errand, by the applicant at the desk that delivers the result, after delivery (rules 1).

DOMAIN.md: "Satisfaction: a rating at the window after each errand (评价器…)". An errand bound to a
catalogue entry with ``rules = 1`` (0.4.0) is rated only by its registering node (``state.scope``), only
once it is delivered, and only once: a township's 满意 never stands over the villager's 不满意, a rating
after filing is refused, and supervision counts one rating per delivered errand. Errands bound to an
entry with ``rules = 0`` (or to none) keep the verdicts of 0.3.0, where every rating on the path stood:
nodes of both releases judge them alike (protocol/VERSIONING.md, "Changing the errand rules").
"""

from __future__ import annotations

import msgspec
import pytest
from protocol_kit import AT0, COUNTY_ID, ERRAND, TOWN_ID, VILLAGE_ID, happy_path, make

from protocol.actions import Action, Close, Rate, Register
from protocol.catalogue import MAX_RULES
from protocol.errand import CLOSED, DELIVERED, ErrandState, fold, judge, project
from protocol.matter import Matter
from protocol.menu import allowed_steps
from protocol.refusals import refuse
from protocol.topology import Directory
from sanji.catalogue import default_catalogue

_MZ001 = default_catalogue().get("MZ-001")
assert _MZ001 is not None
NEW = msgspec.structs.replace(_MZ001, rules=1)
OLD = msgspec.structs.replace(_MZ001, rules=0)
LATE = AT0 + 1_000_000  # after every step of the happy path


def delivered(entry: Matter | None) -> list[Action]:
    """A village errand decided at the township and delivered at the village, bound to ``entry`` (or unbound)."""
    actions = happy_path(escalate=False)
    if entry is not None:
        register = actions[0]
        assert isinstance(register, Register)
        actions[0] = msgspec.structs.replace(
            register, matter=entry.code, matter_entry=entry, catalogue_version=1, missing_confirmed=True
        )
    return actions


def rating(node: str, id: str, *, at: int = LATE, level: str = "满意") -> Action:
    return make(Rate, node=node, id=id, at=at, level=level, window="社会救助窗口")


def final_state(actions: list[Action], directory: Directory) -> ErrandState:
    proj = project(ERRAND, actions, directory)
    assert proj.state is not None
    return proj.state


def test_the_shipped_catalogue_runs_the_new_rules() -> None:
    assert {m.rules for m in default_catalogue().matters} == {MAX_RULES}


def test_only_the_registering_desk_rates(directory: Directory) -> None:
    actions = delivered(NEW)
    state = final_state(actions, directory)
    assert state.stage == DELIVERED and not state.rated
    for node in (TOWN_ID, COUNTY_ID):
        assert judge(state, rating(node, "r1"), directory) == refuse("rate_elsewhere", scope=VILLAGE_ID)
    # The township's 满意 does not stand over the villager's 不满意, whichever was written first.
    villager = rating(VILLAGE_ID, "r2", at=LATE + 5, level="不满意")
    proj = project(ERRAND, [*actions, rating(TOWN_ID, "r1", at=LATE), villager], directory)
    assert proj.rejected == {"r1": str(refuse("rate_elsewhere", scope=VILLAGE_ID))}
    assert proj.notes == ("r2",) and proj.state is not None and proj.state.rated


def test_an_errand_is_rated_once(directory: Directory) -> None:
    actions = delivered(NEW)
    first, second = rating(VILLAGE_ID, "r1", level="不满意"), rating(VILLAGE_ID, "r2", at=LATE + 5)
    proj = project(ERRAND, [*actions, second, first], directory)
    assert proj.notes == ("r1",)  # the first in (at, id) order stands
    assert proj.rejected == {"r2": str(refuse("rate_once"))}
    assert proj.state is not None and proj.state.rated
    assert judge(proj.state, rating(VILLAGE_ID, "r3"), directory) == refuse("rate_once")
    # Nor again after filing: the errand is closed, its rating stays the one given at delivery.
    close = make(Close, node=VILLAGE_ID, id="m99", base=len(actions), archive_no="DA-2024-001")
    closed = project(ERRAND, [*actions, first, close, rating(VILLAGE_ID, "r4", at=LATE + 9)], directory)
    assert closed.state is not None and closed.state.stage == CLOSED
    assert closed.notes == ("r1",) and closed.rejected == {"r4": str(refuse("rate_once"))}


def test_a_rating_written_before_delivery_waits_for_it(directory: Directory) -> None:
    """Notes are judged over the main line's end: a rating held before the delivery is refused until the
    delivery arrives, and then applied (as a call-back is)."""
    actions = delivered(NEW)
    early = rating(VILLAGE_ID, "r1", at=AT0 + 1)
    before = project(ERRAND, [*actions[:-1], early], directory)
    assert before.rejected == {"r1": str(refuse("rate_too_early"))}
    assert before.state is not None and not before.state.rated
    after = project(ERRAND, [*actions, early], directory)
    assert after.rejected == {} and after.notes == ("r1",) and after.state is not None and after.state.rated
    held: dict[str, int | None] = {a.id: a.base for a in actions[:-1]} | {"r1": None}
    folded = fold(before, held, [actions[-1]], directory, notes=[early], line=before.state)
    assert folded == after


@pytest.mark.parametrize("entry", [OLD, None], ids=["rules-0", "unbound"])
def test_older_errands_keep_the_verdicts_of_0_3_0(directory: Directory, entry: Matter | None) -> None:
    """The same histories, bound to an entry of rules 0 or to none: every rating on the path stands, early or
    late, once or twice, and the state holds no ``rated`` (its digest is the one a 0.3.0 node computes)."""
    actions = delivered(entry)
    ratings = [
        rating(VILLAGE_ID, "r1", at=AT0 + 1),
        rating(TOWN_ID, "r2"),
        rating(VILLAGE_ID, "r3", at=LATE + 5, level="不满意"),
        rating(COUNTY_ID, "r4", at=LATE + 9),
    ]
    for upto in (len(actions) - 1, len(actions)):  # before the delivery too
        proj = project(ERRAND, [*actions[:upto], *ratings], directory)
        assert proj.rejected == {} and proj.notes == ("r1", "r2", "r3", "r4")
        assert proj.state is not None and not proj.state.rated


def test_the_rule_does_not_change_the_digest_where_the_verdicts_agree(directory: Directory) -> None:
    """``rules`` and ``rated`` are never digested: a replica of 0.3.0, which holds neither, digests an errand
    bound to a rules-1 entry and rated once at its desk as 0.4.0 does (as one bound to a rules-0 entry)."""
    for ratings in ([], [rating(VILLAGE_ID, "r1")]):
        new = project(ERRAND, [*delivered(NEW), *ratings], directory)
        old = project(ERRAND, [*delivered(OLD), *ratings], directory)
        assert new.digest == old.digest and new.notes == old.notes
        assert new.state is not None and new.state.rated == bool(ratings)


def test_the_menu_offers_the_rating_once_at_the_registering_desk(directory: Directory) -> None:
    actions = delivered(NEW)
    state = final_state(actions, directory)
    assert "rate" in allowed_steps(state, VILLAGE_ID, directory)
    assert "rate" not in allowed_steps(state, TOWN_ID, directory)
    rated = final_state([*actions, rating(VILLAGE_ID, "r1")], directory)
    assert rated.rated and "rate" not in allowed_steps(rated, VILLAGE_ID, directory)
