"""SQLAlchemy's asyncio engine without its ORM session, which no node uses (issue 16: a village idles under 80 MB).

``sqlalchemy.ext.asyncio``'s ``__init__`` imports ``AsyncSession`` and the scoped session beside the engine,
and with them the whole ORM (``sqlalchemy.orm``, ≈ 4 MB resident). The store speaks SQLAlchemy Core through
``AsyncEngine`` and ``AsyncConnection`` only, so on import of this module the package holds the engine's and
the results' names alone (``sanji.lean_import``); ``from sqlalchemy.ext.asyncio import AsyncSession`` still
works, and loads the ORM then.
"""

from __future__ import annotations

from sanji.lean_import import lean_package

lean_package(
    "sqlalchemy.ext.asyncio",
    {
        "engine": (
            "AsyncConnection",
            "AsyncEngine",
            "AsyncTransaction",
            "async_engine_from_config",
            "create_async_engine",
            "create_async_pool_from_url",
        ),
        "result": ("AsyncMappingResult", "AsyncResult", "AsyncScalarResult", "AsyncTupleResult"),
    },
)
