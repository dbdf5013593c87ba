"""The desk of a centre above the counties: reading and supervision only.

It mounts nothing beyond the shared plumbing except the administrator's pages: the home page with
the tree's health, the errand list and pages (every step refused by the rule, so none is offered),
电子监察, the ledgers and statistics over both counties, node enrollment (its director enrolls the
counties). No register form, no publishing: each county publishes its own catalogue, calendar and
assessment rules for its own subtree (``protocol.catalogue.publisher_keys``).
"""

from __future__ import annotations

from protocol.topology import CITY, PROVINCE
from sanji.web import desk
from sanji.web.admin_screens import AccountsScreenController, CalendarScreenController, CatalogueScreenController

_TITLES = {CITY: "Sanji 市政务服务中心 City centre", PROVINCE: "Sanji 省政务服务中心 Province centre"}


def regional_desk(role: str) -> desk.Desk:
    """The read-only desk of a ``role`` above the county (``protocol.topology.REGIONAL``)."""
    return desk.Desk(
        role=role,
        title=_TITLES[role],
        handlers=(AccountsScreenController, CatalogueScreenController, CalendarScreenController),
        menu=(desk.HOME, desk.LOOKUP, desk.SUPERVISION, desk.LEDGERS, desk.ENROLL, *desk.ADMIN_MENU),
        post="监察督查",
        operator_open=True,  # like the county, it watches a tree below it
    )


DESKS = {role: regional_desk(role) for role in (CITY, PROVINCE)}
