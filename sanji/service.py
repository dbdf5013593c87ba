"""Turning a desk's request into a protocol action; the rules themselves live in ``protocol.errand``.

Dates that depend on the catalogue and the working-day calendar (deadlines) are
computed here by the node taking the action and written into the action, so
every replica shows the same deadline whatever catalogue version or clock it has.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import date
from typing import Any, Protocol

from protocol import actions as a
from protocol.actions import Action
from protocol.errand import ErrandState, Projection
from protocol.errors import ActionRefused
from protocol.hlc import wall_seconds
from protocol.receipts import make_receipt
from protocol.sealing import Personal, recipients_for, seal_personal
from sanji.forms import ActionForm, RegisterForm
from sanji.store import Store


class DeadlinePolicy(Protocol):
    """Deadlines for this node: the catalogue's limits on the official working-day calendar."""

    def today(self) -> date: ...
    def whole_due(self, matter: str, accepted_on: date, errand_kind: str) -> tuple[str, int, str]: ...
    def stage_due(self, matter: str, role: str, start: date) -> str: ...
    def pushed_due(self, due: str, paused_from: date, paused_to: date) -> str: ...
    def extended_due(self, due: str, days: int) -> str: ...
    @property
    def catalogue_version(self) -> int: ...
    @property
    def calendar_version(self) -> int: ...
    def span_provisional(self, start: date, due: str) -> bool: ...
    def date_of(self, hlc: int) -> date: ...


def new_action_id() -> str:
    return uuid.uuid4().hex


def new_errand_id(node_id: str) -> str:
    # Unique without any network: the registering node's id plus 64 random bits.
    return f"{node_id}-{secrets.token_hex(8)}"


def _date_of(hlc: int, policy: DeadlinePolicy | None) -> date:
    if policy is None:
        return date.fromtimestamp(wall_seconds(hlc))
    return policy.date_of(hlc)


class ErrandService:
    def __init__(self, store: Store, policy: DeadlinePolicy | None = None) -> None:
        self.store = store
        self.policy = policy

    @property
    def node_id(self) -> str:
        return self.store.node_id

    async def register(self, form: RegisterForm, *, receipt: str = "") -> Projection:
        errand_id = new_errand_id(self.node_id)
        if not receipt:
            day = self.policy.today() if self.policy is not None else date.today()
            receipt = make_receipt(self.node_id, day, await self.store.next_counter(f"receipt:{day:%y%m%d}"))

        applicant, sealed = self._applicant(form, errand_id)

        def build(_: Projection, at: int) -> Action:
            return a.Register(
                id=new_action_id(),
                errand=errand_id,
                scope=self.node_id,
                node=self.node_id,
                actor=form.actor,
                role=form.role,
                acting_for=form.acting_for,
                at=at,
                base=0,
                matter=form.matter,
                applicant=applicant,
                mandate=form.mandate,
                in_person=form.in_person,
                materials=tuple(form.materials),
                summary=form.summary,
                receipt=receipt,
                sealed=sealed,
            )

        return await self.store.act(errand_id, build)

    def _applicant(self, form: RegisterForm, errand_id: str) -> tuple[a.Applicant, bytes]:
        """The applicant as the Register carries them: the name in clear, the rest sealed to the path.

        Sealed when every node on this errand's path has a sealing key in the directory; otherwise
        (a directory from before sealing, or a node not yet given a key) written in clear as before.
        """
        personal = Personal(id_number=form.applicant_id_number, phone=form.applicant_phone)
        recipients = recipients_for(self.store.directory, self.node_id)
        if recipients is None or personal.is_empty():
            return a.Applicant(name=form.applicant_name, id_number=personal.id_number, phone=personal.phone), b""
        sealed = seal_personal(personal, recipients, errand=errand_id, scope=self.node_id)
        return a.Applicant(name=form.applicant_name), sealed

    async def act(self, errand_id: str, form: ActionForm) -> Projection:
        def build(before: Projection, at: int) -> Action:
            state = before.state
            if state is None:
                raise ActionRefused(f"errand {errand_id} is not known at {self.node_id}")
            if form.expected_version is not None and form.expected_version != state.version:
                raise ActionRefused(
                    f"the errand changed meanwhile (version {state.version}, you saw {form.expected_version})",
                    hint="Reload the errand and try again.",
                )
            common: dict[str, Any] = {
                "id": new_action_id(),
                "errand": errand_id,
                "scope": state.scope,
                "node": self.node_id,
                "actor": form.actor,
                "role": form.role,
                "acting_for": form.acting_for,
                "at": at,
                "base": state.version,
            }
            return self._build(form, state, common, at)

        return await self.store.act(errand_id, build)

    def _build(self, form: ActionForm, state: ErrandState, common: dict[str, Any], at: int) -> Action:
        directory = self.store.directory
        policy = self.policy
        kind = form.kind
        if kind == "note":
            if not form.text.strip():
                raise ActionRefused("a note needs text")
            return a.Note(**common, text=form.text)
        if kind == "supply":
            return a.Supply(**common, items=tuple(form.items), note=form.text)
        if kind == "rate":
            if not form.level:
                raise ActionRefused("choose 满意, 基本满意 or 不满意")
            return a.Rate(**common, level=form.level, window=form.window, staff=form.staff, comment=form.text)
        if kind == "complain":
            return a.Complain(**common, text=form.text, against=form.against)
        if kind == "callback":
            satisfied = form.level
            return a.CallBack(**common, reached=form.reached, satisfied=satisfied, note=form.text)
        if kind == "attach":
            if not form.blob or not form.name:
                raise ActionRefused("an attachment needs its content hash and a name")
            return a.Attach(
                **common, blob=form.blob, size=form.size, name=form.name, mime=form.mime or "application/octet-stream"
            )
        if kind == "supervise":
            return a.Supervise(**common, kind_of_supervision=form.supervision, text=form.text)
        if kind == "receive":
            stage_due, marked = "", False
            if policy is not None and state.stage in ("submitted", "escalated"):
                start = _date_of(at, policy)
                stage_due = policy.stage_due(state.matter, directory.role(self.node_id), start)
                marked = policy.span_provisional(start, stage_due)
            return a.Receive(**common, stage_due=stage_due, stage_due_provisional=marked)
        if kind == "accept":
            errand_kind = form.errand_kind or "承诺件"
            due, limit, unit = ("", 0, "working")
            marked, calendar_version = False, 0
            if policy is not None:
                accepted_on = _date_of(at, policy)
                due, limit, unit = policy.whole_due(state.matter, accepted_on, errand_kind)
                marked, calendar_version = policy.span_provisional(accepted_on, due), policy.calendar_version
            return a.Accept(
                **common,
                errand_kind=errand_kind,
                note=form.text,
                due=due,
                limit_days=limit,
                limit_unit=unit,  # type: ignore[arg-type]
                catalogue_version=getattr(policy, "catalogue_version", 0) if policy is not None else 0,
                window=form.window,
                provisional=tuple(form.provisional),
                promise_by=form.promise_by,
                co_departments=tuple(form.co_departments),
                calendar_version=calendar_version,
                due_provisional=marked,
            )
        if kind == "not_accept":
            return a.NotAccept(**common, reasons=form.reasons)
        if kind == "return":
            return a.ReturnErrand(**common, reasons=form.reasons)
        if kind == "request_supplement":
            return a.RequestSupplement(**common, items=tuple(form.items), note=form.text)
        if kind == "materials_received":
            due, marked = state.due, state.due_provisional
            if policy is not None and state.stage == "supplement" and state.due:
                due = policy.pushed_due(state.due, _date_of(state.paused_since, policy), _date_of(at, policy))
                marked = marked or policy.span_provisional(_date_of(at, policy), due)
            return a.MaterialsReceived(**common, items=tuple(form.items), due=due, due_provisional=marked)
        if kind == "assign":
            return a.Assign(**common, window=form.window, handler=form.handler, referred_by=form.referred_by)
        if kind == "subtask_done":
            if form.outcome == "objected":
                return a.SubtaskDone(**common, department=form.department, outcome="objected", note=form.text)
            return a.SubtaskDone(**common, department=form.department, outcome="agreed", note=form.text)
        if kind == "extend":
            new_due, marked = state.due, state.due_provisional
            if policy is not None and state.due:
                new_due = policy.extended_due(state.due, form.days)
                marked = marked or policy.span_provisional(_date_of(at, policy), new_due)
            return a.Extend(
                **common,
                days=form.days,
                reason=form.reasons or form.text,
                due=new_due,
                applicant_informed=form.applicant_informed,
                due_provisional=marked,
            )
        if kind == "review":
            return a.Review(**common, passed=form.passed, note=form.text)
        if kind == "decide":
            if form.outcome not in ("approved", "refused"):
                raise ActionRefused("a decision is either approved or refused")
            return a.Decide(
                **common, outcome=form.outcome, document=form.document, department=form.department, deemed=form.deemed
            )
        if kind == "terminate":
            return a.Terminate(**common, reason=form.reasons or form.text)
        if kind == "withdraw":
            return a.Withdraw(**common, reason=form.reasons or form.text)
        if kind == "deliver":
            return a.Deliver(**common, confirmed_by=form.confirmed_by, signature=form.signature)
        if kind == "close":
            return a.Close(**common, archive_no=form.archive_no)
        if kind == "submit":
            parent = directory.parent(self.node_id) or ""
            return a.HandOff(**common, to=parent, purpose="submit", note=form.text)
        if kind == "escalate":
            parent = directory.parent(self.node_id) or ""
            return a.HandOff(**common, to=parent, purpose="escalate", department=form.department, note=form.text)
        hop = directory.next_hop_down(self.node_id, state.scope) or ""
        return a.HandOff(**common, to=hop, purpose="result", note=form.text)
