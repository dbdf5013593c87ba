"""The login and logout screens, and how a refused request is answered (JSON for /api, a page for people).

``/login`` is protected against login CSRF by a double-submit token: the page sets a random
``sanji_login_csrf`` cookie (HttpOnly, SameSite=Strict) and puts the same value in the form.
A good login sets ``sanji_session`` (HttpOnly, SameSite=Lax; Secure when the node is reached
over TLS or ``[auth] secure_cookies``) and goes back to where the person was going. ``/logout`` is a POST
carrying the session's CSRF token (checked by the guard).

``/account/password`` lets every logged-in account change its own password (the current one, the new
one twice, the node's rules, the session's CSRF token). A login with a password the system generated
(must-change) lands there, and the guard keeps the session there until the password is changed.
"""

from __future__ import annotations

import hmac
import math
import secrets
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from sanji.auth import roles
from sanji.auth.guard import (
    PASSWORD_PAGE,
    SESSION_COOKIE,
    Forbidden,
    MustChangePassword,
    NotLoggedIn,
    client_ip,
    principal_of,
)
from sanji.auth.passwords import MIN_LENGTH
from sanji.auth.service import (
    AuthService,
    LoginRefused,
    PasswordChangeRefused,
    digest,
    password_throttled_texts,
    throttled_texts,
)
from sanji.bilingual import Pair
from sanji.context import NodeContext
from sanji.store import Store
from sanji.store.submissions import FIELD as ONCE_FIELD
from sanji.store.submissions import AlreadySent, new_key, once
from sanji.web.bounded_form import bounded_form
from sanji.web.desk import serves
from sanji.web.error_pages import wants_page
from sanji.web.screens import _frame

ADMIN_HOME = "/admin/accounts/"  # where an administrator lands after logging in (sanji/web/admin_screens.py)

LOGIN_CSRF_COOKIE = "sanji_login_csrf"


def safe_next(target: str) -> str:
    """Only a path on this node: never another site (no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or target.startswith("/login"):
        return "/"
    return target[:500]


def secure_cookies(request: Request[Any, Any, Any]) -> bool:
    """``Secure`` whenever the node is reached over TLS (its own, or a proxy's that says so), or configured so."""
    return bool(request.app.state.settings.auth.secure_cookies) or request.url.scheme == "https"


def _login_page(
    request: Request[Any, Any, Any],
    store: Store,
    context: NodeContext,
    *,
    next_url: str,
    error: tuple[str, str] | None = None,
    name: str = "",
    status: int = 200,
) -> Template:
    settings = request.app.state.settings.auth
    token = secrets.token_urlsafe(24)
    page = Template(
        template_name="login.html",
        status_code=status,
        context={
            **_frame(store, context, "login"),
            "next": next_url,
            "error": error,
            "login_name": name,
            "login_csrf": token,
            "node_level": roles.NODE_LABELS.get(store.directory.role(store.node_id), ""),
            "max_failures": settings.max_failures,
            "lockout_minutes": f"{settings.lockout_minutes:g}",
        },
    )
    page.cookies.append(
        Cookie(
            key=LOGIN_CSRF_COOKIE,
            value=token,
            path="/login",
            httponly=True,
            samesite="strict",
            max_age=3600,
            secure=secure_cookies(request),
        )
    )
    return page


class LoginController(Controller):
    path = "/"
    include_in_schema = False

    @get("/login")
    async def login_form(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        next_url: FromQuery[str] = "/",
    ) -> Template:
        return _login_page(request, store, context, next_url=safe_next(next_url))

    @post("/login", status_code=303)
    async def login(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        auth: NamedDependency[AuthService],
    ) -> Template | Redirect:
        form = await bounded_form(request)
        name = str(form.get("name", "")).strip()
        password = str(form.get("password", ""))
        next_url = safe_next(str(form.get("next", "/")))
        sent = str(form.get("_csrf_token", ""))
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            return _login_page(
                request,
                store,
                context,
                next_url=next_url,
                name=name,
                status=403,
                error=("页面已过期，请重新登录", "The login page expired (CSRF check failed): please log in again"),
            )
        try:
            result = await auth.login(name, password, ip=client_ip(request))
        except LoginRefused as exc:
            # The seconds left now, so the page's two texts and its Retry-After say the same wait.
            wait = max(1, math.ceil(exc.until - auth.clock())) if exc.reason == "throttled" else 0
            zh = {"wrong_level": "该账户不能在本节点登录"}.get(exc.reason, "用户名或密码错误")
            page = _login_page(
                request,
                store,
                context,
                next_url=next_url,
                name=name,
                status=429 if wait else 401,
                error=throttled_texts(wait) if wait else (zh, exc.message),
            )
            if wait:
                page.headers["Retry-After"] = str(wait)
            return page
        previous = request.cookies.get(SESSION_COOKIE, "")
        if previous:
            await auth.book.close_session(digest(previous))  # one browser, one session: no fixation
        settings = auth.settings
        if result.principal.must_change:
            next_url = PASSWORD_PAGE  # a generated password: the holder sets their own before anything else
        elif (
            next_url == "/" and not roles.may(result.principal.role, roles.ERRANDS) and serves(request.app, ADMIN_HOME)
        ):
            next_url = ADMIN_HOME  # the administrator's desk: the home page lists errands, which it does not see
        redirect = Redirect(path=next_url, status_code=303)
        redirect.cookies.append(
            Cookie(
                key=SESSION_COOKIE,
                value=result.session_id,
                path="/",
                max_age=int(settings.session_hours * 3600),
                httponly=True,
                samesite="lax",
                secure=secure_cookies(request),
            )
        )
        redirect.cookies.append(Cookie(key=LOGIN_CSRF_COOKIE, value="", path="/login", max_age=0, httponly=True))
        return redirect

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any], auth: NamedDependency[AuthService]) -> Redirect:
        session_id = request.cookies.get(SESSION_COOKIE, "")
        if session_id and principal_of(request) is not None:
            await auth.logout(session_id, ip=client_ip(request))
        redirect = Redirect(path="/login", status_code=303)
        redirect.cookies.append(
            Cookie(key=SESSION_COOKIE, value="", path="/", max_age=0, httponly=True, samesite="lax")
        )
        return redirect


def _password_page(
    request: Request[Any, Any, Any],
    store: Store,
    context: NodeContext,
    *,
    error: tuple[str, str] | None = None,
    done: bool = False,
    again: bool = False,
    status: int = 200,
) -> Template:
    """The page; ``error``: why nothing changed, in Chinese and English. ``again``: the form was sent twice."""
    principal = principal_of(request)
    home = "/" if principal is None or roles.may(principal.role, roles.ERRANDS) else ADMIN_HOME
    return Template(
        template_name="account_password.html",
        status_code=status,
        headers={"Cache-Control": "no-store"},
        context={
            **_frame(store, context, "password"),
            "error": error,
            "done": done,
            "again": again,
            "once": new_key(),  # the form's one-time key: sent twice, changed once (sanji.store.submissions)
            "must_change": principal is not None and principal.must_change,
            "min_length": MIN_LENGTH,
            "home": home,
        },
    )


class AccountPasswordController(Controller):
    """``/account/password``: a logged-in account changes its own password (the only page of a must-change session)."""

    path = PASSWORD_PAGE
    include_in_schema = False

    @get("/")
    async def form(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template:
        if principal_of(request) is None:
            raise NotLoggedIn("log in to change your password", zh="请先登录，再修改密码")
        return _password_page(request, store, context)

    @post("/", status_code=200)
    async def change(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        auth: NamedDependency[AuthService],
    ) -> Template:
        principal = principal_of(request)
        if principal is None:
            raise NotLoggedIn("log in to change your password", zh="请先登录，再修改密码")
        if principal.via != "session":
            raise Forbidden(
                "a password is changed from a logged-in session, not with a bearer token",
                zh="密码须在登录后的页面上修改，不能用令牌修改",
            )
        form = await bounded_form(request)

        def field(name: str) -> str:
            value = form.get(name, "")
            return value[:256] if isinstance(value, str) else ""

        try:
            changed = await auth.change_own_password(
                request.cookies.get(SESSION_COOKIE, ""),
                field("current"),
                field("new"),
                field("again"),
                ip=client_ip(request),
                # the account's name, not the passwords, tells one sending from another (no digest of a password)
                once=once("password", field(ONCE_FIELD), principal.name),
            )
        except AlreadySent:  # a double click or the browser's resubmit: changed once, by the first sending
            return _password_page(request, store, context, done=True, again=True)
        except PasswordChangeRefused as exc:
            if exc.reason != "throttled":
                return _password_page(request, store, context, error=(exc.message_zh, exc.message), status=400)
            # The seconds left now, so the page's two texts and its Retry-After say the same wait (as /login).
            wait = max(1, math.ceil(exc.until - auth.clock()))
            page = _password_page(request, store, context, error=password_throttled_texts(wait), status=429)
            page.headers["Retry-After"] = str(wait)
            return page
        request.scope["user"] = changed  # the page's header: a normal session from now on
        return _password_page(request, store, context, done=True)


# -- refusals ----------------------------------------------------------------------------------


# What to do about a refusal, Chinese first and then English in one ``hint`` (as a "中文 English" label: a client
# showing it whole reads Chinese first, ``sanji.bilingual.split_pair`` parts it); ``message_zh`` and ``message``
# say what was refused.
NOT_LOGGED_IN_HINT = Pair(
    "请在 /login 登录，或在请求中带上 Authorization: Bearer <令牌>",
    "Log in at /login, or send Authorization: Bearer <token>.",
)
MUST_CHANGE_HINT = Pair(f"请先在 {PASSWORD_PAGE} 设置您自己的密码", f"Change the password at {PASSWORD_PAGE}.")
FORBIDDEN_HINT = Pair(
    "请由有相应岗位的同事办理，或请管理员调整您的岗位", "Ask an administrator for an account with the right role."
)


def _json(status: int, error: str, message: str, hint: Pair, zh: str) -> Response[dict[str, object]]:
    return Response(
        {"error": error, "message": message, "hint": f"{hint.zh} {hint.en}", "retryable": False, "message_zh": zh},
        status_code=status,
        headers={"WWW-Authenticate": 'Bearer realm="sanji"'} if status == 401 else None,
    )


def not_logged_in_handler(request: Request[Any, Any, Any], exc: NotLoggedIn) -> Response[Any]:
    if wants_page(request):
        target = "/"  # after a refused POST the form is gone anyway: start from home
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(path="/login?" + urlencode({"next_url": safe_next(target)}), status_code=303)
    return _json(
        401,
        "not_logged_in",
        str(exc.detail),
        NOT_LOGGED_IN_HINT,
        exc.message_zh,
    )


def forbidden_handler(request: Request[Any, Any, Any], exc: Forbidden) -> Response[Any]:
    if isinstance(exc, MustChangePassword):
        if not wants_page(request):
            return _json(403, "must_change_password", str(exc.detail), MUST_CHANGE_HINT, exc.message_zh)
        return Redirect(path=PASSWORD_PAGE, status_code=303)
    if not wants_page(request):
        return _json(
            403,
            "forbidden",
            str(exc.detail),
            FORBIDDEN_HINT,
            exc.message_zh,
        )
    runtime = request.app.state.runtime
    principal = principal_of(request)
    return Template(
        template_name="forbidden.html",
        status_code=403,
        context={
            **_frame(runtime.get_store(), runtime.get_context(), "forbidden"),
            "message": str(exc.detail),
            "message_zh": exc.message_zh,
            "who": principal,
        },
    )
