"""What every part of the node's store shares (``sanji.store.repo.Store`` is made of these parts).

The store is one object with one set of public methods, written in parts by subject (``blobs``,
``traffic``, ``eventlog``, ``documents``, ``views``, ``notifications``; the ledger core stays in
``repo``). Each part is a mixin over ``Section``: the attributes below are set once by
``Store.__init__`` and changed only by it (``use_directory``, ``use_key``, ``start``), so every part
reads the same node, directory and keys without handing them around.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.hlc import HybridClock
from protocol.sealing import SealingKey
from protocol.topology import Directory
from sanji.store.engine import Database

INCOMPLETE = "incomplete"  # actions arrived before the errand's registration


class Section:
    """The state every part of the store reads; set by ``Store.__init__``."""

    db: Database
    node_id: str
    directory: Directory
    sealing_key: SealingKey | None
    clock: HybridClock
    instance_id: str
    _subtree: frozenset[str]

    def _write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        # The database's one writer door (``Database.write``), never a transaction of the part's own.
        return self.db.write()
