"""A city hub at the root of trust: it enrolls its counties as a county enrolls its townships.

The root certifies the node at the top of the tree, whatever its level; each county's certificate is
the city's, and the rest of each county's tree is certified as before. A node can only be placed below
its parent's level, so no township can certify a "county" of its own.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from protocol.enrollment import EnrollmentError
from protocol.signing import SigningKey
from protocol.topology import CITY, COUNTY
from protocol.trust import ROOT_ISSUER, TrustError, TrustState, make_certificate, make_root, sign_document
from sanji.forms import ActionForm, RegisterForm
from sanji.keys import NodeKey
from sanji.store import schema as t
from tests.trust.trust_net import TrustNet, now_ms

ID_NUMBER = "110101199003070011"


async def register(net: TrustNet, village: str) -> str:
    proj = await net.service(village).register(
        RegisterForm(matter="低保", applicant_name="村民", actor="李代办", applicant_id_number=ID_NUMBER)
    )
    await net.service(village).act(proj.errand, ActionForm(kind="submit", actor="李代办"))
    return proj.errand


async def test_enrolled_counties_bring_their_errands_to_the_city_and_only_there(net: TrustNet) -> None:
    city = net.stores["S"]
    assert city.directory.role("S") == CITY and net.stores["C1"].directory.parent("C1") == "S"
    assert net.books["C1"].state is not None and net.books["C1"].state.current("C1") is not None
    assert net.books["C1"].state.current("C1").issuer == "S"  # type: ignore[union-attr]
    first = await register(net, "C1T01V01")
    second = await register(net, "C2T01V01")
    await net.sync_all(2)

    for errand in (first, second):
        assert await city.errand(errand) is not None
        view = await city.applicant(errand)  # sealed to the path, and the city is on it
        assert view is not None and view.id_number == ID_NUMBER
    assert await net.stores["C1"].errand(second) is None and await net.stores["C2"].errand(first) is None
    assert "C2T01V01" in city.directory  # the city learned both counties' villages from their certificates
    for node in net.stores:
        async with net.stores[node].db.reader.connect() as conn:
            assert list((await conn.execute(select(t.quarantine.c.reason))).scalars()) == []


async def test_a_county_enrolls_townships_only_and_the_city_counties_only(net: TrustNet) -> None:
    with pytest.raises(EnrollmentError):
        await net.books["S"].issue_token(node="X01", role="town")
    with pytest.raises(EnrollmentError):
        await net.books["C1"].issue_token(node="C3", role=COUNTY)
    issued = await net.books["S"].issue_token(node="C3", role=COUNTY)
    assert issued.token


async def test_a_token_is_issued_only_for_a_node_id_within_the_bound(net: TrustNet) -> None:
    """The screen and `sanji enroll issue` both end here: an id the store could not hold is refused first."""
    with pytest.raises(EnrollmentError, match="1-64 letters"):
        await net.books["S"].issue_token(node="C" * 65, role=COUNTY)
    with pytest.raises(EnrollmentError, match="1-64 letters"):
        await net.books["S"].issue_token(node="C 4", role=COUNTY)
    assert (await net.books["S"].issue_token(node="C" * 64, role=COUNTY)).token


async def test_no_node_is_certified_at_or_above_its_parents_level(net: TrustNet) -> None:
    state = net.books["S"].state
    assert state is not None
    town_key = NodeKey.generate_pair()
    # C1T01 "certifies" a county under itself: chains to an ancestor, but a county never sits below a township.
    town = net.stores["C1T01"]
    fake = make_certificate(
        node="C9", role=COUNTY, parent="C1T01", keys=town_key.records("C9"), issuer="C1T01", now_ms=now_ms()
    )
    result = state.add(sign_document(fake, [town.key]), now_ms=now_ms())
    assert result.status == "pending" and "C9" not in state.directory()
    # The root certifies the hub at the top of the tree, not a county below it.
    rogue = make_certificate(
        node="C1", role=COUNTY, parent=None, keys=town_key.records("C1"), issuer=ROOT_ISSUER, now_ms=now_ms()
    )
    with pytest.raises(TrustError, match="top of the tree"):
        state.add(sign_document(rogue, net.root_keys[:2]), now_ms=now_ms())


def test_a_three_tier_root_still_certifies_its_county_alone() -> None:
    root_keys = [SigningKey.generate() for _ in range(3)]
    state = TrustState(sign_document(make_root(root_keys, county="C", now_ms=now_ms()), root_keys))
    hub = NodeKey.generate_pair()
    cert = make_certificate(
        node="C", role=COUNTY, parent=None, keys=hub.records("C"), issuer=ROOT_ISSUER, now_ms=now_ms()
    )
    assert state.add(sign_document(cert, root_keys[:2]), now_ms=now_ms()).status == "added"
    assert state.directory().role("C") == COUNTY and state.directory().parent("C") is None
