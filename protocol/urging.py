"""督办 with an answer due: who may urge, who may answer, and what an urging's status is.

A county supervisor's ``Supervise`` with ``answer_by`` set is an *urging*: it names the desk
addressed (``to``: the errand's handling node when urged, and its ``window``) and the date the
answer is due. The desk answers with one ``AnswerUrging``. Both are annotations, so they travel
the errand's path like notes; ``judge`` asks the two rules here, on every replica, of local and
received actions alike. The rules read only the action and facts that never change once true
(the path, the urgings already applied — annotations are applied in (time, id) order and an
answer is always later than its urging), so a later step on the main line never turns an applied
urging or answer into a refused one.
"""

from __future__ import annotations

from datetime import date, timedelta

import msgspec

from protocol.binding import business_date
from protocol.refusals import Refusal, refuse
from protocol.topology import COUNTY, Directory, regional

MAX_URGING_DAYS = 60  # an answer due further out than this is not urging
# Working days a desk may give for the answer (the API's form and the screens): 40 stay inside the 60 days
# but for the longest holidays, where the answer date is refused as too far out, naming it.
MAX_ANSWER_WORKING_DAYS = 40
OPEN, ANSWERED, OVERDUE = "open", "answered", "overdue"
STATUS_LABELS = {
    OPEN: ("待答复", "open"),
    ANSWERED: ("已答复", "answered"),
    OVERDUE: ("答复逾期", "answer overdue"),
}


class Urging(msgspec.Struct, frozen=True, kw_only=True):
    """One 督办 awaiting (or holding) its answer, as the errand's projection keeps it."""

    id: str  # the Supervise action
    by: str  # the urging node
    to: str  # the desk addressed
    window: str = ""
    answer_by: str  # ISO date
    at: int
    answer: str = ""  # the AnswerUrging action's id, '' while open
    answered_at: int = 0


def _day(value: str) -> date | None:
    if len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def urge_refusal(
    *, node: str, kind: str, to: str, answer_by: str, at: int, path: tuple[str, ...] | list[str], directory: Directory
) -> Refusal | None:
    """Why a 督办 with an answer due may not be written (None if it may)."""
    if kind != "督办":
        return refuse("urging_kind", kind=kind)
    if directory.role(node) != COUNTY:
        return refuse("urging_level", node=node)
    if to not in path or regional(directory.role(to)):
        # A city or province above the county reads only: it could never answer, so the urging would stay
        # open and overdue for ever.
        return refuse("urging_target", to=to)
    due = _day(answer_by)
    today = business_date(at)
    latest = today + timedelta(days=MAX_URGING_DAYS)
    if due is None or due < today or due > latest:
        return refuse("urging_answer_by", answer_by=answer_by, earliest=today.isoformat(), latest=latest.isoformat())
    return None


def answer_refusal(urgings: tuple[Urging, ...], *, urging: str, node: str, text: str) -> Refusal | None:
    """Why a 督办回复 may not be written (None if it may): only the desk urged, once, with text."""
    held = next((u for u in urgings if u.id == urging), None)
    if held is None:
        return refuse("no_open_urging", urging=urging)
    if held.answer:
        return refuse("urging_answered", urging=urging)
    if node != held.to:
        return refuse("urging_not_addressed", node=node, to=held.to)
    if not text.strip():
        return refuse("answer_text_missing")
    return None


def status(urging: Urging, today: date) -> str:
    """open / answered / overdue (unanswered after the day the answer was due)."""
    if urging.answer:
        return ANSWERED
    due = _day(urging.answer_by)
    return OVERDUE if due is not None and today > due else OPEN


def open_for(urgings: tuple[Urging, ...], node: str) -> list[Urging]:
    """The unanswered urgings addressed to ``node``, oldest first."""
    return sorted((u for u in urgings if u.to == node and not u.answer), key=lambda u: (u.at, u.id))
