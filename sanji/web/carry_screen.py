"""The sync panel (``/carry``): the last exchanges, what waits, and hand-carried files from a screen.

A village agent whose link is down for days carries a file on a USB stick to the township. The
panel does what ``sanji export`` / ``sanji import`` do, with the same functions (``sanji.carry``):

* 导出带送文件: choose the node the file is for (the parent, or a child) → 准备文件 exports once (the bytes
  ``sanji export`` writes, named by both nodes and the day) and keeps the file for the account that asked
  (``sanji.carry.PreparedFiles``); the panel says what that file holds, and 下载文件 serves that very file, so
  what the screen counted is what is carried;
* 导入带来的文件: a ``multipart/form-data`` upload (at most ``[sync] max_carry_bytes``), verified whole and
  applied; the page shows what was applied, what was already held and what was refused, and why.

Every refusal is a 4xx page in Chinese and English, never a 500; every uploaded temporary file is
closed, also when the CSRF check refuses the form (``sanji.auth.guard.close_uploads``). Only posts
with ``roles.CARRY`` reach these routes (``sanji.auth.roles.ROUTES``). Not under ``/sync/``: those
are the nodes' signed endpoints.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO, cast

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.response import Template

from protocol.carry import MAGIC, MAX_CARRY_BYTES
from sanji.auth.guard import Caller, close_uploads
from sanji.carry import (
    EXPORTED,
    FILE_ERRORS,
    IMPORTED,
    PREPARED_DIR,
    PREPARED_TTL_S,
    ImportSummary,
    Prepared,
    PreparedFiles,
    export_for,
    import_carried,
    refused_file_words,
)
from sanji.config import NodeSettings
from sanji.context import NodeContext
from sanji.store import Store
from sanji.web.bounded_form import bounded_form
from sanji.web.documents import screen_name
from sanji.web.json_gate import BadInput, BodyTooLarge
from sanji.web.link_state import plain_link_error
from sanji.web.screens import _frame, read_form

FILE_FIELD = "carry"
SJX = "application/vnd.sanji.carry"

# Why a batch inside a sound file was refused (``FrameResult.error``), in the reader's two languages.
BATCH_REFUSALS: dict[str, tuple[str, str]] = {
    "bad_signature": (
        "签名不符或签名节点未知：批次被改动过，或不是本县的节点所签",
        "signature wrong or signer unknown",
    ),
    "revoked_key": ("签名密钥已被吊销，批次已隔离待管理员处理", "signed with a revoked key; quarantined"),
    "wrong_route": ("批次不是发给本节点的", "the batch is not addressed to this node"),
    "chain_fork": ("同一编号已有不同的批次，已隔离待管理员处理", "another batch holds that number; quarantined"),
    "chain_broken": ("批次接不上前一批次", "the batch does not follow its predecessor"),
    "unsupported_format": ("批次格式较新，请先升级本节点", "a newer batch format: upgrade this node"),
}
OTHER_REFUSAL = ("批次已损坏，未导入", "the batch is damaged; not imported")


class CarryController(Controller):
    """``GET /carry``; ``POST /carry/export`` (what the file holds), ``/carry/export/file``, ``/carry/import``."""

    path = "/carry"
    include_in_schema = False  # screens; `sanji export` / `sanji import` are the scriptable way

    @get("/")
    async def panel(self, store: NamedDependency[Store], context: NamedDependency[NodeContext]) -> Template:
        return await _panel(store, context)

    @post("/export", status_code=200)
    async def prepare(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        caller: NamedDependency[Caller],
    ) -> Template:
        recipient = await _recipient(request, store)
        if recipient is None:
            return await _panel(store, context, problem=_NO_RECIPIENT, status=400)
        written = await export_for(store, recipient)
        await caller.read("carry_export", detail=_what(recipient, written.batches, written.errands))
        prepared = await prepared_files(request).keep(written, caller.who.account)
        return await _panel(store, context, prepared=prepared)

    @post("/export/file", status_code=200)
    async def download(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        caller: NamedDependency[Caller],
    ) -> Response[bytes] | Template:
        token = (await read_form(request)).get("file", [""])[0]
        found = await prepared_files(request).find(token, caller.who.account)
        if found is None:
            return await _panel(store, context, problem=_GONE, status=410)
        prepared, data = found
        await caller.read("carry_file", detail=_what(prepared.recipient, prepared.batches, prepared.errands))
        return Response(
            data,
            media_type=SJX,
            headers={
                "Content-Disposition": f'attachment; filename="{prepared.file_name}"',
                "Cache-Control": "no-store",
                "X-Sanji-Batches": str(prepared.batches),
                "X-Sanji-Errands": str(prepared.errands),
            },
        )

    # the format's own ceiling, on this handler alone; the node's limit is checked below
    @post("/import", status_code=200, request_max_body_size=MAX_CARRY_BYTES + 64 * 1024)
    async def take(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template:
        limit = min(request.app.state.settings.sync.max_carry_bytes, MAX_CARRY_BYTES)
        try:  # each part bounded as it streams in (the CSRF check read it so already, when it was sent as a field)
            form = await bounded_form(request)
        except BodyTooLarge:
            problem = (
                f"上传的内容超过本节点的上限（文件至多 {limit} 字节），未导入任何内容",
                f"The upload is larger than this node takes (a file of at most {limit} bytes). Nothing was imported.",
            )
            return await _panel(store, context, problem=problem, status=413)
        except BadInput:
            problem = (
                "上传的内容不完整或无法读取，未导入任何内容",
                "The upload could not be read. Nothing was imported.",
            )
            return await _panel(store, context, problem=problem, status=400)
        try:
            upload = form.get(FILE_FIELD)
            if not isinstance(upload, UploadFile) or not upload.filename:
                problem = ("请选择U盘上带来的文件（.sjx）", "Choose the file you carried (.sjx)")
                return await _panel(store, context, problem=problem, status=400)
            return await _import(request, store, context, upload)
        finally:
            await close_uploads(form)


def _what(recipient: str, batches: int, errands: int) -> str:
    """A carried file in the audit log: names, matters and decisions leave the node in it."""
    return f"for {recipient}: {batches} batches, {errands} errands"


def prepared_files(request: Request[Any, Any, Any]) -> PreparedFiles:
    settings: NodeSettings = request.app.state.settings
    return PreparedFiles(settings.path(settings.node.data_dir) / PREPARED_DIR)


_NO_RECIPIENT = ("请选择文件带给哪个节点（上级或下级）", "Choose the node the file is for (the parent or a node below)")
_GONE = (
    "准备好的文件已不在：超过保留时间、已被您新准备的文件取代，或不是您准备的。请重新准备文件再下载。",
    "The prepared file is no longer kept: it expired, a newer one replaced it, or another account prepared it. "
    "Prepare the file again, then download it.",
)


def recipients(store: Store) -> list[tuple[str, str]]:
    """The nodes a file may be written for here: the parent, then the children (id, label)."""
    directory = store.directory
    out: list[tuple[str, str]] = []
    parent = directory.parent(store.node_id)
    if parent is not None:
        out.append((parent, f"上级 parent · {directory.get(parent).name or parent} ({parent})"))
    for child in directory.children(store.node_id):
        out.append((child, f"下级 below · {directory.get(child).name or child} ({child})"))
    return out


async def _recipient(request: Request[Any, Any, Any], store: Store) -> str | None:
    chosen = (await read_form(request)).get("recipient", [""])[0]
    return chosen if chosen in dict(recipients(store)) else None


def _size(fh: BinaryIO) -> int:
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(0)
    return size


async def _import(request: Request[Any, Any, Any], store: Store, context: NodeContext, upload: UploadFile) -> Template:
    limit = min(request.app.state.settings.sync.max_carry_bytes, MAX_CARRY_BYTES)
    fh = cast(BinaryIO, upload.file)  # a SpooledTemporaryFile: binary, seekable
    size = _size(fh)
    if size > limit:
        problem = (
            f"文件有 {size} 字节，超过本节点的上限 {limit} 字节，未导入任何内容",
            f"The file is {size} bytes; this node takes at most {limit}. Nothing was imported.",
        )
        return await _panel(store, context, problem=problem, status=413)
    head = fh.read(len(MAGIC))
    try:
        summary = await import_carried(store, fh, size)
    except FILE_ERRORS as exc:  # the file as a whole: nothing was applied (the node's own errors: the app's handler)
        status, problem = refused_file_words(exc, head)
        return await _panel(store, context, problem=problem, status=status)
    return await _panel(store, context, imported=summary, status=422 if summary.refused else 200)


def _imported_view(summary: ImportSummary) -> dict[str, Any]:
    refusals = []
    for r in summary.refusals:
        zh, en = BATCH_REFUSALS.get(r.error, OTHER_REFUSAL)
        stream = f"{r.origin} → {r.scope} #{r.seq}" if r.origin else "—"
        refusals.append({"stream": stream, "zh": zh, "en": en, "code": r.error, "message": r.message})
    return {"summary": summary, "refusals": refusals}


async def _panel(
    store: Store,
    context: NodeContext,
    *,
    prepared: Prepared | None = None,
    imported: ImportSummary | None = None,
    problem: tuple[str, str] | None = None,
    status: int = 200,
) -> Template:
    status_now = await store.status()
    peers = [store.directory.parent(store.node_id), *store.directory.children(store.node_id)]
    exchanges = [
        {
            "peer": p,
            "name": screen_name(store.directory, p),  # a node by name, its id small beside
            **(seen := status_now["exchanges"].get(p, {})),
            "plain_error": plain_link_error(str(seen.get("last_error") or "")),
        }
        for p in peers
        if p
    ]
    return Template(
        template_name="carry.html",
        status_code=status,
        context={
            **_frame(store, context, "carry"),
            "node": status_now,
            "exchanges": exchanges,
            "parent_name": screen_name(store.directory, status_now["parent"]) if status_now.get("parent") else "",
            "recipients": recipients(store),
            "history": await store.recent_events((EXPORTED, IMPORTED), limit=10),
            "prepared": prepared,
            "keep_minutes": round(PREPARED_TTL_S / 60),
            "imported": _imported_view(imported) if imported is not None else None,
            "problem": problem,
            "file_field": FILE_FIELD,
        },
    )
