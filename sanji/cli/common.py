"""Opening a node's store from its config, for commands that work on a node's files directly; writing a command's
output file whole or not at all (``write_whole``)."""

from __future__ import annotations

import getpass
import os
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
from sanji.store import Store, open_database
from sanji.store.trustbook import TrustBook
from sanji.workcalendar import load_calendar

CLI = "cli"


def write_whole(out: Path, data: bytes, *, part: str = ".tmp", fsync: bool = False) -> bool:
    """``data`` at ``out``, its folder made first, through ``out`` + ``part`` renamed into place: the file is whole or
    absent. A path it cannot write (a folder named, no permission) is said Chinese first on stderr and ``False``
    returned, the half file removed (an export holds personal data)."""
    tmp = out.with_name(out.name + part)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        say.error(
            f"无法写出 {out}（请给出文件路径，而不是文件夹），未写出任何文件",
            f"cannot write {out}: {exc.strerror or exc} (name a file, not a folder); nothing was written",
            file=sys.stderr,
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
