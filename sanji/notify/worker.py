"""The notifier: on a timer and after every change, find the messages owed, queue them, deliver what is due."""

from __future__ import annotations

import asyncio
import logging

from sanji.config import NodeSettings
from sanji.context import NodeContext
from sanji.notify.events import applicant_messages, urging_messages, warning_messages
from sanji.notify.gateway import Gateway, HttpGateway
from sanji.notify.outbox import Outbox
from sanji.periodic import cancel, woken_or_timed_out
from sanji.store import Store

log = logging.getLogger("sanji.notify")


class Notifier:
    def __init__(
        self, store: Store, context: NodeContext, outbox: Outbox, gateway: Gateway, *, interval: float
    ) -> None:
        self.store, self.context, self.outbox, self.gateway = store, context, outbox, gateway
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        store.on_change(self._wake.set)

    async def run_once(self) -> dict[str, int]:
        settings = self.outbox.settings
        queued = await self.outbox.enqueue(
            [
                *await applicant_messages(self.store, self.context, settings),
                *await warning_messages(self.store, self.context, settings),
                *await urging_messages(self.store, self.context, settings),
            ]
        )
        tally = await self.outbox.deliver(self.gateway)
        return {"queued": queued, **tally}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"notify-{self.store.node_id}")

    async def stop(self) -> None:
        await cancel(self._task)
        await self.gateway.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:  # a failed round must not stop the node; the outbox keeps everything
                log.exception("notifications failed")
            await woken_or_timed_out(self._wake, self.interval)


def start_notifier(settings: NodeSettings, store: Store, context: NodeContext) -> Notifier:
    """The SMS gateway's outbox and its worker, started (``[sms] gateway = "http"``)."""
    notifier = Notifier(
        store, context, Outbox(store, settings.sms), HttpGateway(settings.sms), interval=settings.sync.duties_interval
    )
    notifier.start()
    return notifier
