"""``sanji {county,town,village} serve``: run one node from its TOML config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TYPE_CHECKING

from sanji import memory, tiers
from sanji.cli import say
from sanji.cli.lean_uvicorn import Config, Server
from sanji.config import ConfigError, load_settings
from sanji.observe.logs import use_json_logs
from sanji.parent_watch import watch_parent
from sanji.store.engine import open_database
from sanji.store.revisions import DatabaseNewer, read_revisions, refuse_if_newer
from sanji.version import release

if TYPE_CHECKING:
    from litestar import Litestar

    from sanji.config import NodeSettings

KEEP_ALIVE_S = 75  # seconds an idle client connection is kept open


def add_parser(sub: argparse._SubParsersAction, role: str) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(role, help=f"run a {role} node")
    inner = parser.add_subparsers(dest="action", required=True)
    serve = inner.add_parser("serve", help=f"serve a {role} node from a TOML config")
    serve.add_argument("--config", required=True, help="path to the node's TOML config (examples in deploy/)")
    serve.add_argument("--db", help="database URL overriding the config, e.g. postgresql://127.0.0.1/sanji")
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--log-format", choices=("text", "json"), help="json: one event per line (default: [observe] json_logs)"
    )
    serve.set_defaults(
        func=lambda args: run(role, args.config, db=args.db, log_level=args.log_level, log_format=args.log_format)
    )


NOT_STARTED_ZH = "节点未能启动"


def run(
    role: str, config: str, *, db: str | None = None, log_level: str = "info", log_format: str | None = None
) -> int:
    try:
        settings = load_settings(config, role=role, db=db)
    except ConfigError as exc:
        say.failure(exc)
        return 2
    memory.limit_arenas()  # before the first thread (sanji.memory says why)
    try:
        asyncio.run(refuse_a_newer_store(settings.db_url))
    except DatabaseNewer as exc:
        # Said before the server starts: inside its start-up the refusal drowns in a traceback, hint and all.
        say.failure(exc, file=sys.stderr, other=NOT_STARTED_ZH)
        return 2
    logging.basicConfig(level=log_level.upper(), format=f"%(asctime)s {settings.node.id} %(name)s %(message)s")
    app = served_app(settings)
    server = Server(
        Config(
            app,
            host=settings.node.host,
            port=settings.node.port,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=5,
            # Longer than a child's pool keeps an idle connection (sanji.sync.transport.POOL_KEEPALIVE_S), so
            # the child always closes first; and long enough that a 64 kbit/s link reuses its connection from
            # one page of a sync to the next instead of paying a handshake (uvicorn's default is 5 s).
            timeout_keep_alive=KEEP_ALIVE_S,
            ssl_certfile=str(settings.path(settings.node.tls_cert)) if settings.node.tls_cert else None,
            ssl_keyfile=str(settings.path(settings.node.tls_key)) if settings.node.tls_key else None,
        )
    )
    follow_level(log_level)
    if log_format == "json" or (log_format is None and settings.observe.json_logs):
        use_json_logs(settings.node.id)
    watch_parent()
    try:
        server.run()
    except SystemExit:  # uvicorn's exit when the app's start-up failed
        runtime = getattr(app.state, "runtime", None)
        refused = runtime.refused if runtime is not None else None
        if refused is None:
            raise
        # The server logged the start-up's traceback; the refusal is said once more, alone, as an error.
        say.failure(refused, file=sys.stderr, other=NOT_STARTED_ZH)
        return 2
    return 0


def served_app(settings: NodeSettings) -> Litestar:
    """The node's app as ``serve`` runs it: once its lifespan has opened everything, start-up's objects are
    left out of garbage collection (``sanji.memory.settle_heap``)."""
    app = tiers.create_app(settings)
    app.on_startup.append(_settle)
    return app


def _settle() -> None:
    frozen = memory.settle_heap()
    logging.getLogger("sanji.memory").info("%d objects of start-up left out of garbage collection", frozen)


async def refuse_a_newer_store(url: str) -> None:
    """Raise ``DatabaseNewer`` when a newer release migrated the store at ``url``; touch nothing either way."""
    db = await open_database(url, migrate=False)
    try:
        async with db.reader.connect() as conn:
            rev = await conn.run_sync(read_revisions)
    finally:
        await db.dispose()
    refuse_if_newer(rev, release())


def follow_level(log_level: str) -> None:
    """Hold every logger to the chosen level, and httpx's line per request to debugging only.

    Called once the app exists: building the Litestar app sets the root logger to INFO.
    """
    root = logging.getLogger()
    root.setLevel(log_level.upper())
    chatty = root.level if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(chatty)
