"""A scan or photo attached to an errand from its page: a phone's camera or a scanner's file, one form.

The JSON API takes raw bytes (``POST /api/errands/{id}/attachments``); a desk in a browser sends a
``multipart/form-data`` form instead. Both keep the bytes (``Store.put_blob``) and write the same
``attach`` step, which ``judge`` allows or refuses like any other. The form carries the page's one-time key
(``sanji.store.submissions``): the same file sent twice is attached once.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from protocol.bounds import MAX_ATTACHMENT_BYTES
from protocol.errors import SanjiError
from protocol.scans import SCAN_TYPES
from sanji.auth.guard import Caller, close_uploads
from sanji.auth.roles import PlaceRefused
from sanji.context import NodeContext
from sanji.forms import ActionForm
from sanji.service import ErrandService
from sanji.store import Store
from sanji.store.submissions import FIELD as ONCE_FIELD
from sanji.store.submissions import AlreadySent, once
from sanji.web.bounded_form import bounded_form
from sanji.web.screens import _errand_page, desk_person, errand_url, refusal_text, remembered

SCAN_FIELD = "scan"
NAME_LIMIT = 200


def _clean(text: str, limit: int) -> str:
    """One line of printable text (a file name or a person), at most ``limit`` characters."""
    kept = "".join(" " if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in text)
    return " ".join(kept.split())[:limit]


class ScanController(Controller):
    """``POST /errands/{id}/attach``: the errand page's 附件 form."""

    include_in_schema = False  # a screen's form; the API's own upload is /api/errands/{id}/attachments
    request_max_body_size = MAX_ATTACHMENT_BYTES + 64 * 1024  # the file and the form's few fields

    @post("/errands/{errand_id:str}/attach", status_code=303)
    async def attach(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        service: NamedDependency[ErrandService],
        caller: NamedDependency[Caller],
        errand_id: FromPath[str],
    ) -> Template | Redirect:
        person = desk_person(request)

        async def again(zh: str, en: str, status: int, code: str = "", hint: str = "") -> Template:
            return await _errand_page(
                store,
                context,
                errand_id,
                error=(zh, en),
                refusal=code,
                status=status,
                hint=hint,
                person=person,
                caller=caller,
            )

        form = await bounded_form(request)  # each part bounded as it streams in
        try:
            return await self._take(request, store, service, form, errand_id, person, again)
        finally:
            await close_uploads(form)

    async def _take(
        self,
        request: Request[Any, Any, Any],
        store: Store,
        service: ErrandService,
        form: Any,
        errand_id: str,
        person: dict[str, str],
        again: Callable[..., Awaitable[Template]],
    ) -> Template | Redirect:
        if await store.errand(errand_id) is None:
            return await again("本节点没有此办件", f"Errand {errand_id} is not held here", 404)  # keep no bytes
        upload = form.get(SCAN_FIELD)
        if not isinstance(upload, UploadFile):
            return await again("请选择要上传的扫描件或照片", "Choose a scan or photo to attach", 400)
        limit = min(request.app.state.settings.sync.max_attachment_bytes, MAX_ATTACHMENT_BYTES)
        data = await upload.read(limit + 1)
        if not data:
            return await again("所选文件是空的", "The chosen file is empty", 400)
        if len(data) > limit:
            return await again(f"文件超过 {limit} 字节", f"The file is larger than {limit} bytes", 413)
        mime = (upload.content_type or "").split(";")[0].strip().lower()
        if mime not in SCAN_TYPES:
            return await again(
                "只能上传照片（JPEG、PNG、WebP、HEIC、TIFF）或 PDF 扫描件",
                f"Only photos (JPEG, PNG, WebP, HEIC, TIFF) or PDF scans, not {mime or 'an unknown type'}",
                400,
            )
        typed = form.get("name")
        name = _clean(typed if isinstance(typed, str) and typed.strip() else upload.filename or "", NAME_LIMIT)
        actor_field = form.get("actor")
        actor = person.get("actor") or _clean(actor_field if isinstance(actor_field, str) else "", 64)
        if not name or not actor:
            missing = ("附件名称", "a name for the file") if not name else ("经办人姓名", "your name")
            return await again(f"请填写{missing[0]}", f"Give {missing[1]}", 400)
        role = person.get("role", "")
        step = ActionForm(kind="attach", actor=actor, role=role, name=name, mime=mime)
        sent = form.get(ONCE_FIELD)
        # The same file under the same name is the same sending; another file chosen on the same page is another.
        key = once("attach", sent if isinstance(sent, str) else "", f"{name}\n{hashlib.sha256(data).hexdigest()}")
        try:
            await service.attach(errand_id, step, data, once=key)
        except AlreadySent as first:  # a double click or the browser's resubmit: attached once, the same page
            landing = errand_url(first.errand) + "?" + urlencode({"done": "attach", "again": "1"})
            return remembered(Redirect(path=landing, status_code=303), actor, role)
        except SanjiError as exc:
            zh, en, code = refusal_text(exc)
            status = 409 if exc.code == "action_refused" else 403 if isinstance(exc, PlaceRefused) else 400
            return await again(zh, en, status, code, exc.hint)
        done = Redirect(path=errand_url(errand_id) + "?" + urlencode({"done": "attach"}), status_code=303)
        return remembered(done, actor, role)
