"""Node ids are unique across the whole tree (issue 15), not only within a county.

A node that enrolls others holds every certificate its parent holds, so a county refuses a token for an id
another county already uses once that id has reached the city. Two counties that enroll the same id while out
of touch cannot know: the city keeps the first placement and refuses the other, the losing county refuses the
winner's certificate when it comes down, and both desks say so (``sanji.observe.id_conflicts``).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from protocol.enrollment import EnrollmentError
from protocol.topology import COUNTY, TOWN, VILLAGE
from protocol.trust import make_certificate, sign_document
from sanji.keys import NodeKey
from sanji.observe.id_conflicts import id_conflicts
from sanji.store import schema as t
from sanji.store import trustbook
from tests.trust.trust_net import TrustNet, now_ms


async def test_a_county_refuses_an_id_another_county_already_uses(net: TrustNet) -> None:
    await net.enroll("C1T05", TOWN, "C1")
    await net.sync_all(2)  # C1's C1T05 reaches the city, and every certificate the city holds comes down to C2
    assert net.stores["C2"].directory.parent("C1T05") == "C1"
    with pytest.raises(EnrollmentError, match=r"C1T05 .*C1") as refused:
        await net.books["C2"].issue_token(node="C1T05", role=TOWN)
    assert (
        "节点编号 C1T05 已在 C1 下使用" in refused.value.message
        and "unique across the whole tree" in refused.value.message
    )
    assert (await net.books["C2"].issue_token(node="C2T05", role=TOWN)).token  # the id the hint suggests
    with pytest.raises(EnrollmentError) as top:  # the id of the hub at the top: no parent to name
        await net.books["C2"].issue_token(node="S", role=TOWN)
    assert "节点编号 S 已是本树顶层中心的编号" in top.value.message and "None" not in top.value.message
    # Villages learn nothing of other subtrees: they enroll no one.
    assert "C1T05" not in net.stores["C2T01V01"].directory and "C1T01" not in net.stores["C2T01V01"].directory
    assert await id_conflicts(net.stores["S"]) == [] and await id_conflicts(net.stores["C2"]) == []


async def test_the_same_id_enrolled_by_two_counties_out_of_touch_is_said_at_both_desks(net: TrustNet) -> None:
    """Prefixed ids still meet when one county's id begins another's (C1 and C11 both may mint C11T05)."""
    await net.enroll("C11", COUNTY, "S")
    await net.sync_all(2)
    await net.enroll("C11T05", TOWN, "C1")
    await net.enroll("C11T05", TOWN, "C11", machine="-c11")  # C11 has not heard from the city since
    await net.sync_all(2)
    city = net.stores["S"]
    assert city.directory.parent("C11T05") == "C1"  # C1 synced first: the first placement holds at the city
    assert net.stores["C11"].directory.parent("C11T05") == "C11"  # C11 keeps its own, and refused the city's copy

    (at_city,) = await id_conflicts(city)
    assert (at_city.node, at_city.kept_under, at_city.refused_under, at_city.ours_lost) == (
        "C11T05",
        "C1",
        "C11",
        False,
    )
    assert "C11 所在的县为它另起编号" in at_city.zh and "new id" in at_city.en

    (at_county,) = await id_conflicts(net.stores["C11"])
    assert (at_county.kept_under, at_county.refused_under, at_county.ours_lost) == ("C11", "C1", True)
    assert "不会上报" in at_county.zh and "will not reach it" in at_county.en
    assert await id_conflicts(net.stores["C1"]) == []  # the county whose id holds has nothing to do

    # The remedy the warning names: a new id under C11, enrolled with a new token, reaches the city.
    await net.enroll("C11T06", TOWN, "C11")
    await net.sync_all(2)
    assert city.directory.parent("C11T06") == "C11"


async def test_a_county_whose_cursor_counted_only_its_own_subtree_takes_the_whole_tree_once(net: TrustNet) -> None:
    """Before the upgrade a county's trust cursor at the city counted past other counties' certificates without
    taking them; the epoch tells the two countings apart, so the county starts over once and learns every id."""
    await net.enroll("C1T05", TOWN, "C1")
    await net.sync("C1")  # C1's C1T05 reaches the city
    city, county = net.stores["S"], net.books["C2"]
    async with city.db.reader.connect() as conn:
        top = int(await conn.scalar(select(func.max(t.trust_docs.c.seq))) or 0)
    await county.set_peer_position("S", epoch=city.instance_id, cursor=top, lease=(await county.peer_position("S"))[2])
    await net.sync("C2")
    assert net.stores["C2"].directory.parent("C1T05") == "C1"
    assert (await county.peer_position("S"))[0] == city.instance_id + "+tree"


async def test_the_whole_tree_goes_down_a_page_at_a_time(net: TrustNet, monkeypatch: pytest.MonkeyPatch) -> None:
    """However large the tree, one reply holds at most a page of documents; following its cursor gives the
    child exactly what one unbounded reply would have, in the same order."""
    city = net.books["S"]
    whole, top, epoch = await city.for_child("C2", 0, "")
    assert len(whole) > 3
    monkeypatch.setattr(trustbook, "TRUST_REPLY_BYTES", 1)  # a page holds one document
    pages: list[tuple[bytes, ...]] = []
    cursor = 0
    while cursor != top:
        page, reached, _ = await city.for_child("C2", cursor, epoch)
        assert reached > cursor and len(page) <= 1
        pages.append(page)
        cursor = reached
    assert [doc for page in pages for doc in page] == list(whole)
    assert await city.for_child("C2", top, epoch) == ((), top, epoch)


async def test_a_made_up_certificate_raises_no_conflict_at_any_desk(net: TrustNet) -> None:
    """A child may send any bytes: a certificate its named issuer never signed places nothing and warns no one."""
    await net.enroll("C1T05", TOWN, "C1")
    await net.sync_all(2)
    city = net.books["S"]
    stranger = NodeKey.generate_pair()
    made_up = make_certificate(
        node="C1T05", role=TOWN, parent="C2", keys=stranger.records("C1T05"), issuer="C2", now_ms=now_ms()
    )
    assert city.state is not None and city.state.place_conflict(made_up)  # it would move C1T05 if it were taken
    await city.add([sign_document(made_up, [stranger])], peer="C2")
    assert await id_conflicts(net.stores["S"]) == []
    assert net.stores["S"].directory.parent("C1T05") == "C1"


async def test_under_a_city_an_id_below_a_county_starts_with_its_parents(net: TrustNet) -> None:
    """README: with a city above, every id below a county starts with the county's (so two counties never meet)."""
    for node, role, parent in (("T99", TOWN, "C1"), ("C2T99", TOWN, "C1"), ("V09", VILLAGE, "C1T01")):
        with pytest.raises(EnrollmentError) as refused:
            await net.books[parent].issue_token(node=node, role=role)
        assert f"县以下的节点编号须以上级编号 {parent} 开头" in refused.value.message
        assert f"starts with its parent's id {parent}" in refused.value.message
    assert (await net.books["C1"].issue_token(node="C1T99", role=TOWN)).token
    assert (await net.books["C1T01"].issue_token(node="C1T01V09", role=VILLAGE)).token
    with pytest.raises(EnrollmentError, match="look-alike"):  # the token just issued for C1T99 counts
        await net.books["C1"].issue_token(node="c1t99", role=TOWN)
    with pytest.raises(EnrollmentError, match="invisible"):
        await net.books["C1"].issue_token(node="C1T98", role=TOWN, name="\u200b")
    assert (await net.books["S"].issue_token(node="C3", role=COUNTY)).token  # the city names its counties freely
