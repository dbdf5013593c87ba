"""A small client for a node's JSON API (used by the demo, the tests and the benchmarks)."""

from __future__ import annotations

from typing import Any

import httpx


class NodeApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body


class NodeClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise NodeApiError(response.status_code, body)
        return body

    async def node(self) -> dict[str, Any]:
        return await self._json("GET", "/api/node")  # type: ignore[no-any-return]

    async def digests(self) -> dict[str, str]:
        return await self._json("GET", "/api/digests")  # type: ignore[no-any-return]

    async def worklist(self) -> list[dict[str, Any]]:
        return (await self._json("GET", "/api/worklist"))["items"]  # type: ignore[no-any-return]

    async def errand(self, errand_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/api/errands/{errand_id}")  # type: ignore[no-any-return]

    async def errands(self, **params: Any) -> dict[str, Any]:
        return await self._json("GET", "/api/errands", params=params)  # type: ignore[no-any-return]

    async def register(self, **form: Any) -> dict[str, Any]:
        return await self._json("POST", "/api/errands", json=form)  # type: ignore[no-any-return]

    async def act(self, errand_id: str, **form: Any) -> dict[str, Any]:
        return await self._json("POST", f"/api/errands/{errand_id}/actions", json=form)  # type: ignore[no-any-return]
