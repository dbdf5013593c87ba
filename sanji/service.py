"""Turning a desk's request into a protocol action; the rules themselves live in ``protocol.errand``."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from protocol.actions import Accept, Action, Applicant, Decide, Deliver, HandOff, Note, Receive, Register
from protocol.errand import Projection
from protocol.errors import ActionRefused
from sanji.forms import ActionForm, RegisterForm
from sanji.store import Store


def new_action_id() -> str:
    return uuid.uuid4().hex


def new_errand_id(node_id: str) -> str:
    # Unique without any network: the registering node's id plus 64 random bits.
    return f"{node_id}-{secrets.token_hex(8)}"


class ErrandService:
    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def node_id(self) -> str:
        return self.store.node_id

    async def register(self, form: RegisterForm) -> Projection:
        errand_id = new_errand_id(self.node_id)

        def build(_: Projection, at: int) -> Action:
            return Register(
                id=new_action_id(),
                errand=errand_id,
                scope=self.node_id,
                node=self.node_id,
                actor=form.actor,
                role=form.role,
                at=at,
                base=0,
                matter=form.matter,
                applicant=Applicant(
                    name=form.applicant_name, id_number=form.applicant_id_number, phone=form.applicant_phone
                ),
                mandate=form.mandate,
                materials=tuple(form.materials),
                summary=form.summary,
            )

        return await self.store.act(errand_id, build)

    async def act(self, errand_id: str, form: ActionForm) -> Projection:
        directory = self.store.directory

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
                "at": at,
                "base": state.version,
            }
            kind = form.kind
            if kind == "note":
                if not form.text.strip():
                    raise ActionRefused("a note needs text")
                return Note(**common, text=form.text)
            if kind == "receive":
                return Receive(**common)
            if kind == "accept":
                return Accept(**common, errand_kind=form.errand_kind)
            if kind == "decide":
                if form.outcome not in ("approved", "refused"):
                    raise ActionRefused("a decision is either approved or refused")
                return Decide(**common, outcome=form.outcome, document=form.document, department=form.department)
            if kind == "deliver":
                return Deliver(**common, confirmed_by=form.confirmed_by, signature=form.signature)
            if kind == "submit":
                parent = directory.parent(self.node_id) or ""
                return HandOff(**common, to=parent, purpose="submit", note=form.text)
            if kind == "escalate":
                parent = directory.parent(self.node_id) or ""
                return HandOff(**common, to=parent, purpose="escalate", department=form.department, note=form.text)
            hop = directory.next_hop_down(self.node_id, state.scope) or ""
            return HandOff(**common, to=hop, purpose="result", note=form.text)

        return await self.store.act(errand_id, build)
