"""A county of real node processes (C ── T01 ── T01V01) with one errand accepted at the township.

Shared by the urging tests: the e2e test drives 督办 and its answer through the nodes' JSON API and
screens; the browser test opens the township's home page in Chromium.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from sanji.client import NodeApiError, NodeClient
from sanji.demo.cluster import Cluster

C, TOWN, VILLAGE = "C", "T01", "T01V01"
STAFF = {C: "监察督查 督查员 孙丽", TOWN: "综合窗口 A岗 王芳", VILLAGE: "代办员 李建国"}
WAIT = 30.0


class Urged:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.clients = {n: NodeClient(p.url) for n, p in cluster.nodes.items()}
        self.http = {n: httpx.AsyncClient(base_url=p.url, timeout=10.0) for n, p in cluster.nodes.items()}

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
        for http in self.http.values():
            await http.aclose()

    async def act(self, node: str, errand: str, kind: str, **fields: Any) -> dict[str, Any]:
        return await self.clients[node].act(errand, kind=kind, actor=STAFF[node], **fields)

    async def refused(self, node: str, errand: str, kind: str, **fields: Any) -> str:
        """The step is refused (409) at ``node``; the refusal's stable code."""
        try:
            await self.act(node, errand, kind, **fields)
        except NodeApiError as exc:
            assert exc.status == 409, exc.body
            return str(exc.body["error_code"])
        raise AssertionError(f"{kind} at {node} was not refused")

    async def wait(self, node: str, errand: str, ready: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Poll ``node`` until its copy of the errand satisfies ``ready`` (it travels by the nodes' own sync)."""
        deadline = time.monotonic() + WAIT
        seen: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            try:
                seen = await self.clients[node].errand(errand)
            except NodeApiError as exc:
                if exc.status != 404:
                    raise
            if seen is not None and ready(seen):
                return seen
            await asyncio.sleep(0.1)
        raise AssertionError(f"{errand} at {node}: never {what}; last seen {seen and seen['stage']}")

    async def page(self, node: str, path: str, contains: str) -> str:
        """Poll a screen of ``node`` until it shows ``contains``."""
        deadline = time.monotonic() + WAIT
        text = ""
        while time.monotonic() < deadline:
            response = await self.http[node].get(path)
            assert response.status_code == 200, response.text[:400]
            text = response.text
            if contains in text:
                return text
            await asyncio.sleep(0.1)
        raise AssertionError(f"{node}{path} never showed {contains!r}")

    async def accepted_errand(self) -> str:
        """Registered at the village, submitted, received and accepted at the township; the county holds it."""
        result = await self.clients[VILLAGE].register(
            matter="MZ-003",
            applicant_name="陈桂兰",
            materials=["申请书", "身份证复印件", "户口簿复印件"],
            actor=STAFF[VILLAGE],
            role="代办员",
        )
        errand = str(result["errand"])
        await self.act(VILLAGE, errand, "submit")
        await self.wait(TOWN, errand, lambda e: e["pending_to"] == TOWN, "handed to the township")
        await self.act(TOWN, errand, "receive")
        await self.act(TOWN, errand, "accept", errand_kind="承诺件", window="社会救助窗口")
        await self.wait(C, errand, lambda e: e["stage"] == "accepted", "accepted (at the county)")
        return errand


def kinds(errand: dict[str, Any]) -> list[str]:
    return [h["kind"] for h in errand["history"] if h.get("status", "applied") == "applied"]
