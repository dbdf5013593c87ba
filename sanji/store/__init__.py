"""Storage: one SQLAlchemy schema, Alembic migrations, SQLite or PostgreSQL."""

from sanji.store.engine import Database, open_database
from sanji.store.repo import Store

__all__ = ["Database", "Store", "open_database"]
