"""The JSON API every node serves: errands, the node itself, and local actions."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from protocol.binding import HeldMaterials
from protocol.bounds import LINE_CLASS, MAX_NAME, whole
from protocol.errors import ActionRefused
from protocol.ledger import Handoff
from sanji.auth.guard import Caller
from sanji.catalogue.search import MAX_QUERY
from sanji.context import NodeContext
from sanji.forms import ActionForm, RegisterForm
from sanji.privacy import mask_history, may_reveal, reveal_check
from sanji.service import ErrandService
from sanji.store import Store
from sanji.store.blobs import MAX_BLOB_BYTES
from sanji.store.submissions import AlreadySent
from sanji.sync.fetch_back import ArchivedElsewhere, FetchBack
from sanji.web.archived_page import archived_away_page, wants_html
from sanji.web.client_keys import IdempotencyKey, client_key
from sanji.web.desk_api import BindingStatus, errand_binding
from sanji.web.errand_search import ErrandSearch
from sanji.web.json_gate import BodyTooLarge
from sanji.web.views import ErrandSummary, materials_of, summarise
from sanji.worklist import prioritised


class ErrandPage(msgspec.Struct, kw_only=True):
    total: int
    items: list[ErrandSummary]


class ErrandDetail(ErrandSummary, kw_only=True):
    history: list[dict[str, Any]]
    # null when the errand is bound to the county's entry of its version (or unbound); else what the errand page
    # says at its top, so a client of the API is not the one desk left unwarned of a tampered registration
    binding: BindingStatus | None = None
    # what the errand holds (registered, and received since: 补正, 容缺) and what its entry still asks for, as the
    # errand page's 已收材料 and 缺少材料 rows say it (``protocol.binding.held_materials``)
    materials: HeldMaterials | None = None
    # an errand in transit that this node handed off (报送, 上报, 结果下送): "queued" while the hand-off waits here
    # (not sent, or its receiver has not acknowledged it), "delivered" once the receiver holds it and has not
    # signed for it (接收) yet; "" otherwise: not in transit, or handed off by another node (``Store.handoffs``)
    handoff: Handoff = ""


class ActionResult(msgspec.Struct, kw_only=True):
    errand: str
    stage: str
    holder: str
    version: int
    digest: str


# A list filter is compared with what the store holds: a control character (a NUL, which PostgreSQL refuses in any
# text it is sent, a 500) or a longer value than any held can match nothing, and is refused, 400.
_ONE_LINE = whole(f"[^{LINE_CLASS}]*")


class ErrandController(Controller):
    path = "/api/errands"
    tags = ["errands"]

    @get("/", summary="List errands held here, with filters")
    async def list_errands(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        stage: Annotated[
            str | None,
            QueryParameter(
                max_length=MAX_NAME,
                pattern=_ONE_LINE,
                description="the stage as every screen shows it: decided (已办结), not_accepted (不予受理), returned, "
                "terminated and withdrawn apart, as the ledger's filter reads it",
            ),
        ] = None,
        holder: Annotated[str | None, QueryParameter(max_length=MAX_NAME, pattern=_ONE_LINE)] = None,
        matter: Annotated[str | None, QueryParameter(max_length=MAX_NAME, pattern=_ONE_LINE)] = None,
        errand_scope: Annotated[
            str | None,
            QueryParameter(
                name="scope", max_length=MAX_NAME, pattern=_ONE_LINE, description="node the errand belongs to"
            ),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000_000)] = 0,
        q: Annotated[
            str,
            QueryParameter(
                max_length=MAX_QUERY,
                description="find by receipt number, errand id, matter (code or name) or applicant's name, as "
                "全部办件 does (never by ID number or phone); what shows as nothing (a NUL) is dropped",
            ),
        ] = "",
        newest_first: Annotated[
            bool, QueryParameter(description="the newest registered first, as 全部办件 lists them")
        ] = False,
    ) -> ErrandPage:
        """Errands in registration order (oldest first unless ``newest_first``), ``limit`` from ``offset``, and how
        many match (``total``)."""
        search = ErrandSearch.of(context.catalogue, q)  # the screen's reading of its search, one rule
        rows, total = await store.errands(
            stage=stage,
            holder=holder,
            matter=matter,
            scope=errand_scope,
            limit=limit,
            offset=offset,
            newest_first=newest_first,
            text=search.text,
            text_matters=search.matters,
        )
        today = context.today()
        return ErrandPage(
            total=total, items=[msgspec.convert(summarise(r, context, today), ErrandSummary) for r in rows]
        )

    @get("/{errand_id:str}", summary="One errand: state, custodian, version, history and digest")
    async def get_errand(
        self,
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        caller: NamedDependency[Caller],
        errand_id: FromPath[str],
        reveal: FromQuery[bool] = False,
    ) -> ErrandDetail:
        """ID numbers and phones come masked; ``reveal=true`` shows them in full (查看完整号码, audited) to a post
        that may, bound to a department or window only on an errand its place is on the path of (403 otherwise,
        audited; the masked view stays open)."""
        if reveal and not may_reveal(caller):
            await reveal_check(caller, [(errand_id, {}, [])], what="reveal")  # the role: refused and audited
        row = await store.errand(errand_id, include_complaints=caller.sees_complaints)
        if row is None or row["stage"] == "incomplete":
            raise NotFoundException(f"errand {errand_id} is not held at {store.node_id}")
        if reveal:
            state = (await store.errand_states([errand_id])).get(errand_id, {})
            await reveal_check(caller, [(errand_id, state, row["history"])], what="reveal")
        row["history"] = mask_history(caller.history(row["history"]), reveal=reveal)
        await caller.read("reveal" if reveal else "errand", errand=errand_id, detail="api")
        await caller.read_complaints(sum(h["kind"] == "complain" for h in row["history"]), "/api", errand=errand_id)
        binding = await errand_binding(context, row.get("state"))
        materials = materials_of(row, row["history"], context)
        handoff = (await store.handoffs([row])).get(errand_id, "")
        return msgspec.convert(
            {**summarise(row, context), "binding": binding, "materials": materials, "handoff": handoff}, ErrandDetail
        )

    @post("/", summary="Register an errand (代办登记) at this node")
    async def register(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        service: NamedDependency[ErrandService],
        data: JSONBody[RegisterForm],
        idempotency_key: IdempotencyKey = None,
    ) -> ActionResult:
        key = client_key(request, idempotency_key, data)
        try:
            projection = await service.register(data, once=key)
        except AlreadySent as sent:
            return await _as_now(store, sent.errand)
        return action_result(projection)

    @post("/{errand_id:str}/actions", summary="Take the next step on an errand held here")
    async def act(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        service: NamedDependency[ErrandService],
        errand_id: FromPath[str],
        data: JSONBody[ActionForm],
        idempotency_key: IdempotencyKey = None,
    ) -> ActionResult:
        key = client_key(request, idempotency_key, data)  # the path names the errand: another errand, 409
        try:
            projection = await service.act(errand_id, data, once=key)
        except AlreadySent as sent:
            return await _as_now(store, sent.errand)
        return action_result(projection)


async def _as_now(store: Store, errand_id: str) -> ActionResult:
    """The answer to a request sent again under its key: the errand its first sending wrote, as it is now."""
    row = await store.errand(errand_id)
    if row is None:  # pragma: no cover - a key is written with its step, in one transaction
        raise NotFoundException(f"errand {errand_id} is not held here")
    return ActionResult(
        errand=errand_id, stage=row["stage"], holder=row["holder"], version=row["version"], digest=row["digest"]
    )


class AttachmentController(Controller):
    path = "/api"
    tags = ["attachments"]
    request_max_body_size = MAX_BLOB_BYTES

    @post(
        "/errands/{errand_id:str}/attachments",
        summary="Attach a scan or photo to an errand (raw bytes in the body)",
    )
    async def attach(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[ErrandService],
        errand_id: FromPath[str],
        name: Annotated[str, QueryParameter(min_length=1, max_length=200, pattern=whole(f"[^{LINE_CLASS}]*"))],
        actor: Annotated[str, QueryParameter(min_length=1, max_length=64, pattern=whole(f"[^{LINE_CLASS}]*"))],
    ) -> ActionResult:
        limit = request.app.state.settings.sync.max_attachment_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"the attachment is {declared} bytes; this node takes at most {limit}")
        data = await request.body()
        if not data:
            raise ActionRefused("the attachment is empty")
        if len(data) > limit:
            raise BodyTooLarge(f"the attachment is {len(data)} bytes; this node takes at most {limit}")
        mime = request.headers.get("content-type", "application/octet-stream")[:100]
        form = ActionForm(kind="attach", actor=actor, name=name, mime=mime)
        return action_result(await service.attach(errand_id, form, data))

    @get(
        "/attachments/{digest:str}",
        summary="The bytes of an attachment held here (an archived one is fetched back from an ancestor first)",
        media_type="application/octet-stream",
    )
    async def download(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        caller: NamedDependency[Caller],
        fetch_back: NamedDependency[FetchBack],
        digest: FromPath[str],
    ) -> Response[bytes]:  # a Template too (a browser told the file is archived away), itself a Response
        # One read of the attach actions: whether any names it, and which errands (for the path check below).
        errands = await store.attachment_errands(digest)
        if not errands:
            raise NotFoundException(f"attachment {digest[:12]} is not held here (yet)")
        # An ID-card scan is the applicant in full: the right and the path of 查看完整号码 (sanji.privacy).
        states = await store.errand_states(errands)
        held = [(e, states.get(e, {}), (await store.errand(e) or {}).get("history", [])) for e in errands]
        await reveal_check(caller, held, what="attachment")
        try:
            data = await fetch_back.open(digest)  # None: not archived here
        except ArchivedElsewhere as away:
            if wants_html(request):  # the errand page's link, opened in a browser
                return archived_away_page(store, context, away)
            raise
        if data is None:
            state = await store.blob_state(digest)
            if state is None or not state[2] or state[1] != state[0]:
                raise NotFoundException(f"attachment {digest[:12]} is not held here (yet)")
            _, _, data = await store.blob_read(digest, 0, state[0])
        await caller.read("attachment", detail=digest)
        return Response(data, media_type="application/octet-stream")


def action_result(projection: Any) -> ActionResult:
    """What the API answers for a registration or a step (and ``sanji errand`` prints with the action id)."""
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
        status["calendar_version"] = context.calendar_version
        status["rules_version"] = context.rules_version
        status["provisional_years"] = sorted(context.bound.provisional_years) if context.bound else []
        status["clock_offset_ms"] = context.clock_offset_ms
        status["clock_flagged"] = context.clock_flagged
        parent = status["parent"]
        today = context.today().isoformat()
        status["attachments"] = {
            "wanted_here": len(await store.blobs_wanted()),
            "waiting_to_go_up": len(await store.blobs_to_send(parent)) if parent else 0,
            "archived_here": (await store.archived_count())[0],
            "bytes_today": (await store.traffic(today)).get("blob", 0),
            "daily_budget": context.daily_blob_budget,
        }
        return status

    @get("/digests", summary="Digest of every errand held here (for convergence checks)")
    async def digests(self, store: NamedDependency[Store]) -> dict[str, str]:
        return await store.digests()

    @get(
        "/worklist",
        summary="Errands waiting for this node: to receive, held and not finished, or registered here and waiting for "
        "the materials a one-time notice asked for",
    )
    async def worklist(self, store: NamedDependency[Store], context: NamedDependency[NodeContext]) -> ErrandPage:
        rows = prioritised(await store.worklist())
        today = context.today()
        return ErrandPage(
            total=len(rows), items=[msgspec.convert(summarise(r, context, today), ErrandSummary) for r in rows]
        )
