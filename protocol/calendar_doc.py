"""The official working-day calendar as a county-signed, versioned document (工作日历).

The county publishes each year's arrangement (国务院办公厅关于某年部分节假日安排的通知) once; the
signed document travels down the tree in every exchange like the catalogue, and every node reports
the version it holds. Invariants this module keeps:

* a calendar is signed only if ``check_calendar`` finds nothing wrong, and opened only if its
  signature holds *and* it still checks clean; the signature is checked before a byte of the
  payload is decoded;
* a node's calendar is the built-in data (the ``chinesecalendar`` library's notices) with the
  signed document's years replacing the library's year by year (``official_data``); years in
  neither are *provisional* (暂定), computed by the caller from the statutory holidays and never
  from plain weekends (``BoundCalendar``);
* every date computed with a provisional year anywhere in its span says so (``span_provisional``),
  so screens, notices and the API can mark it 暂定 and the custodian can correct it by a signed
  action once the year is published.

Envelope layout (integers big-endian; the catalogue's layout under its own magic, so neither can
be passed off as the other)::

    b"SJW" | version:u8 | key_id_len:u8 | key_id | payload_len:u32 | payload | sig_len:u16 | sig
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date

import msgspec

from protocol import envelope
from protocol.deadlines import CalendarData, CalendarInvalid, WorkCalendar
from protocol.encoding import encode
from protocol.errors import FrameError, SignatureError
from protocol.signing import KeyRecord, SigningKey, verify

__all__ = [
    "CALENDAR",
    "BoundCalendar",
    "CalendarYear",
    "OfficialCalendar",
    "calendar_digest",
    "check_calendar",
    "official_data",
    "open_calendar",
    "sign_calendar",
]

CALENDAR = "calendar"  # the document kind nodes store it under
MAGIC = b"SJW"
FORMAT_VERSION = 1
MAX_CALENDAR_BYTES = 256 * 1024
MAX_YEARS = 50
MAX_DAYS_PER_YEAR = 120
FIRST_YEAR, LAST_YEAR = 1949, 2200
WEEKEND = (5, 6)
# Days off by statute whose Gregorian date never moves (《全国年节及纪念日放假办法》 art. 2): a notice
# that leaves one out is a typing error, not a policy.
FIXED_STATUTORY = ((1, 1, "元旦"), (5, 1, "劳动节"), (10, 1, "国庆节"), (10, 2, "国庆节"), (10, 3, "国庆节"))


class CalendarYear(msgspec.Struct, frozen=True, kw_only=True):
    """One year's official arrangement: days off and weekend days worked (调休上班)."""

    year: int
    holidays: tuple[date, ...]
    workdays: tuple[date, ...] = ()
    source: str = ""  # the notice, for the record


class OfficialCalendar(msgspec.Struct, frozen=True, kw_only=True):
    """What the county signs. A newer ``version`` replaces the one held, whole."""

    county: str
    version: int
    published_at: str
    years: tuple[CalendarYear, ...]
    note: str = ""

    def year(self, year: int) -> CalendarYear | None:
        for entry in self.years:
            if entry.year == year:
                return entry
        return None


def check_calendar(doc: OfficialCalendar) -> list[str]:
    """Every fault as one line of text; an empty list means the calendar may be signed and used."""
    out: list[str] = []
    if not isinstance(doc.county, str) or not doc.county.strip():
        out.append("county: the publishing county's name is required")
    if isinstance(doc.version, bool) or not isinstance(doc.version, int) or doc.version < 1:
        out.append(f"version: must be a whole number from 1 up, not {doc.version!r}")
    try:
        date.fromisoformat(doc.published_at)
    except (TypeError, ValueError):
        out.append(f"published_at: must be an ISO date like 2026-11-20, not {doc.published_at!r}")
    if not doc.years:
        out.append("years: the calendar publishes no year")
    if len(doc.years) > MAX_YEARS:
        out.append(f"years: {len(doc.years)} years; the limit is {MAX_YEARS}")
        return out
    seen: set[int] = set()
    for entry in doc.years:
        y = entry.year
        where = f"year {y}"
        if isinstance(y, bool) or not isinstance(y, int) or not FIRST_YEAR <= y <= LAST_YEAR:
            out.append(f"{where}: not a year between {FIRST_YEAR} and {LAST_YEAR}")
            continue
        if y in seen:
            out.append(f"{where}: published twice")
        seen.add(y)
        for name, days in (("holidays", entry.holidays), ("workdays", entry.workdays)):
            if len(days) > MAX_DAYS_PER_YEAR:
                out.append(f"{where}.{name}: {len(days)} days; the limit is {MAX_DAYS_PER_YEAR}")
                continue
            if len(set(days)) != len(days):
                out.append(f"{where}.{name}: a day is listed twice")
            out.extend(f"{where}.{name}: {d.isoformat()} is not in {y}" for d in days if d.year != y)
        out.extend(
            f"{where}: {d.isoformat()} is both a holiday and a working day"
            for d in sorted(set(entry.holidays) & set(entry.workdays))
        )
        out.extend(
            f"{where}.workdays: {d.isoformat()} is a {d.strftime('%A')}, already a working day "
            "(list only weekend days that are worked, 调休上班)"
            for d in sorted(entry.workdays)
            if d.weekday() not in WEEKEND
        )
        held = set(entry.holidays)
        out.extend(
            f"{where}.holidays: {date(y, m, d).isoformat()} ({name}) is a statutory holiday and must be listed"
            for m, d, name in FIXED_STATUTORY
            if date(y, m, d) not in held and date(y, m, d).weekday() not in WEEKEND
        )
    return out


def official_data(base: CalendarData, doc: OfficialCalendar | None) -> CalendarData:
    """The built-in calendar with every year the document publishes replacing the built-in one."""
    if doc is None:
        return base
    replaced = {entry.year for entry in doc.years}
    holidays = {d for d in base.holidays if d.year not in replaced}
    workdays = {d for d in base.workdays if d.year not in replaced}
    for entry in doc.years:
        holidays.update(entry.holidays)
        workdays.update(entry.workdays)
    return CalendarData(
        years=tuple(sorted(set(base.years) | replaced)),
        holidays=tuple(sorted(holidays)),
        workdays=tuple(sorted(workdays)),
        weekend=base.weekend,
    )


class BoundCalendar:
    """A node's calendar: official years, provisional years after them, and the version they come from.

    ``version`` is the signed document's version (0: the built-in data alone). ``effective`` is the
    calendar deadlines are computed on; ``official`` the years some notice fixed.
    """

    __slots__ = ("effective", "official", "provisional_years", "version")

    def __init__(self, official: CalendarData, provisional: CalendarData, *, version: int) -> None:
        extra = [y for y in provisional.years if y not in official.years]
        self.provisional_years = frozenset(extra)
        self.version = version
        self.official = WorkCalendar.from_data(official)
        self.effective = WorkCalendar(
            years=(*official.years, *extra),
            holidays=(*official.holidays, *(d for d in provisional.holidays if d.year in self.provisional_years)),
            workdays=official.workdays,
            weekend=official.weekend,
        )
        if self.effective.weekend != frozenset(provisional.weekend):
            raise CalendarInvalid("the provisional calendar keeps another weekend than the official one")

    def is_provisional(self, d: date) -> bool:
        return d.year in self.provisional_years

    def span_provisional(self, start: date, end: date) -> bool:
        """Whether any day in [start, end] lies in a provisional year: a date counted over it is 暂定."""
        lo, hi = min(start, end), max(start, end)
        return any(y in self.provisional_years for y in range(lo.year, hi.year + 1))

    def __repr__(self) -> str:
        return f"<BoundCalendar v{self.version} provisional={sorted(self.provisional_years)}>"


# ---------------------------------------------------------------------------------------------- envelope

_decoder = msgspec.msgpack.Decoder(OfficialCalendar)
SIGN_HINT = "Correct every listed problem (sanji calendar check FILE) and publish again."


def sign_calendar(doc: OfficialCalendar, key: SigningKey) -> bytes:
    """Encode and sign a calendar. Refuses (CalendarInvalid) one that does not check clean."""
    problems = check_calendar(doc)
    if problems:
        raise CalendarInvalid(
            f"calendar of {doc.county} v{doc.version} cannot be signed:\n  " + "\n  ".join(problems),
            hint=SIGN_HINT,
        )
    doc = msgspec.structs.replace(
        doc,
        years=tuple(
            msgspec.structs.replace(e, holidays=tuple(sorted(e.holidays)), workdays=tuple(sorted(e.workdays)))
            for e in sorted(doc.years, key=lambda e: e.year)
        ),
    )
    payload = encode(doc)
    blob = envelope.seal(MAGIC, payload, key, version=FORMAT_VERSION)
    if len(blob) > MAX_CALENDAR_BYTES:
        raise CalendarInvalid(f"signed calendar is {len(blob)} bytes; the limit is {MAX_CALENDAR_BYTES}")
    return blob


def open_calendar(blob: bytes, keys: Mapping[str, KeyRecord]) -> OfficialCalendar:
    """Verify a signed calendar, then decode and check it.

    ``keys``: the records trusted to publish county documents (``protocol.catalogue.publisher_keys``).
    Raises FrameError (and subclasses), SignatureError or CalendarInvalid.
    """
    key_id, signed, signature, payload = envelope.open_envelope(
        blob, magic=MAGIC, version=FORMAT_VERSION, max_bytes=MAX_CALENDAR_BYTES, what="signed calendar"
    )
    record = keys.get(key_id)
    if record is None:
        raise SignatureError(f"calendar is signed by key {key_id}, which this node does not trust to publish one")
    if record.key_id != key_id or record.revoked:
        raise SignatureError(f"calendar is signed by key {key_id} of {record.node}, which is not usable")
    verify(record, signed, signature)
    try:
        doc = _decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise FrameError(f"signed calendar payload does not decode: {exc}") from None
    problems = check_calendar(doc)
    if problems:
        raise CalendarInvalid(
            f"calendar of {doc.county} v{doc.version} signed by {record.node} is refused:\n  " + "\n  ".join(problems)
        )
    return doc


def calendar_digest(blob: bytes) -> str:
    """SHA-256 of the signed bytes: two nodes hold the same calendar iff their digests agree."""
    return hashlib.sha256(blob).hexdigest()
