"""SQLAlchemy's asyncio engine without its ORM session, which no node uses (issue 16: a village idles under 80 MB).

``sqlalchemy.ext.asyncio``'s ``__init__`` imports ``AsyncSession`` and the scoped session beside the engine,
and with them the whole ORM (``sqlalchemy.orm``, ≈ 4 MB resident). The store speaks SQLAlchemy Core through
``AsyncEngine`` and ``AsyncConnection`` only. So, on import of this module, the package is put in place
holding the engine's and the results' names alone, and its own ``__init__`` runs the first time anything
asks it for another name (``from sqlalchemy.ext.asyncio import AsyncSession`` still works, and loads the
ORM then). If the package was imported before this module, it is left as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any

PACKAGE = "sqlalchemy.ext.asyncio"
# What ``sqlalchemy.ext.asyncio`` exports from its engine and result modules.
LEAN = {
    "engine": (
        "AsyncConnection",
        "AsyncEngine",
        "AsyncTransaction",
        "async_engine_from_config",
        "create_async_engine",
        "create_async_pool_from_url",
    ),
    "result": ("AsyncMappingResult", "AsyncResult", "AsyncScalarResult", "AsyncTupleResult"),
}


def _lean_package() -> ModuleType | None:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None:
        return None
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def complete(name: str) -> Any:
        # A submodule (``from . import exc`` inside the engine) is imported as usual. Any other name the
        # lean package does not hold: run the package's own __init__ once (it imports the ORM session),
        # then answer as the whole package would.
        if not name.startswith("__") and importlib.util.find_spec(f"{PACKAGE}.{name}") is not None:
            return importlib.import_module(f"{PACKAGE}.{name}")
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        return getattr(package, name)

    package.__dict__["__getattr__"] = complete
    sys.modules[PACKAGE] = package
    try:
        for module, names in LEAN.items():
            source = importlib.import_module(f"{PACKAGE}.{module}")
            for name in names:
                setattr(package, name, getattr(source, name))
    except BaseException:
        del sys.modules[PACKAGE]
        raise
    return package


if PACKAGE not in sys.modules:
    _lean_package()
