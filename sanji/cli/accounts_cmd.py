"""``sanji accounts``: staff accounts, API tokens and the audit log of one node.

    sanji accounts add --config NODE.toml --name 王芳 --role window_a        (asks for the password twice)
    sanji accounts add --config county.toml --name 赵敏 --role approver --department 县民政局
    sanji accounts edit --config town.toml --name 王芳 --window 综合窗口      (--department/--window "": clear)
    sanji accounts edit --config county.toml --name zhangsan --display-name 张三   (the name scores give; "": none)
    sanji accounts create --config NODE.toml --name 李主任 --role admin       ("create" is "add" by another name)
    echo "$PW" | sanji accounts add --config NODE.toml --name 王芳 --role window_a --password-stdin
    sanji accounts list|passwd|disable|enable|unlock --config NODE.toml [--name 王芳]
    sanji accounts token --config NODE.toml --name 王芳 [--label scanner]   (prints the token once)
    sanji accounts revoke-token --config NODE.toml --id 3
    sanji accounts log --config NODE.toml [--errand ID] [--limit 50]        (the audit log; checks its chain)

Works on the node's database directly (the node may be running: writes take the same
single-writer path). Every change is written to the audit log as done by ``cli:<OS user>``.
A password typed here (``add``/``create``/``passwd``) is the operator's own choice for the holder and is
not must-change; the passwords the system generates (the administrator's desk, the first start) are.
Roles: village_agent (代办员), window_a (窗口A岗), window_b (窗口B岗), director (中心主任),
approver (部门审批), supervisor (监察督查), inspector (纪检), admin (管理员).

Where an account sits (``sanji.auth.roles.place_refusal``): ``--department`` names the county department
it answers for, as the catalogue names it (县民政局: its 联办 sub-tasks, the 上报件 escalated to it; a post at
the county), ``--window`` the window whose 督办 urgings it answers, as an urging names it, and whose errands it
handles once accepted or assigned there (综合窗口; a post at a township or the county:
``roles.window_step_refusal``). Without either it acts for the whole node. Where the node holds a catalogue, a
department must be one it names and a window one it or an errand held here names (``roles.unknown_place``): a
misspelt place would bind the account to what no errand ever names. A node with no catalogue yet takes any.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeVar

from protocol.deadlines import CHINA_STANDARD_TIME
from protocol.errors import SanjiError
from sanji.auth import events as ev
from sanji.auth import roles
from sanji.auth.book import AuthBook
from sanji.auth.places import held_catalogue, known_places
from sanji.auth.service import AuthService
from sanji.bilingual import Pair
from sanji.cli import say
from sanji.cli.common import cli_who
from sanji.config import ConfigError, NodeSettings, load_settings
from sanji.node_directory import node_directory
from sanji.store import open_database

T = TypeVar("T")
DEPARTMENT_HELP = "the county department it answers for, as the catalogue names it (a post at the county)"
# An account's state in the roster (``AuthService.roster``), Chinese first.
STATES_ZH_EN = {"active": ("已启用", "active"), "disabled": ("已停用", "disabled")}
DISPLAY_NAME_HELP = (
    "the name its holder goes by where the login is another (张三 for zhangsan): scores and appeals name them by it"
)
WINDOW_HELP = (
    "the window whose 督办 urgings it answers, as an urging names it, and whose accepted or assigned errands it "
    "handles (a township's or the county's post)"
)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("accounts", help="staff accounts, API tokens and the audit log of a node")
    inner = p.add_subparsers(dest="action", required=True)

    def command(
        name: str, help_text: str, *, named: bool = True, aliases: tuple[str, ...] = ()
    ) -> argparse.ArgumentParser:
        cmd: argparse.ArgumentParser = inner.add_parser(name, help=help_text, aliases=list(aliases))
        cmd.add_argument("--config", required=True, help="the node's TOML config")
        if named:
            cmd.add_argument("--name", required=True, help="the account's name (what the person types to log in)")
        return cmd

    add = command(
        "add", "create an account (also: create; the first administrator before the first start)", aliases=("create",)
    )
    add.add_argument("--role", required=True, choices=roles.STAFF_ROLES)
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--department", default="", help=DEPARTMENT_HELP)
    add.add_argument("--window", default="", help=WINDOW_HELP)
    add.add_argument("--display-name", default="", help=DISPLAY_NAME_HELP)
    add.set_defaults(
        func=lambda a: run_add(
            a.config,
            a.name,
            a.role,
            read_password(a.password_stdin),
            department=a.department,
            window=a.window,
            display_name=a.display_name,
        )
    )
    edit = command("edit", "set or clear where an account sits (its county department, its window) or its display name")
    edit.add_argument("--department", help=DEPARTMENT_HELP + ' ("" clears it; left out: unchanged)')
    edit.add_argument("--window", help=WINDOW_HELP + ' ("" clears it; left out: unchanged)')
    edit.add_argument("--display-name", help=DISPLAY_NAME_HELP + ' ("" clears it; left out: unchanged)')
    edit.set_defaults(
        func=lambda a: run_edit(a.config, a.name, department=a.department, window=a.window, display_name=a.display_name)
    )
    command("list", "list the accounts", named=False).set_defaults(func=lambda a: run_list(a.config))
    pw = command("passwd", "set a new password (ends the account's sessions and revokes its API tokens)")
    pw.add_argument(
        "--keep-tokens",
        action="store_true",
        help="keep the account's API tokens (a forgotten password; not after a suspected compromise)",
    )
    pw.add_argument("--password-stdin", action="store_true")
    pw.set_defaults(
        func=lambda a: run_passwd(a.config, a.name, read_password(a.password_stdin), keep_tokens=a.keep_tokens)
    )
    command("disable", "disable an account (ends its sessions; its tokens stop working)").set_defaults(
        func=lambda a: run_active(a.config, a.name, False)
    )
    command("enable", "enable a disabled account").set_defaults(func=lambda a: run_active(a.config, a.name, True))
    command("unlock", "lift a lock-out after failed logins").set_defaults(func=lambda a: run_unlock(a.config, a.name))
    token = command("token", "issue a bearer token for the JSON API (printed once, stored hashed)")
    token.add_argument("--label", default="", help="what the token is for, e.g. the scanner at window 2")
    token.set_defaults(func=lambda a: run_token(a.config, a.name, a.label))
    revoke = command("revoke-token", "revoke a bearer token", named=False)
    revoke.add_argument("--id", type=int, required=True, help="the token's id (sanji accounts list shows them)")
    revoke.set_defaults(func=lambda a: run_revoke(a.config, a.id))
    log = command("log", "print the audit log (who, role, where, when, what) and check its chain", named=False)
    log.add_argument("--errand", help="only events about this errand")
    log.add_argument("--limit", type=int, default=50)
    log.set_defaults(func=lambda a: run_log(a.config, errand=a.errand, limit=a.limit))


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("新密码 New password: ")
    if getpass.getpass("再输一次 Again: ") != first:
        return "\0mismatch"
    return first


@asynccontextmanager
async def _service(settings: NodeSettings) -> AsyncIterator[AuthService]:
    db = await open_database(settings.db_url)
    try:

        async def places() -> roles.KnownPlaces | None:
            # Read only when a department or window is given, as the running node's accounts page reads it.
            catalogue = await held_catalogue(db, lambda: node_directory(settings, db), settings.node.id)
            return await known_places(db, catalogue, settings.node.id, configured_windows=settings.sms.windows)

        yield AuthService(
            AuthBook(db), settings.auth, node_id=settings.node.id, node_role=settings.node.role, places=places
        )
    finally:
        await db.dispose()


def _run(config: str, work: Callable[[AuthService], Awaitable[int]]) -> int:
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        say.failure(exc)
        return 2

    async def main() -> int:
        async with _service(settings) as service:
            return await work(service)

    try:
        return asyncio.run(main())
    except SanjiError as exc:  # an account refusal a desk also shows: its Chinese first
        say.failure(exc)
        return 2


def _place(department: str, window: str) -> Pair:
    zh = "，".join(p for p in (f"部门 {department}" if department else "", f"窗口 {window}" if window else "") if p)
    en = ", ".join(
        p for p in (f"department {department}" if department else "", f"window {window}" if window else "") if p
    )
    return Pair(zh or "本节点全部业务", en or "the whole node")


def run_add(
    config: str,
    name: str,
    role: str,
    password: str,
    *,
    department: str = "",
    window: str = "",
    display_name: str = "",
) -> int:
    if password == "\0mismatch":
        say.error("两次输入的密码不一致", "the two passwords differ")
        return 2

    async def work(service: AuthService) -> int:
        account = await service.add_account(
            name, role, password, by=cli_who(), department=department, window=window, display_name=display_name
        )
        place = _place(account.department, account.window)
        shown = f"（{account.display_name}）" if account.display_name else ""
        say.info(
            f"已在 {service.node_id} 新建账号 {account.name}{shown}（{roles.label(account.role)} {account.role}），"
            f"负责{place.zh}",
            f"account {account.name}{f' ({account.display_name})' if account.display_name else ''} "
            f"({roles.label(account.role)} {account.role}) added at {service.node_id}, acting for {place.en}",
        )
        return 0

    return _run(config, work)


def run_edit(
    config: str,
    name: str,
    *,
    department: str | None = None,
    window: str | None = None,
    display_name: str | None = None,
) -> int:
    if department is None and window is None and display_name is None:
        say.error(
            "请给出 --department、--window 或 --display-name（给空值即清除）",
            "give --department or --window, or --display-name (an empty one clears it)",
        )
        return 2

    async def work(service: AuthService) -> int:
        if display_name is not None:
            account = await service.rename(name, display_name, by=cli_who())
            say.info(
                f"{account.name} 的显示姓名现为“{account.display_name}”"
                if account.display_name
                else f"{account.name} 不再有显示姓名（以登录名为姓名）",
                f"{account.name} now goes by {account.display_name!r}"
                if account.display_name
                else f"{account.name} has no display name now (its login is its name)",
            )
        if department is None and window is None:
            return 0
        account = await service.place(name, by=cli_who(), department=department, window=window)
        place = _place(account.department, account.window)
        say.info(
            f"{account.name} 现负责{place.zh}（自其下一次请求起）",
            f"{account.name} now acts for {place.en} (from its next request)",
        )
        return 0

    return _run(config, work)


def run_passwd(config: str, name: str, password: str, *, keep_tokens: bool = False) -> int:
    if password == "\0mismatch":
        say.error("两次输入的密码不一致", "the two passwords differ")
        return 2

    async def work(service: AuthService) -> int:
        revoked = await service.set_password(name, password, by=cli_who(), keep_tokens=keep_tokens)
        if keep_tokens:
            say.info(
                f"{name} 的密码已修改；其登录会话已结束，API 令牌保留（--keep-tokens）",
                f"password of {name} changed; its sessions are ended, its API tokens kept (--keep-tokens)",
            )
        else:
            say.info(
                f"{name} 的密码已修改；其登录会话已结束，{revoked} 个 API 令牌已撤销"
                + ("（请用 `sanji accounts token` 另发新令牌）" if revoked else ""),
                f"password of {name} changed; its sessions are ended and its {revoked} API token(s) revoked"
                + (" (issue new ones with `sanji accounts token`)" if revoked else ""),
            )
        return 0

    return _run(config, work)


def run_active(config: str, name: str, active: bool) -> int:
    async def work(service: AuthService) -> int:
        await service.set_active(name, active, by=cli_who())
        say.info(f"{name} {'已启用' if active else '已停用'}", f"{name} {'enabled' if active else 'disabled'}")
        return 0

    return _run(config, work)


def run_unlock(config: str, name: str) -> int:
    async def work(service: AuthService) -> int:
        await service.unlock(name, by=cli_who())
        say.info(f"{name} 已解锁", f"{name} unlocked")
        return 0

    return _run(config, work)


def run_token(config: str, name: str, label: str = "") -> int:
    async def work(service: AuthService) -> int:
        token_id, token = await service.issue_token(name, label, by=cli_who())
        # the token last, alone on its line: what a script reads
        say.info(f"{name} 的令牌 {token_id}，只在此显示一次：", f"token {token_id} for {name}; it is shown only now:")
        print(token)
        return 0

    return _run(config, work)


def run_revoke(config: str, token_id: int) -> int:
    async def work(service: AuthService) -> int:
        if not await service.revoke_token(token_id, by=cli_who()):
            say.error(f"没有有效的令牌 {token_id}", f"no live token {token_id}")
            return 2
        say.info(f"令牌 {token_id} 已撤销", f"token {token_id} revoked")
        return 0

    return _run(config, work)


def _when(seconds: float | None) -> str:
    if not seconds:
        return "—"
    return datetime.fromtimestamp(seconds, CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M")


def run_list(config: str) -> int:
    async def work(service: AuthService) -> int:
        for line in await service.roster():
            account = line.account
            state = (
                say.both(f"锁定至 {_when(line.locked_until)}", f"locked until {_when(line.locked_until)}")
                if line.locked_until
                else say.both(*STATES_ZH_EN.get(line.state, (line.state, "")))
            )
            if account.must_change_password:  # a generated password not yet replaced: someone else may know it
                state += " · 待本人改密 must change password"
            login = say.both("最近登录", f"last login {_when(account.last_login_at)}")
            shown = account.display_name
            print(
                f"{account.name}\t{account.role}\t{roles.label(account.role)}\t{state}\t"
                f"{login}\t{say.both(*_place(account.department, account.window))}"
                + (f"\t{say.both(f'显示姓名 {shown}', f'goes by {shown}')}" if shown else "")
            )
            for tok in line.tokens:
                when = _when(tok.revoked_at)
                status = say.both(f"已撤销 {when}", f"revoked {when}") if tok.revoked_at else say.both("有效", "live")
                used = say.both("最近使用", f"last used {_when(tok.last_used_at)}")
                print(f"  {say.both('令牌', 'token')} {tok.id}\t{tok.label or '-'}\t{status}\t{used}")
        return 0

    return _run(config, work)


def _describe(event: ev.Event) -> str:
    skip = {"at", "node", "actor", "role", "acting_for", "account", "via", "ip", "errand", "os_user"}
    fields = {f: getattr(event, f) for f in event.__struct_fields__ if f not in skip}
    return " ".join(f"{k}={v}" for k, v in fields.items() if v not in ("", None))


def run_log(config: str, *, errand: str | None = None, limit: int = 50) -> int:
    async def work(service: AuthService) -> int:
        events = await service.book.events(errand=errand, limit=100_000)
        for event in events[-limit:]:
            acting = f" (代 {event.acting_for})" if event.acting_for else ""
            os_user = f", OS user {event.os_user}" if event.os_user else ""
            account = f" [{event.account} via {event.via}{os_user}]" if event.account or event.via else ""
            print(
                f"{_when(event.at)}\t{event.node}\t{ev.tag_of(event)}\t{event.actor}\t{event.role}{acting}"
                f"{account}\t{event.errand}\t{_describe(event)}"
            )
        broken = await service.book.verify_chain()
        if broken:
            say.error(f"审计链断开，断在第 {broken[:10]} 行", f"the audit chain is broken at rows {broken[:10]}")
            return 1
        say.info(
            f"审计链完整（{'办件 ' + errand + ' 的' if errand else ''}{len(events)} 条记录）",
            f"audit chain intact ({len(events)} events{' about ' + errand if errand else ''})",
        )
        return 0

    return _run(config, work)
