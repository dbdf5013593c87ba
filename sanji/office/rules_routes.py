"""The county's assessment rules (考核细则) as held at this node: a read-only page and its API.

Every township and village holds the county-signed rules that travel down with the exchange
(``NodeContext.offer_rules``); the township and county desks mount these read-only routes, so staff
read what they are scored by where they work. Only the county publishes a new version: its desk
mounts the publishing routes (``county_node/rules_publishing.py``: ``POST /api/office/rules``,
``POST /office/rules/publish``), and ``sanji rules publish`` calls ``publish_rules`` here; the next
exchanges carry it down.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from protocol.assessment import AssessmentRules
from protocol.errors import VersionNotNewer
from protocol.topology import COUNTY
from sanji.context import NodeContext, with_once
from sanji.office.book import OfficeRecordUnknown, OfficeRefused
from sanji.store import Store
from sanji.store.submissions import Once, new_key
from sanji.web.desk import serves
from sanji.web.screens import _frame

TARGET_NAMES = {"staff": "工作人员", "centre": "便民服务中心"}
PUBLISH_PATH = "/office/rules/publish"


async def rules_held(context: NodeContext) -> AssessmentRules:
    await context.refresh_rules()  # published meanwhile by another process
    if context.rules is None:
        raise OfficeRecordUnknown(
            "this node holds no assessment rules yet",
            hint="The county's rules arrive with the next exchange with the parent.",
        )
    return context.rules


async def publish_rules(context: NodeContext, rules: AssessmentRules, *, once: Once | None = None) -> AssessmentRules:
    """County only: sign and hold a newer version, which the next exchanges carry down.

    The routes that call this are mounted by the county's desk alone; the command line
    (``sanji rules publish``) reaches it at any node's store, so the role is checked here too.
    ``NodeContext.publish_rules`` signs, after bounding the version's step (``VersionTooFar``, 409). ``once``: the
    publishing form's one-time key, kept with the rules (``with_once``).
    """
    if context.store.directory.role(context.store.node_id) != COUNTY:
        raise OfficeRefused(
            "only the county hub publishes assessment rules",
            zh="考核细则只能由县级中心发布",
            hint="Publish them at the county hub.",
        )
    if rules.county != context.store.node_id:  # they travel down the tree under this hub's name
        raise OfficeRefused(
            f"the rules name county {rules.county!r}; this hub is {context.store.node_id!r}",
            zh=f"细则中的县（county）应为本中心（{context.store.node_id}）",
            hint="Keep the county field as the rules held show it.",
        )
    await context.refresh_rules()
    if rules.version <= context.rules_version:
        raise not_newer(context.rules_version, rules.version)
    try:
        kept = with_once(None, once, f"rules:{rules.version}")  # the form's key, kept with the rules
        await context.publish_rules(rules, record=kept)  # VersionTooFar there: too far above the version held
    except VersionNotNewer as exc:  # another publication was kept first: refused as if this one came after it
        raise not_newer(exc.held, rules.version) from None
    return rules


def not_newer(held: int, version: int) -> OfficeRefused:
    """The refusal of rules whose version is not above the one held, whether the check before signing finds it or
    the transaction that would keep them (another publication kept first, ``VersionNotNewer``)."""
    return OfficeRefused(
        f"assessment rules version {version} is not newer than the version held ({held})",
        zh=f"版本号须高于现行版本（现行第{held}版）",
        hint="Raise the version number and publish again.",
    )


class RulesApiController(Controller):
    path = "/api/office/rules"
    tags = ["office"]

    @get("/", summary="The county's assessment rules (考核细则) this node holds")
    async def held(self, context: NamedDependency[NodeContext]) -> AssessmentRules:
        return await rules_held(context)


async def rules_page(
    request: Request[Any, Any, Any],
    store: Store,
    context: NodeContext,
    *,
    done: str = "",
    problem: str = "",
    status: int = 200,
    draft: str | None = None,
) -> Template:
    """The rules screen. A refused publication is answered with this page, the refusal ("中文 English", from the
    refusal itself) and the text as it was sent (``draft``), never with words a link carries."""
    await context.refresh_rules()
    rules = context.rules
    county = serves(request.app, PUBLISH_PATH, "POST")  # the county's desk publishes
    if draft is None:
        draft = ""
        if county and rules is not None:  # the held version with the next number: edit and publish
            nxt = msgspec.structs.replace(rules, version=rules.version + 1)
            draft = json.dumps(msgspec.to_builtins(nxt), ensure_ascii=False, indent=1)
    return Template(
        template_name="office_rules.html",
        status_code=status if rules is not None else 404,
        context={
            **_frame(store, context, "rules"),
            "rules": rules,
            "part_names": {p.code: p.name for p in rules.parts} if rules else {},
            "staff_items": [i for i in rules.items if i.target == "staff"] if rules else [],
            "centre_items": [i for i in rules.items if i.target == "centre"] if rules else [],
            "target_names": TARGET_NAMES,
            "county": county,
            "draft": draft,
            "done": done if done in DONE else "",
            "problem": problem,
            "once": new_key(),  # the publish form's one-time key: sent twice, published once
        },
    )


class RulesScreenController(Controller):
    path = "/office/rules"
    include_in_schema = False

    @get("/")
    async def screen(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        done: Annotated[str, QueryParameter(max_length=16)] = "",
    ) -> Template:
        return await rules_page(request, store, context, done=done)


# What the screen says after the form was taken: a code, worded by the page (never text from the link).
DONE = frozenset({"published", "again"})


def back(*, done: str) -> Redirect:
    return Redirect(f"/office/rules/?{urlencode({'done': done})}", status_code=303)
