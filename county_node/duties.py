"""What the county hub does by itself at start, beside every node's duties (``sanji.duties``).

The county publishes the matter catalogue from its configured file (or the built-in one); the
exchanges carry it down. Its calendar and assessment rules are published by command or on its
desk's pages (``sanji calendar publish``, ``county_node/rules_publishing.py``), never at start.
"""

from __future__ import annotations

from sanji.catalogue import default_catalogue_path, load_catalogue
from sanji.config import NodeSettings
from sanji.context import NodeContext


async def publish_catalogue(settings: NodeSettings, context: NodeContext) -> None:
    """Sign and hold the configured catalogue; it is kept if newer than the one held (``NodeContext.publish``)."""
    source = settings.path(settings.node.catalogue) if settings.node.catalogue else default_catalogue_path()
    await context.publish(load_catalogue(source))
