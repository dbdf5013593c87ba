"""Bounds on every value that crosses a boundary: lengths, character classes, counts, sizes, nesting.

Every node judges a received action by these same bounds (``protocol.errand.judge`` asks
``action_problem``), and the JSON API checks a desk's form with them before building an action,
so a value refused at one desk is refused at every replica, and nothing unbounded is signed.

The character classes are explicit code-point ranges, not ``unicodedata`` categories: a category
can change with the Unicode version of the Python a node runs, and two replicas on different
versions must still agree. Refused everywhere:

* control characters (C0, DEL, C1) — free text keeps tab, line feed and carriage return;
* lone surrogates (not text at all), private-use code points (meaningless outside one machine),
  noncharacters;
* the bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069), which make a name
  display as something other than what it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

import msgspec

from protocol.errors import VersionTooFar
from protocol.limits import MAX_TEXT
from protocol.matter import Matter

MAX_NAME = 200  # a person's, post's, window's or material's name; ids, dates, hashes
MAX_ITEMS = 100  # entries in one list (materials, missing items, co-handling departments)
MAX_ATTACHMENT_BYTES = 32 * 1024 * 1024  # one scan or photo; a node may configure less for its own uploads
MAX_INT = 2**63 - 1  # what every store can hold
MAX_DAYS = 3650  # an extension or a time limit in days
MAX_JSON_BYTES = 1024 * 1024  # one JSON request body (the largest form is well under half of this)
MAX_JSON_DEPTH = 32  # arrays and objects inside each other; the API's forms need 2
MAX_NODE_ID = 64  # a node's id: the store's node, scope and peer columns are this wide
# How far one publication may raise the version of a document the county signs (catalogue, calendar, rules):
# each must be newer than the last, so a version near MAX_INT would be the last one ever published.
MAX_VERSION_STEP = 1_000_000

# Fields that hold free text (several lines allowed); every other string is a one-line name or id.
TEXT_FIELDS = frozenset({"summary", "note", "reasons", "reason", "text", "document", "signature", "comment"})

# (first, last) code points refused in every string.
_REFUSED: tuple[tuple[int, int], ...] = (
    (0x00, 0x08),  # controls, except tab, line feed, carriage return
    (0x0B, 0x0C),
    (0x0E, 0x1F),
    (0x7F, 0x9F),  # DEL and C1 controls
    (0xD800, 0xDFFF),  # lone surrogates
    (0xE000, 0xF8FF),  # private use
    (0xF0000, 0x10FFFF),  # private use planes 15 and 16 (their noncharacters too)
    (0xFDD0, 0xFDEF),  # noncharacters
    (0xFFFE, 0xFFFF),
    *((plane * 0x10000 + 0xFFFE, plane * 0x10000 + 0xFFFF) for plane in range(1, 15)),
    (0x202A, 0x202E),  # bidirectional overrides
    (0x2066, 0x2069),  # bidirectional isolates
)
_LINE_BREAKS: tuple[tuple[int, int], ...] = ((0x09, 0x0A), (0x0D, 0x0D))  # refused in names only


def _escape(point: int) -> str:
    return f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


def _class(ranges: tuple[tuple[int, int], ...]) -> str:
    """The inside of a regex character class (Python ``re`` escapes), for patterns published in /schema too."""
    return "".join(_escape(lo) if lo == hi else f"{_escape(lo)}-{_escape(hi)}" for lo, hi in ranges)


def _allowed(refused: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """Every code point not in ``refused``, as ranges: printable ASCII first, then the one holding the CJK
    ideographs. ``re`` tries a class's ranges in order until one holds, so the usual character is placed by
    the first or second comparison instead of failing all thirty of ``refused``."""
    ranges: list[tuple[int, int]] = []
    point = 0
    for lo, hi in sorted(refused):
        if lo > point:
            ranges.append((point, lo - 1))
        point = max(point, hi + 1)
    if point <= 0x10FFFF:
        ranges.append((point, 0x10FFFF))
    return tuple(sorted(ranges, key=lambda r: (not r[0] <= ord("A") <= r[1], not r[0] <= ord("中") <= r[1], r)))


_SURROGATES = (0xD800, 0xDFFF)
_BAD_TEXT = re.compile(f"[{_class(_REFUSED)}]")
_BAD_LINE = re.compile(f"[{_class(_REFUSED + _LINE_BREAKS)}]")
# The same two classes turned round (every character allowed), for ``_plainly_within``: many times faster on
# the strings actions carry, and a string holds none of the refused exactly when it is all of the allowed.
_ALL_TEXT = re.compile(f"[{_class(_allowed(_REFUSED))}]*")
_ALL_LINE = re.compile(f"[{_class(_allowed(_REFUSED + _LINE_BREAKS))}]*")
# As published in /schema: without the surrogates, which no JSON Schema regex engine accepts in a class (and
# which a UTF-8 body cannot carry unescaped anyway); everything else alike.
TEXT_CLASS = _class(tuple(r for r in _REFUSED if r != _SURROGATES))
LINE_CLASS = _class(tuple(r for r in _REFUSED + _LINE_BREAKS if r != _SURROGATES))


def whole(body: str) -> str:
    """A pattern for the whole string ``body`` describes, read alike by Python's ``re`` and by ECMA-262.

    msgspec and Litestar check patterns with Python's ``re``, where ``$`` also matches before a final line
    feed ("2026Q4\\n" would pass ``^20[0-9]{2}Q[1-4]$``); the published schema is read with ECMA-262
    rules, where it does not. The lookahead refuses that line feed in both, so the schema and the server
    agree on every string. (Write digits as ``[0-9]``: Python's ``\\d`` also takes other scripts' digits.)
    """
    return f"^(?:{body})$(?!\\n)"


# Fields holding a calendar day or nothing: the deadlines and promised dates actions carry. ISO 8601's extended
# form only (``date.fromisoformat`` also reads 20261231 and 2026-W53-1, which no desk writes). A "day" that is
# none would stop whatever counts days from it (lists, warnings, 超时默许 in ``judge`` itself) on every replica.
DAY_FIELDS = frozenset({"due", "stage_due", "promise_by", "answer_by", "previous_due", "previous_stage_due"})
DAY_PATTERN = whole("([0-9]{4}-[0-9]{2}-[0-9]{2})?")  # a form's: the shape, the calendar checked on building
_DAY = re.compile("[0-9]{4}-[0-9]{2}-[0-9]{2}")


def day_problem(field: str, value: str) -> str | None:
    """Why ``value`` is neither empty nor a day of the calendar written YYYY-MM-DD, or None."""
    if not value:
        return None
    if _DAY.fullmatch(value) is not None:
        try:
            date.fromisoformat(value)
            return None
        except ValueError:
            pass
    shown = value if len(value) <= 40 else value[:37] + "..."
    return f"{field} {shown!r} is not a day of the calendar (YYYY-MM-DD)"


# A node id: letters, digits, _ and - (ASCII: it names files, URLs, receipt numbers and streams), 1-64 of them.
# Every id the layouts and the demo make fits (C, T01, T01V01, S, C1, C1T01V01).
NODE_ID_PATTERN = whole(f"[A-Za-z0-9_-]{{1,{MAX_NODE_ID}}}")
_NODE_ID = re.compile(NODE_ID_PATTERN)
NODE_ID_RULE_ZH = f"节点编号只能包含字母、数字、_ 和 -，最多{MAX_NODE_ID}个字符（如 T01V03）"
NODE_ID_RULE_EN = f"a node id has 1-{MAX_NODE_ID} letters, digits, _ or - (e.g. T01V03)"


def node_id_problem(value: str, *, field: str = "node id") -> str | None:
    """Why ``value`` is not an acceptable node id, as a sentence (Chinese, then English), or None."""
    if _NODE_ID.match(value):
        return None
    shown = value if len(value) <= 80 else value[:77] + "..."
    return f"{field} {shown!r}: {NODE_ID_RULE_ZH} {NODE_ID_RULE_EN}"


# Fields of an action that name a node: where it was registered, who wrote it, whom it is handed or urged to.
NODE_FIELDS = ("scope", "node", "to")


def node_fields_problem(obj: msgspec.Struct) -> str | None:
    """The first field of ``obj`` (an action) naming a node that is not an acceptable node id, or None.

    ``to`` may be empty (an urging addressed to nobody in particular); a hand-off to "" is refused by the rule.
    """
    for name in NODE_FIELDS:
        value = getattr(obj, name, None)
        if isinstance(value, str) and (value or name != "to") and (problem := node_id_problem(value, field=name)):
            return problem
    return None


def _describe(char: str) -> str:
    return f"U+{ord(char):04X}"


def text_problem(field: str, value: str, *, limit: int = MAX_TEXT) -> str | None:
    """Why ``value`` is not acceptable free text (lines allowed), or None."""
    if len(value) > limit:
        return f"{field} has {len(value)} characters; the limit is {limit}"
    if found := _BAD_TEXT.search(value):
        return f"{field} contains a character that is not text ({_describe(found.group())})"
    return None


def line_problem(field: str, value: str, *, limit: int = MAX_NAME) -> str | None:
    """Why ``value`` is not an acceptable one-line name or id, or None."""
    if len(value) > limit:
        return f"{field} has {len(value)} characters; the limit is {limit}"
    if found := _BAD_LINE.search(value):
        return f"{field} contains a character not allowed in a name ({_describe(found.group())})"
    return None


def version_step_texts(held: int, version: int) -> tuple[str, str] | None:
    """Why a county may not publish ``version`` of a document it holds at ``held`` (0: none yet) for being too far
    above it, (Chinese, English); None if it may: the step is bounded so that a typed version always leaves room
    for the next."""
    if version - held <= MAX_VERSION_STEP:
        return None
    return (
        f"版本号 {version} 比现行版本（第 {held} 版）高出过多（最多高 {MAX_VERSION_STEP:,}），"
        f"之后将无法再发布更高的版本，请发布第 {held + 1} 版",
        f"Version {version} is more than {MAX_VERSION_STEP:,} above the version held ({held}): "
        f"it would leave no room for later versions; use {held + 1}",
    )


def version_step_problem(held: int, version: int) -> str | None:
    """``version_step_texts`` in one line, Chinese first (None if the county may publish ``version``)."""
    texts = version_step_texts(held, version)
    return None if texts is None else " ".join(texts)


def check_version_step(held: int, version: int) -> None:
    """Raise ``VersionTooFar`` when a county may not publish ``version`` of a document held at ``held``.

    Asked by every publisher (``sanji.context.NodeContext.publish``, ``publish_calendar``, ``publish_rules``),
    so the desk's pages, the command line and the catalogue the county loads at start are all held to it.
    """
    texts = version_step_texts(held, version)
    if texts is not None:
        zh, en = texts
        raise VersionTooFar(f"{zh} {en}", held=held, version=version, zh=zh, en=en)


def int_problem(field: str, value: int) -> str | None:
    top = MAX_ATTACHMENT_BYTES if field == "size" else MAX_DAYS if field in ("days", "limit_days") else MAX_INT
    if not 0 <= value <= top:
        return f"{field} is {value}; it must be between 0 and {top}"
    return None


def _value_problem(field: str, value: object, days: bool = True) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if days and field in DAY_FIELDS and (problem := day_problem(field, value)) is not None:
            return problem
        return text_problem(field, value) if field in TEXT_FIELDS else line_problem(field, value)
    if isinstance(value, int):
        return int_problem(field, value)
    if isinstance(value, (tuple, list)):
        if len(value) > MAX_ITEMS:
            return f"{field} has {len(value)} entries; the limit is {MAX_ITEMS}"
        for item in value:
            if problem := _value_problem(field, item, days):
                return problem
        return None
    if isinstance(value, msgspec.Struct):
        return fields_problem(value, prefix=f"{field}.", days=days)
    return None  # bytes (sealed details) are bounded by the frame that carries them


def fields_problem(obj: msgspec.Struct, *, prefix: str = "", skip: Iterable[str] = (), days: bool = True) -> str | None:
    """The first field of ``obj`` (an action or a form) outside its bounds, as a sentence, or None.

    ``days`` False (a form): a day field is held to the other bounds only. The form's schema gives a day's
    shape (``DAY_PATTERN``), which a request that matches it has; whether it is a day of the calendar is the
    rule's to say, as of the action built from it (a 409, not a 400 saying the body does not match the schema).
    """
    skipped = frozenset(skip)
    for name in obj.__struct_fields__:
        if name in skipped:
            continue
        if problem := _value_problem(prefix + name, getattr(obj, name), days):
            return problem
    return None


def action_problem(action: msgspec.Struct) -> str | None:
    """Why a (local or received) action is out of bounds, or None. Part of ``judge``: every replica agrees.

    The fields naming a node are node ids (``node_id_problem``): no action names a node the store could not hold.
    """
    if _plainly_within(action):
        return None
    if (problem := node_fields_problem(action)) is not None:
        return problem
    return fields_problem(action)


# The largest int a top-level field may hold, by name (``int_problem``; a nested field's name has a prefix).
_INT_TOP = {"size": MAX_ATTACHMENT_BYTES, "days": MAX_DAYS, "limit_days": MAX_DAYS}


def _plainly_within(action: msgspec.Struct) -> bool:
    """True only if ``action_problem``'s walk would find nothing; False may be wrong (the walk then says why).

    Every ingested action is judged, and the walk — a call and a regex search per string — was a seventh
    of a county's ingest. This walks the same values with the same limits but collects the strings, then
    searches all names at once and all free text at once: a character class matches one character, so
    joining with a space (allowed in both) can neither hide a refused character nor make one.
    """
    for name in NODE_FIELDS:
        value = getattr(action, name, None)
        if isinstance(value, str) and (value or name != "to") and _NODE_ID.match(value) is None:
            return False
    lines: list[str] = []
    texts: list[str] = []
    return (
        _gather_top(action, lines, texts)
        and _ALL_LINE.fullmatch(" ".join(lines)) is not None
        and _ALL_TEXT.fullmatch(" ".join(texts)) is not None
    )


# How ``_gather_top`` checks each top-level field of a struct type, in field order: (name, what, largest int).
_LINE, _TEXT, _DAY_LINE, _NODE = 0, 1, 2, 3
_PLANS: dict[type, tuple[tuple[str, int, int], ...]] = {}


def _what(name: str) -> int:
    if name in NODE_FIELDS:
        return _NODE
    if name in TEXT_FIELDS:
        return _TEXT
    return _DAY_LINE if name in DAY_FIELDS else _LINE


def _plan(cls: type[msgspec.Struct]) -> tuple[tuple[str, int, int], ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = tuple((name, _what(name), _INT_TOP.get(name, MAX_INT)) for name in cls.__struct_fields__)
    return plan


def _gather_top(action: msgspec.Struct, lines: list[str], texts: list[str]) -> bool:
    """``_gather(action, lines, texts, top=True)``, each field's checks looked up once per type, its values
    taken in one call. A string naming a node (``NODE_FIELDS``) is left out of ``lines``: ``_plainly_within``
    matched it against ``_NODE_ID`` already (or it is an empty ``to``), which allows fewer characters, and
    fewer of them, than a name (ASCII letters, digits, ``_`` and ``-``; at most ``MAX_NODE_ID``)."""
    for (field, what, top), value in zip(_plan(type(action)), msgspec.structs.astuple(action), strict=True):
        kind = type(value)
        if kind is str:
            if what == _NODE:
                continue
            if what == _TEXT:
                texts.append(value)
                if len(value) > MAX_TEXT:
                    return False
            else:
                lines.append(value)
                if len(value) > MAX_NAME or (value and what == _DAY_LINE and day_problem(field, value) is not None):
                    return False
        elif kind is int:
            if not 0 <= value <= top:
                return False
        elif kind is bool or value is None:
            continue
        elif not _gather_value(field, value, lines, texts):
            return False
    return True


def _gather(obj: msgspec.Struct, lines: list[str], texts: list[str], *, top: bool) -> bool:
    """``_value_problem``'s checks for each field of ``obj``, its strings added to ``lines`` or ``texts`` to
    search later. Inside a struct (``top`` False) the walk's prefixed names are never text or a bounded
    int's. Strings and ints, nearly every value, are checked here without a call."""
    for name in obj.__struct_fields__:
        value = getattr(obj, name)
        field = name if top else ""
        kind = type(value)
        if kind is str:
            if field in TEXT_FIELDS:
                texts.append(value)
                if len(value) > MAX_TEXT:
                    return False
            else:
                lines.append(value)
                if len(value) > MAX_NAME or (value and field in DAY_FIELDS and day_problem(field, value) is not None):
                    return False
        elif kind is int:
            if not 0 <= value <= _INT_TOP.get(field, MAX_INT):
                return False
        elif not _gather_value(field, value, lines, texts):
            return False
    return True


def _gather_value(field: str, value: object, lines: list[str], texts: list[str]) -> bool:
    """The checks of ``_gather`` for any other value (booleans, lists, structs, subclasses of str and int)."""
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        (texts if field in TEXT_FIELDS else lines).append(value)
        if field in DAY_FIELDS and day_problem(field, value) is not None:
            return False
        return len(value) <= (MAX_TEXT if field in TEXT_FIELDS else MAX_NAME)
    if isinstance(value, int):
        return 0 <= value <= _INT_TOP.get(field, MAX_INT)
    if isinstance(value, (tuple, list)):
        return len(value) <= MAX_ITEMS and all(_gather_value(field, item, lines, texts) for item in value)
    if isinstance(value, msgspec.Struct):
        if type(value) is Matter:
            return _matter_within(value, lines, texts)
        return _gather(value, lines, texts, top=False)
    return True  # None, and bytes (sealed details: bounded by the frame that carries them)


# The answer of the walk for each catalogue entry lately met, by its bytes. Every registration carries
# its entry whole (the catalogue's few hundred, again and again), and walking one was four fifths of
# bounding a registration. The answer is the walk of the entry decoded from those bytes by the typed
# decoder, so of strings, ints, booleans, tuples and the entry's own structs only: any value encoding to
# the same bytes holds the same strings and ints where that one does, or there something the walk does
# not look into (a dict, a set, a float), so where that one passed, every such value passes. A False
# answer only sends ``action_problem`` to its full walk, as any False of ``_plainly_within`` does.
_MATTERS_WITHIN: dict[bytes, bool] = {}
_MATTERS_WITHIN_MAX = 1024
# A catalogue entry is a few KB; one a hostile peer inflates (up to a frame's size) is walked, never kept.
_MATTER_CACHED_BYTES = 64 * 1024
_matter_encoder = msgspec.msgpack.Encoder()
_matter_decoder = msgspec.msgpack.Decoder(Matter)


def _matter_within(entry: Matter, lines: list[str], texts: list[str]) -> bool:
    """``_gather(entry, lines, texts, top=False)``, once per entry: nested, its strings are never text and
    its ints never a bounded field's, so the walk's answer is the entry's alone, wherever it sits."""
    try:
        key = _matter_encoder.encode(entry)
        known = _MATTERS_WITHIN.get(key)
        if known is None:
            typed = _matter_decoder.decode(key)
            # Only an entry its bytes hold whole: the typed decoder drops fields it does not know (a struct
            # built in process from a subclass), which the walk would check. And none too large to keep.
            if len(key) > _MATTER_CACHED_BYTES or _matter_encoder.encode(typed) != key:
                return _gather(entry, lines, texts, top=False)
    except (TypeError, ValueError, OverflowError, msgspec.MsgspecError):  # what no decoded entry holds: walk it
        return _gather(entry, lines, texts, top=False)
    if known is None:
        own_lines: list[str] = []
        own_texts: list[str] = []
        known = (
            _gather(typed, own_lines, own_texts, top=False)
            and _ALL_LINE.fullmatch(" ".join(own_lines)) is not None
            and _ALL_TEXT.fullmatch(" ".join(own_texts)) is not None
        )
        if len(_MATTERS_WITHIN) >= _MATTERS_WITHIN_MAX:
            del _MATTERS_WITHIN[next(iter(_MATTERS_WITHIN))]
        _MATTERS_WITHIN[key] = known
    return known


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_problem(data: bytes, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a JSON document is too large or nested too deeply to decode, or None — found without decoding it.

    Strings are skipped (brackets inside them do not count); an unterminated string can only make
    the count higher, and such a document is not JSON anyway.
    """
    if len(data) > max_bytes:
        return f"the JSON body is {len(data)} bytes; the limit is {max_bytes}"
    depth = 0
    for byte in _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                return f"the JSON body nests arrays and objects more than {max_depth} deep"
        else:
            depth -= 1
    return None
