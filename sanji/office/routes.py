"""Every route of the county office, in one list the app factory registers."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from sanji.notify.routes import SmsApiController, SmsScreenController
from sanji.office.assessment_routes import AssessmentApiController, AssessmentScreenController
from sanji.office.business_routes import BusinessApiController, BusinessScreenController
from sanji.office.ledger_routes import OfficeApiController, OfficeScreenController
from sanji.office.platform_routes import PlatformController
from sanji.office.rules_routes import RulesApiController, RulesScreenController

OFFICE_HANDLERS: tuple[ControllerRouterHandler, ...] = (
    OfficeApiController,
    OfficeScreenController,
    AssessmentApiController,
    AssessmentScreenController,
    SmsApiController,
    SmsScreenController,
    PlatformController,
    RulesApiController,
    RulesScreenController,
    BusinessApiController,
    BusinessScreenController,
)
