"""A tier's desk: the routes, menu, default post and start-up duties one kind of node adds to the shared plumbing.

Each tier package declares its ``DESK`` (``county_node/desk.py``, ``town_node/desk.py``,
``village_agent/desk.py``) and passes it to ``sanji.web.app.build_app``, which mounts the shared
node plumbing (errand API, sync, login, public pages, observe, documents, ledgers, SMS outbox)
plus the desk's handlers and nothing else. A route not in a node's desk is absent there: routing
answers 404, no handler asks the node's role. The menu is the desk's list of links, so a page
links exactly what the node serves. Which *steps* a desk may take on an errand is never written
here: the errand page asks the rule (``protocol.menu.allowed_steps``).

``sanji`` never imports a tier package at import time; ``sanji.tiers`` finds a role's desk by name
when a command or a test needs the app of a node it only has the settings of.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request
from litestar.types import ControllerRouterHandler

from protocol.topology import regional
from sanji.auth import roles

if TYPE_CHECKING:
    from sanji.config import NodeSettings
    from sanji.context import NodeContext

Startup = Callable[["NodeSettings", "NodeContext"], Awaitable[None]]
"""A duty the desk does once the node's context is loaded, before it serves (the county publishes its catalogue)."""


@dataclass(frozen=True)
class MenuLink:
    """One link of the main menu: the ``page`` name a screen's frame marks as current, where, and its label.

    A logged-in account is linked only what its post may open: the capability ``sanji.auth.roles`` asks of the
    link's route (``route_requirement``), so the menu and the route guard cannot disagree (a window post is not
    linked 电子监察, the administrator no desk page). ``signed_in_only``: the administrator's pages and 节点接入, not
    linked where nobody is logged in (the open demo desk, which links every other page it serves).
    """

    page: str
    href: str
    label: str
    signed_in_only: bool = False

    def shown_to(self, principal: Any) -> bool:
        """Whether the menu shows this link to ``principal`` (the request's account, or None)."""
        if principal is None:
            return not self.signed_in_only
        return roles.may(str(getattr(principal, "role", "")), roles.route_requirement("GET", self.href))


HOME = MenuLink("home", "/", "首页 Home")
REGISTER = MenuLink("register", "/register", "代办登记 Register")
# the same page at a township window: a walk-in is received there (收件), not registered on anyone's behalf (代办)
WINDOW_REGISTER = MenuLink("register", "/register", "收件登记 Register")
LOOKUP = MenuLink("lookup", "/lookup", "进度查询 Look up")
INBOX = MenuLink("inbox", "/inbox", "部门收件箱 Department inbox")
SUBTASKS = MenuLink("subtasks", "/subtasks", "联办子任务 Sub-tasks")
SUPERVISION = MenuLink("supervision", "/supervision", "电子监察 Supervision")
LEDGERS = MenuLink("office", "/office/ledger", "台账统计 Ledgers")
ASSESSMENT = MenuLink("assessment", "/office/assessment/", "季度考核 Assessment")
REPORTS = MenuLink("business", "/office/business/", "业务报表 Reports")
RULES = MenuLink("rules", "/office/rules/", "考核细则 Rules")
SMS = MenuLink("sms", "/office/sms/", "短信 SMS")
PLATFORM = MenuLink("platform", "/office/platform/", "省平台交换 Platform")
ENROLL = MenuLink("enroll", "/enroll", "节点接入 Enrollment", signed_in_only=True)
ACCOUNTS = MenuLink("accounts", "/admin/accounts", "账号岗位 Accounts", signed_in_only=True)
CATALOGUE = MenuLink("catalogue", "/admin/catalogue", "事项目录 Catalogue", signed_in_only=True)
CALENDAR = MenuLink("calendar", "/admin/calendar", "工作日历 Calendar", signed_in_only=True)
ADMIN_MENU = (ACCOUNTS, CATALOGUE, CALENDAR)


@dataclass(frozen=True)
class Desk:
    """What one tier serves beyond the shared node plumbing."""

    role: str  # protocol.topology: county, town, village
    title: str  # the OpenAPI title and the app's name
    handlers: tuple[ControllerRouterHandler, ...]
    menu: tuple[MenuLink, ...]  # the main menu of a logged-in desk, in order
    post: str  # the post (岗位) a desk form starts with when nobody has said theirs
    on_start: tuple[Startup, ...] = ()
    operator_open: bool = False  # the home page's operator panel starts open (the county watches the tree)

    @property
    def reads_only(self) -> bool:
        """A desk above the counties (``protocol.topology.regional``): it reads and supervises, holds no catalogue."""
        return regional(self.role)

    def links(self, page: str) -> bool:
        """Whether the menu links the screen ``page`` (a page links another only where it is served)."""
        return any(link.page == page for link in self.menu)


def desk_of(request: Request[Any, Any, Any]) -> Desk:
    """The desk of the app serving ``request``."""
    desk: Desk = request.app.state.desk
    return desk


def serves(app: Litestar, path: str, method: str = "GET") -> bool:
    """Whether ``app`` mounts ``method path`` (a route template as written, e.g. ``/office/rules/publish``)."""
    handlers = app.route_handler_method_map.get(path) or app.route_handler_method_map.get(path.rstrip("/") or "/")
    return handlers is not None and method.upper() in handlers
