"""Public status lookup: a receipt number alone opens nothing, a second factor must match.

Receipt numbers are readable on purpose (node, date, daily sequence, a check character), so
they can be guessed. A lookup therefore also asks for one of:

- the **query code** (查询码) printed on the receipt: eight characters derived from the errand
  id, which never appears on public pages and holds 32 random bits after the second it was
  registered in (64 random bits in ids older releases minted): ≈ 48 bits unknown to someone
  who knows the receipt's node and day, more than the code's 39. Every replica holding the
  errand derives the same code, so the county answers for a receipt printed at a village
  without anything travelling; or
- the **last four digits of the applicant's phone**, for a villager who lost the paper.

``second_factor_matches`` is the one rule; the web layer adds the rate limits.
"""

from __future__ import annotations

import hashlib
import hmac

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read off paper, typed on a phone
CODE_LENGTH = 8
_DOMAIN = b"sanji-lookup-code-v1|"


def lookup_code(errand_id: str) -> str:
    """The query code printed on the receipt of ``errand_id`` (about 39 bits)."""
    number = int.from_bytes(hashlib.sha256(_DOMAIN + errand_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(CODE_LENGTH):
        number, index = divmod(number, len(CODE_ALPHABET))
        chars.append(CODE_ALPHABET[index])
    return "".join(chars)


def normalise_factor(text: str) -> str:
    """What a person types: spaces, dashes, lower case and full-width digits are accepted."""
    table = str.maketrans("０１２３４５６７８９", "0123456789")
    return "".join(ch for ch in text.translate(table).upper() if ch.isalnum())[:32]


def phone_tail(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch.isdigit())
    return digits[-4:] if len(digits) >= 4 else ""


def second_factor_matches(given: str, *, errand_id: str, phone: str) -> bool:
    """True when ``given`` is the errand's query code, or the last four digits of the applicant's phone."""
    factor = normalise_factor(given)
    if not factor:
        return False
    code_ok = hmac.compare_digest(factor.encode(), lookup_code(errand_id).encode())
    tail = phone_tail(phone)
    tail_ok = bool(tail) and len(factor) == 4 and hmac.compare_digest(factor.encode(), tail.encode())
    return code_ok or tail_ok
