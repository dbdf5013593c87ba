"""Storage: one SQLAlchemy schema, Alembic migrations, SQLite or PostgreSQL."""

from sanji.store import lean_asyncio  # noqa: F401  first: the engine then loads without the ORM (issue 16)
from sanji.store.engine import Database, ReadOnlyReplica, open_database
from sanji.store.repo import Store

__all__ = ["Database", "ReadOnlyReplica", "Store", "open_database"]
