"""Finding a matter by code, name, pinyin or pinyin initials (issue 13): ``search(catalogue, "dbs")`` finds 低保.

Invariants this module keeps:

* a query of any text gives a ranked list, possibly empty, never an error; it is cut to ``MAX_QUERY``
  characters first, so the work per matter is bounded by ``MAX_QUERY`` × the name's length × ``MAX_READINGS``
  × a reading's length (no reading combinations are enumerated: a memoised table walk decides a match);
* a heteronym (多音字: 长 chang/zhang, 调 tiao/diao, 重 zhong/chong) matches by any of its readings;
* the index of a catalogue is built once per catalogue (county, version) and kept (``_INDEX``, a few entries);
* the ranked result of a (catalogue version, normalised query) is kept in a small LRU (``_RESULTS``,
  ``MAX_CACHED`` entries), so a query asked again (each pause while typing, a script's loop) ranks nothing;
* pypinyin is imported when the first index is built, not at start, and without its phrase dictionary
  (``PYPINYIN_NO_PHRASES``: 12 MB instead of 56 MB; every reading of every character is matched anyway).

A name like ``最低生活保障(低保)申请`` is also known by its bracketed short name: ``低保申请`` and ``低保`` are
variants of it, so ``db``, ``dbsq``, ``dibao`` and ``zdsh`` all find it.

Ranks, best first (``RANKS``): exact code, exact name or short name, code prefix, initials from the start of a
name, name contains the text, pinyin from the start of a name (full, or mixed such as ``dibao``/``dib``), pinyin
anywhere in a name, a code's letters alone (``mz``), English name contains the text. Within a rank the earlier
match wins, then catalogue order.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final

import msgspec

from protocol.catalogue import Catalogue, Matter

MAX_QUERY: Final = 40  # characters of a query looked at; the rest is ignored
MAX_READINGS: Final = 4  # readings of one character matched (pypinyin lists the common ones first)
MAX_INDEXED: Final = 4  # catalogue versions whose index is kept
MAX_CACHED: Final = 64  # (catalogue version, query) results kept; each at most MAX_MATTERS hits
RANKS: Final = (
    "code",
    "name",
    "code_prefix",
    "initials",
    "contains",
    "pinyin",
    "pinyin_inside",
    "code_letters",
    "english",
)

_BRACKETS = re.compile(r"\(([^()]*)\)")


class Hit(msgspec.Struct, frozen=True, kw_only=True):
    """One matter found: how (``match``, one of ``RANKS``) and where in the name (``at``, for ordering)."""

    matter: Matter
    match: str
    at: int


class _Variant(msgspec.Struct, frozen=True):
    text: str  # NFKC, lower case
    readings: tuple[tuple[str, ...], ...]  # per kept character: its readings (letters and digits: itself)


class _Entry(msgspec.Struct, frozen=True):
    matter: Matter
    code: str  # lower case, letters and digits only ("mz001")
    names: tuple[str, ...]  # the name and its short names, NFKC, lower case
    variants: tuple[_Variant, ...]
    english: str


class _Index(msgspec.Struct, frozen=True):
    catalogue: Catalogue
    entries: tuple[_Entry, ...]


_INDEX: dict[tuple[str, int], _Index] = {}
_RESULTS: OrderedDict[tuple[str, int, str], tuple[_Index, tuple[Hit, ...]]] = OrderedDict()


def normalise(text: str) -> str:
    """A query as matched: ``_fold``ed and cut to ``MAX_QUERY`` characters."""
    return _fold(text[: MAX_QUERY * 4])[:MAX_QUERY]


def _fold(text: str) -> str:
    """NFKC (full-width letters and brackets become ASCII), printable only, lower case, ü typed as v."""
    cleaned = "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isprintable())
    return cleaned.strip().lower().replace("ü", "v")


def search(catalogue: Catalogue | None, query: str, *, limit: int | None = None) -> list[Hit]:
    """The matters ``query`` finds, best first; an empty query finds nothing (callers show the whole list).

    A (catalogue, normalised query) asked within the last ``MAX_CACHED`` distinct ones is answered from
    ``_RESULTS`` without ranking any matter.
    """
    q = normalise(query)
    if catalogue is None or not q:
        return []
    held = index(catalogue)
    key = (catalogue.county, catalogue.version, q)
    cached = _RESULTS.get(key)
    if cached is not None and cached[0] is held:
        _RESULTS.move_to_end(key)
        hits = cached[1]
    else:
        hits = _ranked(held, q)
        _RESULTS[key] = (held, hits)
        _RESULTS.move_to_end(key)
        while len(_RESULTS) > MAX_CACHED:
            _RESULTS.popitem(last=False)
    return list(hits) if limit is None else list(hits[: max(limit, 0)])


def _ranked(held: _Index, q: str) -> tuple[Hit, ...]:
    """Rank every matter of the index against ``q`` (normalised): one ``_rank`` per matter."""
    compact = "".join(q.split())
    letters = "".join(ch for ch in compact if ch not in "'-_") if compact.isascii() else ""
    alnum = "".join(ch for ch in compact if ch.isalnum())
    found: list[tuple[int, int, int, Hit]] = []
    for order, entry in enumerate(held.entries):
        ranked = _rank(entry, q, compact, letters, alnum)
        if ranked is not None:
            rank, at = ranked
            found.append((rank, at, order, Hit(matter=entry.matter, match=RANKS[rank], at=at)))
    found.sort(key=lambda item: item[:3])
    return tuple(item[3] for item in found)


def index(catalogue: Catalogue) -> _Index:
    """The catalogue's search index, built on first use and kept per (county, version)."""
    key = (catalogue.county, catalogue.version)
    held = _INDEX.get(key)
    if held is not None and (held.catalogue is catalogue or held.catalogue == catalogue):
        return held
    built = _Index(catalogue=catalogue, entries=tuple(_entry(m) for m in catalogue.matters))
    if key not in _INDEX and len(_INDEX) >= MAX_INDEXED:
        del _INDEX[next(iter(_INDEX))]
    _INDEX[key] = built
    return built


def _entry(matter: Matter) -> _Entry:
    names = _names(_fold(matter.name))
    return _Entry(
        matter=matter,
        code="".join(ch for ch in matter.code.lower() if ch.isalnum()),
        names=names,
        variants=tuple(_Variant(text=n, readings=tuple(_readings(ch) for ch in n if ch.isalnum())) for n in names),
        english=matter.name_en.lower(),
    )


def _names(name: str) -> tuple[str, ...]:
    """The name without brackets, then each bracketed short name with what follows the brackets, then alone.

    ``最低生活保障(低保)申请`` → ``最低生活保障低保申请``, ``最低生活保障申请``, ``低保申请``, ``低保``.
    """
    plain = name.replace("(", "").replace(")", "")
    outside = _BRACKETS.sub("", name)
    out = [plain, outside]
    for match in _BRACKETS.finditer(name):
        short = match.group(1).strip()
        after = _BRACKETS.sub("", name[match.end() :])
        out += [short + after, short]
    return tuple(dict.fromkeys(n.strip() for n in out if n.strip()))


def _readings(ch: str) -> tuple[str, ...]:
    if ch.isascii():
        return (ch,)
    return _han_readings(ch)


@lru_cache(maxsize=8192)
def _han_readings(ch: str) -> tuple[str, ...]:
    os.environ.setdefault("PYPINYIN_NO_PHRASES", "true")  # the phrase table is 44 MB and not needed here
    from pypinyin import Style, pinyin

    found = pinyin(ch, style=Style.NORMAL, heteronym=True, errors="ignore")
    readings = [r.lower() for r in (found[0] if found else []) if r and r.isascii() and r.isalpha()]
    return tuple(dict.fromkeys(readings))[:MAX_READINGS] or (ch,)


def _rank(entry: _Entry, q: str, compact: str, letters: str, alnum: str) -> tuple[int, int] | None:
    if alnum and alnum == entry.code:
        return 0, 0
    if compact in entry.names or q in entry.names:
        return 1, 0
    if len(alnum) >= 2 and entry.code.startswith(alnum) and any(ch.isdigit() for ch in alnum):
        return 2, 0
    best: tuple[int, int] | None = None
    if letters and _initials_prefix(entry.variants, letters):
        best = (3, 0)
    if best is None:
        inside = min((n.find(compact) for n in entry.names if compact in n), default=-1)
        if inside >= 0:
            best = (4, inside)
    if best is None and letters:
        for variant in entry.variants:
            at = _pinyin_at(variant.readings, letters)
            if at is not None and (best is None or (5 if at == 0 else 6, at) < best):
                best = (5 if at == 0 else 6, at)
    if best is None and len(alnum) >= 2 and entry.code.startswith(alnum):
        best = (7, 0)  # a code's letters only ("mz"), when no name matched them
    if best is None and len(compact) >= 2 and compact in entry.english:
        best = (8, entry.english.find(compact))
    return best


def _initials_prefix(variants: Iterable[_Variant], letters: str) -> bool:
    """Each letter the first letter of a reading of the next character, from a name's first character."""
    for variant in variants:
        readings = variant.readings
        if len(letters) <= len(readings) and all(
            any(r.startswith(ch) for r in readings[i]) for i, ch in enumerate(letters)
        ):
            return True
    return False


def _pinyin_at(readings: Sequence[tuple[str, ...]], letters: str) -> int | None:
    """The first character from which ``letters`` spells the name: each character by a reading or its start.

    ``dibao``, ``dib``, ``dbao`` and ``db`` all spell 低保. Memoised over (character, letter) positions, so the
    work is at most len(readings) × len(letters) steps of ``MAX_READINGS`` comparisons each.
    """
    n, m = len(readings), len(letters)
    failed: set[tuple[int, int]] = set()

    def spells(i: int, j: int) -> bool:
        if j == m:
            return True
        if i == n or (i, j) in failed:
            return False
        for reading in readings[i]:
            k = 0
            while k < len(reading) and j + k < m and reading[k] == letters[j + k]:
                k += 1
                # a whole reading, a reading's start followed by the next character, or the query's end
                if spells(i + 1, j + k):
                    return True
        failed.add((i, j))
        return False

    for start in range(n):
        if spells(start, 0):
            return start
    return None
