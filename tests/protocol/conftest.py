from __future__ import annotations

import pytest
from protocol_kit import new_layout

from protocol.topology import Directory
from sanji.layout import Layout


@pytest.fixture(scope="module")
def layout() -> Layout:
    return new_layout()


@pytest.fixture(scope="module")
def directory(layout: Layout) -> Directory:
    return layout.directory
