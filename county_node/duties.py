"""What the county hub does by itself at start, beside every node's duties (``sanji.duties``).

The county publishes the matter catalogue from its configured file (or the built-in one); the
exchanges carry it down. Its calendar and assessment rules are published by command or on its
desk's pages (``sanji calendar publish``, ``county_node/rules_publishing.py``), never at start.
"""

from __future__ import annotations

import logging

from protocol.errors import VersionNotNewer, VersionTooFar
from sanji.catalogue import default_catalogue_path, load_catalogue
from sanji.config import NodeSettings
from sanji.context import NodeContext, VersionHeldBelow

log = logging.getLogger("sanji.county")


async def publish_catalogue(settings: NodeSettings, context: NodeContext) -> None:
    """Sign and hold the configured catalogue; it is kept if newer than the one held (``NodeContext.publish``).

    A file whose version is too far above the one held is refused as every publication is (``VersionTooFar``),
    and the node does not start: the refusal names the file, which the operator corrects. A file whose version is
    already held (every restart, or one the desk has published past) is simply not kept (``VersionNotNewer``), and
    so is one a node below holds already after a restore (``VersionHeldBelow``: logged; the node starts, and the
    desk publishes a version above it).
    """
    source = settings.path(settings.node.catalogue) if settings.node.catalogue else default_catalogue_path()
    try:
        await context.publish(load_catalogue(source))
    except VersionNotNewer:
        pass  # the database holds this version or a newer one
    except VersionHeldBelow as exc:  # restored from an older copy: the node starts, the desk publishes a higher one
        log.warning("[node] catalogue %s not published: %s", source, exc.message)
    except VersionTooFar as exc:
        message, en = f"[node] catalogue {source}: {exc.message}", f"[node] catalogue {source}: {exc.message_en}"
        raise VersionTooFar(message, held=exc.held, version=exc.version, zh=exc.message_zh, en=en) from None
