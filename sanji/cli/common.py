"""Opening a node's store from its config, for commands that work on a node's files directly; writing a command's
output file whole or not at all (``write_out``)."""

from __future__ import annotations

import getpass
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sanji.auth.book import Who
from sanji.cli import say
from sanji.config import NodeSettings
from sanji.context import NodeContext
from sanji.keys import read_key
from sanji.node_directory import directory_entries, node_directory
from sanji.private_files import write_whole
from sanji.store import Store, open_database
from sanji.store.trustbook import TrustBook
from sanji.workcalendar import load_calendar

CLI = "cli"


def write_out(out: Path, data: bytes, *, usb: bool = False, stdout: bool = False) -> bool:
    """``data`` at ``out`` whole or not at all (``sanji.private_files.write_whole``). A path it cannot write (a
    folder named, a stick not mounted, no permission) is said Chinese first on stderr and ``False`` returned, no
    half file left behind (an export holds personal data). ``usb``: the file is to be carried, so its folder is
    not made (an unmounted stick's mount point would take personal data onto this disk) and the message asks
    whether the stick is in; any other output's folder is made first. ``stdout``: said where the command says its
    other refusals (``sanji export``), not on stderr."""
    try:
        if not usb:
            out.parent.mkdir(parents=True, exist_ok=True)
        write_whole(out, data)
    except OSError as exc:
        stick_zh, stick_en = ("U 盘是否已插好？", "is the USB stick mounted? ") if usb else ("", "")
        say.error(
            f"无法写出 {out}（{stick_zh}请给出文件路径，而不是文件夹），未写出任何文件",
            f"cannot write {out}: {exc.strerror or exc} ({stick_en}name a file, not a folder); nothing was written",
            file=sys.stdout if stdout else sys.stderr,
        )
        return False
    return True


def os_user() -> str:
    """The operating-system user running this command (``unknown`` when the system cannot name it)."""
    try:
        return getpass.getuser()[:64]
    except (KeyError, OSError):
        return "unknown"


def cli_who(account: str = "") -> Who:
    """The caller of a command, for the audit log: channel ``cli`` and always the OS user who ran it.

    ``account`` is the staff account the command acts as (``sanji errand --account``); a command that
    acts as no account (``sanji accounts``, ``sanji errand show`` without ``--account``) is ``cli:<OS user>``.
    """
    user = os_user()
    return Who(account=(account or f"{CLI}:{user}")[:64], via=CLI, os_user=user)


@asynccontextmanager
async def node_store(
    settings: NodeSettings, *, store_type: type[Store] = Store
) -> AsyncIterator[tuple[Store, NodeContext]]:
    """The node's store and context, opened beside a node that may be running: every write goes through
    the database's one writer door (``BEGIN IMMEDIATE``), so the running node and this command take turns.
    ``store_type=AuditedStore`` writes each local action's audit event in the action's own transaction."""
    key = read_key(settings.path(settings.node.key_file), passphrase_env=settings.node.key_passphrase_env)
    db = await open_database(
        settings.db_url, backup_dir=settings.backup_dir, node=settings.node.id, role=settings.node.role
    )
    try:
        store = store_type(db, node_id=settings.node.id, key=key, directory=await node_directory(settings, db))
        await store.start()
        await TrustBook(store, base=directory_entries(settings), required=settings.trust.required).load()
        context = NodeContext(store, load_calendar())
        await context.load()
        yield store, context
    finally:
        await db.dispose()
