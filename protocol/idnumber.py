"""Resident ID numbers (居民身份证号码, GB 11643-1999): 17 digits and an ISO 7064 MOD 11-2 check character.

Pure: the one check every form, screen and import asks before an ID number is recorded.
"""

from __future__ import annotations

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


def id_check_char(first17: str) -> str:
    """The check character of the first 17 digits."""
    return ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def valid_id_number(value: str) -> bool:
    """18 characters, 17 digits, and the right check character (an upper-case X stands for 10)."""
    return len(value) == 18 and value[:17].isdigit() and id_check_char(value[:17]) == value[17]
