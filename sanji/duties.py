"""What a node does on its own, on a timer: the duties nobody should have to remember.

- 超时默许 (seeds 000 and 003): an errand held here at a desk, past its deadline,
  whose matter says so, is taken as approved — recorded as a decision by the system,
  so the accepting window answers for it and every replica sees the same thing.
- The applicant's SMS (seeds 000, 002, 003): when a result reaches the node where
  the applicant asked, a message is queued once and handed to the SMS sender; so is
  every extension a desk of this node granted (延期, with its 延期告知书).
- 容缺 follow-up (seed 001): a reminder on the promised date, termination the day after.
  No gateway is reachable from here: the default sender appends to ``sms.log``.

The phone stays sealed at rest: the queue (``notifications``) keeps only a masked form
(``mask_phone``: 139****1234) for the desk to see; the number is opened from the errand
(``Store.applicant_phone``) at the moment the message is handed to the sender, and
``sms.log`` records the masked form too (the message text never holds the number).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Protocol

from protocol.binding import DEEMED_ROLE, SYSTEM_ACTOR
from protocol.deadlines import UNIT_NAMES
from protocol.errand import outcome_words
from protocol.errors import SanjiError
from protocol.stages import ACCEPTED, AT_DEPARTMENT, DECIDED, RESULT_READY
from sanji.calendar_duty import correct_provisional_deadlines
from sanji.context import NodeContext, bound_entry
from sanji.forms import ActionForm
from sanji.office.business import build_own_reports
from sanji.periodic import cancel, woken_or_timed_out
from sanji.service import ErrandService
from sanji.store import Store

log = logging.getLogger("sanji.duties")


class SmsSender(Protocol):
    async def send(self, phone: str, text: str) -> None: ...


def mask_phone(phone: str) -> str:
    """The phone as a desk may see it at rest: ``13907301234`` -> ``139****1234``.

    Keeps the first three and last four characters of a number of nine or more, only the last
    two of a shorter one; a masked number masks to itself.
    """
    if len(phone) >= 9:
        return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"
    shown = 2 if len(phone) > 2 else 0
    return "*" * (len(phone) - shown) + phone[len(phone) - shown :]


def _is_masked(phone: str) -> bool:
    return "*" in phone


class FileSmsSender:
    """Writes each message to a file: the stand-in for a county SMS gateway.

    The file lives on the node's disk beside the database, so it gets the masked number.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, phone: str, text: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')}\t{mask_phone(phone)}\t{text}\n"
        await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)


async def deemed_approvals(store: Store, context: NodeContext, *, today: date | None = None) -> list[str]:
    """Decide, as approved, every overdue errand held here whose matter has 超时默许."""
    today = today or context.today()
    service = ErrandService(store, context)
    done = []
    for row in await store.worklist():
        if row["pending_to"] or row["stage"] not in (ACCEPTED, AT_DEPARTMENT) or not row["due"]:
            continue
        # The entry the errand is bound to, as judge asks it: a newer catalogue does not change its promise.
        matter = bound_entry(row.get("state")) or context.matter(row["matter"])
        if matter is None or not matter.deemed_approval or date.fromisoformat(row["due"]) >= today:
            continue
        form = ActionForm(
            kind="decide",
            actor=SYSTEM_ACTOR,
            role=DEEMED_ROLE,
            outcome="approved",
            deemed=True,
            document=f"超时默许:{row['due']} 前未作决定,依事项规则视为准予",
            expected_version=row["version"],
        )
        try:
            await service.act_as_system(row["id"], form)
            done.append(row["id"])
        except SanjiError as exc:
            log.info("no deemed approval for %s: %s", row["id"], exc.message)
    return done


PROMISE_LAPSED = "容缺材料未在承诺期限内补齐，依容缺受理承诺书终止办理"


async def follow_promises(store: Store, context: NodeContext, *, today: date | None = None) -> tuple[int, list[str]]:
    """容缺受理 (seed 001): the promised materials are followed up, as the commitment letter says.

    On the promised date, while anything is still owed, the applicant gets one reminder SMS;
    the day after it, the errand is terminated by the system with the reason (终止办理: the
    notice goes down like a result, and the result SMS tells the applicant). Returns
    (reminders queued, errands terminated).
    """
    today = today or context.today()
    service = ErrandService(store, context)
    reminded, ended = 0, []
    rows = [r for r in await store.worklist() if not r["pending_to"] and r["stage"] in (ACCEPTED, AT_DEPARTMENT)]
    states = await store.errand_states([r["id"] for r in rows])
    for row in rows:
        state = states.get(row["id"], {})
        owed, promised = list(state.get("provisional") or ()), str(state.get("promise_by") or "")
        if not owed or not promised:
            continue
        try:
            by = date.fromisoformat(promised)
        except ValueError:
            # The rule bounds a received promise date's length only; one bad date must not stop the round.
            log.warning("errand %s: promised date %r is not a date; not followed up", row["id"], promised[:40])
            continue
        if today == by:
            phone = await store.applicant_phone(row["id"])
            text = (
                f"【三级联办】您的办件(回执号{row['receipt']})按容缺受理承诺应于今日补齐:{'、'.join(owed)}。"
                "逾期未补齐将终止办理。"
            )
            if phone and await store.queue_notification(row["id"], f"promise:{promised}", mask_phone(phone), text):
                reminded += 1
        elif today > by:
            form = ActionForm(
                kind="terminate",
                actor=SYSTEM_ACTOR,
                role="容缺跟踪",
                reasons=f"{PROMISE_LAPSED}（承诺日期 {promised}，未补：{'、'.join(owed)}）",
                expected_version=row["version"],
            )
            try:
                await service.act_as_system(row["id"], form)
                ended.append(row["id"])
            except SanjiError as exc:
                log.info("容缺 follow-up of %s not taken: %s", row["id"], exc.message)
    return reminded, ended


async def queue_result_messages(store: Store, context: NodeContext) -> int:
    """Queue one SMS per errand whose result has reached the node where the applicant asked."""
    queued = 0
    rows, _ = await store.errands(
        scope=store.node_id, holder=store.node_id, stages_in=(DECIDED, RESULT_READY), limit=100_000
    )
    for row in rows:
        if row["pending_to"]:
            continue
        phone = await store.applicant_phone(row["id"])
        if not phone:
            continue
        matter = context.matter(row["matter"])
        name = matter.name if matter else row["matter"]
        outcome = outcome_words(row["outcome"], bound_entry(row.get("state")), matter).split()[0]
        text = f"【三级联办】您申请的{name}(回执号{row['receipt']})已办结:{outcome}。请到村便民服务站领取结果。"
        # Only the masked number is queued: the real one is opened from the errand when it is sent.
        if await store.queue_notification(row["id"], "result", mask_phone(phone), text):
            queued += 1
    return queued


async def queue_extension_messages(store: Store, context: NodeContext) -> int:
    """Queue one SMS per extension this node granted (延期: the applicant must be told), once each."""
    queued = 0
    for extension in await store.annotations("extend", limit=500):  # applied extend actions, newest first
        if extension.get("node") != store.node_id:
            continue
        errand = str(extension["errand"])
        phone = await store.applicant_phone(errand)
        if not phone:
            continue
        row = await store.errand(errand)
        if row is None:
            continue
        matter = context.matter(row["matter"])
        name = matter.name if matter else row["matter"]
        due = extension.get("due") or "—"
        unit_zh = UNIT_NAMES.get(matter.limit_unit if matter else "working", UNIT_NAMES["working"])[0]
        text = (
            f"【三级联办】您申请的{name}(回执号{row['receipt']})办理期限延长{extension['days']}{unit_zh},"
            f"新的办结期限为{due},理由:{extension.get('reason', '')}。延期告知书可到窗口领取。"
        )
        if await store.queue_notification(errand, f"ext:{str(extension['id'])[:28]}", mask_phone(phone), text):
            queued += 1
    return queued


async def send_queued(store: Store, sender: SmsSender) -> int:
    """Hand every unsent message to ``sender``; a sent message's row keeps only the masked phone."""
    sent = 0
    for item in await store.unsent_notifications():
        kept = item["phone"]
        # A row queued before phones were masked still holds the number: use it if the errand cannot give it.
        phone = await store.applicant_phone(item["errand"]) or ("" if _is_masked(kept) else kept)
        if not phone:
            await store.mark_notification(item["id"], error="the applicant's phone cannot be read on this node")
            continue
        try:
            await sender.send(phone, item["text"])
        except Exception as exc:  # a gateway failure is retried on the next round
            await store.mark_notification(item["id"], error=f"{type(exc).__name__}: {exc}")
            continue
        await store.mark_notification(item["id"], phone=mask_phone(kept))
        sent += 1
    return sent


class Duties:
    def __init__(
        self, store: Store, context: NodeContext, sender: SmsSender, *, interval: float = 30.0, sms: bool = True
    ) -> None:
        self.store = store
        self.sms = sms  # False when the SMS gateway's outbox (sanji.notify) sends the applicant's messages
        self.context = context
        self.sender = sender
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._masked_old = False
        store.on_change(self._wake.set)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"duties-{self.store.node_id}")

    async def stop(self) -> None:
        await cancel(self._task)

    async def run_once(self) -> None:
        if not self._masked_old:  # rows sent before phones were masked at rest: once per start
            await self.store.mask_sent_notification_phones(mask_phone)
            self._masked_old = True
        await self.context.refresh_calendar()  # a calendar published meanwhile by `sanji calendar publish`
        await correct_provisional_deadlines(self.store, self.context)
        await deemed_approvals(self.store, self.context)
        await follow_promises(self.store, self.context)
        await build_own_reports(self.store, self.context)  # once per business day: the signed counts that go up
        if self.sms:  # else the SMS gateway's outbox (sanji.notify) words and sends them
            await queue_result_messages(self.store, self.context)
            await queue_extension_messages(self.store, self.context)
            await send_queued(self.store, self.sender)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:  # a duty that fails must not stop the node; it runs again next round
                log.exception("node duties failed")
            await woken_or_timed_out(self._wake, self.interval)


Clock = Callable[[], float]
