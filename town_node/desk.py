"""The township centre's desk: the one window registers walk-ins (the register form shared with the
villages), reads the county's assessment rules and the business reports of its villages, and enrolls
villages. Intake (receive, accept, assign …) and escalation are steps on the errand page, offered as
the rule allows them (``protocol.menu``)."""

from __future__ import annotations

from sanji.office.business_routes import BusinessApiController, BusinessScreenController
from sanji.office.rules_routes import RulesApiController, RulesScreenController
from sanji.web import desk
from sanji.web.admin_screens import AccountsScreenController, CalendarScreenController, CatalogueScreenController
from sanji.web.screens import RegisterController
from town_node import ROLE

DESK = desk.Desk(
    role=ROLE,
    title="Sanji 乡镇便民服务中心 Township centre",
    handlers=(
        AccountsScreenController,
        CatalogueScreenController,
        CalendarScreenController,
        RegisterController,
        RulesApiController,
        RulesScreenController,
        BusinessApiController,
        BusinessScreenController,
    ),
    menu=(
        desk.HOME,
        desk.WINDOW_REGISTER,
        desk.LOOKUP,
        desk.SUPERVISION,
        desk.LEDGERS,
        desk.REPORTS,
        desk.RULES,
        desk.SMS,
        desk.ENROLL,
        *desk.ADMIN_MENU,
    ),
    post="窗口工作人员",
)
