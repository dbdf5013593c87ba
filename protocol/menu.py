"""Which steps a desk may take on an errand now: asked of ``judge``, never re-derived.

For every main-line step the menu builds a *probe* — the action the step would write, with
every free-text field filled — and keeps the step if ``judge`` lets it follow the errand's
state. So the menu and the rule cannot disagree: a change to ``judge`` changes the menu.
Most annotations are always allowed by ``judge`` on the errand's path; which of them a desk is
*offered* is the menu's own convention (the village's agent brings materials, the county
supervises), written here once. The answer to an urging (督办回复) has a rule of its own, so it
is probed like a main-line step.
"""

from __future__ import annotations

from typing import Any

from protocol import actions as a
from protocol.binding import EXTENSION_GRANTORS, MATERIAL_STEPS, HeldMaterials, acceptance_refusal, business_date
from protocol.catalogue import Matter
from protocol.errand import ErrandState, judge
from protocol.refusals import Refusal
from protocol.stages import ANSWERED, IN_TRANSIT, LIVE, REGISTERED, SUBMITTED
from protocol.steps import STEP_KINDS, STEPS
from protocol.topology import COUNTY, VILLAGE, Directory
from protocol.urging import open_for

_FILLED = "…"


def _probe(
    kind: str, state: ErrandState, node: str, role: str, directory: Directory, outcome: a.DecisionOutcome = "refused"
) -> a.Action | None:
    common: dict[str, Any] = {
        "id": "probe",
        "errand": state.id,
        "scope": state.scope,
        "node": node,
        "actor": "probe",
        "role": role,
        "at": state.updated_at,
        "base": state.version,
    }
    parent = directory.parent(node) or ""
    owed = state.supplement_items or state.provisional
    entry = state.matter_entry
    if kind == "submit":
        return a.HandOff(**common, to=parent, purpose="submit")
    if kind == "escalate":
        department = entry.department if entry is not None and entry.department else _FILLED
        return a.HandOff(**common, to=parent, purpose="escalate", department=department)
    if kind == "send_result":
        return a.HandOff(**common, to=directory.next_hop_down(node, state.scope) or "", purpose="result")
    if kind == "receive":
        return a.Receive(**common)
    if kind == "accept":
        # the deadline the desk would count (rules 2 ask one, never before the day of acceptance)
        return a.Accept(**common, matter_entry=None, due=business_date(state.updated_at).isoformat())
    if kind == "not_accept":
        return a.NotAccept(**common, reasons=_FILLED)
    if kind == "return":
        return a.ReturnErrand(**common, reasons=_FILLED)
    if kind == "request_supplement":
        return a.RequestSupplement(**common, items=(_FILLED,))
    if kind == "materials_received":
        return a.MaterialsReceived(**common, items=owed or (_FILLED,))
    if kind == "assign":
        return a.Assign(**common, window=_FILLED, handler=_FILLED)
    if kind == "subtask_done":
        pending = [d for d, status in state.subtasks.items() if status == "pending"]
        return a.SubtaskDone(**common, department=pending[0] if pending else "")
    if kind == "extend":
        return a.Extend(**common, days=1, reason=_FILLED, due=state.due)  # a day, or none where none is held
    if kind == "review":
        return a.Review(**common, passed=True)
    if kind == "decide":  # refusing is the least any deciding desk may do: the menu's default probe
        return a.Decide(**common, outcome=outcome, reasons=_FILLED)
    if kind == "terminate":
        return a.Terminate(**common, reason=_FILLED)
    if kind == "withdraw":
        return a.Withdraw(**common)
    if kind == "deliver":
        return a.Deliver(**common, confirmed_by=_FILLED, signature=_FILLED)
    if kind == "close":
        return a.Close(**common)
    if kind == "note":  # the least a desk on the path writes: probed before any annotation is offered
        return a.Note(**common, text=_FILLED)
    if kind == "answer_urging":
        waiting = open_for(state.urgings, node)
        return a.AnswerUrging(**common, urging=waiting[0].id if waiting else "", text=_FILLED)
    return None


def _offered_annotation(kind: str, state: ErrandState, node: str, level: str) -> bool:
    stage = state.stage
    if kind == "note":
        return True
    if kind == "supply":
        return node == state.scope and level == VILLAGE and stage in (REGISTERED, SUBMITTED, *LIVE)
    if kind == "rate":
        return node == state.scope and stage in ANSWERED and not state.rated  # rated once (``judge`` holds it)
    if kind == "callback":
        return level != VILLAGE and stage in ANSWERED
    if kind == "supervise":
        return level == COUNTY
    return False  # complain and attach have their own doors (complaint channel, upload)


_PROBED_ANNOTATIONS = frozenset({"answer_urging"})


def allowed_steps(
    state: ErrandState | None,
    node: str,
    directory: Directory,
    *,
    role: str = "",
    materials: HeldMaterials | None = None,
) -> list[str]:
    """The steps ``node`` may take on the errand now, in ``STEP_KINDS`` order.

    ``role`` is the post of the person at the desk (it decides who may grant an extension);
    empty means "any post of this desk", so the menu shows what a leader could do.
    ``materials``: what the errand holds (``protocol.binding.held_materials``, from its history, which the state
    does not carry): given, acceptance is not offered while a main material is missing (``acceptance_refusal``,
    the desk's own check), so the desk is offered the one-time notice instead.
    """
    if state is None or node not in directory or node not in directory.path(state.scope):
        return []
    level = directory.role(node)
    probe_role = role or next(iter(sorted(EXTENSION_GRANTORS)))
    # The annotations offered by convention below are offered only where the rule lets this node write at
    # all: a note is the least it could write (a city above the counties writes nothing).
    note = _probe("note", state, node, probe_role, directory)
    writes = note is not None and judge(state, note, directory) is None
    out: list[str] = []
    for kind in STEP_KINDS:
        if STEPS[kind].annotation and kind not in _PROBED_ANNOTATIONS:
            if writes and _offered_annotation(kind, state, node, level):
                out.append(kind)
            continue
        if kind == "receive" and state.pending_to != node:
            continue
        if state.stage in IN_TRANSIT and kind != "receive" and kind not in _PROBED_ANNOTATIONS:
            continue
        if kind in MATERIAL_STEPS and materials is not None and acceptance_refusal(state.matter_entry, materials):
            continue
        probe = _probe(kind, state, node, probe_role, directory)
        if probe is not None and judge(state, probe, directory) is None:
            out.append(kind)
    return out


def registration_refused(
    node: str,
    directory: Directory,
    entry: Matter | None,
    *,
    matter: str,
    applicant_name: str,
    mandate: bool,
    in_person: bool,
    materials: tuple[str, ...],
    missing_confirmed: bool,
    actor: str,
    role: str,
) -> Refusal | None:
    """Why ``judge`` would refuse this registration, asked before anything is signed.

    The review page (核对后确认) shows what will be registered only if the rule would take it;
    the Register it probes carries the same facts the signed one will, so the two cannot disagree.
    """
    probe = a.Register(
        id="probe",
        errand="probe",
        scope=node,
        node=node,
        actor=actor or "probe",
        role=role or "probe",
        at=0,
        base=0,
        matter=matter,
        applicant=a.Applicant(name=applicant_name or "probe"),
        mandate=mandate,
        in_person=in_person,
        materials=materials,
        matter_entry=entry,
        missing_confirmed=missing_confirmed,
    )
    return judge(None, probe, directory)


def allowed_outcomes(state: ErrandState | None, node: str, directory: Directory, *, role: str = "") -> list[str]:
    """The outcomes ``node`` may decide the errand with now, approval first.

    Under rules 0 and 1 a township handling a matter the catalogue approves only at the county may still
    refuse it (不予许可 was the handling desk's), so its decision form offers the refusal alone; from rules 2
    only the approving level refuses, so that township is offered no decision at all."""
    if state is None or node not in directory:
        return []
    probe_role = role or next(iter(sorted(EXTENSION_GRANTORS)))
    out: list[str] = []
    outcomes: tuple[a.DecisionOutcome, ...] = ("approved", "refused")
    for outcome in outcomes:
        probe = _probe("decide", state, node, probe_role, directory, outcome)
        if probe is not None and judge(state, probe, directory) is None:
            out.append(outcome)
    return out
