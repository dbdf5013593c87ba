"""The village station's app: the shared node plumbing plus this tier's desk (``desk.py``)."""

from __future__ import annotations

from litestar import Litestar

from sanji.config import NodeSettings
from sanji.web.app import build_app
from village_agent.desk import DESK


def create_app(settings: NodeSettings, *, debug: bool = False) -> Litestar:
    return build_app(settings, desk=DESK, debug=debug)
