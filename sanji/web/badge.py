"""The header's notice badge: how many of the desk's notices this account has not read yet.

The count is the home page's own (``desk_notices``: the same worklist, lights, urgings and read
mark), so the badge and the 通知 list never disagree. It is worked out before a staff page renders
(``count_unread``, from the request gate) and kept on the request's state for the header; a public
page, or anyone not logged in where logins are required, gets none.
"""

from __future__ import annotations

from datetime import date
from typing import Any, get_args

from litestar import Request
from litestar.response import Template

from sanji.auth import roles
from sanji.auth.guard import principal_of
from sanji.context import NodeContext
from sanji.notices import Notice, notices_for
from sanji.store import Store
from sanji.store.notice_reads import NoticeReads
from sanji.urgings import UrgingRow, seen_at_window, urging_rows
from sanji.worklist import prioritised

STATE_KEY = "unread_notices"


def account_of(request: Request[Any, Any, Any]) -> str:
    """Whose notices: the logged-in account; the open demo desk shares one mark ('')."""
    principal = principal_of(request)
    return principal.name if principal is not None else ""


def window_of(request: Request[Any, Any, Any]) -> str:
    """The window whose urgings the account is shown: its own; '' (all) for the open demo desk."""
    principal = principal_of(request)
    return principal.window if principal is not None else ""


async def desk_notices(
    store: Store, context: NodeContext, account: str, today: date, *, window: str = ""
) -> tuple[list[dict[str, Any]], list[UrgingRow], list[Notice]]:
    """The desk's worklist views, the urgings not yet answered, and its notices read against ``account``'s mark.
    ``window``: the account's window ('' : the whole node's), whose urgings alone it is shown (``seen_at_window``);
    those naming no window are shown to it too, never unread (``notices_for``): the centre's head answers them."""
    from sanji.web.screens import row_view  # the screens import this module's callers, not the reverse

    work_views = [row_view(r, context, today) for r in prioritised(await store.worklist())]
    urged = [u for u in await urging_rows(store, today, to=store.node_id) if u.status != "answered"]
    urged = seen_at_window(urged, store.node_id, window)
    for view in work_views:
        view["urgings"] = [u for u in urged if u.errand == view["id"]]
    read_upto = await NoticeReads(store.db).read_upto(account)
    states = await store.errand_states([v["id"] for v in work_views])
    return (
        work_views,
        urged,
        notices_for(store.node_id, work_views, states, urged, today=today, read_upto=read_upto, window=window),
    )


def _renders_page(request: Request[Any, Any, Any]) -> bool:
    annotation = request.route_handler.parsed_fn_signature.return_type.annotation
    return annotation is Template or Template in get_args(annotation)


async def count_unread(request: Request[Any, Any, Any]) -> None:
    """Before a staff page (a GET answered with a template) renders: its unread count on ``request.state``."""
    if request.method not in ("GET", "HEAD") or request.url.path == "/" or not _renders_page(request):
        return  # the home page counts its own notices
    settings = request.app.state.settings
    if principal_of(request) is None:
        template = str(request.scope.get("path_template", request.url.path))
        if settings.auth.required or roles.route_requirement("GET", template) == roles.PUBLIC:
            return
    runtime = request.app.state.runtime
    store, context = runtime.get_store(), runtime.get_context()
    _, _, notices = await desk_notices(store, context, account_of(request), context.today(), window=window_of(request))
    request.state[STATE_KEY] = sum(n.unread for n in notices)
