"""查看完整号码: one errand's page with the applicant's ID number and phone in full, on an explicit request.

A POST (with the session's CSRF token), so neither a link nor a prefetch shows the numbers;
the guard lets through only roles with ``REVEAL`` (``sanji.auth.roles``); an account bound to a
department or window is refused (403, the masked page saying why, audited as ``AccessDenied``) an
errand its place is not on the path of (``sanji.privacy.reveal_check``), and every show is
audited as ``PersonalDataRead(what="reveal")``. The page is not a redirect target: reloading
it or coming back later shows the numbers masked again.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from sanji.auth.guard import Caller, Forbidden
from sanji.auth.roles import RevealRefused
from sanji.context import NodeContext
from sanji.privacy import may_reveal, reveal_check
from sanji.store import Store
from sanji.web.screens import _errand_page, desk_person


class RevealController(Controller):
    path = "/"
    include_in_schema = False

    @post("/errands/{errand_id:str}/reveal", status_code=200)
    async def reveal(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        caller: NamedDependency[Caller],
        errand_id: FromPath[str],
    ) -> Template:
        if not may_reveal(caller):  # the guard already refused other roles; the open mode asks nobody
            raise Forbidden(
                "this role may not see full ID numbers and phones (查看完整号码)",
                zh="本岗位无权查看完整的身份证号和电话（查看完整号码）",
            )
        row = await store.errand(errand_id)
        if row is not None and row["stage"] != "incomplete":
            state = (await store.errand_states([errand_id])).get(errand_id, {})
            try:  # bound to a department or window: only where its place is on the errand's path
                await reveal_check(caller, [(errand_id, state, row["history"])], what="reveal")
            except RevealRefused as refused:  # audited; the page stays open, masked, and says why
                return await _errand_page(
                    store,
                    context,
                    errand_id,
                    error=(refused.message_zh, refused.message),
                    refusal=refused.refusal,
                    hint=refused.hint,
                    status=403,
                    person=desk_person(request),
                    caller=caller,
                )
        page = await _errand_page(store, context, errand_id, person=desk_person(request), caller=caller, reveal=True)
        if page.status_code == 200:
            await caller.read("reveal", errand=errand_id, detail="screen")
        return page
