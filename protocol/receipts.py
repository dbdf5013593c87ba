"""Receipt numbers a villager can read aloud, type, and check — issued with no network at all.

Format: ``<node>-<yymmdd>-<seq><check>``, e.g. ``T01V01-261123-0042K``. The node id
makes numbers unique across the county; the per-node daily sequence is kept in the
node's store; the check character (ISO 7064 MOD 37,36 over digits and capital
letters) catches any single mistyped character and most swaps of neighbours.
"""

from __future__ import annotations

import re
from datetime import date

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PATTERN = re.compile(r"^(?P<node>[A-Z0-9]{1,24})-(?P<day>\d{6})-(?P<seq>\d{4,6})(?P<check>[0-9A-Z])$")


def check_char(body: str) -> str:
    """ISO 7064 MOD 37,36 check character over the alphanumerics of ``body``."""
    modulus = 36
    product = modulus
    for ch in body.upper():
        if ch not in ALPHABET:
            continue
        total = (product + ALPHABET.index(ch)) % modulus or modulus
        product = (total * 2) % (modulus + 1)
    return ALPHABET[(modulus + 1 - product) % modulus]


def make_receipt(node_id: str, day: date, seq: int) -> str:
    if not 1 <= seq <= 999_999:
        raise ValueError("receipt sequence runs from 1 to 999999 per node per day")
    body = f"{node_id.upper()}-{day:%y%m%d}-{seq:04d}"
    return body + check_char(body)


def normalise(text: str) -> str:
    """Accept what a person types: lower case, spaces, full-width digits and dashes."""
    table = str.maketrans("０１２３４５６７８９－—－ ", "0123456789---\u0000")
    return text.translate(table).replace("\u0000", "").strip().upper()


def is_valid(text: str) -> bool:
    receipt = normalise(text)
    match = _PATTERN.match(receipt)
    return bool(match) and check_char(receipt[:-1]) == receipt[-1]


def node_of(text: str) -> str | None:
    match = _PATTERN.match(normalise(text))
    return match.group("node") if match else None
