"""The tree a node starts with: its certificates over its hand-written directory.json."""

from __future__ import annotations

import time

from protocol.errors import SanjiError
from protocol.topology import Directory, NodeEntry
from sanji.config import NodeSettings
from sanji.keys import read_directory
from sanji.store.engine import Database
from sanji.store.trustbook import read_trust_state


def directory_entries(settings: NodeSettings) -> list[NodeEntry]:
    """The hand-configured tree (directory.json), or nothing when the node runs on certificates alone."""
    if settings.trust.required or not settings.node.directory:
        return []
    return read_directory(settings.path(settings.node.directory)).nodes()


async def node_directory(settings: NodeSettings, db: Database) -> Directory:
    """The tree this node starts with: its certificates over directory.json (either may be absent)."""
    base = directory_entries(settings)
    state = await read_trust_state(db, now_ms=int(time.time() * 1000))
    if state is None:
        if settings.trust.required:
            raise SanjiError(
                f"node {settings.node.id} holds no certificate and [trust] required = true",
                hint="Enroll it with a token from its parent: `sanji enroll join --config ... --token ...`.",
            )
        if not base:
            raise SanjiError(f"node {settings.node.id} has neither a directory file nor a certificate")
        return Directory(base)
    return state.directory([] if settings.trust.required else base)
