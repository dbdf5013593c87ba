"""Whether a name a desk types names anyone: a visible character at least, and none that shows as nothing.

A name of spaces (an ideographic space U+3000 included), or one holding a zero-width space, a bidi mark, a soft
hyphen or a Hangul filler, reads on a receipt, a notice or the audit log as blank or as someone else's name.
The desks ask this before they sign (``ErrandService.register``: the API, the CLI and the register screen all go
through it; the accounts desk for a login name), never ``judge``: the verdict of a replica must not depend on the
Unicode tables of the Python it runs, and an action signed before this rule must stay valid everywhere.
"""

from __future__ import annotations

import unicodedata

from protocol.refusals import Refusal, refuse

# control, format (zero-width, bidi marks, soft hyphen), line and paragraph separators
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
# letters and marks that render as nothing: the Hangul fillers, the combining grapheme joiner, the braille blank
FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u034f\u2800")


def invisible(char: str) -> bool:
    """``char`` shows as nothing (a space does show: as a gap)."""
    return unicodedata.category(char) in INVISIBLE_CATEGORIES or char in FILLERS


def visible_text(text: str) -> str:
    """``text`` without the characters that show as nothing (``invisible``); white space is kept for the caller
    to squeeze. What a search typed means: a NUL or a zero-width space in it finds nothing a reader could see,
    and PostgreSQL refuses a NUL in any text it is sent (a 500, never a 4xx)."""
    return "".join(c for c in text if c.isspace() or not invisible(c))


def person_name_refusal(name: str) -> Refusal | None:
    """Why ``name`` (an applicant's) names nobody, or None: blank, or holding a character that shows as nothing
    (the first such, as ``char``: U+200D, the zero-width joiner of an emoji sequence, is one)."""
    if found := next((c for c in name if invisible(c)), None):
        return refuse("name_invisible", char=f"U+{ord(found):04X}")
    if not name or name.isspace():
        return refuse("name_blank")
    return None


# Kept in a name (``invisible`` does not refuse them: a name may need one to show its glyph) but no part of who it
# names: the variation selectors (an ideographic one picks a glyph of 葛, never another 葛) and the Khmer inherent
# vowels, which are default-ignorable and show as nothing.
GLYPH_CHOICES = frozenset(
    [chr(c) for c in range(0xFE00, 0xFE10)]
    + [chr(c) for c in range(0xE0100, 0xE01F0)]
    + ["\u180b", "\u180c", "\u180d", "\u180f", "\u17b4", "\u17b5"]
)


def _bare(text: str) -> str:
    return "".join(c for c in text if not c.isspace() and not invisible(c) and c not in GLYPH_CHOICES)


def name_key(name: str) -> str:
    """``name`` as the rule that nobody decides their own appeal compares two people's names where no account is
    known for one of them: without white space of any width (an ideographic, a no-break, a figure space), without
    characters that show as nothing (format characters, category Cf: a zero-width space or joiner, a bidi mark, a
    soft hyphen; the Hangul fillers) or that only choose a glyph (variation selectors), then NFKC (full-width
    letters and digits as their plain forms, compatibility ideographs 豈 U+F900 and radicals ⼀ as the usual
    ones), case folded and NFKC again (a folded letter may compose anew). They go before NFKC so that a mark
    written after a zero-width space composes as it would without it; and again after it, as NFKC turns some
    characters into spaces. So "王　伟 " is "王伟" and "ＷａｎｇＷｅｉ" is "wangwei". Look-alike letters of other
    scripts (a Cyrillic а for a Latin a) and traditional against simplified characters stay apart: no table the
    standard library holds maps them, so an account is the sure way."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", _bare(name)).casefold())
    return _bare(folded)
