"""Where a node reaches its ancestors, learned from its parent, so it can go round a dark parent.

Every cursors reply carries the parent's own ancestors and the URLs the parent reaches them at
(``CursorsResponse.addresses``: its parent first, then what it learned the same way). A child keeps
the list (``meta``), passes it on to its own children with its parent prepended, and syncs with
the nearest of them that answers while its parent does not. Nothing is configured by hand; a
``[parent] fallback_urls`` entry still comes first. A wrong address cannot do harm beyond a
failed exchange: whoever answers must be an ancestor in this node's tree, and every batch is
checked against its origin's signature whichever way it came.
"""

from __future__ import annotations

import json

from sanji.config import NodeSettings
from sanji.store import Store

META_KEY = "ancestor_addresses"
MAX_ADDRESSES = 16  # a tree is a few levels deep; anything longer is not a list of ancestors
MAX_URL = 512
Addresses = tuple[tuple[str, str], ...]


def clean(addresses: object, *, ancestors: list[str]) -> Addresses:
    """Keep only well-formed (ancestor id, http(s) URL) pairs naming nodes above this one, once each."""
    out: list[tuple[str, str]] = []
    if not isinstance(addresses, list | tuple):
        return ()
    for item in addresses[:MAX_ADDRESSES]:
        if not isinstance(item, list | tuple) or len(item) != 2:
            continue
        node, url = item
        if not isinstance(node, str) or not isinstance(url, str) or len(url) > MAX_URL:
            continue
        if node in ancestors and url.startswith(("http://", "https://")) and node not in {n for n, _ in out}:
            out.append((node, url.rstrip("/")))
    return tuple(out)


async def learned(store: Store) -> Addresses:
    raw = await store.meta_value(META_KEY)
    if not raw:
        return ()
    try:
        return clean(json.loads(raw), ancestors=_above(store))
    except ValueError:
        return ()


async def remember(store: Store, addresses: Addresses) -> Addresses | None:
    """Keep what the parent said; returns the new list when it changed, else None."""
    fresh = clean(addresses, ancestors=_above(store))
    if fresh == await learned(store):
        return None
    await store.set_meta(META_KEY, json.dumps(fresh))
    return fresh


def for_children(settings: NodeSettings, store: Store, known: tuple[tuple[str, str], ...]) -> Addresses:
    """What this node tells its children: its parent at the configured URL, then the parent's ancestors."""
    parent = store.directory.parent(store.node_id)
    if settings.parent is None or parent is None:
        return ()
    return ((parent, settings.parent.url.rstrip("/")), *((n, u) for n, u in known if n != parent))


def _above(store: Store) -> list[str]:
    return [n for n in store.directory.path(store.node_id) if n != store.node_id]
