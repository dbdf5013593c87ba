"""What a node knows beyond its errands: the catalogue it holds, the calendar, and its clock offset.

It implements ``DeadlinePolicy`` for the errand service: deadlines come from the
held catalogue's limits on the node's working-day calendar — the built-in notices, the
county's signed calendar over them, provisional statutory years after them (dates over
those are 暂定) — dated in China Standard Time on a clock corrected by the offset
measured against the county.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Literal, TypeVar

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol.actions import Accept
from protocol.assessment import RULES, AssessmentRules, default_rules, open_rules, sign_rules
from protocol.binding import EncodedEntries, binding_refusal
from protocol.bounds import check_version_step
from protocol.calendar_doc import (
    CALENDAR,
    BoundCalendar,
    OfficialCalendar,
    calendar_digest,
    open_calendar,
    sign_calendar,
)
from protocol.catalogue import (
    Catalogue,
    Matter,
    catalogue_digest,
    open_catalogue,
    publisher_keys,
    read_catalogue,
    sign_catalogue,
)
from protocol.deadlines import CalendarUnknown, Unit, WorkCalendar, business_today, compute_due, paused_days, push_due
from protocol.errors import SanjiError, VersionNotNewer
from protocol.hlc import wall_seconds
from protocol.refusals import Refusal
from protocol.session import NodeReport
from protocol.signing import KeyRecord
from protocol.topology import COUNTY
from sanji.store import Store, submissions
from sanji.store.documents import LOST, Lost, parse_lost
from sanji.store.submissions import Once
from sanji.workcalendar import bound_calendar

log = logging.getLogger("sanji.context")
CATALOGUE = "catalogue"
SKEW_FLAG_MS = 5 * 60 * 1000
# The ``meta`` key of the lowest catalogue version kept in ``document_versions`` (``NodeContext.catalogue_floor``).
CATALOGUE_FLOOR = "catalogue_versions_floor"
# The ``meta`` key of the catalogue versions lost in restores from older copies (``NodeContext.catalogue_lost``).
CATALOGUE_LOST = CATALOGUE + LOST
OLDER_CATALOGUES_KEPT = 16  # older catalogue versions kept decoded in memory (``NodeContext.held_catalogue``)
# How long a look for a catalogue newer than the one held stands (``NodeContext.binding_status``): a worklist of
# errands naming a version above the newest looks once, not once per errand, and a sibling's publication is seen
# within this many seconds.
NEWER_CATALOGUE_LOOK_S = 2.0
# What a publisher writes in the transaction that keeps its document: (connection, the signed blob's digest).
Record = Callable[[AsyncConnection, str], Awaitable[None]]
_Doc = TypeVar("_Doc", Catalogue, OfficialCalendar)  # the county documents a node takes up alike


def with_once(record: Record | None, once: Once | None, what: str) -> Record | None:
    """``record`` with the publishing form's one-time key (``sanji.store.submissions``), both written in the
    transaction that keeps the document: sent twice, the document is published once (``what``: the document
    and its version, as the key names what the first sending wrote)."""
    if once is None:
        return record

    async def both(conn: AsyncConnection, digest: str) -> None:
        await submissions.refuse_if_used(conn, once)
        if record is not None:
            await record(conn, digest)
        await submissions.keep(conn, once, "", what)

    return both


def _then(record: Record | None, digest: str) -> Callable[[AsyncConnection], Awaitable[None]] | None:
    if record is None:
        return None

    async def then(conn: AsyncConnection) -> None:
        await record(conn, digest)

    return then


class Bound(msgspec.Struct, kw_only=True):
    """The part of a stored errand state naming its binding (the rest is skipped undecoded)."""

    scope: str = ""
    catalogue_version: int = 0
    matter_entry: Matter | None = None


_bound = msgspec.msgpack.Decoder(Bound)


def bound_of(state_blob: bytes | None) -> Bound:
    """The catalogue version and entry a stored errand state (``errands.state``) is bound to."""
    return _bound.decode(state_blob) if state_blob else Bound()


def bound_entry(state_blob: bytes | None) -> Matter | None:
    """The catalogue entry an errand was registered under, from its stored state (an ``errands`` row's
    ``state``); None for an errand bound to none or a row without its state."""
    return bound_of(state_blob).matter_entry


class RulesAhead(SanjiError):
    """A catalogue asks for a generation of errand rules some node does not judge by yet."""

    code = "rules_ahead"
    default_hint = "Upgrade those nodes and let each exchange once, or publish the matters at the generation they know."


def rules_refusal(catalogue: Catalogue, reports: Sequence[NodeReport]) -> str:
    """Why the county may not sign ``catalogue`` yet ('' if it may): a node whose last report says it judges by
    an older generation of errand rules than a matter asks for would judge those errands by the old rules, and
    its replicas would disagree with everyone else's. Generations 0 and 1 predate the report's field, so only
    a later one is checked; a node that never reported is not known to run an older build."""
    needed = max((m.rules for m in catalogue.matters), default=0)
    if needed < 2:
        return ""
    behind = sorted(r.node for r in reports if r.errand_rules < needed)
    if not behind:
        return ""
    shown = "、".join(behind[:10]) + (f" 等{len(behind)}个节点" if len(behind) > 10 else "")
    return (
        f"目录要求第{needed}代办件规则，以下节点尚未升级：{shown}。请先升级这些节点并各同步一次。"
        f" The catalogue asks for errand rules generation {needed}; these nodes last reported an older build: "
        f"{', '.join(behind[:10])}{' …' if len(behind) > 10 else ''}."
    )


class VersionHeldBelow(SanjiError):
    """After a restore, a catalogue version some node below already holds would be published again, differently."""

    code = "version_held_below"

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(f"{zh} {en}", hint="Publish a version above the highest one the nodes below report.")
        self.message_zh, self.message_en = zh, en


def held_below_refusal(version: int, lost: Lost | None, reports: Sequence[NodeReport]) -> tuple[str, str] | None:
    """Why the county may not publish catalogue ``version`` again (None if it may): it was restored from a copy
    older than its last publication (``lost`` ends in an open range from the copy's newest + 1), and a node below
    reports holding ``version`` or a later one, so that number was published once already with other contents.
    Asked only while a range is open: in normal running every node holds what the county published, so a report
    of a higher version is a forgery no honest node makes, and must not be able to stop the county publishing."""
    if not lost or lost[-1][1] is not None or version < lost[-1][0]:
        return None
    holders = sorted((r.catalogue_version, r.node) for r in reports if r.catalogue_version >= version)
    if not holders:
        return None
    top = holders[-1][0]
    nodes = sorted({node for _, node in holders})
    shown = "、".join(nodes[:10]) + (f" 等{len(nodes)}个节点" if len(nodes) > 10 else "")
    return (
        f"第 {version} 版目录已由下级节点持有（{shown}，最高第 {top} 版）：本中心从较早的备份恢复，缺少这些版本，"
        f"同一版本号不能再次发布不同的内容。请发布第 {top + 1} 版或更高版本。",
        f"Catalogue version {version} is already held below ({', '.join(nodes[:10])}"
        f"{' …' if len(nodes) > 10 else ''}; up to version {top}): this county was restored from an older copy and "
        f"lacks them, and a number is never published twice with other contents. Publish version {top + 1} or higher.",
    )


class NodeContext:
    def __init__(self, store: Store, calendar: WorkCalendar | None) -> None:
        """``calendar``: the built-in official calendar (``sanji.workcalendar.load_calendar``); None: no deadlines."""
        self.store = store
        self.builtin = calendar
        self.catalogue: Catalogue | None = None
        self.calendar_doc: OfficialCalendar | None = None
        self.rules: AssessmentRules | None = None  # the county's assessment rules (考核细则) held
        self.clock_offset_ms = 0
        self.clock_flagged = False
        self._bound: tuple[int, int, BoundCalendar] | None = None  # (version, year it was built in, calendar)
        self.daily_blob_budget = 0  # bytes of attachments a day over the parent link; 0: no limit
        # The signed blob of each document held, by kind: (version, blob). A hub sends them to every child
        # that lacks them; a version names one blob in a database (``put_document`` keeps only newer ones),
        # so the one kept here is read again only when the version held changes.
        self._blobs: dict[str, tuple[int, bytes]] = {}
        # Older catalogue versions read again to check an errand's bound entry (``held_catalogue``): the last few
        # used (least recently used dropped), and the versions below the newest this node does not hold (a version
        # below the newest is never kept later: ``put_document`` keeps only newer ones), so neither is read twice.
        self._older: OrderedDict[int, Catalogue] = OrderedDict()
        self._not_held: set[int] = set()
        self._encoded: EncodedEntries = {}  # the county's entries encoded once (``binding_refusal``)
        self._floor: int | None = None  # ``catalogue_floor``, once read
        self._lost: tuple[int, Lost | None] | None = None  # ``catalogue_lost``, read at that newest version held
        self._looked_for_newer = -NEWER_CATALOGUE_LOOK_S  # ``time.monotonic()`` of the last ``refresh_catalogue``

    async def _held(self, kind: str) -> tuple[int, bytes] | None:
        """The document ``kind`` as the database holds it now, kept as the blob of its version."""
        held = await self.store.document(kind)
        if held is not None:
            self._blobs[kind] = held
        return held

    async def _blob(self, kind: str, version: int) -> bytes | None:
        """The blob of ``kind`` at ``version`` (the one this process holds), read once per version."""
        kept = self._blobs.get(kind)
        if kept is not None and kept[0] == version:
            return kept[1]
        held = await self._held(kind)
        return held[1] if held else None

    async def load(self) -> None:
        held = await self._held(CATALOGUE)
        if held is not None:
            self.catalogue = open_catalogue(held[1], publisher_keys(self.store.directory, self.store.node_id))
        await self.refresh_calendar()
        await self.refresh_rules()
        self.clock_offset_ms = int(await self.store.meta_value("clock_offset_ms") or 0)

    # -- the calendar ---------------------------------------------------------------

    @property
    def calendar_version(self) -> int:
        """The county calendar held (0: the built-in notices alone)."""
        return self.calendar_doc.version if self.calendar_doc else 0

    @property
    def bound(self) -> BoundCalendar | None:
        """Official and provisional years as of today; rebuilt when the calendar or the year changes."""
        if self.builtin is None:
            return None
        year = self.today().year
        if self._bound is None or self._bound[:2] != (self.calendar_version, year):
            built = bound_calendar(self.builtin.to_data(), self.calendar_doc, this_year=year)
            self._bound = (self.calendar_version, year, built)
        return self._bound[2]

    @property
    def calendar(self) -> WorkCalendar | None:
        """The official years only: asking about any other year raises CalendarUnknown."""
        bound = self.bound
        return bound.official if bound else None

    async def refresh_documents(self, versions: dict[str, int | None]) -> None:
        """Take up what another process stored, given the versions the database holds now
        (``sanji.sync.glance``): only a document whose version is newer than the one held here is read."""
        if (versions.get(CATALOGUE) or 0) > self.catalogue_version:
            await self.refresh_catalogue()
        if (versions.get(CALENDAR) or 0) > self.calendar_version:
            await self.refresh_calendar()
        rules = versions.get(RULES)
        if rules is None or rules > self.rules_version:
            await self.refresh_rules()  # none held: the county signs the seed defaults

    async def refresh_catalogue(self) -> bool:
        """Take up a catalogue another process (a hub sibling's screen) stored; True if newer."""
        self._looked_for_newer = time.monotonic()
        taken = await self._take_up(CATALOGUE, self.catalogue_version, open_catalogue, "catalogue")
        if taken is None:
            return False
        self.catalogue = taken
        return True

    async def refresh_calendar(self) -> bool:
        """Take up a calendar another process (``sanji calendar publish``, a hub sibling) stored; True if newer."""
        taken = await self._take_up(CALENDAR, self.calendar_version, open_calendar, "working-day calendar")
        if taken is None:
            return False
        self.calendar_doc = taken
        return True

    async def _take_up(
        self, kind: str, version: int, open_doc: Callable[[bytes, Mapping[str, KeyRecord]], _Doc], name: str
    ) -> _Doc | None:
        """The county's document ``kind`` the database holds, verified and logged, if newer than ``version``."""
        held = await self._held(kind)
        if held is None or held[0] <= version:
            return None
        doc = open_doc(held[1], publisher_keys(self.store.directory, self.store.node_id))
        log.info("%s version %s of %s now held", name, doc.version, doc.county)
        return doc

    async def publish_calendar(self, doc: OfficialCalendar, *, record: Record | None = None) -> bool:
        """County only: sign and hold the calendar so it travels down with the next exchanges.

        ``record(conn, digest)`` runs in the transaction that keeps it (the publisher's audit event). A version the
        database already holds when that transaction runs is refused (``VersionNotNewer``): two publications sent
        at once, by this process or a sibling on the same database, keep one and refuse the other.
        """
        if self.store.directory.role(self.store.node_id) != COUNTY:
            raise SanjiError("only the county hub publishes the working-day calendar")
        await self.refresh_calendar()  # the step is bounded against what the database holds now
        self.version_step(CALENDAR, doc.version)
        if not await self.offer_calendar(sign_calendar(doc, self.store.key), record=record):
            await self.refresh_calendar()  # what the database kept instead (a sibling process's publication)
            raise VersionNotNewer(CALENDAR, held=self.calendar_version, version=doc.version)
        return True

    async def offer_calendar(self, blob: bytes, *, record: Record | None = None) -> bool:
        """Verify a signed calendar and keep it if it is newer than the one held."""
        doc = open_calendar(blob, publisher_keys(self.store.directory, self.store.node_id))
        digest = calendar_digest(blob)
        kept = await self.store.put_document(CALENDAR, doc.version, blob, digest, then=_then(record, digest))
        if kept:
            self._blobs[CALENDAR] = (doc.version, blob)
            self.calendar_doc = doc
            log.info("working-day calendar version %s of %s now held", doc.version, doc.county)
        elif doc.version > self.calendar_version:
            # the database holds this version or a newer one, kept by another process: take up what it holds,
            # never the offered copy (a sibling's publication of the same version may differ from it)
            await self.refresh_calendar()
        return kept

    async def calendar_blob(self) -> bytes | None:
        """The signed calendar of the version held here (``calendar_version``)."""
        return await self._blob(CALENDAR, self.calendar_version)

    # -- the assessment rules ------------------------------------------------------

    @property
    def rules_version(self) -> int:
        """The county's assessment rules held (0: none yet)."""
        return self.rules.version if self.rules else 0

    async def refresh_rules(self) -> bool:
        """Take up rules another process (``sanji rules publish``, the office) stored; True if newer.

        The county signs the seed defaults the first time (``sanji.office.assess.held_rules`` asks this too), so
        a county that never assessed still sends its townships what they are scored by.
        """
        held = await self._held(RULES)
        if held is None and self.store.directory.role(self.store.node_id) == COUNTY and not self.store.db.read_only:
            await self.offer_rules(sign_rules(default_rules(self.store.node_id), self.store.key))
            held = await self._held(RULES)
        if held is None or held[0] <= self.rules_version:
            return False
        self.rules = open_rules(held[1], publisher_keys(self.store.directory, self.store.node_id))
        return True

    async def publish_rules(self, rules: AssessmentRules, *, record: Record | None = None) -> bool:
        """County only: sign and hold assessment rules so they travel down with the next exchanges.

        ``sanji.office.rules_routes.publish_rules`` (the desk's routes, ``sanji rules publish``) says first why
        rules that name another county or are not newer are refused; this is where every path passes. A version
        the database already holds when the keeping transaction runs is refused (``VersionNotNewer``), so of two
        publications at once one is kept and the other refused. ``record(conn, digest)`` runs in the transaction
        that keeps them (the publishing form's key, ``with_once``).
        """
        if self.store.directory.role(self.store.node_id) != COUNTY:
            raise SanjiError("only the county hub publishes assessment rules")
        await self.refresh_rules()  # the step is bounded against what the database holds now
        self.version_step(RULES, rules.version)
        if not await self.offer_rules(sign_rules(rules, self.store.key), record=record):
            await self.refresh_rules()  # what the database kept instead (a sibling process's publication)
            raise VersionNotNewer(RULES, held=self.rules_version, version=rules.version)
        return True

    async def offer_rules(self, blob: bytes, *, record: Record | None = None) -> bool:
        """Verify signed assessment rules against the county's keys and keep them if newer than those held."""
        rules = open_rules(blob, publisher_keys(self.store.directory, self.store.node_id))
        digest = catalogue_digest(blob)
        kept = await self.store.put_document(RULES, rules.version, blob, digest, then=_then(record, digest))
        if kept:
            self._blobs[RULES] = (rules.version, blob)
            self.rules = rules
            log.info("assessment rules version %s of %s now held", rules.version, rules.county)
        elif rules.version > self.rules_version:
            # the database holds this version or a newer one, kept by another process: take up what it holds,
            # never the offered copy (a sibling's publication of the same version may differ from it)
            await self.refresh_rules()
        return kept

    async def rules_blob(self) -> bytes | None:
        """The signed rules of the version held here (``rules_version``)."""
        return await self._blob(RULES, self.rules_version)

    @property
    def catalogue_version(self) -> int:
        return self.catalogue.version if self.catalogue else 0

    async def publish(self, catalogue: Catalogue, *, record: Record | None = None) -> bool:
        """County only: sign and hold a catalogue so it travels down with the next exchanges.

        ``record(conn, digest)`` runs in the transaction that keeps it (the publisher's audit event). A version the
        database already holds when that transaction runs is refused (``VersionNotNewer``; the start-up duty lets
        its file's version be one held): of two publications at once, one is kept and the other refused.
        """
        if self.store.directory.role(self.store.node_id) != COUNTY:
            raise SanjiError("only the county hub publishes the catalogue")
        await self.refresh_catalogue()  # the step is bounded against what the database holds now
        self.version_step(CATALOGUE, catalogue.version)
        reports = await self.store.reports()
        behind = rules_refusal(catalogue, reports)
        if behind:
            raise RulesAhead(behind)
        reused = held_below_refusal(catalogue.version, await self.catalogue_lost(), reports)
        if reused:
            raise VersionHeldBelow(*reused)
        if not await self.offer(sign_catalogue(catalogue, self.store.key), record=record):
            await self.refresh_catalogue()  # what the database kept instead (a sibling process's publication)
            raise VersionNotNewer(CATALOGUE, held=self.catalogue_version, version=catalogue.version)
        return True

    def version_step(self, kind: str, version: int) -> None:
        """Raise ``VersionTooFar`` when the county may not publish ``version`` of ``kind`` (catalogue, calendar,
        rules) for being too far above the version held (``protocol.bounds.check_version_step``).

        Every publisher here asks it, so the desk, the command line and the catalogue file loaded at start
        are held to it alike; a review page asks it too, to say so before anything is shown for signing.
        """
        held = {CATALOGUE: self.catalogue_version, CALENDAR: self.calendar_version, RULES: self.rules_version}
        check_version_step(held[kind], version)

    async def offer(self, blob: bytes, *, record: Record | None = None) -> bool:
        """Verify a signed catalogue and keep it if it is newer than the one held."""
        catalogue = open_catalogue(blob, publisher_keys(self.store.directory, self.store.node_id))
        digest = catalogue_digest(blob)
        kept = await self.store.put_document(CATALOGUE, catalogue.version, blob, digest, then=_then(record, digest))
        if kept:
            self._blobs[CATALOGUE] = (catalogue.version, blob)
            self.catalogue = catalogue
            log.info("catalogue version %s of %s now held", catalogue.version, catalogue.county)
        return kept

    async def held_catalogue(self, version: int) -> Catalogue | None:
        """The county's catalogue of ``version`` as this node holds it: the newest, or an older one kept in
        ``document_versions`` (every version held since migration 0026). None if this node never held it, or
        replaced it before it kept them all: then an errand bound to it cannot be checked
        (``protocol.binding.binding_refusal``)."""
        if version <= 0 or version > self.catalogue_version:
            return None  # a version newer than the newest held is in no store here
        if self.catalogue is not None and self.catalogue.version == version:
            return self.catalogue
        kept = self._older.get(version)
        if kept is not None:
            self._older.move_to_end(version)
            return kept
        if version in self._not_held:
            return None
        blob = await self.store.document_version(CATALOGUE, version)
        if blob is None:
            self._not_held.add(version)
            return None
        try:
            catalogue = read_catalogue(blob)  # verified when it was kept; its key may have been rotated since
        except SanjiError as exc:
            # not held, as far as a desk can tell; remembered so, since a recorded version is never rewritten while
            # the node runs (the repair in deploy/README.md is made with it stopped)
            log.warning("catalogue version %s kept here does not read: %s", version, exc.message)
            self._not_held.add(version)
            return None
        if catalogue.version != version:
            log.warning("catalogue version %s kept here holds version %s", version, catalogue.version)
            self._not_held.add(version)
            return None
        if len(self._older) >= OLDER_CATALOGUES_KEPT:
            self._older.popitem(last=False)
        self._older[version] = catalogue
        return catalogue

    async def catalogue_floor(self) -> int | None:
        """The lowest catalogue version this node has kept in ``document_versions`` (the one migration 0026 copied
        in, or the first it kept after): every version it kept from there up is held. None: none kept yet."""
        if self._floor is None:
            value = await self.store.meta_value(CATALOGUE_FLOOR)
            try:
                self._floor = int(value) if value else None
            except ValueError:  # typed by hand (a repair gone wrong): no floor, rather than no desk
                log.warning("meta %s is %r, not a version: taken as unset", CATALOGUE_FLOOR, value)
                self._floor = None
        return self._floor

    async def catalogue_lost(self) -> Lost | None:
        """The ranges of catalogue versions this node may have held and lost in restores from older copies
        (``sanji.backup.RECORD_LOST``): from a copy's newest + 1 up to below the next version it kept, unknown
        (no end) until it keeps one. None: the value does not read (typed by hand), so no version is known never
        published. A range ends only when a version is kept, so it is read again once the newest held changes."""
        if self._lost is None or self._lost[0] != self.catalogue_version:
            value = await self.store.meta_value(CATALOGUE_LOST)
            ranges = parse_lost(value)
            if ranges is None:
                log.warning(
                    "meta %s is %r, not ranges of versions: no version refused as never held", CATALOGUE_LOST, value
                )
            self._lost = (self.catalogue_version, ranges)
        return self._lost[1]

    async def binding_status(
        self, entry: Matter | None, version: int, scope: str = ""
    ) -> Refusal | Literal["unchecked", "behind"] | None:
        """Whether an errand bound to ``entry`` under catalogue ``version`` is bound to the county's entry, as this
        node can tell (``protocol.binding.binding_refusal``): None if it is (or the errand is unbound), a
        ``binding_mismatch`` refusal if not, or if it names a version this node cannot have missed (``<= 0``, newer
        than the newest it holds, or, at the county, one from its floor up that it lacks: never published); and
        ``"unchecked"`` for a version this node never held below what it can check (replaced before migration
        0026, or before this node first held a catalogue: a township restored or enrolled since) or that it may
        have held and lost (``catalogue_lost``: published after the copy ``sanji restore`` put back was taken),
        let through.
        Only the county, which publishes every version, refuses one newer than it holds: a township or village
        restored from a backup, or behind on its exchanges, may hold less than its villages, so there such a
        version is ``"behind"`` (said on the errand's page, let through, not listed: the county checks it).
        ``scope``: the errand's registering node; an errand of another county than this node's (a city above the
        counties) is bound to that county's catalogue, which that county's desks check: None here."""
        if entry is None:
            return None
        directory = self.store.directory
        if scope and scope in directory and self.store.node_id in directory:
            ours, theirs = directory.county_of(self.store.node_id), directory.county_of(scope)
            if theirs is not None and ours != theirs:
                return None  # another county's errand (a city): its own county's desks check it
        if version > self.catalogue_version and time.monotonic() - self._looked_for_newer >= NEWER_CATALOGUE_LOOK_S:
            # another process (a hub sibling's screen) may have kept it meanwhile; looked for once in a short while,
            # so a worklist of errands naming versions above the newest does not read the catalogue once per row
            await self.refresh_catalogue()
        held = await self.held_catalogue(version)
        county = directory.role(self.store.node_id) == COUNTY
        floor = await self.catalogue_floor() if county else None
        lost = await self.catalogue_lost() if floor is not None else []
        refused = binding_refusal(
            entry,
            held,
            version=version,
            newest=self.catalogue_version if county else None,
            every_version_from=floor if lost is not None else None,
            lost=lost or (),
            encoded=self._encoded,
        )
        if refused is not None:
            return refused
        if held is None:
            return "behind" if version > self.catalogue_version else "unchecked"
        return None

    async def binding_mismatch(self, state_blob: bytes | None) -> Refusal | None:
        """Why a stored errand's bound entry is not the county's entry of its version, as this node can tell
        (``binding_status``); None if it is, or if it cannot be checked here."""
        status = await self.binding_state(state_blob)
        return status if isinstance(status, Refusal) else None

    async def binding_state(self, state_blob: bytes | None) -> Refusal | Literal["unchecked", "behind"] | None:
        """``binding_status`` of a stored errand state (``errands.state``)."""
        bound = bound_of(state_blob)
        return await self.binding_status(bound.matter_entry, bound.catalogue_version, bound.scope)

    async def catalogue_blob(self) -> bytes | None:
        """The signed catalogue of the version held here (``catalogue_version``)."""
        return await self._blob(CATALOGUE, self.catalogue_version)

    async def observe_offset(self, offset_ms: int) -> None:
        """Record this node's clock offset to the county; flag it beyond five minutes."""
        self.clock_offset_ms = offset_ms
        await self.store.set_meta("clock_offset_ms", str(offset_ms))
        flagged = abs(offset_ms) > SKEW_FLAG_MS
        if flagged and not self.clock_flagged:
            log.warning("this node's clock is off by %.1f minutes from the county's", offset_ms / 60000)
        self.clock_flagged = flagged

    # -- DeadlinePolicy -----------------------------------------------------------

    def matter(self, code: str) -> Matter | None:
        return self.catalogue.get(code) if self.catalogue else None

    def today(self) -> date:
        return business_today(datetime.now(UTC), self.clock_offset_ms / 1000)

    def date_of(self, hlc: int) -> date:
        return business_today(datetime.fromtimestamp(wall_seconds(hlc), UTC), self.clock_offset_ms / 1000)

    @property
    def provisional_calendar(self) -> WorkCalendar | None:
        """The calendar deadlines are computed on: official years, then the statutory provisional ones.

        Deadlines must not vanish in November because next year's notice is not out yet: dates
        that fall in such a year are computed on its statutory holidays (never on plain weekends)
        and marked 暂定 until the county publishes the year (``sanji calendar publish``).
        """
        bound = self.bound
        return bound.effective if bound else None

    def is_provisional(self, day: str) -> bool:
        bound = self.bound
        return bool(day) and bound is not None and bound.is_provisional(date.fromisoformat(day))

    def span_provisional(self, start: date, due: str) -> bool:
        """Whether a date counted from ``start`` to ``due`` crosses a provisional year (暂定)."""
        bound = self.bound
        return bool(due) and bound is not None and bound.span_provisional(start, date.fromisoformat(due))

    def whole_due(
        self, matter: str, accepted_on: date, errand_kind: str, entry: Matter | None = None
    ) -> tuple[str, int, str]:
        """The whole deadline counted from the acceptance, by the errand's bound ``entry`` where it has one (a
        matter the catalogue has since dropped or changed keeps the limit it was registered under)."""
        found = entry or self.matter(matter)
        calendar = self.provisional_calendar
        if found is None or calendar is None:
            return "", 0, "working"
        limit = 0 if errand_kind == "即办件" or found.immediate else found.committed_limit
        if errand_kind == "特办件" and found.special_limit is not None:  # urgent: the matter's own limit
            limit = found.special_limit
        try:
            due = compute_due(accepted_on, limit, found.limit_unit, calendar=calendar)
        except CalendarUnknown as exc:
            log.warning("no deadline for %s: %s", matter, exc.message)
            return "", limit, found.limit_unit
        return due.isoformat(), limit, found.limit_unit

    def stage_due(self, matter: str, role: str, start: date, pauses: Sequence[tuple[date, date]] = ()) -> str:
        """The stage's deadline from its ``start``: the matter's limit at ``role`` and the stage's closed pauses."""
        found = self.matter(matter)
        if found is None or self.calendar is None:
            return ""
        limit = found.county_limit if role == COUNTY else found.township_limit
        calendar = self.provisional_calendar
        if limit <= 0 or calendar is None:
            return ""
        try:
            return compute_due(start, limit, found.limit_unit, pauses, calendar=calendar).isoformat()
        except CalendarUnknown:
            return ""

    def due_from(self, accept: Accept, pauses: Sequence[tuple[int, int]], extended_days: int, fallback: str) -> str:
        """The whole deadline counted again from the acceptance (``due_from_acceptance``) on this node's
        calendar; ``fallback`` where the calendar cannot answer."""
        calendar = self.provisional_calendar
        if calendar is None:
            return fallback
        try:
            return due_from_acceptance(accept, pauses, extended_days, calendar=calendar, date_of=self.date_of)
        except CalendarUnknown:
            return fallback

    def pauses_since(self, pauses: Sequence[tuple[int, int]], since: int) -> list[tuple[date, date]]:
        """``pauses_since`` in business days on this node's clock."""
        return pauses_since(pauses, since, self.date_of)

    def pushed_due(self, due: str, paused_from: date, paused_to: date, unit: Unit = "working") -> str:
        """``due`` moved by the pause from ``paused_from`` to ``paused_to``, counted in the limit's ``unit``."""
        calendar = self.provisional_calendar
        if not due or calendar is None or paused_to < paused_from:
            return due
        try:
            paused = paused_days([(paused_from, paused_to)], unit, calendar=calendar)
            return push_due(date.fromisoformat(due), paused, unit, calendar=calendar).isoformat()
        except CalendarUnknown:
            return due

    def extended_due(self, due: str, days: int, unit: Unit = "working") -> str:
        """``due`` moved by an extension of ``days`` in the limit's ``unit`` (延期: 行政许可法 第四十二条)."""
        calendar = self.provisional_calendar
        if not due or calendar is None:
            return due
        try:
            return push_due(date.fromisoformat(due), days, unit, calendar=calendar).isoformat()
        except CalendarUnknown:
            return due

    def limit_unit(self, entry: Matter | None, matter: str) -> Unit:
        """The unit an errand's limit is counted in: its bound catalogue entry's, else the catalogue's now."""
        found = entry if entry is not None else self.matter(matter)
        return found.limit_unit if found is not None else "working"


def pauses_since(
    pauses: Sequence[tuple[int, int]], since: int, date_of: Callable[[int], date]
) -> list[tuple[date, date]]:
    """The closed pauses (clock times) that began once a clock started at ``since``: the ones that stopped it
    (a 补正 before the acceptance stopped no whole-errand clock), as business days."""
    return [(date_of(s), date_of(r)) for s, r in pauses if s >= since and r >= s]


def due_from_acceptance(
    accept: Accept,
    pauses: Sequence[tuple[int, int]],
    extended_days: int,
    *,
    calendar: WorkCalendar,
    date_of: Callable[[int], date],
) -> str:
    """限时办结: the whole deadline from what the errand recorded — the acceptance day and limit, the closed
    pauses since, the extensions — all in the limit's own unit (``protocol.deadlines.compute_due``). The one
    count the desk (a pause closed, an extension) and the 暂定 correction both make, so a calendar-day limit
    rolled past a holiday is not moved from the rolled day."""
    counted = pauses_since(pauses, accept.at, date_of)
    accepted_on = date_of(accept.at)
    due = compute_due(accepted_on, accept.limit_days, accept.limit_unit, counted, extended_days, calendar=calendar)
    return due.isoformat()


def now_ms() -> int:
    return time.time_ns() // 1_000_000
