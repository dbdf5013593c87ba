"""The administrator's desk (管理员) on every tier: accounts and posts, the catalogue, the calendar.

Accounts: each handler calls the same ``AuthService`` functions ``sanji accounts`` calls (``roster``,
``add_with_one_time_password``, ``place``, ``set_active``, ``reset_password``, ``revoke_token``), so every
change is written to the node's audit log with the acting account, and the service's rules hold here
as at the command line: nobody disables their own account, the last active administrator stays.
A password made here (a new account, a reset) is must-change: its holder sets their own at the first
login (``/account/password``), so the administrator who saw it never keeps a working password of
another post.

Only an account holding the admin post gets here: the guard asks ``roles.ACCOUNTS`` of a logged-in
caller, and these pages refuse an anonymous one even in open demo mode (nobody anonymous makes
accounts). A generated password is shown once, in the answer to the form that made it, and never
stored in clear or put in a URL.

The catalogue (``/admin/catalogue``) and the calendar (``/admin/calendar?year=``) pages show what the
node holds: the version, who signed it, every matter; a year's days off, official or 暂定, through
``year_view`` as ``sanji calendar show`` prints it. Their upload and publish forms appear where the
node serves the publishing routes, the county (``county_node/admin_publishing.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict, Unpack

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from protocol import envelope
from protocol.calendar_doc import MAGIC as CALENDAR_MAGIC
from protocol.catalogue import MAGIC as CATALOGUE_MAGIC
from protocol.catalogue import catalogue_digest, publisher_keys
from protocol.deadlines import CalendarError
from sanji.auth import roles
from sanji.auth.book import AccountError, AccountExists, Who
from sanji.auth.guard import Forbidden, auth_of, client_ip, principal_of
from sanji.auth.service import AuthService, DisablingSelf, LastAdministrator, Principal
from sanji.bilingual import Pair
from sanji.context import NodeContext
from sanji.problem_words import problem_pairs
from sanji.store import Store
from sanji.store.submissions import FIELD as ONCE_FIELD
from sanji.store.submissions import AlreadySent, new_key, once
from sanji.web.bounded_form import bounded_form
from sanji.web.desk import serves
from sanji.web.screens import _frame
from sanji.workcalendar import YearView, bound_calendar, library_data, year_view

NAME_LIMIT = 64
MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # a county's catalogue file or calendar file; a spreadsheet of 2,000 matters fits
DONE = {
    "revoked": ("令牌已撤销", "Token revoked"),
    "revoked_again": (
        "令牌已撤销。已提交，未重复撤销：同一表单发送了两次，只撤销了一次。",
        "Token revoked. Sent already, not revoked twice: the same form was sent twice and taken once.",
    ),
    "enabled": ("账号已启用", "Account enabled"),
    "disabled": ("账号已停用，其登录已结束", "Account disabled; its sessions are ended"),
    "placed": ("账号的部门和窗口已保存", "Department and window saved"),
    "renamed": ("账号的显示姓名已保存", "Display name saved"),
}
# The create form sent twice: the account stands, its one-time password was on the first answer alone.
CREATED_AGAIN = (
    "已提交，未重复创建：账号 {name} 已由第一次提交创建。一次性密码只显示在那一次的页面上，本系统不保存明文；"
    "如未看到，请点该账号的“重置密码”。",
    "Sent already, not created twice: account {name} was created by the first sending. Its one-time password was "
    "shown on that answer only and is not kept in clear; if it was not seen, reset the account's password.",
)

# The reset form sent twice: reset once; the temporary password was on the first answer alone.
RESET_AGAIN = (
    "已提交，未重复重置：账号 {name} 的密码已由第一次提交重置。临时密码只显示在那一次的页面上，"
    "本系统不保存明文；如未看到，请再点一次该账号的“重置密码”。",
    "Sent already, not reset twice: the password of account {name} was reset by the first sending. Its one-time "
    "password was shown on that answer only and is not kept in clear; if it was not seen, reset the account's "
    "password again.",
)


def admin_of(request: Request[Any, Any, Any], capability: str) -> Principal:
    """The logged-in account holding ``capability`` (the guard checked a logged-in one); 403 for anyone else."""
    principal = principal_of(request)
    if principal is None or not roles.may(principal.role, capability):
        raise Forbidden(
            "log in with an administrator's account (管理员) to use this page", zh="请用管理员账号登录后使用此页面"
        )
    return principal


def _who(request: Request[Any, Any, Any], principal: Principal) -> Who:
    return Who(account=principal.name, via=principal.via, ip=client_ip(request))


def _field(form: Any, name: str, limit: int) -> str:
    value = form.get(name, "")
    return value[: limit + 1] if isinstance(value, str) else ""


async def _places(auth: AuthService) -> dict[str, Any]:
    """What the department and window fields offer at this node, a field only where the tier has it: the
    departments the held catalogue and the live errands held here name, the windows the catalogue and the errands
    held here name — the same lists a place typed is checked against (``AuthService.places``, which
    ``roles.unknown_place`` compares with; with no catalogue held, empty lists and no check)."""
    known = await auth.places() if auth.places is not None else None
    node_role = auth.node_role
    return {
        "departments": sorted(known.departments) if known and node_role in roles.DEPARTMENT_LEVELS else [],
        "windows": sorted(known.windows) if known and node_role in roles.WINDOW_LEVELS else [],
        "department_field": node_role in roles.DEPARTMENT_LEVELS,
        "window_field": node_role in roles.WINDOW_LEVELS,
        "known": known,
    }


async def accounts_page(
    request: Request[Any, Any, Any],
    store: Store,
    context: NodeContext,
    auth: AuthService,
    *,
    status: int = 200,
    errors: dict[str, str | tuple[str, str]] | None = None,
    values: dict[str, str] | None = None,
    shown: dict[str, str] | None = None,
    row_error: tuple[str, str | tuple[str, str]] = ("", ""),
    row_typed: dict[str, str] | None = None,
    done: str = "",
    notice: tuple[str, str] | None = None,
) -> Template:
    """The accounts page; ``shown`` carries a one-time password (name, password, why) for this answer only."""
    posts = auth.posts_here()
    return Template(
        template_name="admin_accounts.html",
        status_code=status,
        headers={"Cache-Control": "no-store"},  # a one-time password is never kept by a cache or the history
        context={
            **_frame(store, context, "accounts"),
            "roster": await auth.roster(),
            "posts": [(p, roles.ROLE_LABELS[p], roles.ROLE_LABELS_EN[p]) for p in posts],
            "labels": roles.ROLE_LABELS,
            "labels_en": roles.ROLE_LABELS_EN,
            "self_name": (principal_of(request) or Principal(account_id=0, name="", role="", via="")).name,
            "now": auth.clock(),
            "errors": errors or {},
            "values": values
            or {"name": "", "role": posts[0] if posts else "", "department": "", "window": "", "display_name": ""},
            "places": await _places(auth),
            "placed_posts": roles.PLACED_POSTS,
            "shown": shown,
            "row_error": row_error,
            # the refused row's fields keep what was typed, beside its error, so the typo is there to mend
            "row_typed": row_typed or {},
            "done": notice or DONE.get(done),
            "once": new_key(),  # the create form's one-time key: sent twice, one account (sanji.store.submissions)
        },
    )


class AccountsScreenController(Controller):
    """``/admin/accounts``: list, create, disable / enable, reset a password, revoke a token."""

    path = "/admin/accounts"
    include_in_schema = False

    @get("/")
    async def screen(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        done: Annotated[str, QueryParameter(max_length=16)] = "",
    ) -> Template:
        admin_of(request, roles.ACCOUNTS)
        return await accounts_page(request, store, context, auth_of(request), done=done)

    @post("/", status_code=201)
    async def create(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template:
        principal = admin_of(request, roles.ACCOUNTS)
        auth = auth_of(request)
        form = await bounded_form(request)
        name, role = _field(form, "name", NAME_LIMIT), _field(form, "role", 32)
        sent = once("account", _field(form, ONCE_FIELD, 64), _field(form, "name", NAME_LIMIT))
        department, window = _field(form, "department", roles.PLACE_LIMIT), _field(form, "window", roles.PLACE_LIMIT)
        department, window = department.strip(), window.strip()
        display_name = _field(form, "display_name", NAME_LIMIT)  # as the row's 显示姓名 takes it: not stripped
        values = {"name": name, "role": role, "department": department, "window": window, "display_name": display_name}
        errors: dict[str, str | tuple[str, str]] = {}
        try:  # the row's rule (``AuthService.rename``), said under this field
            AuthService.check_display_name(display_name)
        except AccountError as exc:
            errors["display_name"] = exc.texts
        if role not in auth.posts_here():
            errors["role"] = "请选择本节点的岗位 Choose one of this node's posts"
        if not name.strip():
            errors["name"] = "请填写登录名 Give the login name"
        elif name != name.strip() or len(name) > NAME_LIMIT:
            errors["name"] = (
                f"登录名 1 至 {NAME_LIMIT} 个字符，首尾无空格 1 to {NAME_LIMIT} characters, no spaces at either end"
            )
        fields = await _places(auth)
        problem = roles.place_problem_texts(role, auth.node_role, department, window)
        if not errors and problem[1]:  # in Chinese and English
            # under the field that is wrong, where this tier shows it; else under the post
            if department and fields["department_field"]:
                errors["department"] = problem
            elif window and fields["window_field"]:
                errors["window"] = problem
            else:
                errors["role"] = problem
        if not errors and (unknown := roles.unknown_place(department, window, fields["known"])):
            errors[unknown[0]] = unknown[1]  # a field this tier shows: place_problem refused the others
        if not errors:
            try:
                account, password = await auth.add_with_one_time_password(
                    name,
                    role,
                    by=_who(request, principal),
                    department=department,
                    window=window,
                    display_name=display_name,
                    once=sent,
                )
            except AlreadySent as first:
                said_again = (CREATED_AGAIN[0].format(name=first.action), CREATED_AGAIN[1].format(name=first.action))
                return await accounts_page(request, store, context, auth, notice=said_again)
            except AccountExists:
                errors["name"] = f"已有名为 {name} 的账号 An account named {name} exists already"
            except AccountError as exc:
                errors["name"] = exc.texts if exc.message_zh else exc.message
            else:
                shown = {"name": account.name, "password": password, "why": "created"}
                return await accounts_page(request, store, context, auth, status=201, shown=shown)
        return await accounts_page(request, store, context, auth, status=400, errors=errors, values=values)

    @post("/place", status_code=303)
    async def place(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template | Redirect:
        """Set or clear where an account sits (``AuthService.place``, as ``sanji accounts edit``)."""
        principal = admin_of(request, roles.ACCOUNTS)
        auth = auth_of(request)
        form = await bounded_form(request)
        name = _field(form, "name", NAME_LIMIT)
        department = _field(form, "department", roles.PLACE_LIMIT).strip()
        window = _field(form, "window", roles.PLACE_LIMIT).strip()
        try:
            await auth.place(name, by=_who(request, principal), department=department, window=window)
        except AccountError as exc:
            status = 404 if exc.message.startswith("no account") else 400
            typed = {"department": department, "window": window}
            said = exc.texts if exc.message_zh else exc.message  # a refusal said in English alone
            return await accounts_page(
                request, store, context, auth, status=status, row_error=(name, said), row_typed=typed
            )
        return Redirect("/admin/accounts/?done=placed", status_code=303)

    @post("/rename", status_code=303)
    async def rename(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template | Redirect:
        """Set or clear the name an account's holder goes by (``AuthService.rename``, as ``sanji accounts edit
        --display-name``): what the office binds an appeal's subject by (``OfficeBook.subject_person``)."""
        principal = admin_of(request, roles.ACCOUNTS)
        auth = auth_of(request)
        form = await bounded_form(request)
        name = _field(form, "name", NAME_LIMIT)
        display_name = _field(form, "display_name", NAME_LIMIT)
        try:
            await auth.rename(name, display_name, by=_who(request, principal))
        except AccountError as exc:
            status = 404 if exc.message.startswith("no account") else 400
            return await accounts_page(
                request,
                store,
                context,
                auth,
                status=status,
                row_error=(name, exc.texts),
                row_typed={"display_name": display_name},
            )
        return Redirect("/admin/accounts/?done=renamed", status_code=303)

    @post("/active", status_code=303)
    async def active(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template | Redirect:
        principal = admin_of(request, roles.ACCOUNTS)
        auth = auth_of(request)
        form = await bounded_form(request)
        name = _field(form, "name", NAME_LIMIT)
        active = _field(form, "active", 1) == "1"
        try:
            await auth.set_active(name, active, by=_who(request, principal))
        except DisablingSelf:
            why = (
                "不能停用自己的账号，请另一位管理员操作 You cannot disable your own account; ask another administrator"
            )
            return await accounts_page(request, store, context, auth, status=409, row_error=(name, why))
        except LastAdministrator:
            why = (
                "这是本节点最后一个启用的管理员账号，请先新建或启用另一位管理员 "
                "The last active administrator of this node; create or enable another one first"
            )
            return await accounts_page(request, store, context, auth, status=409, row_error=(name, why))
        except AccountError as exc:
            return await accounts_page(request, store, context, auth, status=404, row_error=(name, exc.texts))
        return Redirect(f"/admin/accounts/?done={'enabled' if active else 'disabled'}", status_code=303)

    @post("/password", status_code=200)
    async def password(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template:
        principal = admin_of(request, roles.ACCOUNTS)
        auth = auth_of(request)
        form = await bounded_form(request)
        name = _field(form, "name", NAME_LIMIT)
        # the drawn page's key with the account's name: the page's other reset buttons are other resets
        key = once("reset", _field(form, ONCE_FIELD, 64), f"reset\n{name}")
        try:
            password, revoked = await auth.reset_password(name, by=_who(request, principal), once=key)
        except AlreadySent:  # the same form sent twice (a double click, back and resubmit): reset once
            said_again = (RESET_AGAIN[0].format(name=name), RESET_AGAIN[1].format(name=name))
            return await accounts_page(request, store, context, auth, notice=said_again)
        except AccountError as exc:
            return await accounts_page(request, store, context, auth, status=404, row_error=(name, exc.texts))
        shown = {"name": name, "password": password, "why": "reset", "tokens_revoked": str(revoked or "")}
        return await accounts_page(request, store, context, auth, shown=shown)

    @post("/tokens/{token_id:int}/revoke", status_code=303)
    async def revoke(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        token_id: FromPath[int],
    ) -> Template | Redirect:
        principal = admin_of(request, roles.ACCOUNTS)
        auth = auth_of(request)
        key = once("revoke", _field(await bounded_form(request), ONCE_FIELD, 64), f"token\n{token_id}")
        try:
            # no such token outside the database's integers (PostgreSQL refuses a larger one with an error)
            revoked = 0 < token_id < 2**63 and await auth.revoke_token(token_id, by=_who(request, principal), once=key)
        except AlreadySent:  # the same form sent twice (a double click, back and resubmit): revoked once
            return Redirect("/admin/accounts/?done=revoked_again", status_code=303)
        if not revoked:
            why = f"没有有效的令牌 {token_id} No live token {token_id}"
            return await accounts_page(request, store, context, auth, status=404, row_error=("", why))
        return Redirect("/admin/accounts/?done=revoked", status_code=303)


# -- the catalogue ---------------------------------------------------------------------------------

CATALOGUE_CHECK = "/admin/catalogue/check"  # mounted by the county's desk alone (county_node/admin_publishing.py)
LEVEL_NAMES = {"village": "村", "town": "乡镇", "county": "县"}
UNIT_NAMES = {"working": ("工作日", "working days"), "calendar": ("自然日", "calendar days")}


class SignedBy(msgspec.Struct, frozen=True, kw_only=True):
    """Who signed a held document: the key and the node it belongs to, and the blob's digest."""

    key_id: str
    node: str
    digest: str


def signed_by(store: Store, blob: bytes | None, magic: bytes) -> SignedBy | None:
    """The signer of a signed document (catalogue, calendar) as the node's directory knows the key."""
    if blob is None:
        return None
    opened = envelope.open_envelope(blob, magic=magic, max_bytes=len(blob), what="signed document")
    record = publisher_keys(store.directory, store.node_id).get(opened.key_id)
    return SignedBy(key_id=opened.key_id, node=record.node if record else "?", digest=catalogue_digest(blob)[:16])


class Publishing(TypedDict, total=False):
    """What a catalogue or calendar page shows of the county's upload: the answer's status, a refusal
    (``problem``) with every problem found, the checked document to review, or ``done``."""

    status: int
    problem: str | tuple[str, str]  # a "中文 English" line, or the pair (headline_pair)
    problems: list[str]  # the checkers' English lines, shown Chinese first (sanji.problem_words.problem_pair)
    review: dict[str, Any] | None
    done: str


def publishing_fields(request: Request[Any, Any, Any], check_path: str, shown: Publishing) -> dict[str, Any]:
    """The upload form's part of a page: offered where the node serves ``check_path`` (the county)."""
    return {
        "county": serves(request.app, check_path, "POST"),
        "max_bytes": MAX_UPLOAD_BYTES,
        "problems": _listed(problem_pairs(shown.get("problems") or [])),
        "problem": shown.get("problem", ""),
        "review": shown.get("review"),
        "done": shown.get("done", ""),
        "once": new_key(),  # the publish form's one-time key: sent twice, published once (sanji.store.submissions)
    }


PROBLEMS_LISTED = 200  # a page lists this many of an upload's problems, then says how many more there are


def _listed(problems: list[Pair]) -> list[Pair]:
    if len(problems) <= PROBLEMS_LISTED:
        return problems
    more = len(problems) - PROBLEMS_LISTED
    return [
        *problems[:PROBLEMS_LISTED],
        Pair(f"……另有 {more} 个问题未列出，请先改正以上问题", f"{more} more not listed"),
    ]


def catalogue_frame(store: Store, context: NodeContext) -> dict[str, Any]:
    return {**_frame(store, context, "catalogue"), "levels": LEVEL_NAMES, "units": UNIT_NAMES}


async def catalogue_page(
    request: Request[Any, Any, Any], store: Store, context: NodeContext, **shown: Unpack[Publishing]
) -> Template:
    """The catalogue held; at the county the upload form, an upload's problems, or its review before signing."""
    held = await context.catalogue_blob()
    if held is not None and context.catalogue is None:
        await context.load()
    return Template(
        template_name="admin_catalogue.html",
        status_code=shown.get("status", 200),
        context={
            **catalogue_frame(store, context),
            "catalogue": context.catalogue,
            "signer": signed_by(store, held, CATALOGUE_MAGIC),
            **publishing_fields(request, CATALOGUE_CHECK, shown),
        },
    )


class CatalogueScreenController(Controller):
    """``/admin/catalogue``: the catalogue this node holds, and one matter's detail."""

    path = "/admin/catalogue"
    include_in_schema = False

    @get("/")
    async def screen(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        done: Annotated[str, QueryParameter(max_length=16)] = "",
    ) -> Template:
        admin_of(request, roles.CONFIGURE)
        return await catalogue_page(request, store, context, done=done)

    @get("/{code:str}")
    async def matter(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        code: FromPath[str],
    ) -> Template:
        admin_of(request, roles.CONFIGURE)
        matter = context.matter(code[:64])
        return Template(
            template_name="admin_matter.html",
            status_code=200 if matter is not None else 404,
            context={**catalogue_frame(store, context), "matter": matter, "code": code[:64]},
        )


# -- the calendar ----------------------------------------------------------------------------------

CALENDAR_CHECK = "/admin/calendar/check"  # mounted by the county's desk alone (county_node/admin_publishing.py)
WEEKDAYS = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")


async def calendar_page(
    request: Request[Any, Any, Any], store: Store, context: NodeContext, year: int, **shown: Unpack[Publishing]
) -> Template:
    """A year's days off and weekend days worked (``year_view``, as ``sanji calendar show``), the version held."""
    await context.refresh_calendar()
    # as ``sanji calendar show`` binds it: provisional years reach as far as the year asked about
    bound = bound_calendar(library_data(), context.calendar_doc, this_year=max(context.today().year, year))
    view: YearView | None = None
    unknown = ("", "")
    try:
        view = year_view(bound, context.calendar_doc, year)
    except CalendarError as exc:  # a year nothing covers: said Chinese first, nothing guessed
        unknown = (f"没有{year}年的工作日历（官方放假安排）数据，不作推测", exc.message)
    status = shown.get("status", 200)
    return Template(
        template_name="admin_calendar.html",
        status_code=404 if view is None and status == 200 else status,
        context={
            **_frame(store, context, "calendar"),
            "year": year,
            "view": view,
            "unknown": unknown,
            "weekdays": WEEKDAYS,
            "doc": context.calendar_doc,
            "signer": signed_by(store, await context.calendar_blob(), CALENDAR_MAGIC),
            **publishing_fields(request, CALENDAR_CHECK, shown),
        },
    )


class CalendarScreenController(Controller):
    """``/admin/calendar?year=``: a year's days off and worked weekend days, official or 暂定."""

    path = "/admin/calendar"
    include_in_schema = False

    @get("/")
    async def screen(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        year: Annotated[int | None, QueryParameter(ge=1900, le=2200)] = None,
        done: Annotated[str, QueryParameter(max_length=16)] = "",
    ) -> Template:
        admin_of(request, roles.CONFIGURE)
        return await calendar_page(request, store, context, year or context.today().year, done=done)
