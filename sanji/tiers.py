"""The three tier packages by role, found by name when asked (never imported by ``sanji`` at import time).

The tier packages import ``sanji``; ``sanji`` reaches them only through this lookup, from the
commands and tools that start a node of a given role (``sanji <tier> serve``, the OpenAPI dump),
so no import cycle can form.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litestar import Litestar

    from sanji.config import NodeSettings
    from sanji.web.desk import Desk

PACKAGES = {"county": "county_node", "town": "town_node", "village": "village_agent"}


def desk(role: str) -> Desk:
    """The desk the tier package of ``role`` declares (``<package>/desk.py: DESK``)."""
    found: Desk = importlib.import_module(f"{PACKAGES[role]}.desk").DESK
    return found


def desks() -> tuple[Desk, ...]:
    return tuple(desk(role) for role in PACKAGES)


def create_app(settings: NodeSettings, *, debug: bool = False) -> Litestar:
    """The app of the node ``settings`` describe, from its tier package's ``create_app``."""
    app: Litestar = importlib.import_module(f"{PACKAGES[settings.node.role]}.app").create_app(settings, debug=debug)
    return app
