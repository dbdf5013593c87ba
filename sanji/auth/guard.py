"""The one gate every request passes: who is calling, may they, and is their form their own (CSRF).

``auth_guard`` (an app-level Litestar guard) identifies the caller from
``Authorization: Bearer <token>`` or the ``sanji_session`` cookie, puts the account in
``scope["user"]`` (None if anonymous) and the session's CSRF token where templates find
it (``csrf_input``), then:

- sends a session whose password the system generated (must-change: the desk's create or
  reset, the first start's ``admin``) to ``/account/password``: any route but that page,
  ``/logout`` and the public ones is refused (a redirect for screens, 403 JSON for /api);
  bearer tokens are issued, not passwords, and are never must-change;
- refuses a logged-in caller whose role lacks the route's capability (403, audited) — the
  post is checked BEFORE the CSRF token, so a refused post's body (an upload) is never read;
- refuses a request with a session cookie that changes something (POST ...) unless it
  carries the session's CSRF token (form field ``_csrf_token`` or header ``X-CSRFToken``);
- lets public routes through (``roles.route_requirement``);
- with ``[auth] required = true``, refuses an anonymous request (401: JSON for /api, a
  redirect to /login for screens).

Handlers then get a ``Caller`` (dependency ``caller``) to audit reads and filter complaints,
and a ``GuardedService`` (dependency ``service``) that checks each step against the role,
records the account as the actor, and audits the action in its own transaction.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.utils.scope.state import ScopeState

from protocol.errand import ErrandState, Projection
from protocol.errors import ActionRefused
from protocol.refusals import refuse
from sanji.auth import events as ev
from sanji.auth import roles
from sanji.auth.book import CALLER, Who
from sanji.auth.service import AuthService, Principal
from sanji.context import NodeContext
from sanji.forms import ActionForm, RegisterForm
from sanji.service import ErrandService
from sanji.store import Store
from sanji.store.submissions import Once
from sanji.web.bounded_form import bounded_form

SESSION_COOKIE = "sanji_session"
CSRF_FIELD = "_csrf_token"  # the name Litestar's own ``csrf_input`` uses
CSRF_HEADER = "x-csrftoken"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

F = TypeVar("F", ActionForm, RegisterForm)


class NotLoggedIn(NotAuthorizedException):
    """401: no (valid) credentials where a login is needed. ``detail`` in English, ``message_zh`` in Chinese (the
    JSON body carries both, Chinese first on a screen)."""

    def __init__(self, detail: str, *, zh: str = "需要登录") -> None:
        super().__init__(detail=detail)
        self.message_zh = zh


class Forbidden(PermissionDeniedException):
    """403: logged in, but the role does not allow it, or the form's CSRF token is missing or wrong. ``detail`` in
    English, ``message_zh`` in Chinese."""

    def __init__(self, detail: str, *, zh: str = "本岗位无权进行此操作") -> None:
        super().__init__(detail=detail)
        self.message_zh = zh


class MustChangePassword(Forbidden):
    """403 (a redirect to ``/account/password`` for screens): the session's password was generated."""


PASSWORD_PAGE = "/account/password"
MUST_CHANGE_REACHES = frozenset({PASSWORD_PAGE, "/logout"})


def client_ip(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return connection.client.host if connection.client else ""


def auth_of(connection: ASGIConnection[Any, Any, Any, Any]) -> AuthService:
    auth: AuthService = connection.app.state.runtime.get_auth()
    return auth


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None


async def auth_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    scope = connection.scope
    path = scope["path"]
    if path.startswith("/sync/"):
        return  # signed batches between nodes: never accounts
    auth = auth_of(connection)
    principal: Principal | None = None
    csrf = ""
    scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        principal = await auth.resolve_token(token.strip())
        if principal is None:
            raise NotLoggedIn(
                "the bearer token is not valid: unknown, revoked, or its account is disabled",
                zh="令牌无效：未知、已撤销，或其账号已停用",
            )
    else:
        session_id = connection.cookies.get(SESSION_COOKIE, "")
        if session_id:
            found = await auth.resolve_session(session_id)
            if found is not None:
                principal, csrf = found
    scope["user"] = principal
    scope["auth"] = principal.via if principal else None
    if csrf:
        ScopeState.from_scope(scope).csrf_token = csrf
    method = str(scope.get("method", "GET"))
    template = str(scope.get("path_template", path))
    need = roles.route_requirement(method, template)
    if principal is not None and principal.must_change and need != roles.PUBLIC and template not in MUST_CHANGE_REACHES:
        raise MustChangePassword(
            "this account's password was given to it (a new account or a reset): "
            f"set your own at {PASSWORD_PAGE} before anything else",
            zh=f"本账号的密码是系统给的（新账号或重置），请先到 {PASSWORD_PAGE} 设置自己的密码",
        )
    # the post is checked before the CSRF token: a refused post's body (an upload, say) is never read
    if principal is not None and need != roles.PUBLIC and not roles.may(principal.role, need):
        zh, reason = roles.route_refusal_texts(principal.role, method, path, need, auth.node_role)
        await auth.record(_denied(auth, principal, client_ip(connection), f"{method} {template}", reason))
        raise Forbidden(reason, zh=zh)
    if principal is not None and principal.via == "session" and method not in SAFE_METHODS and template != "/login":
        await _check_csrf(connection, csrf, principal, auth)
    if need == roles.PUBLIC:
        return
    if principal is None and auth.settings.required:
        raise NotLoggedIn(
            "log in first: a session (/login) or Authorization: Bearer <token>",
            zh="需要登录：请先登录（/login），或附上令牌 Authorization: Bearer <token>",
        )


async def _check_csrf(
    connection: ASGIConnection[Any, Any, Any, Any], expected: str, principal: Principal, auth: AuthService
) -> None:
    sent = connection.headers.get(CSRF_HEADER, "")
    if not sent and isinstance(connection, Request):
        content_type, _ = connection.content_type
        if content_type in (RequestEncodingType.URL_ENCODED, RequestEncodingType.MULTI_PART):
            form = await bounded_form(connection)  # a multipart body bounded part by part as it streams in
            value = form.get(CSRF_FIELD, "")
            sent = value if isinstance(value, str) else ""
            if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
                await close_uploads(form)  # refused before any handler: nobody else will close the files
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        reason = "the form's CSRF token is missing or wrong: reload the page and send it again"
        where = f"{connection.scope.get('method', '')} {connection.scope['path']}"
        await auth.record(_denied(auth, principal, client_ip(connection), where, "csrf"))
        raise Forbidden(reason, zh="表单校验码缺失或不符（页面可能已过期），请刷新页面后重新提交")


def _denied(auth: AuthService, principal: Principal, ip: str, what: str, reason: str, errand: str = "") -> ev.Event:
    return ev.AccessDenied(
        at=auth.clock(),
        node=auth.node_id,
        actor=principal.name,
        role=principal.label,
        account=principal.name,
        via=principal.via,
        ip=ip,
        errand=errand,
        what=what,
        reason=reason[:500],
    )


@dataclass
class Caller:
    """The caller of one request, as handlers see it: identity, reads to audit, complaints to hide."""

    principal: Principal | None
    auth: AuthService
    ip: str = ""

    @property
    def who(self) -> Who:
        if self.principal is None:
            return Who(account="", via="open", ip=self.ip)
        return Who(account=self.principal.name, via=self.principal.via, ip=self.ip)

    @property
    def node_role(self) -> str:
        return self.auth.node_role

    def may(self, capability: str) -> bool:
        """Whether a screen should show what needs ``capability`` (anonymous: only in open demo mode)."""
        if self.principal is None:
            return not self.auth.settings.required
        return roles.may(self.principal.role, capability)

    # -- complaints (投诉) ------------------------------------------------------------------------

    @property
    def on_replica(self) -> bool:
        """This process reads a replica (docs/scaling.md, 2.): it writes no audit row, so it shows no complaint."""
        return self.auth.book.db.read_only

    @property
    def sees_complaints(self) -> bool:
        return self.principal is not None and roles.may(self.principal.role, roles.COMPLAINTS) and not self.on_replica

    def visible_complaints(self, complaints: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Complaints this caller may see. Open demo mode without a login shows them as it always did; a replica
        none (each read of one is audited as it is read: at the primary)."""
        if self.on_replica:
            return []
        if self.principal is None:
            return list(complaints) if not self.auth.settings.required else []
        p = self.principal
        return [c for c in complaints if roles.complaint_visible(p.role, p.name, c)]

    def history(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """An errand's history with the complaints this caller may not see taken out."""
        if not self.sees_complaints:
            return [h for h in history if h.get("kind") != "complain"]
        assert self.principal is not None
        p = self.principal
        return [h for h in history if h.get("kind") != "complain" or roles.complaint_visible(p.role, p.name, h)]

    # -- audit -----------------------------------------------------------------------------------

    def _base(self) -> dict[str, Any]:
        p = self.principal
        who = self.who
        return {
            "at": self.auth.clock(),
            "node": self.auth.node_id,
            "actor": p.name if p else "",
            "role": p.label if p else "",
            "account": who.account,
            "via": who.via,
            "ip": who.ip,
            "os_user": who.os_user,
        }

    async def read(self, what: str, *, errand: str = "", detail: str = "") -> None:
        """Audit one read of personal data (an errand's detail, a document, an attachment)."""
        await self.auth.record(ev.PersonalDataRead(**self._base(), errand=errand, what=what, detail=detail[:200]))

    async def denied(self, what: str, reason: str, *, errand: str = "") -> None:
        """Audit a refusal a handler decides (an ``AccessDenied`` row, as the guard's): a reveal off the path."""
        if self.principal is not None:
            await self.auth.record(_denied(self.auth, self.principal, self.ip, what, reason, errand))

    async def read_complaints(self, count: int, where: str, *, errand: str = "") -> None:
        if count:
            await self.auth.record(ev.ComplaintsRead(**self._base(), errand=errand, count=count, where=where))

    # -- steps -----------------------------------------------------------------------------------

    async def authorise(self, kind: str, form: F, *, errand: str = "") -> F:
        """The form as it will be recorded: a logged-in caller acts under their own name and role label.

        Raises ``Forbidden`` (audited) when the role may not take the step here, or names an
        ``acting_for`` that is not an A post of this node. Anonymous in open demo mode: unchanged.
        """
        p = self.principal
        if p is None:
            if self.auth.settings.required:
                raise NotLoggedIn("log in first", zh="需要登录：请先登录")
            return form
        holder_role = await self.auth.post_holder(form.acting_for) if form.acting_for else ""
        zh, reason = roles.action_refusal_texts(
            p.role, kind, self.node_role, acting_for=form.acting_for, acting_for_role=holder_role
        )
        if reason:
            await self.auth.record(_denied(self.auth, p, self.ip, kind, reason, errand))
            raise Forbidden(reason, zh=zh)
        return msgspec.structs.replace(form, actor=p.name, role=p.label)

    @contextmanager
    def auditing(self) -> Iterator[None]:
        """Within: the store's actions are audited as this caller's (``AuditedStore``)."""
        token = CALLER.set(self.who)
        try:
            yield
        finally:
            CALLER.reset(token)


class GuardedService(ErrandService):
    """The errand service as one request may use it: each step checked against the caller's role."""

    def __init__(self, store: Store, policy: NodeContext | None, caller: Caller) -> None:
        super().__init__(store, policy)
        self.caller = caller
        # The errand's history read before the write, for a window's steps (``roles.assign_refusal``,
        # ``roles.window_step_refusal``), and the errand's version it was read at: judged only if the errand is still
        # at that version inside the write. An older read is not safe to judge by: before an acceptance any window may
        # take the errand, after it only the catalogue's, so a history read before an acceptance committed would let
        # another window through. (A window the older read names stays named: its own clerk is not held up.)
        self._history: list[dict[str, Any]] | None = None
        self._history_version = -1
        # A B post standing in for an A post acts with its rights (seed 001, AB岗), at its window too: the A post's
        # window ('' : the whole node's), None when the step names no one it stands in for.
        self._acting_window: str | None = None

    async def register(self, form: RegisterForm, *, receipt: str = "", once: Once | None = None) -> Projection:
        form = await self.caller.authorise(roles.REGISTER, form)
        with self.caller.auditing():
            return await super().register(form, receipt=receipt, once=once)

    async def act(self, errand_id: str, form: ActionForm, *, once: Once | None = None) -> Projection:
        form = await self.caller.authorise(form.kind, form, errand=errand_id)
        await self._read_history(errand_id, form.kind, form.acting_for)
        with self.caller.auditing():
            return await super().act(errand_id, form, once=once)

    async def attach(self, errand_id: str, form: ActionForm, data: bytes, *, once: Once | None = None) -> Projection:
        form = await self.caller.authorise("attach", form, errand=errand_id)
        await self._read_history(errand_id, "attach", form.acting_for)
        with self.caller.auditing():
            return await super().attach(errand_id, form, data, once=once)

    async def _read_history(self, errand_id: str, kind: str, acting_for: str = "") -> None:
        """Read the errand's history (and the version it holds) before the write, when a window's account takes a step
        its window may be refused (``roles.assign_refusal``, ``roles.window_step_refusal``); and the window of the A
        post a B post stands in for."""
        p = self.caller.principal
        if p is None or not p.window or (kind in roles.ANY_WINDOW_STEPS and kind != "assign"):
            return
        if acting_for:  # ``authorise`` has checked it is an active A post here
            self._acting_window = await self.caller.auth.post_window(acting_for)
        row = await self.store.errand(errand_id)  # the version read before the history: the history holds it
        self._history = row["history"] if row is not None else []
        self._history_version = int(row["version"]) if row is not None else -1

    def _desk_form(self, form: ActionForm, state: ErrandState) -> ActionForm:
        """Where the caller sits decides for whom it signs (``roles.place_refusal``), judged on the errand as it is
        inside the write: a department's clerk names its own department where the form left it empty (a
        sub-task), a window's staff answer the oldest open urging naming their window. A refusal is a 403
        (``roles.PlaceRefused``), and nothing is written but the refusal's audit event, which names the step's kind
        and the account's name and role as the form signs them."""
        p = self.caller.principal
        if p is None or not (p.department or p.window):
            return form
        if form.kind == "subtask_done" and p.department and not form.department:
            form = msgspec.structs.replace(form, department=p.department)
        if form.kind == "answer_urging" and p.window and not form.urging:
            form = msgspec.structs.replace(form, urging=roles.urging_for(state, self.node_id, p.window))
        refused = roles.place_refusal(
            form.kind,
            state,
            department=p.department,
            window=p.window,
            named_department=form.department if form.kind in ("subtask_done", "decide") else "",
            urging=form.urging,
        )
        if refused is None and p.window and self._history is not None:
            refused = self._window_refusal(form.kind, state, p.window, self._history)
            if refused is not None and self._acting_window is not None:  # standing in: the A post's window too
                acting = self._acting_window
                refused = self._window_refusal(form.kind, state, acting, self._history) if acting else None
        if refused is not None:
            raise refused.signed_by(form.actor, form.role, form.acting_for)  # its audit row names who asked
        return form

    def _window_refusal(
        self, kind: str, state: ErrandState, window: str, history: list[dict[str, Any]]
    ) -> roles.PlaceRefused | None:
        """Whether the caller's ``window`` may take ``kind`` on the errand as it is inside the write, judged on the
        ``history`` read before it: a 承办 (``roles.assign_refusal``) or a handling step
        (``roles.window_step_refusal``). A step recorded between the read and the write may have named another
        window: unless the read already names the caller's (a named window stays named), the desk reloads
        (changed_meanwhile)."""
        if kind != "assign" and kind in roles.ANY_WINDOW_STEPS:
            return None
        named = kind != "assign" and window in roles.windows_named_here(history, self.node_id)
        if self._history_version != state.version and not named:  # a step recorded between the read and the write
            raise ActionRefused(
                refuse("changed_meanwhile", version=state.version, seen=self._history_version),
                hint="Reload the errand and try again.",
            )
        if kind == "assign":
            return roles.assign_refusal(state, self.node_id, self.caller.node_role, window=window, history=history)
        return roles.window_step_refusal(kind, state, self.node_id, window=window, history=history)


async def close_uploads(form: Any) -> None:
    """Close every uploaded file of a multipart form (each is a temporary file until closed)."""
    for _, value in form.multi_items():
        if isinstance(value, UploadFile):
            await value.close()
