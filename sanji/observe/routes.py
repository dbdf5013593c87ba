"""``/metrics``, ``/healthz`` and ``/readyz`` of every node, and the county's ``/api/nodes/health``.

``/healthz`` says the process answers (for a supervisor restarting it); ``/readyz`` says it can do
its work: the store answers and the node holds its key, trust and catalogue (503 otherwise, with the
reason). Neither reveals anything about errands, so both are public.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Controller, Request, Response, get
from sqlalchemy import text

from sanji.observe.fleet import NodeHealth, fleet_health
from sanji.observe.metrics import CONTENT_TYPE, read_gauges
from sanji.version import release


def _runtime(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.runtime


class ObserveController(Controller):
    @get("/healthz", sync_to_thread=False, include_in_schema=False)
    def healthz(self, request: Request[Any, Any, Any]) -> dict[str, object]:
        runtime = _runtime(request)
        return {"status": "ok", "node": runtime.settings.node.id, "version": release()}

    @get("/readyz", include_in_schema=False)
    async def readyz(self, request: Request[Any, Any, Any]) -> Response[dict[str, object]]:
        runtime = _runtime(request)
        problems: list[str] = []
        if runtime.store is None or runtime.context is None:
            problems.append("starting: the store is not open yet")
        else:
            try:
                async with runtime.store.db.reader.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            except Exception as exc:
                problems.append(f"the store does not answer: {type(exc).__name__}")
            if (
                runtime.store.directory.parent(runtime.store.node_id) is not None
                and not runtime.context.catalogue_version
            ):
                problems.append("no matter catalogue yet: waiting for the first exchange with the parent")
        body: dict[str, object] = {"ready": not problems, "node": runtime.settings.node.id, "problems": problems}
        return Response(body, status_code=200 if not problems else 503)

    @get("/metrics", include_in_schema=False)
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        runtime = _runtime(request)
        settings = runtime.settings
        store, context = runtime.get_store(), runtime.get_context()
        fleet = await fleet_health(store, missing_hours=settings.observe.missing_hours)
        runtime.fleet_warnings.note(fleet, missing_hours=settings.observe.missing_hours)
        families = await read_gauges(
            store, context, version=release(), role=settings.node.role, backup_dir=settings.backup_dir, fleet=fleet
        )
        return Response(runtime.metrics.render(families), media_type=CONTENT_TYPE)

    @get("/api/nodes/health", summary="Every node below this one: ok, stalled, missing (no report for N hours), never")
    async def nodes_health(self, request: Request[Any, Any, Any]) -> list[NodeHealth]:
        runtime = _runtime(request)
        hours = runtime.settings.observe.missing_hours
        fleet = await fleet_health(runtime.get_store(), missing_hours=hours, now=time.time())
        runtime.fleet_warnings.note(fleet, missing_hours=hours)
        return fleet
