"""A public complainant's name and phone open at the county hub alone, and only as a complainant's."""

from __future__ import annotations

import msgspec
import pytest

from protocol.sealing import SealError, open_for, sealed_to
from sanji.complaints import complainant_of, seal_complainant
from sanji.layout import county_layout

ERRAND = "T01V01-00112233aabbccdd"


def test_the_complainant_is_sealed_to_the_county_hub_alone() -> None:
    layout = county_layout(1, 1)
    sealed = seal_complainant(layout.directory, ERRAND, "T01V01", "王五", "13900001111")
    assert [node for node, _ in sealed_to(sealed)] == ["C"]
    assert b"13900001111" not in sealed and "王五".encode() not in sealed
    item = {"kind": "complain", "errand": ERRAND, "scope": "T01V01", "complainant": msgspec.to_builtins(sealed)}
    hub, town, village = (layout.keys[n].sealing for n in ("C", "T01", "T01V01"))  # type: ignore[attr-defined]
    assert complainant_of(item, hub) == {"status": "open", "name": "王五", "phone": "13900001111"}
    assert complainant_of(item, town) == {"status": "sealed"}
    assert complainant_of(item, village) == {"status": "sealed"}
    assert complainant_of({**item, "complainant": ""}, hub) == {"status": "none"}
    moved = {**item, "errand": "T01V01-ffffffffffffffff"}  # copied onto another errand: opens nowhere
    assert complainant_of(moved, hub) == {"status": "sealed"}
    with pytest.raises(SealError):  # nor does it pass for the applicant's own sealed details
        open_for(hub, sealed, ERRAND, "T01V01")


def test_an_anonymous_complaint_seals_nothing() -> None:
    layout = county_layout(1, 1)
    assert seal_complainant(layout.directory, ERRAND, "T01V01", "", "") == b""
    bare = county_layout(1, 1, sealing=False)
    assert seal_complainant(bare.directory, ERRAND, "T01V01", "王五", "139") == b""  # no key at the hub: not kept
