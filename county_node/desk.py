"""The county hub's desk: what it serves beyond the shared node plumbing, its menu and its start-up duty.

- 部门收件箱: the 上报件 escalated to each county department (``inbox.py``);
- 联办 sub-tasks: each department's inbox (``subtasks.py``);
- 季度考核: the assessment office (``assessment_routes.py``), the rules it publishes
  (``rules_publishing.py``) and the business reports it audits (``sanji.office.business_routes``);
- the provincial platform's pull of the national tables, and the office's export screen (``platform_routes.py``);
- the register page says the county does not register (``screens.py``, 403);
- at start, the county publishes its catalogue (``duties.py``).
"""

from __future__ import annotations

from county_node import ROLE
from county_node.admin_publishing import CalendarPublishingController, CataloguePublishingController
from county_node.assessment_routes import AssessmentApiController, AssessmentScreenController
from county_node.duties import publish_catalogue
from county_node.inbox import InboxController
from county_node.platform_routes import PlatformController, PlatformScreenController
from county_node.rules_publishing import RulesPublishingApiController, RulesPublishingScreenController
from county_node.screens import NoRegistrationController
from county_node.subtasks import SubtaskController
from sanji.office.business_routes import BusinessApiController, BusinessScreenController
from sanji.web import desk
from sanji.web.admin_screens import AccountsScreenController, CalendarScreenController, CatalogueScreenController

DESK = desk.Desk(
    role=ROLE,
    title="Sanji 县级政务服务中心 County hub",
    handlers=(
        AccountsScreenController,
        CatalogueScreenController,
        CalendarScreenController,
        CataloguePublishingController,
        CalendarPublishingController,
        NoRegistrationController,
        InboxController,
        SubtaskController,
        AssessmentApiController,
        AssessmentScreenController,
        RulesPublishingApiController,
        RulesPublishingScreenController,
        BusinessApiController,
        BusinessScreenController,
        PlatformController,
        PlatformScreenController,
    ),
    menu=(
        desk.HOME,
        desk.LOOKUP,
        desk.INBOX,
        desk.SUBTASKS,
        desk.SUPERVISION,
        desk.LEDGERS,
        desk.ASSESSMENT,
        desk.REPORTS,
        desk.RULES,
        desk.SMS,
        desk.PLATFORM,
        desk.ENROLL,
        *desk.ADMIN_MENU,
    ),
    post="部门审批人员",
    on_start=(publish_catalogue,),
    operator_open=True,
)
