"""The city's trust tests share one fixture: a city, two counties and their subtrees, certified by token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.trust.trust_net import TrustNet, certified_city


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[TrustNet]:
    built = await certified_city(tmp_path)
    try:
        yield built
    finally:
        await built.close()
