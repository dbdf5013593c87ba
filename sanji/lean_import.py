"""A third-party package without what its ``__init__`` imports and a node never uses (issue 16's footprint).

Some packages' ``__init__`` re-export everything they hold, so importing the one part a node needs loads
all the rest: ``sqlalchemy.ext.asyncio`` brings the whole ORM with its session, ``uvicorn`` its command
line (click, the reloader's multiprocessing). ``lean_package`` puts such a package in place holding only
the names a node uses, taken from the submodules that define them; the package's own ``__init__`` runs
the first time anything asks it for another name, so every other use still works (and only then loads
the rest). A package already imported is left as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any


def lean_package(package: str, exports: Mapping[str, Sequence[str]]) -> ModuleType:
    """``package`` (imported lean unless it already was), holding ``exports``: submodule -> names."""
    held = sys.modules.get(package)
    if held is not None:
        return held
    spec = importlib.util.find_spec(package)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{package} is not an installed package")
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader
    completing = threading.Lock()  # a name asked for from two threads at once runs __init__ once

    def complete(name: str) -> Any:
        # A submodule (``from . import exc`` inside one) is imported as usual. Any other name: run the
        # package's own __init__ once, then answer as the whole package would.
        if not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}") is not None:
            return importlib.import_module(f"{package}.{name}")
        with completing:
            if module.__dict__.pop("__getattr__", None) is not None:
                loader.exec_module(module)
        return getattr(module, name)

    module.__dict__["__getattr__"] = complete
    sys.modules[package] = module
    try:
        for submodule, names in exports.items():
            source = importlib.import_module(f"{package}.{submodule}")
            for name in names:
                setattr(module, name, getattr(source, name))
    except BaseException:
        del sys.modules[package]
        raise
    return module
