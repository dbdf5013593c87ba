"""Which messages a node owes, found from what it holds; each with the key that makes it once-only.

* To the applicant, from the node where they asked (the errand's scope): acceptance, the
  one-time supplement notice, an extension, the result ready (with the place to collect it:
  the village station for a village errand, the township window for a walk-in).
* 电子监察 warnings, from the node holding the errand: yellow as the deadline nears, red once
  it has passed — to the handling department's leader and to the centre director
  (seeds 000 and 003), once per errand, level and deadline.
* 督办 urgings with an answer due, from the node urged: to the urged window's duty phone when
  ``[sms.windows]`` names one, once per urging (answered urgings are not sent).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from protocol.actions import Accept, Extend, RequestSupplement
from protocol.encoding import decode_action
from protocol.errand import outcome_words
from protocol.topology import VILLAGE
from sanji.context import NodeContext, bound_entry
from sanji.duties import mask_phone
from sanji.notify.outbox import Message
from sanji.notify.settings import SmsSection
from sanji.notify.templates import render
from sanji.store import Store
from sanji.store import schema as t
from sanji.urgings import urging_rows
from sanji.web.views import deadline_of

APPLICANT_KINDS = ("accept", "request_supplement", "extend")


def pickup_place(store: Store, scope: str) -> str:
    directory = store.directory
    if scope not in directory:
        return "便民服务窗口"
    entry = directory.get(scope)
    name = entry.name or scope
    return f"{name}(村便民服务站)" if entry.role == VILLAGE else f"{name}窗口"


async def applicant_messages(store: Store, context: NodeContext, settings: SmsSection) -> list[Message]:
    node = store.node_id
    query = (
        select(t.actions.c.body, t.errands.c.receipt, t.errands.c.matter, t.errands.c.due, t.errands.c.scope)
        .join(t.errands, t.errands.c.id == t.actions.c.errand)
        .where(t.errands.c.scope == node, t.actions.c.kind.in_(APPLICANT_KINDS), t.actions.c.status == "applied")
    )
    results = select(t.errands).where(
        t.errands.c.scope == node,
        t.errands.c.holder == node,
        t.errands.c.pending_to.is_(None),
        t.errands.c.stage.in_(("decided", "result_ready")),
    )
    async with store.db.reader.connect() as conn:
        found = (await conn.execute(query)).all()
        ready = (await conn.execute(results)).mappings().all()
    out: list[Message] = []
    phones: dict[str, str] = {}

    async def masked(errand: str) -> str:
        if errand not in phones:
            phones[errand] = mask_phone(await store.applicant_phone(errand))
        return phones[errand]

    for body, receipt, matter_code, due, scope in found:
        action = decode_action(body)
        matter = context.matter(matter_code)
        values: dict[str, Any] = {
            "sign": settings.sign,
            "matter": matter.name if matter else matter_code,
            "receipt": receipt,
            "place": pickup_place(store, scope),
        }
        if isinstance(action, Accept):
            event, values["due"] = "accepted", action.due or due
        elif isinstance(action, RequestSupplement):
            event, values["items"] = "supplement", "、".join(action.items)
        elif isinstance(action, Extend):
            event, values["due"], values["reason"] = "extended", action.due, action.reason
        else:
            continue
        phone = await masked(action.errand)
        if not phone:
            continue  # no phone given (or not readable here): nothing to send
        out.append(
            Message(
                key=f"{event}:{action.id}",
                event=event,
                errand=action.errand,
                recipient="applicant",
                contact="",
                shown_to=phone,
                text=render(settings.template(event), values),
            )
        )
    for row in ready:
        phone = await masked(row["id"])
        if not phone:
            continue
        matter = context.matter(row["matter"])
        values = {
            "sign": settings.sign,
            "matter": matter.name if matter else row["matter"],
            "receipt": row["receipt"],
            "outcome": outcome_words(row["outcome"], bound_entry(row.get("state")), matter).split()[0],
            "place": pickup_place(store, row["scope"]),
        }
        out.append(
            Message(
                key=f"result:{row['id']}",
                event="result",
                errand=row["id"],
                recipient="applicant",
                contact="",
                shown_to=phone,
                text=render(settings.template("result"), values),
            )
        )
    return out


async def warning_messages(store: Store, context: NodeContext, settings: SmsSection) -> list[Message]:
    today = context.today()
    out: list[Message] = []
    for row in await store.worklist():
        if row["pending_to"] or row["stage"] not in ("accepted", "at_department", "received"):
            continue
        deadline = deadline_of(row.get("due", ""), row["stage"], bool(row.get("paused")), context, today)
        if deadline is None or deadline.level not in ("yellow", "red"):
            continue
        matter = context.matter(row["matter"])
        department = row["department"] or (matter.department or matter.window if matter else "")
        event = f"warning_{deadline.level}"
        values = {
            "matter": matter.name if matter else row["matter"],
            "receipt": row["receipt"] or row["id"],
            "due": row["due"],
            "days": deadline.days_over,
            "department": department or store.node_id,
            "level": "红色预警" if deadline.level == "red" else "黄色预警",
        }
        text = render(settings.template(event), values)
        targets = []
        if department and department in settings.leaders:
            targets.append(("leader", department, settings.leaders[department]))
        if settings.director:
            targets.append(("director", "", settings.director))
        for recipient, contact, phone in targets:
            out.append(
                Message(
                    key=f"{event}:{row['id']}:{row['due']}:{recipient}",
                    event=event,
                    errand=row["id"],
                    recipient=recipient,
                    contact=contact,
                    shown_to=mask_phone(phone),
                    text=text,
                )
            )
    return out


async def urging_messages(store: Store, context: NodeContext, settings: SmsSection) -> list[Message]:
    if not settings.windows:
        return []
    out: list[Message] = []
    for urging in await urging_rows(store, context.today(), to=store.node_id):
        phone = settings.windows.get(urging.window)
        if urging.status == "answered" or not phone:
            continue
        matter = context.matter(urging.matter)
        values = {
            "matter": matter.name if matter else urging.matter,
            "receipt": urging.receipt,
            "due": urging.answer_by,
            "reason": urging.text,
            "department": urging.window,
        }
        out.append(
            Message(
                key=f"urging:{urging.id}:window",
                event="urging",
                errand=urging.errand,
                recipient="window",
                contact=urging.window,
                shown_to=mask_phone(phone),
                text=render(settings.template("urging"), values),
            )
        )
    return out
