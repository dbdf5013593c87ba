"""The county publishes the assessment rules (考核细则): the read-only routes plus publishing.

Mounted by the county's desk alone, in place of the read-only controllers the township mounts
(``sanji.office.rules_routes``); elsewhere ``POST /api/office/rules`` is not routed (405 beside the
read-only ``GET``) and ``/office/rules/publish`` does not exist (404). The next exchanges carry a
published version down.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Redirect, Template

from protocol.assessment import AssessmentRules
from protocol.errors import SanjiError, VersionTooFar
from sanji.context import NodeContext
from sanji.office.book import OfficeRefused
from sanji.office.rules_routes import RulesApiController, RulesScreenController, back, publish_rules, rules_page
from sanji.store import Store, submissions
from sanji.store.submissions import FIELD as ONCE_FIELD
from sanji.store.submissions import AlreadySent, KeyReused, once
from sanji.web.client_keys import IdempotencyKey, client_key
from sanji.web.screens import one, read_form

MAX_FORM_CHARS = 256 * 1024  # the signed document's own limit


class RulesPublishingApiController(RulesApiController):
    @post("/", summary="County only: publish a newer version of the assessment rules; it travels down", status_code=201)
    async def publish(
        self,
        request: Request[Any, Any, Any],
        context: NamedDependency[NodeContext],
        data: JSONBody[AssessmentRules],
        idempotency_key: IdempotencyKey = None,
    ) -> AssessmentRules:
        key = client_key(request, idempotency_key, data)
        try:
            await submissions.sent_before(context.store.db, key)  # a retry lands on 已发布, not on 版本须高于
            return await publish_rules(context, data, once=key)
        except AlreadySent:  # the same body under its key: the rules its first sending published
            return data
        except KeyReused:  # another body under the key, 409: its own body was never kept under it, nor can be
            raise
        except (OfficeRefused, VersionTooFar):  # each answered 409 with its own error code
            if await submissions.was_sent(context.store.db, key):  # sent twice at once: the other published it
                return data
            raise
        except SanjiError as exc:  # rules that do not check (RulesError): the sender's to correct
            raise OfficeRefused(exc.message, hint=exc.hint) from None


class RulesPublishingScreenController(RulesScreenController):
    @post("/publish", status_code=303)
    async def publish(
        self, store: NamedDependency[Store], context: NamedDependency[NodeContext], request: Request[Any, Any, Any]
    ) -> Redirect | Template:
        """Publish the edited rules (JSON, as ``sanji rules show --json`` prints them). Refused: the screen again,
        saying why, with the text as sent."""
        form = await read_form(request)
        text = one(form, "rules")
        key = once("publish", one(form, ONCE_FIELD), "rules\n" + text)

        async def refused(problem: str, status: int) -> Template:
            return await rules_page(
                request, store, context, problem=problem, status=status, draft=text[:MAX_FORM_CHARS]
            )

        try:
            await submissions.sent_before(context.store.db, key)  # before the version is found not newer
            if len(text) > MAX_FORM_CHARS:
                raise OfficeRefused(
                    f"the rules are {len(text)} characters; the limit is {MAX_FORM_CHARS}",
                    zh=f"细则文本最多{MAX_FORM_CHARS}个字符",
                )
            rules = msgspec.json.decode(text.encode(), type=AssessmentRules)
            await publish_rules(context, rules, once=key)
        except AlreadySent:  # the same form sent twice (a double click, back and resubmit): published once
            return back(done="again")
        except msgspec.DecodeError as exc:
            return await refused(f"规则格式有误 the rules do not read: {exc}", 400)
        except VersionTooFar as exc:  # the rules check; their version is too far above the one held
            return await refused(f"{exc.message_zh} {exc.message_en}", 409)
        except SanjiError as exc:  # Chinese first (a rule that does not check: under a Chinese lead)
            if await submissions.was_sent(context.store.db, key):  # sent twice at once: the other kept it
                return back(done="again")
            zh = getattr(exc, "message_zh", "") or "细则未通过检查，未发布"
            return await refused(f"{zh} {exc.message}", 409 if isinstance(exc, OfficeRefused) else 400)
        return back(done="published")
