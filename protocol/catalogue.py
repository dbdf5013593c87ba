"""The matter catalogue (事项目录): every matter, who may touch it, what it needs and how long it may take.

The county publishes the catalogue and every node must hold the same version
(DOMAIN.md, "Matters (事项) and the catalogue"). Invariants this module keeps:

* a catalogue is signed only if ``check_catalogue`` finds nothing wrong with it,
  and a signed catalogue is opened only if its signature holds *and* it still
  checks clean — so no node ever acts on a catalogue that, for example, charges
  for proxy service (代办 is always free: "不收取任何服务费用,全部为无偿代办",
  001_74fbf89f6caad6fd.txt);
* the signature is checked before a byte of the payload is decoded.

Envelope layout (``protocol.envelope``: the batch frame's layout under its own magic,
so neither can be passed off as the other)::

    b"SJC" | version:u8 | key_id_len:u8 | key_id | payload_len:u32 | payload | sig_len:u16 | sig

``payload`` is the deterministic msgpack encoding of ``Catalogue`` (maps keyed by
field name, like the actions); the signature covers every byte before ``sig_len``.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from datetime import date
from functools import lru_cache

import msgspec

from protocol import envelope, limits
from protocol.encoding import encode
from protocol.errors import FrameError, SanjiError, SignatureError
from protocol.matter import CATEGORIES as CATEGORIES  # re-exported: the entry lives in protocol.matter
from protocol.matter import LEVELS as LEVELS
from protocol.matter import LIMIT_UNITS as LIMIT_UNITS
from protocol.matter import Category as Category
from protocol.matter import Level as Level
from protocol.matter import LimitUnit as LimitUnit
from protocol.matter import Material as Material
from protocol.matter import Matter as Matter
from protocol.signing import KeyRecord, SigningKey, verify
from protocol.topology import COUNTY, Directory

MAGIC = b"SJC"
FORMAT_VERSION = 1
MAX_CATALOGUE_BYTES = 1 * 1024 * 1024
# Of MAX_CATALOGUE_BYTES, the envelope around the encoded catalogue: magic, version and key id length, a key id,
# the payload's length, the signature's length, an Ed25519 signature. Exact, so a catalogue an earlier release
# signed is never refused by this check, and one that passes it always fits.
SIGNED_ROOM = 3 + 2 + 16 + 4 + 2 + 64
MAX_MATTERS = 2000
MAX_MATERIALS = 100
MAX_CODE = 32
MAX_RULES = 3  # the latest generation of errand rules (``Matter.rules``) this release judges by


class CatalogueError(SanjiError):
    """The catalogue's content is wrong; ``problems`` lists every fault found, not just the first."""

    code = "invalid_catalogue"
    default_hint = "Correct every listed problem in the county's catalogue and publish it again."

    def __init__(self, message: str, problems: Iterable[str] = (), *, hint: str | None = None) -> None:
        self.problems: list[str] = list(problems)
        if self.problems:
            message = message + ":\n  " + "\n  ".join(self.problems)
        super().__init__(message, hint=hint)

    def as_dict(self) -> dict[str, object]:
        out = super().as_dict()
        out["problems"] = list(self.problems)
        return out


class Catalogue(msgspec.Struct, frozen=True, kw_only=True):
    county: str
    version: int
    published_at: str
    matters: tuple[Matter, ...]

    def get(self, code: str) -> Matter | None:
        for matter in self.matters:
            if matter.code == code:
                return matter
        return None

    def codes(self) -> tuple[str, ...]:
        return tuple(m.code for m in self.matters)


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """One fault: which matter (index into ``Catalogue.matters``; None for the catalogue itself), which field."""

    matter: int | None
    code: str
    field: str
    message: str
    other: int | None = None  # for a duplicate code: the position of the first matter with it

    def __str__(self) -> str:
        where = "catalogue" if self.matter is None else f"matter {self.matter + 1} ({self.code or 'no code'})"
        return f"{where}, field {self.field}: {self.message}"


# ---------------------------------------------------------------------------------------------- checks


def _text_problems(name: str, value: object, *, required: bool) -> list[tuple[str, str]]:
    if not isinstance(value, str):
        return [(name, f"must be text, not {type(value).__name__}")]
    if required and not value.strip():
        return [(name, "must not be empty")]
    if len(value) > limits.MAX_TEXT:
        return [(name, f"is {len(value)} characters; the limit is {limits.MAX_TEXT}")]
    return []


def _levels_problems(name: str, value: object) -> list[tuple[str, str]]:
    if not isinstance(value, tuple):
        return [(name, "must be a list of levels")]
    if not value:
        return [(name, f"must name at least one of {', '.join(LEVELS)}")]
    out = [(name, f"unknown level {v!r}; use {', '.join(LEVELS)}") for v in value if v not in LEVELS]
    if len(set(value)) != len(value):
        out.append((name, "names a level twice"))
    return out


def _int_problems(name: str, value: object) -> list[tuple[str, str]]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [(name, f"must be a whole number of days, not {value!r}")]
    if value < 0:
        return [(name, f"must not be negative ({value})")]
    return []


def check_matter(m: Matter, *, skip: Collection[str] = ()) -> list[tuple[str, str]]:
    """(field, message) for every fault of one matter, independent of the rest of the catalogue.

    ``skip`` names fields already known to be unusable (a loader could not convert
    them): every check that reads one of them is left out, so the others still speak.
    """
    out: list[tuple[str, str]] = []

    def usable(*names: str) -> bool:
        return not any(n in skip for n in names)

    bad: set[str] = set()  # fields whose value has the wrong shape: cross-field checks leave them alone

    def fields_ok(*names: str) -> bool:
        return usable(*names) and not any(n in bad for n in names)

    if usable("code"):
        out += _text_problems("code", m.code, required=True)
        if isinstance(m.code, str) and m.code.strip():
            if len(m.code) > MAX_CODE or any(c.isspace() for c in m.code):
                out.append(("code", f"must be at most {MAX_CODE} characters without spaces"))
    for name, required in (
        ("name", True),
        ("name_en", False),
        ("legal_basis", False),
        ("fee", False),
        ("window", True),
        ("department", False),
    ):
        if usable(name):
            out += _text_problems(name, getattr(m, name), required=required)
    if usable("category") and m.category not in CATEGORIES:
        out.append(("category", f"unknown category {m.category!r}; use {'/'.join(CATEGORIES)}"))
    if usable("limit_unit") and m.limit_unit not in LIMIT_UNITS:
        out.append(("limit_unit", f"unknown unit {m.limit_unit!r}; use working or calendar"))
    for name in ("accept_levels", "handle_levels", "approve_levels"):
        if usable(name):
            out += _levels_problems(name, getattr(m, name))
    for name in (
        "proxy_allowed",
        "in_person",
        "immediate",
        "deemed_approval",
        "illustrative",
        "joint_answers_at_departments",
    ):
        if usable(name) and not isinstance(getattr(m, name), bool):
            out.append((name, f"must be true or false, not {getattr(m, name)!r}"))

    bad.update(field for field, _ in out)
    if fields_ok("in_person", "proxy_allowed") and m.in_person and m.proxy_allowed:
        out.append(("proxy_allowed", "cannot be true for a matter the applicant must handle in person (in_person)"))

    if usable("agency_fee"):
        if isinstance(m.agency_fee, bool) or not isinstance(m.agency_fee, int):
            out.append(("agency_fee", f"must be 0, not {m.agency_fee!r}"))
        elif m.agency_fee != 0:
            out.append(
                (
                    "agency_fee",
                    f"is {m.agency_fee}; proxy service (代办) is always free (无偿代办, 001_74fbf89f6caad6fd.txt), "
                    "so a catalogue that charges for it is refused",
                )
            )

    # Materials: at least one main one, names unique.
    if not usable("materials"):
        pass
    elif not isinstance(m.materials, tuple) or not all(isinstance(x, Material) for x in m.materials):
        out.append(("materials", "must be a list of materials"))
    else:
        if len(m.materials) > MAX_MATERIALS:
            out.append(("materials", f"lists {len(m.materials)} materials; the limit is {MAX_MATERIALS}"))
        if not any(x.main for x in m.materials):
            out.append(("materials", "has no main material (主件); at least one is required"))
        seen: set[str] = set()
        for x in m.materials:
            if not isinstance(x.name, str) or not x.name.strip():
                out.append(("materials", "has a material without a name"))
                continue
            key = normalise_material(x.name)
            if key in seen:
                out.append(("materials", f"lists {x.name!r} twice"))
            seen.add(key)

    # Time limits.
    for name in ("statutory_limit", "committed_limit", "township_limit", "county_limit"):
        if usable(name):
            out += _int_problems(name, getattr(m, name))
    bad.update(field for field, _ in out)
    if fields_ok("committed_limit", "statutory_limit") and m.committed_limit > m.statutory_limit:
        out.append(
            (
                "committed_limit",
                f"{m.committed_limit} exceeds the statutory limit {m.statutory_limit}; "
                "the committed limit (承诺时限) may only shorten it",
            )
        )
    if (
        fields_ok("township_limit", "county_limit", "committed_limit")
        and m.township_limit + m.county_limit > m.committed_limit
    ):
        out.append(
            (
                "township_limit",
                f"township {m.township_limit} + county {m.county_limit} days exceed the "
                f"committed limit {m.committed_limit}",
            )
        )
    if fields_ok("immediate"):
        if m.immediate:
            for name in ("committed_limit", "township_limit", "county_limit"):
                if fields_ok(name) and getattr(m, name) != 0:
                    out.append((name, "must be 0 for an immediate matter (即办件, done on the spot)"))
        elif fields_ok("committed_limit") and m.committed_limit < 1:
            out.append(("committed_limit", "must be at least 1 day unless the matter is immediate (即办件)"))

    # Who decides.
    if fields_ok("department", "county_limit"):
        if not m.department and m.county_limit != 0:
            out.append(("county_limit", "must be 0 when the township decides (department is empty)"))
        if m.department and fields_ok("immediate") and not m.immediate and m.county_limit < 1:
            out.append(("county_limit", f"must be at least 1 day for the county department {m.department}"))
    if fields_ok("department", "approve_levels"):
        if "county" in m.approve_levels and not m.department.strip():
            out.append(("department", "is empty but approve_levels includes county; name the county department"))
        if m.department.strip() and "county" not in m.approve_levels:
            out.append(("approve_levels", f"must include county when the county department {m.department} decides"))

    # Joint matters (联办件): a lead plus at least one other department.
    if not usable("joint_departments"):
        pass
    elif not isinstance(m.joint_departments, tuple) or not all(isinstance(d, str) for d in m.joint_departments):
        out.append(("joint_departments", "must be a list of department names"))
    elif m.joint_departments:
        if any(not d.strip() for d in m.joint_departments):
            out.append(("joint_departments", "has an empty department name"))
        if len(set(m.joint_departments)) != len(m.joint_departments):
            out.append(("joint_departments", "names a department twice"))
        if fields_ok("department") and m.department and m.department in m.joint_departments:
            out.append(("joint_departments", f"repeats the lead department {m.department}"))
        if fields_ok("immediate") and m.immediate:
            out.append(("joint_departments", "an immediate matter (即办件) cannot be joint (联办件)"))

    for name in ("extension_limit", "special_limit"):
        value = getattr(m, name, None)
        if usable(name) and value is not None:
            out += _int_problems(name, value)
    if fields_ok("deemed_approval", "immediate") and m.deemed_approval and m.immediate:
        out.append(("deemed_approval", "an immediate matter (即办件) has no deadline to time out"))
    if usable("rules"):
        if isinstance(m.rules, bool) or not isinstance(m.rules, int) or not 0 <= m.rules <= MAX_RULES:
            out.append(
                (
                    "rules",
                    f"must be a generation of errand rules from 0 to {MAX_RULES}, not {m.rules!r}: 0 judges its "
                    "errands as 0.3.0 did, 1 by the rules of 0.4.0 (one rating, by the applicant at the "
                    "registering desk, after delivery), 2 by those added later in 0.4.0 (each step carries what its "
                    "document states: deadline, reasons, signature), 3 by those added after it (the desk a walk-in "
                    "was registered at gives the one-time notice of missing materials); sign a generation only "
                    "once every node runs the release that brought it",
                )
            )
        elif (
            m.rules >= 2
            and fields_ok("extension_limit", "statutory_limit")
            and m.extension_limit is not None
            and m.extension_limit > m.statutory_limit
        ):
            # Checked from rules 2 only: a catalogue older nodes signed (and hold) stays readable as it was.
            out.append(
                (
                    "extension_limit",
                    f"{m.extension_limit} days of extension exceed the statutory limit of {m.statutory_limit}: "
                    "an extension never grants more than the law's own time limit",
                )
            )
    return out


def check_catalogue(cat: Catalogue, *, skip: Mapping[int, Collection[str]] | None = None) -> list[Problem]:
    """Every fault of the catalogue, each naming the matter (by position and code) and the field.

    ``skip`` maps a matter's position to fields already reported unusable (see ``check_matter``).
    """
    out: list[Problem] = []
    skip = skip or {}

    def top(field: str, message: str) -> None:
        out.append(Problem(matter=None, code="", field=field, message=message))

    for field_name, message in _text_problems("county", cat.county, required=True):
        top(field_name, message)
    if isinstance(cat.version, bool) or not isinstance(cat.version, int) or cat.version < 1:
        top("version", f"must be a whole number from 1 up, not {cat.version!r}")
    try:
        date.fromisoformat(cat.published_at)
    except (TypeError, ValueError):
        top("published_at", f"must be an ISO date like 2024-01-31, not {cat.published_at!r}")
    if not isinstance(cat.matters, tuple) or not all(isinstance(m, Matter) for m in cat.matters):
        top("matters", "must be a list of matters")
        return out
    if not cat.matters:
        top("matters", "the catalogue lists no matters")
    if len(cat.matters) > MAX_MATTERS:
        top("matters", f"lists {len(cat.matters)} matters; the limit is {MAX_MATTERS}")
        return out  # each matter's checks would be unbounded work on a catalogue refused anyway

    first_at: dict[str, int] = {}
    for i, m in enumerate(cat.matters):
        skipped = skip.get(i, ())
        code = m.code if "code" not in skipped and isinstance(m.code, str) else ""
        for field_name, message in check_matter(m, skip=skipped):
            out.append(Problem(matter=i, code=code, field=field_name, message=message))
        if code:
            if code in first_at:
                first = first_at[code]
                message = f"duplicate code; matter {first + 1} has it"
                out.append(Problem(matter=i, code=code, field="code", message=message, other=first))
            else:
                first_at[code] = i
    # Sound otherwise, it must still fit a signed catalogue (``sign_catalogue``, ``open_catalogue``): said here.
    if not out and (size := len(encode(cat))) > MAX_CATALOGUE_BYTES - SIGNED_ROOM:
        top(
            "matters",
            f"the catalogue is {size} bytes encoded; at most {MAX_CATALOGUE_BYTES - SIGNED_ROOM} fit in a signed "
            "catalogue: shorten the longest texts or list fewer matters",
        )
    return out


def validate_catalogue(cat: Catalogue) -> list[str]:
    """Every fault as one line of text; an empty list means the catalogue may be signed and used."""
    return [str(p) for p in check_catalogue(cat)]


# ---------------------------------------------------------------------------------------------- pre-check


class Precheck(msgspec.Struct, frozen=True, kw_only=True):
    """The village agent's check of what a villager brought, before carrying it up.

    ``ok`` means the township may accept it: every main material is there and, if
    it comes by proxy, the matter allows that. Missing secondary materials still
    allow provisional acceptance (容缺受理, ``provisional``) except for an immediate
    matter (即办件除外, 001_74fbf89f6caad6fd.txt).
    """

    missing_main: tuple[str, ...]
    missing_secondary: tuple[str, ...]
    proxy_refused_reason: str
    ok: bool
    provisional: bool = False


@lru_cache(maxsize=4096)  # the catalogue's few hundred names, asked for by every registration judged
def normalise_material(name: str) -> str:
    """Compare material names ignoring width (NFKC) and whitespace: "户口簿（原件）" == "户口簿 (原件)"."""
    return "".join(unicodedata.normalize("NFKC", name).split())


def precheck(matter: Matter, provided: Collection[str], *, by_proxy: bool) -> Precheck:
    have = {normalise_material(p) for p in provided}
    missing_main = tuple(m.name for m in matter.materials if m.main and normalise_material(m.name) not in have)
    missing_secondary = tuple(
        m.name for m in matter.materials if not m.main and not m.optional and normalise_material(m.name) not in have
    )
    reason = ""
    if by_proxy and matter.in_person:
        reason = f"{matter.name} must be handled by the applicant in person (本人亲自办理); it cannot be proxied"
    elif by_proxy and not matter.proxy_allowed:
        reason = f"{matter.name} is not open to proxy service (代办); the applicant must apply at the window"
    ok = not missing_main and not reason and (not missing_secondary or not matter.immediate)
    return Precheck(
        missing_main=missing_main,
        missing_secondary=missing_secondary,
        proxy_refused_reason=reason,
        ok=ok,
        provisional=ok and bool(missing_secondary),
    )


# ---------------------------------------------------------------------------------------------- envelope

_catalogue_decoder = msgspec.msgpack.Decoder(Catalogue)


def sign_catalogue(catalogue: Catalogue, key: SigningKey) -> bytes:
    """Encode and sign a catalogue. Refuses (CatalogueError) one that does not check clean."""
    problems = validate_catalogue(catalogue)
    if problems:
        raise CatalogueError(f"catalogue of {catalogue.county} v{catalogue.version} cannot be signed", problems)
    payload = encode(catalogue)
    blob = envelope.seal(MAGIC, payload, key, version=FORMAT_VERSION)
    if len(blob) > MAX_CATALOGUE_BYTES:
        raise ValueError(f"signed catalogue is {len(blob)} bytes; the limit is {MAX_CATALOGUE_BYTES}")
    return blob


def open_catalogue(blob: bytes, keys: Mapping[str, KeyRecord], *, publisher: str | None = None) -> Catalogue:
    """Verify a signed catalogue, then decode and check it.

    ``keys`` maps key id to the records this node trusts to publish catalogues
    (see ``publisher_keys``); ``publisher``, if given, is the node that must have
    signed. Raises FrameError (and subclasses), SignatureError or CatalogueError.
    """
    key_id, signed, signature, payload = envelope.open_envelope(
        blob, magic=MAGIC, version=FORMAT_VERSION, max_bytes=MAX_CATALOGUE_BYTES, what="signed catalogue"
    )
    record = keys.get(key_id)
    if record is None:
        raise SignatureError(f"catalogue is signed by key {key_id}, which this node does not trust to publish one")
    if record.key_id != key_id:
        raise SignatureError(f"key table lists {record.key_id} under key id {key_id}")
    if record.revoked:
        raise SignatureError(f"catalogue is signed by key {key_id} of {record.node}, which is revoked")
    if publisher is not None and record.node != publisher:
        raise SignatureError(f"catalogue is signed by {record.node}, not by the publisher {publisher}")
    verify(record, signed, signature)
    try:
        catalogue = _catalogue_decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise FrameError(f"signed catalogue payload does not decode: {exc}") from None
    problems = validate_catalogue(catalogue)
    if problems:
        raise CatalogueError(
            f"catalogue of {catalogue.county} v{catalogue.version} signed by {record.node} is refused", problems
        )
    return catalogue


def read_catalogue(blob: bytes) -> Catalogue:
    """The catalogue inside a blob verified when it was kept (``open_catalogue``; its key may have been rotated
    since): an older version a node holds, read again to compare an errand's bound entry with it."""
    _, _, _, payload = envelope.open_envelope(
        blob, magic=MAGIC, version=FORMAT_VERSION, max_bytes=MAX_CATALOGUE_BYTES, what="signed catalogue"
    )
    try:
        return _catalogue_decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise FrameError(f"signed catalogue payload does not decode: {exc}") from None


def catalogue_digest(blob: bytes) -> str:
    """SHA-256 of the signed bytes: two nodes hold the same catalogue iff their digests agree."""
    return hashlib.sha256(blob).hexdigest()


def publisher_keys(directory: Directory, node: str | None = None) -> dict[str, KeyRecord]:
    """The keys trusted to publish a catalogue (calendar, assessment rules) to ``node``: its county's.

    Each county publishes for its own subtree, at the root or below a city, so a township checks its
    own county's signature and never takes a neighbouring county's documents. A node above the
    counties (a city) trusts none: it publishes nothing and is sent nothing down. Without ``node``:
    the county (or counties) at the root of the tree, as before cities existed.
    """
    if node is not None and node in directory:
        county = directory.county_of(node)
        entries = [directory.get(county)] if county is not None else []
    else:
        entries = [e for e in directory.nodes() if e.role == COUNTY and e.parent is None]
    return {record.key_id: record for entry in entries for record in entry.keys if not record.revoked}
