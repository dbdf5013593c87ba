"""A public complainant's name and phone open at the county hub alone, and only as a complainant's."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from protocol.sealing import SealError, open_for, sealed_to
from sanji.complaints import ComplaintForm, complainant_of, file_public_complaint, present, seal_complainant
from sanji.forms import RegisterForm
from sanji.layout import city_layout, county_layout
from sanji.store import Store

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


async def test_a_public_complaint_travels_up_and_only_the_county_hub_reads_who_made_it(network: Any) -> None:
    net = await network(1, 1)
    service = net.service("T01V01")
    errand = (
        await service.register(
            RegisterForm(matter="MZ-001", applicant_name="赵桂兰", applicant_phone="13907301234", actor="李代办")
        )
    ).errand
    village: Store = net.stores["T01V01"]
    form = ComplaintForm(kind="投诉", text="代办员收费", against="李代办", name="王五", phone="13900001111")
    filed = await file_public_complaint(village, errand, form, ip="192.0.2.7")
    assert filed.identity_sealed and len(filed.reference) == 8
    await net.sync_all(rounds=3)
    county: Store = net.stores["C"]
    complaints = [c for c in await county.annotations("complain") if c["errand"] == errand]
    assert len(complaints) == 1 and complaints[0]["channel"] == "public" and complaints[0]["against"] == "李代办"
    assert present(complaints, county.sealing_key)[0]["complainant"] == {
        "status": "open",
        "name": "王五",
        "phone": "13900001111",
    }
    town_copy = [c for c in await net.stores["T01"].annotations("complain") if c["errand"] == errand]
    assert present(town_copy, net.stores["T01"].sealing_key)[0]["complainant"] == {"status": "sealed"}
    assert present(complaints, village.sealing_key)[0]["complainant"] == {"status": "sealed"}


def test_below_a_city_the_complainant_is_sealed_to_the_errands_own_county() -> None:
    layout = city_layout(2, 1, 1)
    errand = "C2T01V01-00112233aabbccdd"
    sealed = seal_complainant(layout.directory, errand, "C2T01V01", "王五", "13900001111")
    assert [node for node, _ in sealed_to(sealed)] == ["C2"]  # the county answers complaints, not the city
    item = {"kind": "complain", "errand": errand, "scope": "C2T01V01", "complainant": msgspec.to_builtins(sealed)}
    county, city = (layout.keys[n].sealing for n in ("C2", "S"))  # type: ignore[attr-defined]
    assert complainant_of(item, county)["status"] == "open"
    assert complainant_of(item, city) == {"status": "sealed"}
