"""Opening a node's store from its config, for commands that work on a node's files directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sanji.config import NodeSettings
from sanji.context import NodeContext
from sanji.keys import read_directory, read_key
from sanji.store import Store, open_database
from sanji.workcalendar import load_calendar


@asynccontextmanager
async def node_store(settings: NodeSettings) -> AsyncIterator[tuple[Store, NodeContext]]:
    directory = read_directory(settings.path(settings.node.directory))
    key = read_key(settings.path(settings.node.key_file))
    db = await open_database(settings.db_url)
    try:
        store = Store(db, node_id=settings.node.id, key=key, directory=directory)
        await store.start()
        overrides = settings.path(settings.node.calendar_overrides) if settings.node.calendar_overrides else None
        context = NodeContext(store, load_calendar(overrides))
        await context.load()
        yield store, context
    finally:
        await db.dispose()
