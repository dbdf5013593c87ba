"""Passwords as Argon2id hashes (argon2-cffi, its RFC 9106 low-memory profile); never stored or logged in clear.

``verify`` takes the same time whether or not the account exists (``verify_absent`` checks
the password against a throw-away hash), so a login cannot be used to find out names.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_LENGTH = 8
MAX_LENGTH = 256


_hasher: PasswordHasher | None = None  # made at the first password hashed or checked (tests set a fast one)


def hasher() -> PasswordHasher:
    # argon2-cffi is loaded then: a node nobody logs into meanwhile (a village between visits, every
    # open demo node) never holds it (issue 16's footprint).
    global _hasher
    if _hasher is None:
        from argon2 import PasswordHasher

        _hasher = PasswordHasher()
    return _hasher


class WeakPassword(ValueError):
    """A password the node's rules refuse: ``str()`` in English, ``message_zh`` in Chinese."""

    def __init__(self, message: str, *, zh: str) -> None:
        super().__init__(message)
        self.message_zh = zh


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password has at least {MIN_LENGTH} characters", zh=f"密码至少需要{MIN_LENGTH}个字符")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters", zh=f"密码最多{MAX_LENGTH}个字符")
    if password.strip() != password or not password.strip():
        raise WeakPassword("a password neither starts nor ends with a space", zh="密码的开头和结尾不能是空格")


def hash_password(password: str) -> str:
    check_strength(password)
    return hasher().hash(password)


def verify(stored_hash: str, password: str) -> bool:
    if len(password) > MAX_LENGTH:
        return False
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        return hasher().verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's: rehash at the next login."""
    from argon2.exceptions import InvalidHashError

    try:
        return hasher().check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


@functools.cache
def _absent_hash() -> str:
    return hasher().hash("no account has this password")


def verify_absent(password: str) -> bool:
    """Spend the time a real check takes; always False."""
    verify(_absent_hash(), password)
    return False
