"""Opening a node's store from its config, for commands that work on a node's files directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sanji.config import NodeSettings
from sanji.context import NodeContext
from sanji.keys import read_key
from sanji.node_directory import directory_entries, node_directory
from sanji.store import Store, open_database
from sanji.store.trustbook import TrustBook
from sanji.workcalendar import load_calendar


@asynccontextmanager
async def node_store(settings: NodeSettings) -> AsyncIterator[tuple[Store, NodeContext]]:
    key = read_key(settings.path(settings.node.key_file), passphrase_env=settings.node.key_passphrase_env)
    db = await open_database(settings.db_url, backup_dir=settings.backup_dir, node=settings.node.id)
    try:
        store = Store(db, node_id=settings.node.id, key=key, directory=await node_directory(settings, db))
        await store.start()
        await TrustBook(store, base=directory_entries(settings), required=settings.trust.required).load()
        context = NodeContext(store, load_calendar())
        await context.load()
        yield store, context
    finally:
        await db.dispose()
