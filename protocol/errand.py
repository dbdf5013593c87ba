"""The errand state machine: an errand is the set of its actions; its state is derived.

Main-line actions each name the version they were based on. Replaying them from
version 0, at each version the valid candidate with the smallest id wins; every
other candidate is rejected with a reason and kept for audit. Notes commute. The
result depends only on the *set* of actions, never on arrival order, so every
replica that holds the same actions computes the same state and digest.

Custody: one node (the holder) may advance the main line. A hand-off names the
next holder, and nothing but that node's ``receive`` may follow it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

import msgspec

from protocol.actions import Accept, Action, Decide, Deliver, HandOff, Note, Receive, Register, kind_of
from protocol.encoding import encode
from protocol.topology import COUNTY, TOWN, VILLAGE, Directory

# Stages, in the order an errand usually passes them.
REGISTERED = "registered"  # 已登记: at the village, with the villager's mandate
SUBMITTED = "submitted"  # 已报送: on its way to the township
RECEIVED = "received"  # 已接收: township holds it, not yet accepted
ACCEPTED = "accepted"  # 已受理
ESCALATED = "escalated"  # 已上报: on its way to a county department
AT_DEPARTMENT = "at_department"  # 部门办理中
DECIDED = "decided"  # 已办结 (approved or refused), result held where it was decided
RESULT_DOWN = "result_down"  # 结果下送中
RESULT_READY = "result_ready"  # 结果待送达: result held on the way down
DELIVERED = "delivered"  # 已送达, signed for by the applicant

STAGES = (
    REGISTERED,
    SUBMITTED,
    RECEIVED,
    ACCEPTED,
    ESCALATED,
    AT_DEPARTMENT,
    DECIDED,
    RESULT_DOWN,
    RESULT_READY,
    DELIVERED,
)
STAGE_LABELS = {
    REGISTERED: "已登记 registered",
    SUBMITTED: "已报送 submitted",
    RECEIVED: "已接收 received",
    ACCEPTED: "已受理 accepted",
    ESCALATED: "已上报 escalated",
    AT_DEPARTMENT: "部门办理 at department",
    DECIDED: "已办结 decided",
    RESULT_DOWN: "结果下送 result going down",
    RESULT_READY: "待送达 result ready",
    DELIVERED: "已送达 delivered",
}


class ErrandState(msgspec.Struct, kw_only=True):
    id: str
    scope: str
    matter: str
    applicant_name: str
    stage: str
    holder: str
    pending_to: str | None = None
    version: int = 0
    errand_kind: str = ""
    department: str = ""
    outcome: str = ""
    registered_at: int = 0
    updated_at: int = 0


class Projection(msgspec.Struct, kw_only=True):
    """Everything a replica derives from the actions it holds for one errand."""

    errand: str
    state: ErrandState | None
    main: tuple[str, ...]
    notes: tuple[str, ...]
    rejected: dict[str, str]
    waiting: tuple[str, ...]
    digest: str


def judge(state: ErrandState | None, action: Action, directory: Directory) -> str | None:
    """Return why ``action`` may not follow ``state``, or None if it may."""
    if isinstance(action, Register):
        if state is not None:
            return "errand is already registered"
        if action.node != action.scope:
            return f"an errand of {action.scope} can only be registered by {action.scope}"
        if directory.role(action.node) not in (VILLAGE, TOWN):
            return "errands are registered at a village station or a township window"
        return None
    if state is None:
        return "errand is not registered yet"
    if action.scope != state.scope:
        return f"action names scope {action.scope} but the errand belongs to {state.scope}"
    if action.node not in directory.path(state.scope):
        return f"node {action.node} is not on the path of this errand"
    if isinstance(action, Note):
        return None
    if isinstance(action, Receive):
        if state.pending_to != action.node:
            return f"nothing is being handed to {action.node}" + (
                f" (the errand is on its way to {state.pending_to})" if state.pending_to else ""
            )
        return None
    if state.pending_to is not None:
        return f"errand is on its way to {state.pending_to}; only its receipt may follow"
    if action.node != state.holder:
        return f"node {action.node} is not the custodian (the errand is held by {state.holder})"
    role = directory.role(action.node)
    stage = state.stage
    if isinstance(action, HandOff):
        if action.purpose == "submit":
            if stage != REGISTERED:
                return f"only a registered errand can be submitted (stage is {stage})"
            if action.to != directory.parent(action.node):
                return f"an errand is submitted to the parent node {directory.parent(action.node)}"
            return None
        if action.purpose == "escalate":
            if stage != ACCEPTED or role != TOWN:
                return "only a township that accepted the errand can escalate it (上报)"
            if action.to != directory.parent(action.node):
                return "escalation goes to the parent node"
            if not action.department:
                return "escalation must name the county department"
            return None
        if stage not in (DECIDED, RESULT_READY):
            return f"there is no result to send down yet (stage is {stage})"
        hop = directory.next_hop_down(action.node, state.scope)
        if hop is None or action.to != hop:
            return f"a result goes down towards {state.scope}, next to {hop}"
        return None
    if isinstance(action, Accept):
        if role != TOWN:
            return "errands are accepted (受理) at the township"
        walk_in = stage == REGISTERED and action.node == state.scope
        if stage != RECEIVED and not walk_in:
            return f"only a received errand can be accepted (stage is {stage})"
        return None
    if isinstance(action, Decide):
        if stage == ACCEPTED and role == TOWN:
            return None
        if stage == AT_DEPARTMENT and role == COUNTY:
            return None
        return f"the errand cannot be decided here at stage {stage}"
    if isinstance(action, Deliver):
        if stage not in (DECIDED, RESULT_READY):
            return f"there is no result to deliver (stage is {stage})"
        if action.node != state.scope:
            return f"results are delivered by {state.scope}, where the applicant asked"
        if not action.confirmed_by.strip():
            return "delivery needs the applicant's confirmation"
        return None
    return f"unknown action {kind_of(action)}"


def step(state: ErrandState | None, action: Action) -> ErrandState:
    """Apply an action already judged valid."""
    if isinstance(action, Register):
        return ErrandState(
            id=action.errand,
            scope=action.scope,
            matter=action.matter,
            applicant_name=action.applicant.name,
            stage=REGISTERED,
            holder=action.node,
            version=1,
            registered_at=action.at,
            updated_at=action.at,
        )
    assert state is not None
    new = msgspec.structs.replace(state, updated_at=max(state.updated_at, action.at))
    if isinstance(action, Note):
        return new
    new.version += 1
    if isinstance(action, HandOff):
        new.pending_to = action.to
        new.stage = {"submit": SUBMITTED, "escalate": ESCALATED, "result": RESULT_DOWN}[action.purpose]
        if action.purpose == "escalate":
            new.department = action.department
    elif isinstance(action, Receive):
        new.holder = action.node
        new.pending_to = None
        new.stage = {SUBMITTED: RECEIVED, ESCALATED: AT_DEPARTMENT, RESULT_DOWN: RESULT_READY}[state.stage]
    elif isinstance(action, Accept):
        new.stage = ACCEPTED
        new.errand_kind = action.errand_kind
    elif isinstance(action, Decide):
        new.stage = DECIDED
        new.outcome = action.outcome
    elif isinstance(action, Deliver):
        new.stage = DELIVERED
    return new


def project(errand_id: str, actions: Iterable[Action], directory: Directory) -> Projection:
    unique: dict[str, Action] = {}
    for action in actions:
        if action.errand != errand_id:
            raise ValueError(f"action {action.id} belongs to errand {action.errand}, not {errand_id}")
        unique.setdefault(action.id, action)
    by_base: dict[int, list[Action]] = defaultdict(list)
    notes: list[Note] = []
    for action in unique.values():
        if isinstance(action, Note):
            notes.append(action)
        else:
            by_base[action.base].append(action)
    state: ErrandState | None = None
    main: list[str] = []
    rejected: dict[str, str] = {}
    version = 0
    while by_base.get(version):
        winner: Action | None = None
        for candidate in sorted(by_base[version], key=lambda a: a.id):
            if winner is not None:
                rejected[candidate.id] = f"conflicts with {winner.id}, applied first at version {version}"
                continue
            reason = judge(state, candidate, directory)
            if reason is None:
                winner = candidate
            else:
                rejected[candidate.id] = reason
        if winner is None:
            break
        state = step(state, winner)
        main.append(winner.id)
        version += 1
    waiting: list[str] = []
    for base, group in by_base.items():
        for action in group:
            if action.id in rejected or action.id in main:
                continue
            if base > version:
                waiting.append(action.id)
            else:
                rejected[action.id] = f"based on version {base}, but version {base} was already taken"
    applied_notes: list[str] = []
    for note in sorted(notes, key=lambda n: (n.at, n.id)):
        if state is None:
            waiting.append(note.id)
            continue
        reason = judge(state, note, directory)
        if reason is None:
            applied_notes.append(note.id)
            state = step(state, note)
        else:
            rejected[note.id] = reason
    return Projection(
        errand=errand_id,
        state=state,
        main=tuple(main),
        notes=tuple(applied_notes),
        rejected=rejected,
        waiting=tuple(sorted(waiting)),
        digest=digest_of(errand_id, state, main, applied_notes, rejected),
    )


def digest_of(
    errand_id: str, state: ErrandState | None, main: list[str], notes: list[str], rejected: dict[str, str]
) -> str:
    material = encode([errand_id, state, main, notes, sorted(rejected)])
    return hashlib.sha256(material).hexdigest()
