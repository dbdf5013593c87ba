"""The SMS outbox over HTTP: what was sent, what waits, the dead letters, and retrying one."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from sanji.context import NodeContext
from sanji.notify.outbox import DEAD, PENDING, SENT, Outbox
from sanji.notify.templates import EVENT_LABELS, RECIPIENT_LABELS
from sanji.store import Store
from sanji.web.screens import _frame

STATUSES = (PENDING, SENT, DEAD)
GATEWAY_LABELS = {  # [sms] gateway, as the outbox screen says it
    "file": ("写入文件，不真正发送（演示）", "written to a file, not sent (demo)"),
    "http": ("短信平台", "the SMS provider"),
}


class OutboxRow(msgspec.Struct, kw_only=True):
    id: int
    key: str
    event: str
    errand: str
    recipient: str
    contact: str
    shown_to: str
    text: str
    status: str
    attempts: int
    next_at: float
    last_error: str
    created_at: float
    sent_at: float | None
    gateway_id: str


class OutboxPage(msgspec.Struct, kw_only=True):
    gateway: str
    counts: dict[str, int]
    items: list[OutboxRow]


def _outbox(request: Request[Any, Any, Any], store: Store) -> Outbox:
    return Outbox(store, request.app.state.settings.sms)


def _status(value: str) -> str:
    if value and value not in STATUSES:
        raise ValueError(f"status is one of {', '.join(STATUSES)}")
    return value


class SmsApiController(Controller):
    path = "/api/office/sms"
    tags = ["office"]

    @get("/", summary="The SMS outbox: sent, pending (with the next attempt) and dead letters")
    async def list_outbox(
        self,
        store: NamedDependency[Store],
        request: Request[Any, Any, Any],
        status: Annotated[Literal["", "pending", "sent", "dead"], QueryParameter()] = "",
    ) -> OutboxPage:
        outbox = _outbox(request, store)
        rows = await outbox.rows(_status(status) or None)
        return OutboxPage(
            gateway=outbox.settings.gateway,
            counts=await outbox.counts(),
            items=[msgspec.convert(r, OutboxRow) for r in rows],
        )

    @post("/{row_id:int}/retry", summary="Send a dead letter again (same idempotency key)", status_code=200)
    async def retry(
        self, store: NamedDependency[Store], request: Request[Any, Any, Any], row_id: FromPath[int]
    ) -> dict[str, bool]:
        if not await _outbox(request, store).retry(row_id):
            raise NotFoundException(f"no dead letter {row_id}")
        return {"queued": True}


class SmsScreenController(Controller):
    path = "/office/sms"
    include_in_schema = False

    @get("/")
    async def screen(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        request: Request[Any, Any, Any],
        done: Annotated[str, QueryParameter(max_length=16)] = "",
    ) -> Template:
        outbox = _outbox(request, store)
        now = time.time()
        return Template(
            template_name="office_sms.html",
            context={
                **_frame(store, context, "sms"),
                "gateway": GATEWAY_LABELS.get(outbox.settings.gateway, (outbox.settings.gateway, "")),
                "events": EVENT_LABELS,
                "recipients": RECIPIENT_LABELS,
                "counts": await outbox.counts(),
                "dead": await outbox.rows(DEAD),
                "pending": await outbox.rows(PENDING),
                "sent": await outbox.rows(SENT, limit=100),
                "now": now,
                "at": lambda ts: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "—",
                "done": done,
            },
        )

    @post("/{row_id:int}/retry", status_code=303)
    async def retry(
        self, store: NamedDependency[Store], request: Request[Any, Any, Any], row_id: FromPath[int]
    ) -> Redirect:
        retried = await _outbox(request, store).retry(row_id)
        return Redirect(f"/office/sms/?done={'retry' if retried else 'nothing'}", status_code=303)
