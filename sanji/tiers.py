"""The tier packages by role, found by name when asked (never imported by ``sanji`` at import time).

The three tiers have a package each; every level above the county shares ``sanji.regional``.

The tier packages import ``sanji``; ``sanji`` reaches them only through this lookup, from the
commands and tools that start a node of a given role (``sanji <tier> serve``, the OpenAPI dump),
so no import cycle can form.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from protocol.topology import REGIONAL

if TYPE_CHECKING:
    from litestar import Litestar

    from sanji.config import NodeSettings
    from sanji.web.desk import Desk

PACKAGES = {"county": "county_node", "town": "town_node", "village": "village_agent"}
# Every level above the county serves one read-only desk (``sanji.regional``). Kept apart from
# ``PACKAGES`` (``desks()``, the OpenAPI union): it mounts no route the three tiers do not.
REGIONAL_PACKAGE = "sanji.regional"


def desk(role: str) -> Desk:
    """The desk the tier package of ``role`` declares (``<package>/desk.py: DESK``, or ``DESKS[role]``)."""
    if role in REGIONAL:
        regional: Desk = importlib.import_module(f"{REGIONAL_PACKAGE}.desk").DESKS[role]
        return regional
    found: Desk = importlib.import_module(f"{PACKAGES[role]}.desk").DESK
    return found


def desks() -> tuple[Desk, ...]:
    return tuple(desk(role) for role in PACKAGES)


def create_app(settings: NodeSettings, *, debug: bool = False) -> Litestar:
    """The app of the node ``settings`` describe, from its tier package's ``create_app``."""
    role = settings.node.role
    package = REGIONAL_PACKAGE if role in REGIONAL else PACKAGES[role]
    app: Litestar = importlib.import_module(f"{package}.app").create_app(settings, debug=debug)
    return app
