"""节点接入 Enrollment: the screen where a centre director (or an administrator) lets a new node join.

``GET /enroll`` shows a form to issue a one-time enrollment token for a node directly below
this one (the county enrolls townships, a township its villages; a village enrolls nobody),
the tokens issued here (used or not, and the certificate each one became), and the
certificates and revocations this node holds. A node without a root of trust (it runs on
directory.json) says so and issues nothing.

``POST /enroll`` checks the form and issues the token (``TrustBook.issue_token``), then shows
it once — large, grouped text and a QR code — with what the agent does with it on the new
machine (``sanji enroll join``). The token is never stored here in readable form and the page
is sent ``Cache-Control: no-store``; a refused form is shown again with the reason in Chinese
and English (400; 409 when this node holds no root of trust).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.response import Template

from protocol.bounds import NODE_ID_RULE_EN, NODE_ID_RULE_ZH, node_id_problem
from protocol.deadlines import CHINA_STANDARD_TIME
from protocol.enrollment import TOKEN_VALID_DAYS, encode_token
from protocol.errors import SanjiError
from protocol.topology import CITY, COUNTY, PROVINCE, ROLES, TOWN, VILLAGE, level_below
from protocol.trust import root_fingerprint
from sanji.auth.guard import principal_of
from sanji.context import NodeContext
from sanji.store import Store
from sanji.store.submissions import FIELD as ONCE_FIELD
from sanji.store.submissions import AlreadySent, Once, new_key, once, said
from sanji.store.trustbook import IssuedToken, TrustBook
from sanji.web.qr import qr_svg
from sanji.web.screens import _frame, one, read_form

# The role a node of each role enrolls (villages enroll nobody): the next level down.
CHILD_ROLE = {role: below for role in ROLES if (below := level_below(role)) is not None}
ROLE_NAMES = {
    PROVINCE: "省级中心 province hub",
    CITY: "市级中心 city hub",
    COUNTY: "县级中心 county hub",
    TOWN: "乡镇中心 township",
    VILLAGE: "村代办点 village",
}
MAX_NAME = 64
MAX_DAYS = 30
GROUPS_PER_LINE = 6
NO_STORE = {"Cache-Control": "no-store"}
# The issue form sent twice (a double click, the browser's back and resubmit): one token, the first's.
SENT_AGAIN = (
    "已提交，未重复签发：同一表单发送了两次，只签发了一个令牌，即下面这个。",
    "Sent already, not issued twice: the same form was sent twice and one token issued, the one below.",
)
REVOKED_AGAIN = (
    "已提交，未重复吊销：同一表单发送了两次，只吊销了一次。",
    "Sent already, not revoked twice: the same form was sent twice and one revocation written.",
)
SENT_AGAIN_GONE = (
    "已提交，未重复签发：同一表单发送了两次，只签发了一个令牌；它已被使用或已过期，不再显示，需要时请重新签发。",
    "Sent already, not issued twice: the same form was sent twice and one token issued; it is used or expired "
    "now and no longer shown. Issue a new one if it is needed.",
)


def _seconds(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _when(seconds: object) -> str:
    """A time in China Standard Time, to the minute ('' for none)."""
    at = _seconds(seconds)
    return datetime.fromtimestamp(at, CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M") if at else ""


def _ms_when(ms: int) -> str:
    return _when(ms / 1000) if ms else ""


def _below(store: Store, node: str) -> bool:
    directory = store.directory
    return node != store.node_id and node in directory and store.node_id in directory.path(node)


def token_lines(text: str) -> list[str]:
    """The token in lines of a few five-character groups, for reading aloud or typing."""
    groups = text.split("-")
    return ["-".join(groups[i : i + GROUPS_PER_LINE]) for i in range(0, len(groups), GROUPS_PER_LINE)]


_HAN = re.compile(r"[\u3400-\u9fff]")


def _refused(lead: str, message: str) -> tuple[str, str]:
    """A refusal of the trust book Chinese first: ``lead``, and the reason's Chinese where the message has it (an id
    in use: "节点编号 … 已在 … 下使用。Node id … is already certified …"); the English after."""
    zh, stop, en = message.rpartition("。")
    if stop and _HAN.search(zh) and not _HAN.search(en):
        return f"{lead}：{zh}。", en.strip()
    return lead, message


def check_form(values: dict[str, str], child_role: str | None) -> dict[str, str]:
    """A Chinese+English message for each field of the token form that is wrong."""
    errors: dict[str, str] = {}
    if child_role is None:
        errors["role"] = "村代办点没有下级节点，不能签发入网令牌 A village station has no nodes below it to enroll"
    elif values["role"] != child_role:
        errors["role"] = (
            f"本节点只能为{ROLE_NAMES[child_role].split(' ')[0]}签发令牌 This node enrolls only a {child_role}, "
            f"not {values['role'] or '(none)'}"
        )
    node = values["node"]
    if not node:
        errors["node"] = "请填写新节点编号 The new node's id is required (e.g. T01V03)"
    elif node_id_problem(node):
        errors["node"] = f"{NODE_ID_RULE_ZH} {NODE_ID_RULE_EN[0].upper()}{NODE_ID_RULE_EN[1:]}"
    if len(values["name"]) > MAX_NAME:
        errors["name"] = f"名称不超过{MAX_NAME}字 At most {MAX_NAME} characters"
    days = values["days"]
    if not (days.isdigit() and 1 <= int(days) <= MAX_DAYS):
        errors["days"] = f"有效天数应为1到{MAX_DAYS}的整数 Valid days: a whole number from 1 to {MAX_DAYS}"
    return errors


async def _enroll_page(
    request: Request[Any, Any, Any],
    store: Store,
    context: NodeContext,
    trust: TrustBook,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    issued: dict[str, Any] | None = None,
    problem: tuple[str, str] | None = None,
    notice: tuple[str, str] | None = None,
    status: int = 200,
) -> Template:
    frame = _frame(store, context, "enroll")
    role = str(frame["role"])
    child_role = CHILD_ROLE.get(role)
    state = trust.state
    now_ms = int(time.time() * 1000)
    root: dict[str, Any] | None = None
    certificates: list[dict[str, Any]] = []
    revocations: list[dict[str, Any]] = []
    me, directory = store.node_id, store.directory
    # Held for the ids' sake only (unique across the tree): another county's nodes are not listed here.
    shown = set(directory.path(me)) | directory.subtree(me) if me in directory else {me}
    if state is not None:
        current = state.root
        root = {
            "version": current.version,
            "county": current.county,
            "threshold": current.threshold,
            "key_count": len(current.keys),
            "fingerprint": root_fingerprint(state.root_documents()[0]),
        }
        certificates = [
            {
                "node": c.node,
                "name": c.name,
                "role": c.role,
                "parent": c.parent or "",
                "issuer": c.issuer,
                "serial": c.serial,
                "issued": _ms_when(c.issued_at),
                "days_left": int((c.not_after - now_ms) // 86_400_000),
                "mine": c.node == store.node_id,
                "revocable": _below(store, c.node)
                and any(not store.directory.is_retired(k.key_id) for k in c.keys if k.algorithm == "ed25519"),
            }
            for c in state.certificates()
            if c.node in shown
        ]
        revocations = [
            {
                "node": r.node,
                "key_id": r.retirement.key_id,
                "issuer": r.issuer,
                "reason": r.reason,
                "issued": _ms_when(r.issued_at),
            }
            for r in state.revocations()
        ]
    now = time.time()
    tokens = [
        {
            "node": str(row["node"]),
            "name": str(row.get("name") or ""),
            "role": str(row["role"]),
            "issued": _when(row["issued_at"]),
            "issued_by": str(row.get("issued_by") or ""),
            "expires": _when(row["expires_at"]),
            "used": _when(row.get("used_at")),
            "expired": row.get("used_at") is None and _seconds(row["expires_at"]) < now,
            "serial": str(row.get("serial") or ""),
        }
        for row in await trust.tokens()
    ]
    person = principal_of(request)
    form = values or {"node": "", "role": child_role or "", "name": "", "days": str(TOKEN_VALID_DAYS)}
    return Template(
        template_name="enroll.html",
        status_code=status,
        headers=NO_STORE,
        context={
            **frame,
            "enabled": state is not None,
            "child_role": child_role,
            "child_role_name": ROLE_NAMES.get(child_role or "", ""),
            "node_role_name": ROLE_NAMES.get(role, role),
            "values": form,
            "errors": errors or {},
            "problem": problem,
            "notice": notice,
            "issued": issued,
            "once": new_key(),  # the issue form's one-time key: sent twice, one token (sanji.store.submissions)
            "root": root,
            "certificates": certificates,
            "revocations": revocations,
            "tokens": tokens,
            "max_days": MAX_DAYS,
            "issuer_name": person.name if person else "",
            "parent": directory.parent(me) if me in directory else None,
            "ids_as_of": (await store.status())["last_exchange_ok_at"],
        },
    )


class EnrollController(Controller):
    path = "/enroll"
    include_in_schema = False

    @get("/")
    async def enroll_form(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        trust: NamedDependency[TrustBook],
    ) -> Template:
        return await _enroll_page(request, store, context, trust)

    @post("/", status_code=200)
    async def issue(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        context: NamedDependency[NodeContext],
        trust: NamedDependency[TrustBook],
    ) -> Template:
        form = await read_form(request)
        if one(form, "action") == "revoke":
            key = once("revoke", one(form, ONCE_FIELD), said(form))
            return await _revoke(request, store, context, trust, one(form, "node"), one(form, "reason"), key)
        values = {name: one(form, name) for name in ("node", "role", "name", "days")}
        if trust.state is None:
            return await _enroll_page(
                request,
                store,
                context,
                trust,
                values=values,
                problem=(
                    "本节点未持有信任根（仍按 directory.json 运行），不能为其他节点签发入网令牌",
                    "This node holds no root of trust (it runs on directory.json), so it cannot enroll other nodes.",
                ),
                status=409,
            )
        child_role = CHILD_ROLE.get(store.directory.role(store.node_id))
        errors = check_form(values, child_role)
        if errors:
            return await _enroll_page(request, store, context, trust, values=values, errors=errors, status=400)
        person = principal_of(request)
        notice: tuple[str, str] | None = None
        try:
            issued: IssuedToken | None = await trust.issue_token(
                node=values["node"],
                role=values["role"],
                name=values["name"],
                issued_by=person.name if person else "",
                days=int(values["days"]),
                once=once("enroll", one(form, ONCE_FIELD), said(form)),
            )
        except AlreadySent as first:  # the same form sent twice: one token, shown again while it may be used
            issued = await trust.issued(first.action)
            notice = SENT_AGAIN if issued is not None else SENT_AGAIN_GONE
        except SanjiError as exc:
            return await _enroll_page(
                request,
                store,
                context,
                trust,
                values=values,
                problem=_refused("未能签发入网令牌", exc.message),
                status=409,
            )
        fresh = {"node": "", "role": values["role"], "name": "", "days": values["days"]}
        if issued is None:
            return await _enroll_page(request, store, context, trust, values=fresh, notice=notice)
        text = encode_token(issued.token)
        label = f"入网令牌 Enrollment token for {values['node']}"
        shown = {
            "text": text,
            "lines": token_lines(text),
            "qr": qr_svg(text, scale=4, label=label),
            "node": values["node"],
            "role": values["role"],
            "role_name": ROLE_NAMES[values["role"]],
            "name": values["name"],
            "parent": store.node_id,
            "expires": _when(issued.expires_at),
            "replaces": values["node"] in store.directory,  # a child already enrolled: a replacement computer
        }
        return await _enroll_page(request, store, context, trust, values=fresh, issued=shown, notice=notice)


async def _revoke(
    request: Request[Any, Any, Any],
    store: Store,
    context: NodeContext,
    trust: TrustBook,
    node: str,
    reason: str,
    key: Once | None = None,
) -> Template:
    """吊销 Revoke every signing key of a node below this one, effective at once here (the running node's
    own book) and travelling up and down with the next exchanges."""
    if trust.state is None or node_id_problem(node) or not _below(store, node):
        return await _enroll_page(
            request,
            store,
            context,
            trust,
            problem=("只能吊销本节点下级节点的密钥", f"Only keys of nodes below {store.node_id} can be revoked here."),
            status=400,
        )
    person = principal_of(request)
    notice = (
        f"已吊销 {node} 的签名密钥，本节点立即拒绝其请求",
        f"The signing keys of {node} are revoked; this node refuses them from now on, and the revocation "
        "reaches the county with the next exchange.",
    )
    try:
        await trust.revoke(node, reason=reason[:200], issued_by=person.name if person else "", once=key)
    except AlreadySent:  # the same form sent twice (a double click, back and resubmit): one revocation
        notice = (notice[0] + "。" + REVOKED_AGAIN[0], notice[1] + " " + REVOKED_AGAIN[1])
    except SanjiError as exc:
        return await _enroll_page(request, store, context, trust, problem=_refused("未能吊销", exc.message), status=409)
    return await _enroll_page(request, store, context, trust, notice=notice)
