"""Senders: the HTTP gateway adapter, and the file the demo writes.

The HTTP adapter posts one message per request::

    POST {url}
    Authorization: Bearer {secret}         (from the environment variable named in [sms] secret_env)
    Idempotency-Key: {key}                 (the outbox row's key: a resend after a crash is the same message)
    {"account": ..., "phone": ..., "text": ..., "key": ...}

2xx is sent (a JSON body's ``id`` is kept); 408, 425, 429, 5xx, timeouts and broken connections
are transient (retried with backoff); any other answer is permanent (dead letter at once).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Protocol

import httpx

from sanji.duties import mask_phone
from sanji.notify.settings import SmsSection

TRANSIENT_STATUS = frozenset({408, 425, 429})


class GatewayError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Gateway(Protocol):
    async def send(self, key: str, phone: str, text: str) -> str: ...

    async def close(self) -> None: ...


class HttpGateway:
    def __init__(self, settings: SmsSection) -> None:
        self.settings = settings
        secret = os.environ.get(settings.secret_env, "") if settings.secret_env else ""
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self.client = httpx.AsyncClient(timeout=settings.timeout, headers=headers)

    async def send(self, key: str, phone: str, text: str) -> str:
        body = {"account": self.settings.account, "phone": phone, "text": text, "key": key}
        try:
            response = await self.client.post(self.settings.url, json=body, headers={"Idempotency-Key": key})
        except httpx.HTTPError as exc:
            raise GatewayError(f"gateway unreachable: {type(exc).__name__}: {exc}", permanent=False) from None
        if response.is_success:
            try:
                data = response.json()
            except ValueError:
                return ""
            return str(data.get("id", ""))[:64] if isinstance(data, dict) else ""
        transient = response.status_code >= 500 or response.status_code in TRANSIENT_STATUS
        raise GatewayError(f"gateway answered {response.status_code}: {response.text[:200]}", permanent=not transient)

    async def close(self) -> None:
        await self.client.aclose()


class FileGateway:
    """The demo's gateway: one line per message in ``sms.log``, the phone masked."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, key: str, phone: str, text: str) -> str:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')}\t{key}\t{mask_phone(phone)}\t{text}\n"
        await asyncio.to_thread(self._append, line)
        return ""

    def _append(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)

    async def close(self) -> None:
        return None
