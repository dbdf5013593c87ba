"""A regional centre's app: the shared node plumbing plus the read-only desk of its level (``desk.py``)."""

from __future__ import annotations

from litestar import Litestar

from sanji.config import NodeSettings
from sanji.regional.desk import DESKS
from sanji.web.app import build_app


def create_app(settings: NodeSettings, *, debug: bool = False) -> Litestar:
    return build_app(settings, desk=DESKS[settings.node.role], debug=debug)
