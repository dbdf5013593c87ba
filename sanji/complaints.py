"""Public complaints and suggestions (投诉建议): filed without a login, read only by supervision.

A complaint is a ``complain`` annotation on the errand it is about: it commutes with the
errand's main line, goes into this node's stream for the errand's scope, and so reaches
every node on the path up to the county hub, where the supervision desk reads it. The
complainant's name and phone are sealed (``protocol.sealing``) to the **county hub alone**
— not to the township or village that may employ the person complained about — and bound
to ``complaint_binding(errand)``. Without a sealing key at the hub the complaint is still
filed, anonymously, and the complainant is told so. Who may see a complaint at all is
``sanji.auth.roles.complaint_visible`` (supervisors and inspectors, never the person named).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from protocol import actions as a
from protocol.errand import Projection
from protocol.errors import ActionRefused
from protocol.sealing import (
    Personal,
    SealError,
    SealingKey,
    complaint_binding,
    open_for,
    recipients_for,
    seal_personal,
)
from protocol.topology import Directory
from sanji.auth.book import CALLER, Who
from sanji.service import new_action_id
from sanji.store import Store
from sanji.store.submissions import Once

PUBLIC_ACTOR = "公众"
PUBLIC_ROLE = "公众投诉 public"


class ComplaintForm(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # 投诉 complaint or 建议 suggestion
    text: str
    against: str = ""
    name: str = ""
    phone: str = ""


@dataclass(frozen=True)
class Filed:
    reference: str  # the first characters of the action id: quoted when the complainant calls
    identity_sealed: bool
    projection: Projection


def hub_of(directory: Directory, scope: str) -> str:
    """The county hub on the errand's path: its supervision desk answers complaints, below a city too."""
    return directory.county_of(scope) or directory.path(scope)[0]


def seal_complainant(directory: Directory, errand: str, scope: str, name: str, phone: str) -> bytes:
    """The complainant's identity sealed to the county hub's sealing key; b"" if there is nothing or no key."""
    personal = Personal(name=name, phone=phone)
    if personal.is_empty():
        return b""
    hub = hub_of(directory, scope)
    recipients = [r for r in (recipients_for(directory, scope) or ()) if r.node == hub]
    if not recipients:
        return b""
    return seal_personal(personal, recipients, errand=complaint_binding(errand), scope=scope)


async def file_public_complaint(
    store: Store, errand_id: str, form: ComplaintForm, *, ip: str = "", once: Once | None = None
) -> Filed:
    """File a complaint sent through the public form. ``once``: the form's one-time key; sent again, nothing is
    filed and ``AlreadySent`` names the first complaint's action (its reference: ``reference_of``)."""
    sealed: list[bytes] = []
    ids: list[str] = []

    def build(before: Projection, at: int) -> a.Action:
        state = before.state
        if state is None:
            raise ActionRefused(f"errand {errand_id} is not known at {store.node_id}")
        if not sealed:
            sealed.append(seal_complainant(store.directory, errand_id, state.scope, form.name, form.phone))
        ids.append(new_action_id(at))
        return a.Complain(
            id=ids[-1],
            errand=errand_id,
            scope=state.scope,
            node=store.node_id,
            actor=PUBLIC_ACTOR,
            role=PUBLIC_ROLE,
            at=at,
            base=state.version,
            text=f"【{form.kind}】{form.text}",
            against=form.against,
            complainant=sealed[0],
            channel="public",
        )

    token = CALLER.set(Who(account="", via="public", ip=ip))
    try:
        projection = await store.act(errand_id, build, once=once)
    finally:
        CALLER.reset(token)
    return Filed(reference=reference_of(ids[-1]), identity_sealed=bool(sealed and sealed[0]), projection=projection)


def reference_of(action_id: str) -> str:
    """A complaint's 受理编号 as the complainant is told it: its action id's first eight digits."""
    return action_id[:8].upper()


def complainant_of(item: dict[str, Any], key: SealingKey | None) -> dict[str, str]:
    """The complainant of one complaint (as ``msgspec.to_builtins`` gives it) where this node may open it.

    ``{"status": "none"}`` anonymous; ``"sealed"`` sealed to another node (a township sees this);
    ``"open"`` with name and phone at the county hub.
    """
    raw = item.get("complainant")
    if not raw:
        return {"status": "none"}
    blob = msgspec.convert(raw, bytes) if isinstance(raw, str) else raw
    if key is None or not isinstance(blob, bytes):
        return {"status": "sealed"}
    try:
        personal = open_for(key, blob, complaint_binding(str(item.get("errand", ""))), str(item.get("scope", "")))
    except SealError:
        return {"status": "sealed"}
    return {"status": "open", "name": personal.name, "phone": personal.phone}


def present(complaints: list[dict[str, Any]], key: SealingKey | None) -> list[dict[str, Any]]:
    """Complaints as a supervision desk reads them: the sealed bytes replaced by who complained, where opened."""
    return [{**c, "complainant": complainant_of(c, key)} for c in complaints]
