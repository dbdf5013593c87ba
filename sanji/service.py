"""Turning a desk's request into a protocol action; the rules themselves live in ``protocol.errand``.

Dates that depend on the catalogue and the working-day calendar (deadlines) are
computed here by the node taking the action and written into the action, so
every replica shows the same deadline whatever catalogue version or clock it has.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any, Literal, Protocol

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol import actions as a
from protocol.actions import Action
from protocol.binding import (
    BOUND_STEPS,
    MATERIAL_STEPS,
    SYSTEM_ACTOR,
    acceptance_refusal,
    bind,
    binding_refusal,
    held_materials,
    material_steps,
)
from protocol.catalogue import Catalogue
from protocol.deadlines import Unit
from protocol.errand import ErrandState, Projection, judge
from protocol.errors import ActionRefused
from protocol.hlc import wall_ms, wall_seconds
from protocol.idnumber import valid_id_number
from protocol.matter import Matter
from protocol.names import person_name_refusal
from protocol.receipts import make_receipt
from protocol.refusals import Refusal, refuse
from protocol.scans import scan_type, scan_type_refusal
from protocol.sealing import Personal, recipients_for, seal_personal
from protocol.stages import ESCALATED, SUBMITTED, SUPPLEMENT
from protocol.steps import STEP_KINDS
from protocol.urging import open_for
from sanji.context import bound_of
from sanji.forms import ActionForm, RegisterForm
from sanji.observe.logs import ERRAND
from sanji.store import Store
from sanji.store.documents import bump_counter
from sanji.store.submissions import Once


class DeadlinePolicy(Protocol):
    """Deadlines for this node: the catalogue's limits on the official working-day calendar."""

    def today(self) -> date: ...
    def whole_due(
        self, matter: str, accepted_on: date, errand_kind: str, entry: Matter | None = None
    ) -> tuple[str, int, str]: ...
    def stage_due(self, matter: str, role: str, start: date, pauses: Sequence[tuple[date, date]] = ()) -> str: ...
    def due_from(
        self, accept: a.Accept, pauses: Sequence[tuple[int, int]], extended_days: int, fallback: str
    ) -> str: ...
    def pauses_since(self, pauses: Sequence[tuple[int, int]], since: int) -> list[tuple[date, date]]: ...
    def pushed_due(self, due: str, paused_from: date, paused_to: date, unit: Unit = "working") -> str: ...
    def extended_due(self, due: str, days: int, unit: Unit = "working") -> str: ...
    def limit_unit(self, entry: Matter | None, matter: str) -> Unit: ...
    @property
    def catalogue_version(self) -> int: ...
    @property
    def calendar_version(self) -> int: ...
    def span_provisional(self, start: date, due: str) -> bool: ...
    def date_of(self, hlc: int) -> date: ...


MATERIAL_KINDS = ("register", "materials_received", "supply")  # the steps ``material_steps`` reads
ACTION_ID_TIME_DIGITS = 12  # hex digits of milliseconds since the epoch: 48 bits, enough until the year 10889
ERRAND_ID_TIME_DIGITS = 8  # hex digits of seconds since the epoch: 32 bits, enough until 2106


def new_action_id(at: int | None = None) -> str:
    """A new action id: 12 hex digits of the milliseconds it was minted at, then 80 random bits (20 hex digits).

    32 lowercase hex digits, the shape ``uuid4().hex`` had, so every bound and column that took those takes
    these. ``at`` is the action's hybrid-clock timestamp (``protocol.hlc``), whose wall part is used, so the id
    sorts with the action's own time; without it, this machine's clock. Time-ordered rather than random
    because a store's ``actions`` key and its indexes then grow at one edge: a random key dirties a different
    leaf page per insert, and on a county holding a million errands those pages are neither cached nor few
    (issue 15, bench/README.md "Session 11"). Unique as before: two ids minted in one millisecond differ in
    80 random bits.

    What the order changes: ``protocol.errand.project`` lets the first valid candidate *by id* win a version.
    With random ids that was a coin toss; with these, among rivals minted in different milliseconds the one
    minted *earlier* (by its node's clock) wins, so a node whose clock runs behind wins its rivalries more
    often. Every replica still computes the same winner from the same set. Ids minted by older releases are
    random hex of the same shape and keep working: nothing relies on the order for correctness, only the
    indexes' locality does (a new id, starting with "0" until the year 2527, sorts before most old ones).
    """
    ms = wall_ms(at) if at is not None else time.time_ns() // 1_000_000
    return f"{max(ms, 0) & 0xFFFF_FFFF_FFFF:012x}{secrets.token_hex(10)}"


def new_errand_id(node_id: str, seconds: float | None = None) -> str:
    """A new errand id: the registering node's id, ``-``, 8 hex digits of the second it was minted at
    (``seconds`` since the epoch, by default this machine's clock), then 32 random bits (8 hex digits).

    The same length as the ``<node>-<64 random bits>`` ids before, and still unique without any network: the
    node's id separates nodes, and one node would need tens of thousands of registrations in a single second
    before two drew the same 32 bits with any likelihood. Time-ordered for the same reason as
    ``new_action_id``: the ``errands`` key, and the ``actions.errand`` index, then grow at one edge per node.

    The id stays off public pages, and the receipt's query code (``protocol.lookup``) is a hash of it: to
    someone who knows the receipt (node and day) it still holds ≈ 48 unknown bits (32 random, ≈ 16 of the
    second within the day), more than the code's 39, so guessing the code is not made easier.
    """
    now = time.time() if seconds is None else seconds
    return f"{node_id}-{max(int(now), 0) & 0xFFFF_FFFF:08x}{secrets.token_hex(4)}"


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

    async def register(self, form: RegisterForm, *, receipt: str = "", once: Once | None = None) -> Projection:
        """Register an errand. ``once``: the sending form's one-time key (``sanji.store.submissions``); a key
        already used raises ``AlreadySent`` naming the errand it registered, and takes no receipt number."""
        # The store's hybrid clock, not the wall clock: it never runs backwards, so neither do the ids.
        errand_id = new_errand_id(self.node_id, wall_seconds(self.store.clock.now()))
        ERRAND.set(errand_id)
        catalogue = getattr(self.policy, "catalogue", None)
        entry = bind(catalogue, form.matter)
        if isinstance(entry, Refusal):
            raise ActionRefused(entry)
        if entry is None and not form.in_person and not form.mandate:  # bound ones: judge checks it
            raise ActionRefused(refuse("mandate_missing"))
        # The form holds the number to its shape (the schema's pattern); whether its check character is right
        # (GB 11643) is asked here, as the register screen asks it: a 409 naming the field, nothing numbered.
        if form.applicant_id_number and not valid_id_number(form.applicant_id_number):
            raise ActionRefused(refuse("id_number_check"))
        if (blank := person_name_refusal(form.applicant_name)) is not None:
            raise ActionRefused(blank)
        applicant, sealed = self._applicant(form, errand_id)

        def register(receipt: str, at: int) -> a.Register:
            return a.Register(
                id=new_action_id(at),
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
                catalogue_version=catalogue.version if entry is not None and catalogue is not None else 0,
                matter_entry=entry,
                missing_confirmed=form.confirm_missing,
            )

        if receipt:
            return await self.store.act(errand_id, lambda _, at: register(receipt, at), once=once)
        # Numbered once the rule has taken the registration (the same judge the store asks again): a refused
        # one (its mandate, presence, materials, level) uses up no number of the day.
        if judge(None, register("", self.store.clock.now()), self.store.directory) is not None:
            # Refused again by the store's own check, which records the refusal (the audit) as for any step.
            return await self.store.act(errand_id, lambda _, at: register("", at))
        day = self.policy.today() if self.policy is not None else date.today()
        numbered: list[str] = []

        async def number(conn: AsyncConnection) -> None:
            # In the registration's own transaction, after its form's key is checked: a registration sent twice,
            # or refused by the store after all, takes no number, and the day's numbers have no gap.
            numbered.append(make_receipt(self.node_id, day, await bump_counter(conn, f"receipt:{day:%y%m%d}")))

        return await self.store.act(errand_id, lambda _, at: register(numbered[-1], at), once=once, first=number)

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

    async def act(self, errand_id: str, form: ActionForm, *, once: Once | None = None) -> Projection:
        """Take one step at a desk. Nobody at a desk writes as the system (超时默许 is the duties' alone).
        ``once``: the sending form's one-time key; a key already used raises ``AlreadySent``, writing nothing."""
        if form.actor == SYSTEM_ACTOR or form.deemed:
            raise ActionRefused(refuse("system_only"))
        if form.kind == "attach" and form.blob:
            # An attachment named by its hash alone: the bytes must be here already (sent with ``attach``, or
            # received whole), or the step would point every replica at bytes nobody holds.
            held = await self.store.blob_state(form.blob)
            if held is None or not held[2] or held[0] != form.size:
                raise ActionRefused(refuse("attachment_not_held", blob=form.blob[:12]))
            # Only bytes already this errand's: naming another errand's scan by its hash would carry it (an ID
            # card, a villager's papers) to this errand's path without anyone having had it in hand.
            if errand_id not in await self.store.attachment_errands(form.blob):
                raise ActionRefused(refuse("attachment_not_held", blob=form.blob[:12]))
            if (wrong := scan_type_refusal(form.mime)) is not None:
                raise ActionRefused(wrong)
        return await self._act(errand_id, form, once=once)

    async def attach(self, errand_id: str, form: ActionForm, data: bytes, *, once: Once | None = None) -> Projection:
        """Attach ``data`` (a scan or photo) to the errand: the bytes are kept with the step, or not at all.
        ``once``: the sending form's one-time key, as ``act``'s."""
        if form.actor == SYSTEM_ACTOR or form.deemed:
            raise ActionRefused(refuse("system_only"))
        if (wrong := scan_type_refusal(form.mime)) is not None:
            raise ActionRefused(wrong)
        digest = hashlib.sha256(data).hexdigest()
        step = msgspec.structs.replace(form, kind="attach", blob=digest, size=len(data), mime=scan_type(form.mime))
        return await self._act(errand_id, step, attachment=data, once=once)

    async def act_as_system(self, errand_id: str, form: ActionForm) -> Projection:
        """A step the node takes by itself (``sanji.duties``); ``judge`` still checks every fact of it."""
        return await self._act(errand_id, form)

    async def _act(
        self, errand_id: str, form: ActionForm, *, attachment: bytes | None = None, once: Once | None = None
    ) -> Projection:
        ERRAND.set(errand_id)  # every log line written for this request names the errand (sanji.observe.logs)

        # A deadline moved by a closed pause or an extension is counted again from the acceptance (its day, limit
        # and unit): read before the write, as it never changes once applied.
        accept = await accept_of(self.store, errand_id) if form.kind in _COUNTED_FROM_ACCEPTANCE else None
        # The county's catalogue of the version the errand is bound under, to compare its bound entry with
        # (``binding_refusal``): read before the write, as a binding never changes once made.
        checked = await self._binding_checked(errand_id) if form.kind in BOUND_STEPS else None
        # The steps naming the errand's materials, for a step that takes them as complete (``acceptance_refusal``):
        # read before the write. Materials are only ever added, so a step recorded meanwhile can only make this
        # stricter than the errand is (a refusal the desk's retry clears), never let a main material be missed.
        materials = (
            material_steps(await self.store.applied_actions(errand_id, MATERIAL_KINDS))
            if form.kind in MATERIAL_STEPS
            else None
        )

        def build(before: Projection, at: int) -> Action:
            state = before.state
            if state is None:
                raise ActionRefused(refuse("errand_unknown", errand=errand_id, node=self.node_id))
            if form.expected_version is not None and form.expected_version != state.version:
                raise ActionRefused(
                    refuse("changed_meanwhile", version=state.version, seen=form.expected_version),
                    hint="Reload the errand and try again.",
                )
            if form.kind in BOUND_STEPS:
                if checked is not None and checked[0] == (state.catalogue_version, state.matter_entry):
                    problem = checked[1]
                else:  # bound meanwhile (an acceptance): by this node's own catalogue, the one it binds from
                    signed = getattr(self.policy, "catalogue", None)
                    newest = signed.version if isinstance(signed, Catalogue) else None
                    problem = binding_refusal(
                        state.matter_entry, signed, version=state.catalogue_version, newest=newest
                    )
                if problem is not None:
                    raise ActionRefused(problem)
            step = self._desk_form(form, state)
            common: dict[str, Any] = {
                "id": new_action_id(at),
                "errand": errand_id,
                "scope": state.scope,
                "node": self.node_id,
                "actor": step.actor,
                "role": step.role,
                "acting_for": step.acting_for,
                "at": at,
                "base": state.version,
            }
            if accept is not None:
                return _COUNTED_FROM_ACCEPTANCE[step.kind](self, step, state, common, at, accept)
            action = self._build(step, state, common, at)
            if materials is not None:
                problem = acceptance_refusal(state.matter_entry, held_materials(state.matter_entry, materials))
                if problem is not None:  # the errand's own rules answer first: a step refused anyway keeps its code
                    raise ActionRefused(judge(state, action, self.store.directory) or problem)
            return action

        return await self.store.act(errand_id, build, attachment=attachment, once=once)

    async def _binding_checked(self, errand_id: str) -> tuple[tuple[int, Matter | None], Refusal | None] | None:
        """The binding ``errand_id`` holds now (version, entry) and why a desk may not act on it, as this node can
        tell (``sanji.context.NodeContext.binding_status``: a ``binding_mismatch`` refusal, or None for one that is
        the county's, unbound, or cannot be checked). Read from the stored state's binding alone, before the write;
        ``build`` uses it if the binding is the same then. None: this node's policy cannot check."""
        status = getattr(self.policy, "binding_status", None)
        if status is None:
            return None
        bound = bound_of(await self.store.errand_state_blob(errand_id))
        found = await status(bound.matter_entry, bound.catalogue_version, bound.scope)
        return (bound.catalogue_version, bound.matter_entry), found if isinstance(found, Refusal) else None

    def _desk_form(self, form: ActionForm, state: ErrandState) -> ActionForm:
        """The step as the desk's account takes it on the errand as it is now, inside the write (so what it is
        judged by cannot change before it is written); here, as it came. ``sanji.auth.guard.GuardedService``
        fills in and checks the account's department and window (``sanji.auth.roles.place_refusal``)."""
        return form

    def _build(self, form: ActionForm, state: ErrandState, common: dict[str, Any], at: int) -> Action:
        return BUILDERS[form.kind](self, form, state, common, at)

    def _date(self, at: int) -> date:
        return _date_of(at, self.policy)


# -- one builder per step of protocol.steps: what the desk typed becomes the wire action ------------

Builder = Callable[[ErrandService, ActionForm, ErrandState, dict[str, Any], int], Action]


def _note(svc: ErrandService, form: ActionForm, state: ErrandState, common: dict[str, Any], at: int) -> Action:
    if not form.text.strip():
        raise ActionRefused(refuse("note_text_missing"))
    return a.Note(**common, text=form.text)


def _rate(svc: ErrandService, form: ActionForm, state: ErrandState, common: dict[str, Any], at: int) -> Action:
    if not form.level:
        raise ActionRefused(refuse("rating_missing"))
    return a.Rate(**common, level=form.level, window=form.window, staff=form.staff, comment=form.text)


def _attach(svc: ErrandService, form: ActionForm, state: ErrandState, common: dict[str, Any], at: int) -> Action:
    if not form.blob or not form.name:
        raise ActionRefused(refuse("attachment_incomplete"))
    mime = form.mime or "application/octet-stream"
    return a.Attach(**common, blob=form.blob, size=form.size, name=form.name, mime=mime)


def _receive(svc: ErrandService, form: ActionForm, state: ErrandState, common: dict[str, Any], at: int) -> Action:
    stage_due, marked = "", False
    if svc.policy is not None and state.stage in (SUBMITTED, ESCALATED):
        role = svc.store.directory.role(svc.node_id)
        start = svc._date(at)
        stage_due = svc.policy.stage_due(state.matter, role, start)
        marked = svc.policy.span_provisional(start, stage_due)
    return a.Receive(**common, stage_due=stage_due, stage_due_provisional=marked)


def _accept(svc: ErrandService, form: ActionForm, state: ErrandState, common: dict[str, Any], at: int) -> Action:
    errand_kind = form.errand_kind or "承诺件"
    policy = svc.policy
    catalogue = getattr(policy, "catalogue", None)
    entry = None
    if state.matter_entry is None:
        # No acceptance without a catalogue: an errand registered unbound is bound here. The
        # errand's own rules answer first, so a step refused anyway keeps its own code.
        found = bind(catalogue, state.matter)
        if not isinstance(found, Matter):
            unbound = a.Accept(**common, errand_kind=errand_kind, provisional=tuple(form.provisional))
            first = judge(state, unbound, svc.store.directory)
            raise ActionRefused(first or found or refuse("no_catalogue"))
        entry = found
    due, limit, unit = ("", 0, "working")
    marked, calendar_version = False, 0
    if policy is not None:
        accepted_on = svc._date(at)
        due, limit, unit = policy.whole_due(state.matter, accepted_on, errand_kind, entry or state.matter_entry)
        marked, calendar_version = policy.span_provisional(accepted_on, due), policy.calendar_version
    accept = a.Accept(
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
        matter_entry=entry,
        calendar_version=calendar_version,
        due_provisional=marked,
    )
    if not due:
        # The rule asks the acceptance to name its deadline (rules 2); the clerk cannot type one, so say why
        # this desk could not count it rather than that the notice lacks it.
        problem = judge(state, accept, svc.store.directory)
        if problem is not None and problem.code == "due_missing":
            raise ActionRefused(refuse("deadline_uncounted", kind=errand_kind))
    return accept


def _materials_received(
    svc: ErrandService,
    form: ActionForm,
    state: ErrandState,
    common: dict[str, Any],
    at: int,
    accept: a.Accept | None = None,
) -> Action:
    due, stage_due = state.due, ""
    marked, stage_marked = state.due_provisional, False
    policy = svc.policy
    if policy is not None and state.stage == SUPPLEMENT:
        paused_from, paused_to = svc._date(state.paused_since), svc._date(at)
        pauses = (*state.pauses, (state.paused_since, at))  # this one closes now
        if state.due:
            if accept is not None:
                due = policy.due_from(accept, pauses, state.extended_days, fallback=state.due)
            else:  # read before the acceptance was (a race): moved from the deadline held, in the limit's unit
                unit = policy.limit_unit(state.matter_entry, state.matter)
                due = policy.pushed_due(state.due, paused_from, paused_to, unit)
            marked = marked or policy.span_provisional(paused_to, due)
        if state.stage_due:
            role = svc.store.directory.role(svc.node_id)
            stage_pauses = policy.pauses_since(pauses, state.stage_since)
            started = svc._date(state.stage_since)
            stage_due = policy.stage_due(state.matter, role, started, stage_pauses)
            if not stage_due:  # the matter not in the catalogue held, or no calendar for it: moved from the date held
                unit = policy.limit_unit(state.matter_entry, state.matter)
                stage_due = policy.pushed_due(state.stage_due, paused_from, paused_to, unit)
            stage_marked = state.stage_due_provisional or policy.span_provisional(paused_to, stage_due)
    return a.MaterialsReceived(
        **common,
        items=tuple(form.items),
        due=due,
        due_provisional=marked,
        stage_due=stage_due,
        stage_due_provisional=stage_marked,
    )


def _subtask_done(svc: ErrandService, form: ActionForm, state: ErrandState, common: dict[str, Any], at: int) -> Action:
    outcome: Literal["agreed", "objected"] = "objected" if form.outcome == "objected" else "agreed"
    return a.SubtaskDone(**common, department=form.department, outcome=outcome, note=form.text)


def _extend(
    svc: ErrandService,
    form: ActionForm,
    state: ErrandState,
    common: dict[str, Any],
    at: int,
    accept: a.Accept | None = None,
) -> Action:
    new_due, marked = state.due, state.due_provisional
    policy = svc.policy
    if policy is not None and state.due:
        if accept is not None:
            new_due = policy.due_from(accept, state.pauses, state.extended_days + form.days, fallback=state.due)
        else:
            unit = policy.limit_unit(state.matter_entry, state.matter)
            new_due = policy.extended_due(state.due, form.days, unit)
        marked = marked or policy.span_provisional(svc._date(at), new_due)
    reason = form.reasons or form.text
    return a.Extend(
        **common,
        days=form.days,
        reason=reason,
        due=new_due,
        applicant_informed=form.applicant_informed,
        due_provisional=marked,
    )


def _decide(svc: ErrandService, form: ActionForm, state: ErrandState, common: dict[str, Any], at: int) -> Action:
    if form.outcome not in ("approved", "refused"):
        raise ActionRefused(refuse("outcome_invalid"))
    return a.Decide(
        **common,
        outcome=form.outcome,
        document=form.document,
        department=form.department,
        deemed=form.deemed,
        reasons=form.reasons if form.outcome == "refused" else "",
    )


def _handoff(purpose: Literal["submit", "escalate", "result"]) -> Builder:
    def build(svc: ErrandService, form: ActionForm, state: ErrandState, common: dict[str, Any], at: int) -> Action:
        directory = svc.store.directory
        if purpose == "result":
            to = directory.next_hop_down(svc.node_id, state.scope) or ""
        else:
            to = directory.parent(svc.node_id) or ""
        department = form.department if purpose == "escalate" else ""
        return a.HandOff(**common, to=to, purpose=purpose, department=department, note=form.text)

    return build


def _supervise(svc: ErrandService, form: ActionForm, state: ErrandState, common: dict[str, Any], at: int) -> Action:
    """督办 addressed to the errand's handling desk, with an answer due when a date or days are given."""
    answer_by = form.answer_by
    if form.answer_days and not answer_by:
        today = svc._date(at).isoformat()
        extended = svc.policy.extended_due(today, form.answer_days) if svc.policy is not None else ""
        answer_by = extended if extended != today else (svc._date(at) + timedelta(days=form.answer_days)).isoformat()
    if not answer_by:
        return a.Supervise(**common, kind_of_supervision=form.supervision, text=form.text)
    return a.Supervise(
        **common,
        kind_of_supervision=form.supervision,
        text=form.text,
        answer_by=answer_by,
        to=state.pending_to or state.holder,
        window=state.window,
    )


def _answer_urging(svc: ErrandService, form: ActionForm, state: ErrandState, common: dict[str, Any], at: int) -> Action:
    # The oldest urging addressed here; failing that any open one, so the rule says whose it is.
    waiting = open_for(state.urgings, svc.node_id) or [u for u in state.urgings if not u.answer]
    urging = form.urging or (waiting[0].id if waiting else "")
    if not urging:
        raise ActionRefused(refuse("no_open_urging", urging=""))
    return a.AnswerUrging(**common, urging=urging, text=form.text)


def _simple(make: Callable[[ActionForm, dict[str, Any]], Action]) -> Builder:
    return lambda svc, form, state, common, at: make(form, common)


_COUNTED_FROM_ACCEPTANCE: dict[str, Callable[..., Action]] = {
    "materials_received": _materials_received,
    "extend": _extend,
}


async def accept_of(store: Store, errand_id: str) -> a.Accept | None:
    """The errand's applied acceptance as held here (None before it, or unknown here)."""
    action = await store.applied_of(errand_id, "accept")
    return action if isinstance(action, a.Accept) else None


BUILDERS: dict[str, Builder] = {
    "submit": _handoff("submit"),
    "receive": _receive,
    "accept": _accept,
    "not_accept": _simple(lambda f, c: a.NotAccept(**c, reasons=f.reasons)),
    "return": _simple(lambda f, c: a.ReturnErrand(**c, reasons=f.reasons)),
    "request_supplement": _simple(lambda f, c: a.RequestSupplement(**c, items=tuple(f.items), note=f.text)),
    "materials_received": _materials_received,
    "assign": _simple(lambda f, c: a.Assign(**c, window=f.window, handler=f.handler, referred_by=f.referred_by)),
    "subtask_done": _subtask_done,
    "extend": _extend,
    "review": _simple(lambda f, c: a.Review(**c, passed=f.passed, note=f.text)),
    "escalate": _handoff("escalate"),
    "decide": _decide,
    "terminate": _simple(lambda f, c: a.Terminate(**c, reason=f.reasons or f.text)),
    "withdraw": _simple(lambda f, c: a.Withdraw(**c, reason=f.reasons or f.text)),
    "send_result": _handoff("result"),
    "deliver": _simple(lambda f, c: a.Deliver(**c, confirmed_by=f.confirmed_by, signature=f.signature)),
    "close": _simple(lambda f, c: a.Close(**c, archive_no=f.archive_no)),
    "supply": _simple(lambda f, c: a.Supply(**c, items=tuple(f.items), note=f.text)),
    "note": _note,
    "rate": _rate,
    "complain": _simple(lambda f, c: a.Complain(**c, text=f.text, against=f.against)),
    "callback": _simple(lambda f, c: a.CallBack(**c, reached=f.reached, satisfied=f.level, note=f.text)),
    "supervise": _supervise,
    "answer_urging": _answer_urging,
    "attach": _attach,
}
assert tuple(BUILDERS) == STEP_KINDS, "every step of protocol.steps has exactly one builder"
