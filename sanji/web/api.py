"""The JSON API every node serves: errands, the node itself, and local actions."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from sanji.context import NodeContext
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.store import Store
from sanji.web.views import ErrandSummary, summarise


class ErrandPage(msgspec.Struct, kw_only=True):
    total: int
    items: list[ErrandSummary]


class ErrandDetail(ErrandSummary, kw_only=True):
    history: list[dict[str, Any]]


class ActionResult(msgspec.Struct, kw_only=True):
    errand: str
    stage: str
    holder: str
    version: int
    digest: str


class ErrandController(Controller):
    path = "/api/errands"
    tags = ["errands"]

    @get("/", summary="List errands held here, with filters")
    async def list_errands(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        stage: FromQuery[str | None] = None,
        holder: FromQuery[str | None] = None,
        matter: FromQuery[str | None] = None,
        errand_scope: Annotated[
            str | None, QueryParameter(name="scope", description="node the errand belongs to")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> ErrandPage:
        rows, total = await store.errands(
            stage=stage, holder=holder, matter=matter, scope=errand_scope, limit=limit, offset=offset
        )
        today = context.today()
        return ErrandPage(
            total=total, items=[msgspec.convert(summarise(r, context, today), ErrandSummary) for r in rows]
        )

    @get("/{errand_id:str}", summary="One errand: state, custodian, version, history and digest")
    async def get_errand(
        self, store: NamedDependency[Store], context: NamedDependency[NodeContext], errand_id: FromPath[str]
    ) -> ErrandDetail:
        row = await store.errand(errand_id)
        if row is None or row["stage"] == "incomplete":
            raise NotFoundException(f"errand {errand_id} is not held at {store.node_id}")
        return msgspec.convert(summarise(row, context), ErrandDetail)

    @post("/", summary="Register an errand (代办登记) at this node")
    async def register(self, service: NamedDependency[ErrandService], data: JSONBody[RegisterForm]) -> ActionResult:
        projection = await service.register(data)
        return _result(projection)

    @post("/{errand_id:str}/actions", summary="Take the next step on an errand held here")
    async def act(
        self, service: NamedDependency[ErrandService], errand_id: FromPath[str], data: JSONBody[ActionForm]
    ) -> ActionResult:
        projection = await service.act(errand_id, data)
        return _result(projection)


def _result(projection: Any) -> ActionResult:
    state = projection.state
    return ActionResult(
        errand=projection.errand,
        stage=state.stage,
        holder=state.holder,
        version=state.version,
        digest=projection.digest,
    )


class NodeController(Controller):
    path = "/api"
    tags = ["node"]

    @get("/node", summary="This node: role, parent, streams and cursors, last exchange, queue length")
    async def node(self, store: NamedDependency[Store], context: NamedDependency[NodeContext]) -> dict[str, Any]:
        status = await store.status()
        status["catalogue_version"] = context.catalogue_version
        status["clock_offset_ms"] = context.clock_offset_ms
        status["clock_flagged"] = context.clock_flagged
        return status

    @get("/digests", summary="Digest of every errand held here (for convergence checks)")
    async def digests(self, store: NamedDependency[Store]) -> dict[str, str]:
        return await store.digests()

    @get("/worklist", summary="Errands waiting for this node: to receive, or held and not finished")
    async def worklist(self, store: NamedDependency[Store], context: NamedDependency[NodeContext]) -> ErrandPage:
        rows = await store.worklist()
        today = context.today()
        return ErrandPage(
            total=len(rows), items=[msgspec.convert(summarise(r, context, today), ErrandSummary) for r in rows]
        )
