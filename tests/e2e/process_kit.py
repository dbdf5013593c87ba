"""One kit for the tests that drive a county of real node processes (C ── T01 ── T01V01) over HTTP.

Each test module names its staff (who acts at which node) and adds the steps of its own story; the
start, the clients, polling a node's copy of an errand or a screen, and the stop are written here once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx

from sanji.client import NodeApiError, NodeClient
from sanji.demo.cluster import Cluster

C, TOWN, VILLAGE = "C", "T01", "T01V01"
PATH = (C, TOWN, VILLAGE)
Errand = dict[str, Any]
T = TypeVar("T")


class ProcessKit:
    """HTTP clients for every node of a running ``Cluster`` and the waits the stories share."""

    wait_seconds = 30.0
    poll_seconds = 0.1

    def __init__(self, cluster: Cluster, staff: Mapping[str, str] | None = None) -> None:
        self.cluster = cluster
        self.staff = dict(staff or {})
        self.clients = {n: NodeClient(p.url) for n, p in cluster.nodes.items()}
        self.http = {n: httpx.AsyncClient(base_url=p.url, timeout=10.0) for n, p in cluster.nodes.items()}

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
        for http in self.http.values():
            await http.aclose()

    def actor(self, node: str) -> str:
        return self.staff.get(node, f"{node} 工作人员")

    async def act(self, node: str, errand: str, kind: str, **fields: Any) -> Errand:
        return await self.clients[node].act(errand, kind=kind, actor=self.actor(node), **fields)

    async def refusal(self, node: str, errand: str, kind: str, **fields: Any) -> Errand:
        """The step is refused (409) at ``node``; the refusal's body (``error_code``, ``message``)."""
        try:
            await self.act(node, errand, kind, **fields)
        except NodeApiError as exc:
            assert exc.status == 409, exc.body
            return exc.body  # type: ignore[no-any-return]
        raise AssertionError(f"{kind} at {node} was not refused")

    async def copy(self, node: str, errand: str) -> Errand | None:
        """``node``'s copy of the errand, or None while it has not arrived."""
        try:
            return await self.clients[node].errand(errand)
        except NodeApiError as exc:
            if exc.status != 404:
                raise
            return None

    async def wait(self, node: str, errand: str, ready: Callable[[Errand], bool], what: str) -> Errand:
        """Poll ``node`` until its copy of the errand satisfies ``ready`` (it travels by the nodes' own sync)."""
        seen: Errand | None = None

        async def probe() -> Errand | None:
            nonlocal seen
            seen = await self.copy(node, errand)
            return seen if seen is not None and ready(seen) else None

        try:
            return await self.until(probe, f"{errand} at {node}: {what}")
        except AssertionError:
            last = seen and (seen["stage"], seen.get("deadline"))
            raise AssertionError(f"{errand} at {node}: never {what}; last seen {last}") from None

    async def arrives(self, node: str, errand: str) -> None:
        """Wait until the errand is handed to ``node``, then acknowledge it."""
        await self.wait(node, errand, lambda e: e["pending_to"] == node, f"handed to {node}")
        await self.act(node, errand, "receive")

    async def get(self, node: str, path: str, **params: str) -> Any:
        reply = await self.http[node].get(path, params=params)
        assert reply.status_code == 200, (node, path, reply.text[:300])
        return reply.json() if "json" in reply.headers.get("content-type", "") else reply.text

    async def page(self, node: str, path: str, contains: str) -> str:
        """Poll a screen of ``node`` until it shows ``contains``."""
        text = ""

        async def probe() -> str | None:
            nonlocal text
            text = await self.get(node, path)
            return text if contains in text else None

        try:
            return await self.until(probe, f"{node}{path} showing {contains!r}")
        except AssertionError:
            raise AssertionError(f"{node}{path} never showed {contains!r}") from None

    async def until(self, probe: Callable[[], Awaitable[T | None]], what: str) -> T:
        """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``wait_seconds``."""
        deadline = time.monotonic() + self.wait_seconds
        while time.monotonic() < deadline:
            seen = await probe()
            if seen:
                return seen
            await asyncio.sleep(self.poll_seconds)
        raise AssertionError(f"never {what}")


K = TypeVar("K", bound=ProcessKit)


def prepared(tmp_path: Any, **options: Any) -> Cluster:
    """One township with one village, exchanging every 0.3 s, open (these stories are not about logins)."""
    settings: dict[str, Any] = {"towns": 1, "villages_per_town": 1, "interval": 0.3, "max_backoff": 1.0}
    settings.update(open_demo=True, **options)
    return Cluster.prepare(tmp_path / "county", **settings)


def start(cluster: Cluster, timeout: float = 180.0) -> None:
    """Start every node, wait generously (importing the stack alone takes seconds on a loaded machine) and
    until each holds the county's catalogue: a township refuses to accept anything before it arrives."""
    cluster.start(wait=False)
    for node in cluster.nodes:
        cluster.wait_ready(node, timeout=timeout)
    cluster.wait_catalogues(timeout)


@asynccontextmanager
async def running(cluster: Cluster, kit: K, before: Callable[[K], Awaitable[None]] | None = None) -> AsyncIterator[K]:
    """Start ``cluster``, hand out ``kit`` and stop everything however the test ends (a node slow to start too)."""
    try:
        await asyncio.to_thread(start, cluster)
        if before is not None:
            await before(kit)
        yield kit
    finally:
        await kit.close()
        await asyncio.to_thread(cluster.stop)
