"""The app factory every node uses: ``build_app(settings, desk=...)``. No work happens at import time.

``SHARED_HANDLERS`` is the node plumbing every tier serves (errand API, sync, login, public pages,
observe, documents, its own ledgers and SMS outbox, enrollment); the tier's ``Desk``
(``sanji.web.desk``, declared in its package) adds its own routes and start-up duties.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, Request
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.template import TemplateConfig
from litestar.types import ControllerRouterHandler

from protocol.errors import SanjiError
from sanji import __version__, memory
from sanji.archive_duty import ArchiveSchedule
from sanji.auth.book import AuditedStore, AuthBook
from sanji.auth.first_run import ensure_first_admin
from sanji.auth.guard import Caller, Forbidden, GuardedService, NotLoggedIn, auth_guard, client_ip, principal_of
from sanji.auth.places import known_places
from sanji.auth.roles import KnownPlaces
from sanji.auth.routes import AccountPasswordController, LoginController, forbidden_handler, not_logged_in_handler
from sanji.auth.service import AuthService
from sanji.backup_duty import BackupSchedule
from sanji.config import NodeSettings
from sanji.context import NodeContext
from sanji.duties import Duties, FileSmsSender
from sanji.keys import read_key, sealing_key_path
from sanji.node_directory import directory_entries, node_directory
from sanji.notify.routes import SmsApiController, SmsScreenController
from sanji.notify.worker import Notifier, start_notifier
from sanji.observe.fleet import FleetWarnings
from sanji.observe.metrics import NodeMetrics
from sanji.observe.routes import ObserveController
from sanji.office.ledger_routes import OfficeApiController, OfficeScreenController
from sanji.private_files import tighten
from sanji.replica_follow import ReplicaFollower
from sanji.service import ErrandService
from sanji.store import Database, Store, open_database
from sanji.store.trustbook import TrustBook
from sanji.sync import addresses
from sanji.sync.driver import SessionReport, SyncDriver
from sanji.sync.fetch_back import FetchBack, links_for
from sanji.sync.requests_auth import RequestSigner
from sanji.sync.server import SERVING_AT_ONCE, SyncServer
from sanji.sync.transport import HttpTransport
from sanji.sync.trust_step import ChildTrust
from sanji.web import language, timefmt
from sanji.web.api import AttachmentController, ErrandController, NodeController
from sanji.web.archive_restore import ArchiveRestoreController
from sanji.web.carry_screen import CarryController
from sanji.web.catalogue_search import CatalogueSearchController
from sanji.web.desk import Desk
from sanji.web.desk_api import DeskController
from sanji.web.documents import DocumentController
from sanji.web.error_pages import http_page_handler, sanji_page_handler, value_page_handler
from sanji.web.errors import internal_error_handler
from sanji.web.head import head_as_get
from sanji.web.openapi_truth import SchemaPlugin
from sanji.web.public import PublicController
from sanji.web.request_gate import request_gate
from sanji.web.reveal import RevealController
from sanji.web.scan_upload import ScanController
from sanji.web.screens import ScreenController
from sanji.web.sync_routes import SyncController
from sanji.web.templating import LazyJinja, setting_up
from sanji.web.trust_screens import EnrollController
from sanji.workcalendar import load_calendar

TEMPLATES = Path(__file__).with_name("templates")
log = logging.getLogger("sanji.web")


class NodeRuntime:
    """What a running node holds: its store, services and (for a child) its sync driver."""

    def __init__(self, settings: NodeSettings, desk: Desk) -> None:
        self.settings = settings
        self.desk = desk
        self.store: Store | None = None
        self.context: NodeContext | None = None
        self.driver: SyncDriver | None = None
        self.duties: Duties | None = None
        self.notifier: Notifier | None = None
        self.auth: AuthService | None = None
        self.trust: TrustBook | None = None
        self.metrics = NodeMetrics()
        self.fleet_warnings = FleetWarnings()
        self.backups: BackupSchedule | None = None
        self.archiving: ArchiveSchedule | None = None
        self.follower: ReplicaFollower | None = None  # on a read replica: documents published at the primary
        self.fetch_back: FetchBack | None = None  # archived attachments, fetched back when opened
        self.addresses: tuple[tuple[str, str], ...] = ()  # told to children in every cursors reply
        self.sync_turns = asyncio.Semaphore(SERVING_AT_ONCE)  # the sync requests served at once, by every request
        self.trimmer = memory.BackgroundTrim()  # malloc_trim in a worker thread, never on the loop
        self.refused: SanjiError | None = None  # why start-up refused to serve (a start duty's error)

    async def _start_writers(self, store: AuditedStore, context: NodeContext) -> None:
        """The parts that write on their own (duties, the SMS outbox, backups, archiving): not on a replica."""
        s = self.settings
        gateway_on = s.sms.gateway == "http"
        self.duties = Duties(
            store,
            context,
            FileSmsSender(s.path(s.node.data_dir) / "sms.log"),
            interval=s.sync.duties_interval,
            sms=not gateway_on,
        )
        self.duties.start()
        self.notifier = start_notifier(s, store, context) if gateway_on else None
        b = s.backup
        self.backups = BackupSchedule(
            s.db_url, s.backup_dir, node=s.node.id, interval_hours=b.interval_hours, keep_days=b.keep_days
        )
        self.backups.start()
        a = s.archive
        self.archiving = ArchiveSchedule(store, interval_hours=a.interval_hours, after_days=a.after_days)
        self.archiving.start()

    @asynccontextmanager
    async def lifespan(self, _: Litestar) -> AsyncIterator[None]:
        s = self.settings
        db: Database | None = None
        # Any refusal while starting — a key the directory does not list, a directory naming this node another
        # tier, a catalogue file the county may not publish (VersionTooFar) — is kept for ``sanji <tier> serve``
        # to say alone (in the server's log it ends a traceback) and the node does not serve. Whatever fails
        # while starting, the parts already running are stopped and the database closed before it is raised.
        try:
            key_file = s.path(s.node.key_file)
            tighten(s.path(s.node.data_dir), key_file, sealing_key_path(key_file))  # sanji.private_files
            key = read_key(s.path(s.node.key_file), passphrase_env=s.node.key_passphrase_env)
            db = await open_database(s.db_url, backup_dir=s.backup_dir, node=s.node.id, role=s.node.role)
            directory = await node_directory(s, db)
            entry = directory.get(s.node.id)
            if entry.role != s.node.role:
                raise SanjiError(f"the directory lists {s.node.id} as a {entry.role}, the config says {s.node.role}")
            if key.key_id not in {k.key_id for k in entry.keys}:
                raise SanjiError(f"the key in {s.node.key_file} is not one the directory lists for {s.node.id}")
            store = AuditedStore(db, node_id=s.node.id, key=key, directory=directory)
            await store.start()
            self.store = store
            self.trust = TrustBook(store, base=directory_entries(s), required=s.trust.required)
            await self.trust.load()
            self.auth = AuthService(AuthBook(db), s.auth, node_id=s.node.id, node_role=entry.role, places=self._places)
            if not s.auth.required:
                log.warning("node %s: [auth] required = false -- OPEN DEMO MODE, no login needed", s.node.id)
            replica = db.read_only
            if replica:
                log.warning(
                    "node %s: %s is a read-only replica -- views and exports only; no duties, backups, archiving or "
                    "sync run here, and accounts, logins and desk actions stay with the primary's hub",
                    s.node.id,
                    s.db_url.split("@")[-1],
                )
            else:
                await ensure_first_admin(self.auth)
            context = NodeContext(store, load_calendar())
            if s.node.calendar_overrides:
                log.warning(
                    "node %s: [node] calendar_overrides is no longer read; the county publishes the working-day "
                    "calendar with `sanji calendar publish` and it reaches every node with the exchanges",
                    s.node.id,
                )
            context.daily_blob_budget = s.sync.daily_attachment_bytes
            await context.load()
            for duty in () if replica else self.desk.on_start:  # the county publishes its catalogue
                await duty(s, context)
            self.context = context
            if replica:
                self.follower = ReplicaFollower(context, self.trust, interval_s=s.sync.duties_interval)
                self.follower.start()
            else:
                await self._start_writers(store, context)
            # One signer for every signed request this node sends: the sync driver's and the fetch back's take
            # turns (``RequestSigner.turn``), so the parent sees the counters in the order they were signed.
            signer = RequestSigner(s.node.id, store)
            self.fetch_back = FetchBack(
                store, links_for(s, store), max_bytes=s.sync.max_attachment_bytes, signer=signer, context=context
            )
            known = await addresses.learned(store)
            self.addresses = addresses.for_children(s, store, known)
            if not replica and s.parent is not None and directory.parent(s.node.id) is not None:
                transport = HttpTransport(s.parent.url)
                self.driver = SyncDriver(
                    store,
                    transport,
                    interval=s.sync.interval,
                    max_backoff=s.sync.max_backoff,
                    budget=s.sync.budget_bytes,
                    context=context,
                    fallbacks=[HttpTransport(url) for url in s.parent.fallback_urls],
                    trust=ChildTrust(self.trust, key_path=s.path(s.node.key_file)),
                    link_for=HttpTransport,
                    skip_urls=[s.parent.url, *s.parent.fallback_urls],
                    signer=signer,
                )
                await self.driver.adopt(known)
                self.driver.observers.append(self._pass_addresses_on)
                self.driver.observers.append(self.metrics.observe_session)
                self.driver.observers.append(self._trim_after_work)
                self.driver.start()
            # what opening, migrating and loading the store freed (sanji.memory), off the loop: the driver already runs
            self.trimmer.request()
            log.info("node %s (%s) ready on %s", s.node.id, s.node.role, s.db_url.split("@")[-1])
        except BaseException as exc:
            if isinstance(exc, SanjiError):
                self.refused = exc
                log.error("node %s refuses to start: %s", s.node.id, exc.message)
            try:
                await self._stop(db)
            except Exception:  # the start's own error is the one to raise
                log.exception("node %s: stopping what had started failed", s.node.id)
            raise
        try:
            yield
        finally:
            await self._stop(db)

    async def _stop(self, db: Database | None) -> None:
        """Stop every part started, then close the database (``db``: None if it never opened).

        Every part is stopped and the database closed even when one stop fails or the shutdown itself is
        cancelled; the first such error is raised once all are done."""
        stops = [
            part.stop
            for part in (self.driver, self.duties, self.notifier, self.backups, self.archiving, self.follower)
            if part
        ]
        stops.append(self.trimmer.close)  # a trim in its thread is waited for, not left behind
        if self.fetch_back is not None:
            stops.append(self.fetch_back.close)  # no fetch writes after the database closes
        if db is not None:
            stops.append(db.dispose)
        first: BaseException | None = None
        for stop in stops:
            try:
                await stop()
            except BaseException as exc:  # kept, and raised once the rest have stopped
                first = first or exc
        if first is not None:
            raise first

    def _trim_after_work(self, report: SessionReport | None, _: BaseException | None) -> None:
        """After an exchange that moved work, hand the memory it freed back (sanji.memory), off the loop."""
        if moved_work(report):
            self.trimmer.request()

    @property
    def read_only(self) -> bool:
        """Serving a read-only replica of the database (every page says so)."""
        return self.store is not None and self.store.db.read_only

    async def _places(self) -> KnownPlaces | None:
        """Where the accounts page may seat an account: read at each change, from the catalogue held now."""
        store, context = self.store, self.context
        if store is None or context is None:
            return None  # not started: no request reaches the accounts page before ``lifespan`` sets both
        return await known_places(
            store.db, context.catalogue, store.node_id, configured_windows=self.settings.sms.windows
        )

    def get_store(self) -> Store:
        assert self.store is not None, "the store opens in the app's lifespan"
        return self.store

    def get_context(self) -> NodeContext:
        assert self.context is not None, "the context opens in the app's lifespan"
        return self.context

    def get_auth(self) -> AuthService:
        assert self.auth is not None, "accounts open in the app's lifespan"
        return self.auth

    def get_caller(self, request: Request[Any, Any, Any]) -> Caller:
        return Caller(principal_of(request), self.get_auth(), client_ip(request))

    def get_service(self, caller: NamedDependency[Caller]) -> ErrandService:
        return GuardedService(self.get_store(), self.get_context(), caller)

    def get_sync(self) -> SyncServer:
        return SyncServer(
            self.get_store(), self.get_context(), self.trust, addresses=self.addresses, turns=self.sync_turns
        )

    def _pass_addresses_on(self, report: SessionReport | None, _: BaseException | None) -> None:
        """What the parent said about its ancestors goes on down to this node's children."""
        if report is not None and report.addresses and self.store is not None:
            self.addresses = addresses.for_children(self.settings, self.store, report.addresses)

    def get_fetch_back(self) -> FetchBack:
        assert self.fetch_back is not None, "fetching back opens in the app's lifespan"
        return self.fetch_back

    def get_trust(self) -> TrustBook:
        assert self.trust is not None, "trust opens in the app's lifespan"
        return self.trust


def moved_work(report: SessionReport | None) -> bool:
    """Whether an exchange moved batches or attachments (an idle one frees little: not worth a heap walk)."""
    return report is not None and bool(report.pushed or report.pulled or report.blobs_sent or report.blobs_received)


SHARED_HANDLERS: tuple[ControllerRouterHandler, ...] = (
    ErrandController,
    NodeController,
    DeskController,
    AttachmentController,
    ArchiveRestoreController,  # a running node fetches its archived attachments back (administrator)
    DocumentController,
    SyncController,
    ScreenController,
    ScanController,  # scans and photos from the errand page
    CarryController,  # the sync panel: hand-carried files when the link is down
    EnrollController,
    LoginController,
    AccountPasswordController,  # every account changes its own password; a must-change session only this
    OfficeApiController,  # every desk keeps its own 台账
    OfficeScreenController,
    SmsApiController,  # every node may send the applicants' SMS
    SmsScreenController,
    PublicController,
    CatalogueSearchController,  # matters by name, pinyin or initials (public, like the guide)
    RevealController,
    ObserveController,
    language.LanguageController,  # the English / 中文 switch, on every page
)


def build_app(
    settings: NodeSettings,
    *,
    desk: Desk,
    title: str = "",
    extra_handlers: Sequence[ControllerRouterHandler] = (),
    debug: bool = False,
) -> Litestar:
    """The node's app: the shared plumbing and ``desk``'s routes (``title`` defaults to the desk's)."""
    if settings.node.role != desk.role:
        raise ValueError(f"{settings.node.id} is a {settings.node.role} node; this desk serves {desk.role} nodes")
    runtime = NodeRuntime(settings, desk)
    handlers: list[ControllerRouterHandler] = [*SHARED_HANDLERS, *desk.handlers, *extra_handlers]
    exception_handlers: Any = {
        NotLoggedIn: not_logged_in_handler,
        Forbidden: forbidden_handler,
        SanjiError: sanji_page_handler,
        ValueError: value_page_handler,
        HTTPException: http_page_handler,
        Exception: internal_error_handler,
    }
    app = Litestar(
        route_handlers=handlers,
        lifespan=[runtime.lifespan],
        dependencies={
            "store": Provide(runtime.get_store, sync_to_thread=False),
            "service": Provide(runtime.get_service, sync_to_thread=False),
            "sync": Provide(runtime.get_sync, sync_to_thread=False),
            "context": Provide(runtime.get_context, sync_to_thread=False),
            "auth": Provide(runtime.get_auth, sync_to_thread=False),
            "trust": Provide(runtime.get_trust, sync_to_thread=False),
            "fetch_back": Provide(runtime.get_fetch_back, sync_to_thread=False),
            "caller": Provide(runtime.get_caller, sync_to_thread=False),
            "desk": Provide(lambda: desk, sync_to_thread=False),
        },
        before_request=request_gate,  # honest OPTIONS; media type, size and nesting of JSON bodies before decoding
        guards=[auth_guard],  # sanji.auth: who may call what; CSRF on every form posted with a session
        exception_handlers=exception_handlers,
        openapi_config=OpenAPIConfig(title=title or desk.title, version=__version__, render_plugins=[SchemaPlugin()]),
        template_config=TemplateConfig(
            directory=TEMPLATES,
            engine=LazyJinja,  # Jinja is loaded when the first page is rendered (sanji.web.templating)
            engine_callback=setting_up(timefmt.register, language.register),  # filters; bi(), the English switch
        ),
        debug=debug,
        # Litestar's default logging config starts a queue-listener thread per app that nothing stops; the
        # node logs through the standard `logging` tree (`sanji serve` configures it), which needs no thread.
        logging_config=None,
    )
    # Outside the router: Litestar answers a method a path lacks (405) before any middleware of its own runs.
    app.asgi_handler = head_as_get(app.asgi_handler)
    app.state.runtime = runtime
    app.state.settings = settings
    app.state.desk = desk
    return app
