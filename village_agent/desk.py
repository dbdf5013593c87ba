"""The village station's desk: 代办登记 (the register form, on the villager's mandate), and on the
errand page the carrying up and the delivery the rule offers (``protocol.menu``). No office pages:
the township and the county keep the reports and the assessment."""

from __future__ import annotations

from sanji.web import desk
from sanji.web.admin_screens import AccountsScreenController, CalendarScreenController, CatalogueScreenController
from sanji.web.screens import RegisterController
from village_agent import ROLE

DESK = desk.Desk(
    role=ROLE,
    title="Sanji 村代办点 Village agent",
    handlers=(
        AccountsScreenController,
        CatalogueScreenController,
        CalendarScreenController,
        RegisterController,
    ),
    menu=(desk.HOME, desk.REGISTER, desk.LOOKUP, desk.SUPERVISION, desk.LEDGERS, desk.SMS, *desk.ADMIN_MENU),
    post="代办员",
)
