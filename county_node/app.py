"""The county node's app: the shared node plumbing plus this desk's screens."""

from __future__ import annotations

from litestar import Litestar

from county_node import ROLE
from sanji.config import NodeSettings
from sanji.web.app import build_app

TITLE = "Sanji 县级政务服务中心 County hub"


def create_app(settings: NodeSettings, *, debug: bool = False) -> Litestar:
    if settings.node.role != ROLE:
        raise ValueError(f"{settings.node.id} is a {settings.node.role} node; this app serves {ROLE} nodes")
    return build_app(settings, title=TITLE, debug=debug)
