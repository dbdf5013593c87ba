"""``sanji errand``: a desk on the command line, for scripts and cron — the fourth door to the one rule.

    sanji errand list     --config NODE.toml [--stage S] [--limit N] [--json]
    sanji errand show     --config NODE.toml ERRAND [--post ROLE] [--account NAME] [--json]
    sanji errand register --config NODE.toml --account NAME --json FILE|-     (POST /api/errands's body)
    sanji errand act      --config NODE.toml --account NAME ERRAND STEP [--field key=value ...] [--json]

Invariant: the command line decides nothing. A registration or a step goes through the errand service
the JSON API uses (``GuardedService``): the account's post is checked by ``sanji.auth.roles`` exactly as
the API's role check does, the step by ``protocol.errand.judge``; the action is written through the
store's one writer door (``BEGIN IMMEDIATE``, so a running node and this command take turns) with its
``ActionTaken`` audit event — the account, channel ``cli`` and the OS user who ran the command
(``os_user``) — in the same transaction. Acting needs an existing, active staff account of this node
that works at its level (``--account``); any other name is refused, audited as a ``denied`` event.

This is the node operator's door, as ``sanji accounts`` is: no password is asked, so whoever can read
the node's config and key files can act as any active account; the audit log names the OS user.
The steps ``show`` offers are the errand page's (``sanji.web.screens.offered_steps``); ``attach``
carries a file and is not offered here (the errand's page or ``POST /api/errands/{id}/attachments``).

``ERRAND`` is an errand id or a receipt number. ``--field`` values are typed as the API's body
(``days=3``, ``passed=false``); a list field (``items``, ``provisional``, ``co_departments``) takes
one ``--field`` per entry. Personal data leaves masked, as the API lists it; ``show`` is audited as a
read of personal data (by the account given, else ``cli:<OS user>``).

Exit codes: 0 done; 2 refused or bad arguments. A refusal prints on stderr ``refused: <code>`` and
the refusal's Chinese and English wording (``protocol.refusals``); a post that may not take the step
prints ``denied: <reason>``, an account of another department or window (``roles.place_refusal``)
``denied: <code>`` and its Chinese and English wording; anything else ``error: <中文> <English>``
(``sanji.cli.say``).

``--json`` output (stable; fields are only ever added):

- ``list``: ``{"total": N, "items": [ErrandSummary, ...]}`` as ``GET /api/errands``;
- ``show``: ``GET /api/errands/{id}``'s object (its ``"binding"`` included) plus ``"post"`` and ``"steps"`` (the
  steps allowed now) and ``"binding_mismatch"`` (the ``binding``'s two messages when it is a mismatch, else "");
- ``register`` prints ``ERRAND<TAB>RECEIPT<TAB>ACTION``, ``act`` the new action's id; with ``--json``
  (``register``: ``--json-out``, as its ``--json`` names the body) both print
  the API's ``{"errand", "stage", "holder", "version", "digest"}`` with ``"action"`` and ``"receipt"``;
- on stderr, a refusal is the API's error body (``{"error": "action_refused", "error_code", "params",
  "message", "message_zh", "hint", "retryable"}``); a denial ``{"error": "forbidden", "message", "message_zh"}``
  (by the account's department or window, with ``error_code`` and ``params`` too);
  bad arguments ``{"error": "bad_request", "message", "message_zh", "hint"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from litestar.exceptions import PermissionDeniedException

from protocol.actions import Action
from protocol.binding import BOUND_STEPS, HeldMaterials
from protocol.errand import ErrandState, Projection
from protocol.errors import ActionRefused, SanjiError
from protocol.refusals import bilingual
from protocol.stages import SHOWN_STAGES
from protocol.steps import STEP_KINDS
from sanji.auth import events as ev
from sanji.auth import roles
from sanji.auth.book import AuditedStore, AuthBook, Who
from sanji.auth.guard import Caller, Forbidden, GuardedService
from sanji.auth.service import AuthService, Principal
from sanji.cli import say
from sanji.cli.common import CLI, cli_who, node_store
from sanji.config import ConfigError, NodeSettings, load_settings
from sanji.context import NodeContext
from sanji.forms import ActionForm, RegisterForm
from sanji.privacy import mask_history
from sanji.store import Store
from sanji.web.api import ActionResult, action_result
from sanji.web.desk_api import BindingStatus, errand_binding
from sanji.web.screens import offered_steps
from sanji.web.views import ErrandSummary, materials_of, summarise

CHANNEL = CLI
MAX_LIST = 1000  # as GET /api/errands
MAX_BODY = 1024 * 1024  # a registration's JSON body: far more than any form holds
# The fields a step's --field may set: the API's body less what the command line fills itself.
FILLED = frozenset({"kind", "actor", "role", "deemed", "blob", "size", "name", "mime"})
# Steps that carry a file: the command line uploads nothing, so it does not offer them.
UPLOADS = frozenset({"attach"})
ACT_STEPS = tuple(k for k in STEP_KINDS if k not in UPLOADS)
LIST_FIELDS = frozenset(f.name for f in msgspec.structs.fields(ActionForm) if f.default_factory is list)


class BadArguments(SanjiError):
    """The command line names something wrong; ``message_zh`` says what in Chinese, first on the line."""

    code = "bad_request"

    def __init__(self, message: str, *, zh: str = "命令参数有误", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.message_zh = zh


class ErrandOut(ErrandSummary, kw_only=True):
    """``show --json``: the API's errand detail, plus the steps allowed now for ``post``."""

    history: list[dict[str, Any]]
    post: str
    steps: list[str]
    # Why the errand's bound entry is not the county's of its version (``binding_mismatch``, Chinese then English):
    # the steps judged by it are not offered (``protocol.binding.BOUND_STEPS``); "" when it is, or cannot be checked.
    binding_mismatch: str = ""
    # The API's ``binding`` (``GET /api/errands/{id}``): also an entry this node cannot check (unchecked, behind).
    binding: BindingStatus | None = None
    # The API's ``materials``: held (registered, received since) and still missing; with a main one missing,
    # ``accept`` is not among ``steps`` (``protocol.binding.acceptance_refusal``).
    materials: HeldMaterials | None = None


class Taken(ActionResult, kw_only=True):
    """``register`` / ``act`` ``--json``: the API's answer, with the new action and the receipt."""

    action: str
    receipt: str


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("errand", help="errands at a node's desk: list, show, register, act (scripts, cron)")
    inner = p.add_subparsers(dest="errand_command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd: argparse.ArgumentParser = inner.add_parser(name, help=help_text)
        cmd.add_argument("--config", required=True, help="the node's TOML config")
        return cmd

    ls = command("list", "the errands this node holds (masked), in order of registration")
    ls.add_argument(
        "--stage",
        choices=SHOWN_STAGES,
        metavar="STAGE",
        help="only errands at this stage, as shown: " + ", ".join(SHOWN_STAGES),
    )
    ls.add_argument("--limit", type=int, default=100, help=f"at most this many (1-{MAX_LIST})")
    ls.add_argument("--json", action="store_true", help="one JSON object, as GET /api/errands")
    ls.set_defaults(func=lambda a: run_list(a.config, stage=a.stage, limit=a.limit, as_json=a.json))
    show = command("show", "one errand: its history and the steps allowed now")
    show.add_argument("errand", help="the errand's id or its receipt number")
    show.add_argument("--post", choices=roles.STAFF_ROLES, help="the steps this post may take (default: the account's)")
    show.add_argument("--account", help="read as this staff account (audited; else as cli:<OS user>)")
    show.add_argument("--json", action="store_true", help="one JSON object, as GET /api/errands/{id} plus steps")
    show.set_defaults(func=lambda a: run_show(a.config, a.errand, post=a.post, account=a.account, as_json=a.json))
    reg = command("register", "register an errand (代办登记) from POST /api/errands's JSON body")
    reg.add_argument("--account", required=True, help="the staff account registering (its post decides)")
    reg.add_argument("--json", dest="body", required=True, metavar="FILE", help="the JSON body; - reads stdin")
    reg.add_argument("--json-out", action="store_true", help="print the result as JSON")
    reg.set_defaults(func=lambda a: run_register(a.config, a.account, a.body, as_json=a.json_out))
    act = command("act", "take one step on an errand, as POST /api/errands/{id}/actions")
    act.add_argument("--account", required=True, help="the staff account acting (its post decides)")
    act.add_argument("errand", help="the errand's id or its receipt number")
    act.add_argument("step", type=_act_step, metavar="STEP", help="the step: " + ", ".join(ACT_STEPS))
    act.add_argument(
        "--field", action="append", default=[], metavar="KEY=VALUE", help="a field of the step's body (repeatable)"
    )
    act.add_argument("--json", action="store_true", help="print the result as JSON")
    act.set_defaults(func=lambda a: run_act(a.config, a.account, a.errand, a.step, a.field, as_json=a.json))


def _upload_refused(step: str) -> str:
    return (
        f"{step} carries a file, which the command line does not upload: use the errand's page (附件 Attach) "
        "or POST /api/errands/{id}/attachments"
    )


def _act_step(step: str) -> str:
    """argparse's check of ``act``'s STEP: a step the command line can take (not one that uploads a file)."""
    if step in UPLOADS:
        raise argparse.ArgumentTypeError(_upload_refused(step))
    if step not in ACT_STEPS:
        raise argparse.ArgumentTypeError(f"invalid choice: {step!r} (choose from {', '.join(ACT_STEPS)})")
    return step


# -- running one command: every failure is exit 2 with a stable first word ---------------------------


def _emit_error(as_json: bool, body: Mapping[str, object], lines: list[str]) -> None:
    if as_json:
        print(json.dumps(body, ensure_ascii=False), file=sys.stderr)
    else:
        print("\n".join(lines), file=sys.stderr)


def _run(work: Coroutine[Any, Any, int], *, as_json: bool) -> int:
    try:
        return asyncio.run(work)
    except Exception as exc:
        work.close()
        return _failed(exc, as_json=as_json)


def _failed(exc: Exception, *, as_json: bool) -> int:
    """Report a failure on stderr (exit 2), or raise it again when it is not one this command expects."""
    if isinstance(exc, ActionRefused):
        zh, en = bilingual(exc.refusal)
        _emit_error(as_json, exc.as_dict(), [f"refused: {exc.refusal.code}", zh, en])
    elif isinstance(exc, roles.PlaceRefused):
        _emit_error(as_json, exc.as_dict(), [f"denied: {exc.refusal}", exc.message_zh, exc.message])
    elif isinstance(exc, PermissionDeniedException):
        zh = str(getattr(exc, "message_zh", ""))  # the guard's refusals say themselves in Chinese too
        body = {"error": "forbidden", "message": exc.detail, **({"message_zh": zh} if zh else {})}
        _emit_error(as_json, body, [f"denied: {zh}", exc.detail] if zh else [f"denied: {exc.detail}"])
    elif isinstance(exc, ConfigError | SanjiError | OSError | msgspec.MsgspecError):
        said = say.error_pair(exc)
        hint = exc.hint if isinstance(exc, SanjiError) else ""
        body = {"error": "bad_request", "message": said.en, "hint": hint, "message_zh": said.zh}
        told = say.hint_pair(hint)
        lines = [f"error: {said.zh} {said.en}"] + (
            [f"hint: {told.zh} {told.en}".replace("hint:  ", "hint: ")] if hint else []
        )
        _emit_error(as_json, body, lines)
    else:
        raise exc
    return 2


class _CliCaller(Caller):
    """The caller of one command: the named account through channel ``cli``, else ``cli:<OS user>``;
    every event it writes also names the OS user who ran the command (``os_user``)."""

    @property
    def who(self) -> Who:
        return cli_who(self.principal.name if self.principal is not None else "")

    async def refuse_account(self, name: str, role: str, what: str, reason: str) -> None:
        """Audit a command refused because ``--account`` names no active staff account of this level."""
        base = {**self._base(), "actor": name[:64], "role": roles.label(role) if role else ""}
        await self.auth.record(ev.AccessDenied(**base, what=f"{CHANNEL} {what}"[:200], reason=reason))

    async def require(self, capability: str, what: str) -> None:
        """Refuse (audited, as the API's route check does) an account whose role lacks ``capability``."""
        p = self.principal
        if p is not None and not roles.may(p.role, capability):
            reason = f"a {p.label_en} may not {what}"
            await self.auth.record(ev.AccessDenied(**self._base(), what=f"{CHANNEL} {what}", reason=reason))
            raise Forbidden(reason, zh=f"本岗位（{p.label}）无权进行此操作（{what}）")


class _CliService(GuardedService):
    """The API's guarded service; it also keeps the id of the step it built (what ``act`` prints)."""

    taken = ""

    def _build(self, form: ActionForm, state: ErrandState, common: dict[str, Any], at: int) -> Action:
        action = super()._build(form, state, common, at)
        self.taken = action.id
        return action


@dataclass
class _Desk:
    store: Store
    context: NodeContext
    caller: _CliCaller

    @property
    def service(self) -> _CliService:
        return _CliService(self.store, self.context, self.caller)


async def _principal(auth: AuthService, name: str, what: str) -> Principal:
    """The account as a logged-in caller: it exists, is active and works at this node's level.

    A refusal is audited (``denied``, by ``cli:<OS user>``, the name given as the actor): the command
    asks for no password, so an attempt at an account that is not there is worth a line in the log."""
    account = await auth.book.account(name=name)
    if account is None:
        reason = "no such account"
    elif not account.active:
        reason = "the account is disabled"
    elif not roles.works_at(account.role, auth.node_role):
        reason = f"a {roles.ROLE_LABELS_EN.get(account.role, account.role)} does not work at a {auth.node_role} node"
    else:
        return Principal.of(account, CHANNEL)
    await _CliCaller(None, auth).refuse_account(name, account.role if account else "", what, reason)
    raise BadArguments(
        f"{name!r} is not an active staff account at {auth.node_id}",
        zh=f"不是本节点（{auth.node_id}）在用的工作人员账号：{name}",
        hint="sanji accounts list shows the node's accounts; sanji accounts add creates one",
    )


@asynccontextmanager
async def _desk(settings: NodeSettings, account: str | None, what: str) -> AsyncIterator[_Desk]:
    async with node_store(settings, store_type=AuditedStore) as (store, context):
        auth = AuthService(AuthBook(store.db), settings.auth, node_id=settings.node.id, node_role=settings.node.role)
        principal = await _principal(auth, account, what) if account is not None else None
        yield _Desk(store, context, _CliCaller(principal, auth))


def _with_desk(
    config: str, account: str | None, what: str, work: Callable[[_Desk], Awaitable[int]]
) -> Coroutine[Any, Any, int]:
    async def main() -> int:
        async with _desk(load_settings(config), account, what) as desk:
            return await work(desk)

    return main()


async def errand_by_ref(store: Store, ref: str) -> str:
    """An errand id, or the id of the errand with that receipt number."""
    if await store.errand(ref) is not None:
        return ref
    rows, _ = await store.errands(receipt=ref, limit=1)
    if not rows:
        raise BadArguments(
            f"no errand {ref!r} is held at {store.node_id}",
            zh=f"本节点（{store.node_id}）没有办件 {ref}",
            hint="sanji errand list shows them",
        )
    return str(rows[0]["id"])


def _taken(action: str, projection: Projection) -> Taken:
    receipt = projection.state.receipt if projection.state is not None else ""
    return Taken(**msgspec.structs.asdict(action_result(projection)), action=action, receipt=receipt)


def _print_taken(taken: Taken, as_json: bool) -> None:
    if as_json:
        print(msgspec.json.encode(taken).decode())
    else:
        print(taken.action)


# -- the commands -----------------------------------------------------------------------------------


def run_list(config: str, *, stage: str | None = None, limit: int = 100, as_json: bool = False) -> int:
    if not 1 <= limit <= MAX_LIST:
        refused = BadArguments(
            f"--limit is 1 to {MAX_LIST}, not {limit}", zh=f"条数（--limit）应在 1 到 {MAX_LIST} 之间"
        )
        return _failed(refused, as_json=as_json)

    async def work(desk: _Desk) -> int:
        rows, total = await desk.store.errands(stage=stage, limit=limit)
        today = desk.context.today()
        items = [msgspec.convert(summarise(r, desk.context, today), ErrandSummary) for r in rows]
        if as_json:
            print(msgspec.json.encode({"total": total, "items": items}).decode())
            return 0
        for e in items:
            light = e.deadline.level if e.deadline else "—"
            due = e.deadline.due if e.deadline else "—"
            print(f"{e.id}\t{e.receipt}\t{e.matter}\t{e.stage}\t{due}\t{light}")
        say.info(
            f"{desk.store.node_id} 共有 {total} 件办件，列出 {len(items)} 件",
            f"{len(items)} of {total} errands at {desk.store.node_id}",
            file=sys.stderr,
        )
        return 0

    return _run(_with_desk(config, None, "list", work), as_json=as_json)


def run_show(
    config: str, errand: str, *, post: str | None = None, account: str | None = None, as_json: bool = False
) -> int:
    async def work(desk: _Desk) -> int:
        store, caller = desk.store, desk.caller
        await caller.require(roles.PERSONAL, "see an errand's detail")
        errand_id = await errand_by_ref(store, errand)
        row = await store.errand(errand_id, include_complaints=caller.sees_complaints)
        if row is None or row["stage"] == "incomplete":
            raise BadArguments(
                f"no errand {errand!r} is held at {store.node_id}", zh=f"本节点（{store.node_id}）没有办件 {errand}"
            )
        row["history"] = mask_history(caller.history(row["history"]))
        await caller.read("errand", errand=errand_id, detail=CHANNEL)
        await caller.read_complaints(sum(h["kind"] == "complain" for h in row["history"]), CHANNEL, errand=errand_id)
        as_post = post or (caller.principal.role if caller.principal else "")
        state = (await store.errand_states([errand_id])).get(errand_id)
        p = caller.principal if not post else None  # ``--post`` asks of a post, not of an account's place
        materials = materials_of(row, row["history"], desk.context)
        steps = offered_steps(
            state,
            store.node_id,
            store.directory,
            post=as_post,
            node_role=caller.node_role,
            department=p.department if p is not None else "",
            window=p.window if p is not None else "",
            materials=materials,
            history=row["history"],
        )
        binding = await errand_binding(desk.context, row.get("state"))
        warning = ""
        if binding is not None and binding.status == "mismatch":
            steps = [s for s in steps if s not in BOUND_STEPS]
            warning = f"{binding.message_zh} / {binding.message}"
        view = {**summarise(row, desk.context), "post": as_post, "steps": steps, "binding_mismatch": warning}
        view["binding"] = binding
        view["materials"] = materials
        out = msgspec.convert(view, ErrandOut)
        if as_json:
            print(msgspec.json.encode(out).decode())
            return 0
        light = f" {out.deadline.level}" if out.deadline else ""
        print(f"{out.id}  {out.receipt}  {out.matter} {out.matter_name}  {out.applicant_name}")
        print(
            f"{say.both('阶段', 'stage')} {out.stage}（{out.stage_label}）  {say.both('持有节点', 'holder')} "
            f"{out.holder}  {say.both('版本', 'version')} {out.version}"
        )
        if out.deadline:
            print(f"{say.both('办结时限', 'due')} {out.deadline.due}{light}")
        for h in out.history:
            acting = f" (代 {h['acting_for']})" if h.get("acting_for") else ""
            status = h.get("status", "applied")
            print(f"  {h['kind']}\t{h['actor']} {h['role']}{acting}\t{h['node']}\t{status}\t{h.get('id', '')}")
        print(f"{say.both('已收材料', 'materials held')}: {'、'.join(materials.held) or '—'}")
        if materials.missing_main or materials.missing_secondary:
            print(
                f"{say.both('缺少材料', 'materials missing')}: {say.both('主件', 'main')} "
                f"{'、'.join(materials.missing_main) or '—'}; {say.both('副件', 'secondary')} "
                f"{'、'.join(materials.missing_secondary) or '—'}"
            )
        if out.binding_mismatch:
            print(f"WARNING {out.binding_mismatch}")
        elif out.binding is not None:  # cannot be checked here: said, as the errand page says it, and let through
            print(f"NOTE {out.binding.message_zh} / {out.binding.message}")
        now = say.both(
            f"当前可办步骤{'（' + as_post + '）' if as_post else ''}",
            f"steps now{' for ' + as_post if as_post else ''}",
        )
        print(f"{now}: {', '.join(steps) or '—'}")
        return 0

    return _run(_with_desk(config, account, f"show {errand}", work), as_json=as_json)


def _read_body(source: str) -> bytes:
    if source == "-":
        data = sys.stdin.buffer.read(MAX_BODY + 1)
    else:
        with Path(source).open("rb") as f:
            data = f.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise BadArguments(f"the registration's body is over {MAX_BODY} bytes", zh=f"登记内容超过 {MAX_BODY} 字节")
    return data


def run_register(config: str, account: str, body: str, *, as_json: bool = False) -> int:
    async def work(desk: _Desk) -> int:
        form = msgspec.json.decode(_read_body(body), type=RegisterForm)
        projection = await desk.service.register(form)
        taken = _taken(projection.main[0] if projection.main else "", projection)
        if as_json:
            print(msgspec.json.encode(taken).decode())
        else:
            print(f"{taken.errand}\t{taken.receipt}\t{taken.action}")
        return 0

    return _run(_with_desk(config, account, "register", work), as_json=as_json)


def step_form(step: str, account: str, fields: list[str]) -> ActionForm:
    """The body of ``POST /api/errands/{id}/actions`` from ``key=value`` pairs (typed as the API's)."""
    if step in UPLOADS:
        raise BadArguments(
            _upload_refused(step), zh=f"该环节须上传文件（{step}），命令行不上传：请在办件页面（附件）办理"
        )
    body: dict[str, Any] = {"kind": step, "actor": account}
    for item in fields:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadArguments(f"--field {item!r} is not key=value", zh="每个 --field 应写成 字段=值")
        if key in FILLED:
            raise BadArguments(
                f"--field {key} is not yours to set: the command line fills it",
                zh=f"该字段由命令行自动填写，不能指定：{key}",
            )
        if key in LIST_FIELDS:
            body.setdefault(key, []).append(value)
        elif key in body:
            raise BadArguments(f"--field {key} is given twice", zh=f"同一字段给了两次：--field {key}")
        else:
            body[key] = value
    return msgspec.convert(body, ActionForm, strict=False)


def run_act(config: str, account: str, errand: str, step: str, fields: list[str], *, as_json: bool = False) -> int:
    async def work(desk: _Desk) -> int:
        form = step_form(step, account, fields)
        service = desk.service
        projection = await service.act(await errand_by_ref(desk.store, errand), form)
        _print_taken(_taken(service.taken, projection), as_json)
        return 0

    return _run(_with_desk(config, account, f"act {errand} {step}", work), as_json=as_json)
