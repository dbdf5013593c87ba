"""The county administrator publishes the catalogue and the working-day calendar from the desk.

Two steps each, check then publish, so nothing is signed before a person has looked at it:

- ``POST /admin/catalogue/check``: an uploaded catalogue file (.toml, .json, .xlsx, at most
  ``MAX_UPLOAD_BYTES``) goes through ``load_catalogue``, the checker ``sanji catalogue check`` runs,
  in a worker thread so the event loop keeps serving (a spreadsheet's archive and rows are bounded
  before and while it is read: ``check_xlsx_archive``, ``MAX_SHEET_ROWS``);
  every row and field problem is listed (400) and nothing is kept. A clean one is shown for review,
  with what changes against the version held; ``POST /admin/catalogue/publish`` then signs and holds
  it through ``NodeContext.publish``, as the county's start-up duty does (``duties.py``), and the next
  exchanges carry it down.
- ``POST /admin/calendar/check`` and ``/admin/calendar/publish``: a calendar file through
  ``checked_calendar`` and ``publish_refusal_texts`` (``sanji.workcalendar``), the checks ``sanji calendar
  check`` and ``sanji calendar publish`` run, then ``NodeContext.publish_calendar``.

How far above the version held a new version may be is the publisher's to refuse (``NodeContext.publish``
and ``publish_calendar`` raise ``VersionTooFar``, answered 409 with its message); the check step asks the
same (``step_refusal``) so a version publishing would refuse is never offered for review. Whether the version
is newer is decided by the write transaction that keeps it (``VersionNotNewer`` when the database already holds
it): of two administrators publishing the same next version at once, on one hub process or on two sharing
its PostgreSQL database, one is published and the other answered 409 with the refusal a later publication gets.

Each publication writes a ``published`` audit event (``sanji.auth.events.DocumentPublished``: the
administrator, the document, its version and the signed envelope's digest) in the transaction that
keeps the signed document.

Only the county's desk mounts these routes; the pages themselves (``sanji/web/admin_screens.py``)
are on every tier and offer the forms where these routes are served.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.calendar_doc import CALENDAR, OfficialCalendar
from protocol.catalogue import Catalogue, CatalogueError
from protocol.deadlines import CalendarError, CalendarInvalid
from protocol.errors import SanjiError, VersionNotNewer, VersionTooFar
from sanji.auth import events as ev
from sanji.auth import roles
from sanji.auth.book import insert_event
from sanji.auth.guard import client_ip, close_uploads
from sanji.auth.service import Principal
from sanji.catalogue import load_catalogue
from sanji.context import CATALOGUE, NodeContext, Record, VersionHeldBelow, held_below_refusal, with_once
from sanji.problem_words import headline_pair
from sanji.store import Store, submissions
from sanji.store.submissions import FIELD as ONCE_FIELD
from sanji.store.submissions import AlreadySent, Once, once
from sanji.web.admin_screens import MAX_UPLOAD_BYTES, admin_of, calendar_page, catalogue_page
from sanji.web.bounded_form import bounded_form
from sanji.workcalendar import CalendarProblems, calendar_problems, checked_calendar, publish_refusal_texts, summary

CATALOGUE_SUFFIXES = (".toml", ".json", ".xlsx")
FILE_FIELD = "file"


class Upload(msgspec.Struct, frozen=True):
    """An uploaded file's name and bytes, or why there is none (zh, en)."""

    name: str = ""
    data: bytes = b""
    refusal: tuple[str, str] = ("", "")
    status: int = 400


async def read_upload(form: Any, suffixes: tuple[str, ...]) -> Upload:
    """The form's file, bounded: at most ``MAX_UPLOAD_BYTES``, a name ending in one of ``suffixes``."""
    upload = form.get(FILE_FIELD)
    if not isinstance(upload, UploadFile) or not upload.filename:
        return Upload(refusal=("请选择文件", "Choose a file"))
    name = Path(upload.filename).name[:200]
    if Path(name).suffix.lower() not in suffixes:
        kinds = ", ".join(suffixes)
        return Upload(refusal=(f"只接受 {kinds} 文件", f"Only {kinds} files, not {name}"))
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if not data:
        return Upload(refusal=("所选文件是空的", "The chosen file is empty"))
    if len(data) > MAX_UPLOAD_BYTES:
        too_big = (f"文件超过 {MAX_UPLOAD_BYTES} 字节", f"The file is larger than {MAX_UPLOAD_BYTES} bytes")
        return Upload(refusal=too_big, status=413)
    return Upload(name=name, data=data)


def load_uploaded_catalogue(upload: Upload) -> Catalogue:
    """The checker ``sanji catalogue check`` runs (``load_catalogue``), on the uploaded bytes."""
    with tempfile.TemporaryDirectory(prefix="sanji-catalogue-") as folder:
        path = Path(folder) / ("upload" + Path(upload.name).suffix.lower())
        path.write_bytes(upload.data)
        try:
            return load_catalogue(path)
        except CatalogueError as exc:
            message = headline(exc).replace(str(path), upload.name)
            raise CatalogueError(message, [p.replace(str(path), upload.name) for p in exc.problems]) from None


def headline(exc: SanjiError) -> str:
    """An error's first line: a CatalogueError's message repeats its problems, which the page lists below."""
    return exc.message.splitlines()[0].rstrip(":") if exc.message else exc.code


def changes(held: Catalogue | None, new: Catalogue) -> dict[str, list[str]]:
    """Which matters the new catalogue adds, drops and changes against the one held."""
    before = {m.code: m for m in held.matters} if held else {}
    after = {m.code: m for m in new.matters}
    return {
        "added": sorted(after.keys() - before.keys()),
        "dropped": sorted(before.keys() - after.keys()),
        "changed": sorted(c for c in after.keys() & before.keys() if after[c] != before[c]),
    }


def version_refusal(context: NodeContext, catalogue: Catalogue) -> str:
    """Why the reviewed catalogue may not replace the one held ('' if it may): it must be newer.

    How far newer is ``NodeContext.publish``'s to refuse (``VersionTooFar``), asked on every path.
    """
    if catalogue.version <= context.catalogue_version:
        return (
            f"版本 {catalogue.version} 不高于本中心所持的版本 {context.catalogue_version}，请提高版本号 "
            f"Version {catalogue.version} is not newer than the version held ({context.catalogue_version}); "
            "raise the version number"
        )
    return ""


async def held_below(store: Store, context: NodeContext, catalogue: Catalogue) -> tuple[str, str] | None:
    """What publishing would refuse for a version a node below holds already after a restore
    (``sanji.context.held_below_refusal``), said at review before anything is offered for signing."""
    return held_below_refusal(catalogue.version, await context.catalogue_lost(), await store.reports())


def step_refusal(context: NodeContext, kind: str, version: int) -> tuple[str, str] | None:
    """What publishing would refuse for the version's step (``NodeContext.version_step``), said at review
    so nothing is offered for signing that publishing refuses, as (Chinese, English) (None if the step is allowed)."""
    try:
        context.version_step(kind, version)
    except VersionTooFar as exc:
        return exc.message_zh, exc.message_en
    return None


CATALOGUE_AGAIN = "/admin/catalogue/?done=again"  # published, and said: the same form was sent twice
CALENDAR_AGAIN = "/admin/calendar/?done=again"


def _key(form: Any, document: str, raw: object) -> Once | None:
    """The publish form's one-time key, with the document it sends (``sanji.store.submissions``)."""
    sent = form.get(ONCE_FIELD, "")
    return once("publish", sent if isinstance(sent, str) else "", f"{document}\n{raw if isinstance(raw, str) else ''}")


def published_record(
    request: Request[Any, Any, Any],
    principal: Principal,
    context: NodeContext,
    document: str,
    version: int,
    county: str,
) -> Record:
    """The audit event of who published which document, version and digest, for the transaction that keeps it."""

    async def record(conn: AsyncConnection, digest: str) -> None:
        event = ev.DocumentPublished(
            at=time.time(),
            node=context.store.node_id,
            actor=principal.name,
            role=principal.role,
            account=principal.name,
            via=principal.via,
            ip=client_ip(request),
            document=document,
            version=version,
            digest=digest,
            county=county,
        )
        await insert_event(conn, event)

    return record


class CataloguePublishingController(Controller):
    """County only: check an uploaded catalogue file, review it, then sign and publish it."""

    path = "/admin/catalogue"
    include_in_schema = False
    request_max_body_size = 2 * MAX_UPLOAD_BYTES + 64 * 1024  # the upload, or the reviewed catalogue as JSON

    @post("/check", status_code=200)
    async def check(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template:
        admin_of(request, roles.CONFIGURE)
        form = await bounded_form(request)  # each part bounded as it streams in
        try:
            upload = await read_upload(form, CATALOGUE_SUFFIXES)
        finally:
            await close_uploads(form)
        if upload.refusal[0]:
            return await catalogue_page(request, store, context, status=upload.status, problem=upload.refusal)
        try:
            # In a worker thread: a large spreadsheet takes a while to read, and the hub's event
            # loop keeps serving everyone else meanwhile (the loader bounds the work itself).
            catalogue = await anyio.to_thread.run_sync(load_uploaded_catalogue, upload)
        except CatalogueError as exc:
            problem = headline_pair(headline(exc), "目录", upload.name)
            return await catalogue_page(request, store, context, status=400, problem=problem, problems=exc.problems)
        refusal = (
            version_refusal(context, catalogue)
            or step_refusal(context, CATALOGUE, catalogue.version)
            or await held_below(store, context, catalogue)
        )
        if refusal:
            return await catalogue_page(request, store, context, status=409, problem=refusal)
        review = {
            "file": upload.name,
            "catalogue": catalogue,
            "changes": changes(context.catalogue, catalogue),
            "json": msgspec.json.encode(catalogue).decode(),
        }
        return await catalogue_page(request, store, context, review=review)

    @post("/publish", status_code=303)
    async def publish(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template | Redirect:
        principal = admin_of(request, roles.CONFIGURE)
        form = await bounded_form(request)  # each part bounded as it streams in
        raw = form.get("catalogue", "")
        key = _key(form, "catalogue", raw)
        if await submissions.was_sent(store.db, key):  # before the version is found not newer
            return Redirect(CATALOGUE_AGAIN, status_code=303)
        try:
            catalogue = msgspec.json.decode(raw if isinstance(raw, str) else "", type=Catalogue)
        except msgspec.ValidationError as exc:
            return await catalogue_page(
                request, store, context, status=400, problem=f"目录内容无效 Not a catalogue: {exc}"
            )
        except msgspec.DecodeError:
            return await catalogue_page(
                request, store, context, status=400, problem="请先上传并检查目录文件 Upload and check a file first"
            )
        refusal = version_refusal(context, catalogue)
        if refusal:
            if await submissions.was_sent(store.db, key):  # this same form, sent twice at once, kept first
                return Redirect(CATALOGUE_AGAIN, status_code=303)
            return await catalogue_page(request, store, context, status=409, problem=refusal)
        try:
            record = published_record(request, principal, context, "catalogue", catalogue.version, catalogue.county)
            record = with_once(record, key, f"catalogue:{catalogue.version}") or record
            await context.publish(catalogue, record=record)  # signs only a catalogue that checks clean
        except AlreadySent:
            return Redirect(CATALOGUE_AGAIN, status_code=303)
        except VersionNotNewer as exc:  # another publication was kept first: refused as if this one came after it
            if await submissions.was_sent(store.db, key):  # this same form, sent twice at once
                return Redirect(CATALOGUE_AGAIN, status_code=303)
            not_newer = version_refusal(context, catalogue) or exc.message
            return await catalogue_page(request, store, context, status=409, problem=not_newer)
        except (VersionTooFar, VersionHeldBelow) as exc:
            return await catalogue_page(request, store, context, status=409, problem=(exc.message_zh, exc.message_en))
        except SanjiError as exc:
            problems = exc.problems if isinstance(exc, CatalogueError) else []
            problem = headline_pair(headline(exc), "目录")
            return await catalogue_page(request, store, context, status=400, problem=problem, problems=problems)
        return Redirect("/admin/catalogue/?done=published", status_code=303)


def check_uploaded_calendar(upload: Upload) -> OfficialCalendar:
    """The checks ``sanji calendar check`` runs (``checked_calendar``), on the uploaded bytes."""
    with tempfile.TemporaryDirectory(prefix="sanji-calendar-") as folder:
        path = Path(folder) / "upload.toml"
        path.write_bytes(upload.data)
        try:
            return checked_calendar(path)
        except CalendarProblems as exc:
            raise CalendarProblems(exc.message.replace(str(path), upload.name), exc.problems) from None
        except CalendarError as exc:
            raise CalendarInvalid(exc.message.replace(str(path), upload.name), hint=exc.hint) from None


class CalendarPublishingController(Controller):
    """County only: check an uploaded calendar file, review it, then sign and publish it."""

    path = "/admin/calendar"
    include_in_schema = False
    request_max_body_size = 2 * MAX_UPLOAD_BYTES + 64 * 1024

    @post("/check", status_code=200)
    async def check(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template:
        admin_of(request, roles.CONFIGURE)
        year = context.today().year
        form = await bounded_form(request)  # each part bounded as it streams in
        try:
            upload = await read_upload(form, (".toml",))
        finally:
            await close_uploads(form)
        if upload.refusal[0]:
            return await calendar_page(request, store, context, year, status=upload.status, problem=upload.refusal)
        try:
            doc = await anyio.to_thread.run_sync(check_uploaded_calendar, upload)
        except CalendarProblems as exc:
            lead = headline_pair(exc.message, "日历", upload.name)
            return await calendar_page(request, store, context, year, status=400, problem=lead, problems=exc.problems)
        except CalendarError as exc:
            said = headline_pair(exc.message, "日历", upload.name)
            problem = (said.zh, said.en + (f" ({exc.hint})" if exc.hint else ""))
            return await calendar_page(request, store, context, year, status=400, problem=problem)
        held_refusal = publish_refusal_texts(context.calendar_doc, doc)
        refusal = held_refusal if held_refusal[0] else step_refusal(context, CALENDAR, doc.version)
        if refusal:
            return await calendar_page(request, store, context, year, status=409, problem=refusal)
        review = {"file": upload.name, "summary": summary(doc), "json": msgspec.json.encode(doc).decode()}
        return await calendar_page(request, store, context, year, review=review)

    @post("/publish", status_code=303)
    async def publish(
        self, request: Request[Any, Any, Any], store: NamedDependency[Store], context: NamedDependency[NodeContext]
    ) -> Template | Redirect:
        principal = admin_of(request, roles.CONFIGURE)
        year = context.today().year
        form = await bounded_form(request)  # each part bounded as it streams in
        raw = form.get("calendar", "")
        key = _key(form, "calendar", raw)
        if await submissions.was_sent(store.db, key):  # before the version is found not newer
            return Redirect(CALENDAR_AGAIN, status_code=303)
        try:
            doc = msgspec.json.decode(raw if isinstance(raw, str) else "", type=OfficialCalendar)
        except (msgspec.ValidationError, msgspec.DecodeError):
            problem = "请先上传并检查日历文件 Upload and check a calendar file first"
            return await calendar_page(request, store, context, year, status=400, problem=problem)
        problems = calendar_problems(doc)
        if problems:
            return await calendar_page(
                request,
                store,
                context,
                year,
                status=400,
                problem=("日历有误", "The calendar has problems"),
                problems=problems,
            )
        await context.refresh_calendar()
        refusal = publish_refusal_texts(context.calendar_doc, doc)
        if refusal[0]:
            if await submissions.was_sent(store.db, key):  # this same form, sent twice at once, kept first
                return Redirect(CALENDAR_AGAIN, status_code=303)
            return await calendar_page(request, store, context, year, status=409, problem=refusal)
        try:
            record = published_record(request, principal, context, "calendar", doc.version, doc.county)
            await context.publish_calendar(doc, record=with_once(record, key, f"calendar:{doc.version}"))
        except AlreadySent:
            return Redirect(CALENDAR_AGAIN, status_code=303)
        except VersionNotNewer as exc:  # another publication was kept first: refused as if this one came after it
            if await submissions.was_sent(store.db, key):  # this same form, sent twice at once
                return Redirect(CALENDAR_AGAIN, status_code=303)
            texts = publish_refusal_texts(context.calendar_doc, doc)
            not_newer = texts if texts[0] else (exc.message_zh, exc.message_en)
            return await calendar_page(request, store, context, year, status=409, problem=not_newer)
        except VersionTooFar as exc:
            return await calendar_page(
                request, store, context, year, status=409, problem=(exc.message_zh, exc.message_en)
            )
        return Redirect("/admin/calendar/?done=published", status_code=303)
