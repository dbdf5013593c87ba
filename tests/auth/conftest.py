"""Argon2 with its production parameters costs about a second per hash on a busy two-core machine;
the account tests hash dozens of times, so they use the same algorithm (Argon2id) with small
parameters, as Django's tests swap in a fast hasher. A test that asks for ``real_hashing`` gets
the production hasher."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from sanji.auth import passwords


@pytest.fixture
def real_hashing() -> None:
    """Use argon2-cffi's default (RFC 9106 low-memory) parameters, as production does."""


@pytest.fixture(autouse=True)
def fast_hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if "real_hashing" not in request.fixturenames:
        monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))
