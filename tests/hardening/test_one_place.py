"""A node id is certified under one parent only: another township's certificate cannot cut a village off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from protocol.enrollment import EnrollmentError
from protocol.topology import VILLAGE
from sanji.forms import ActionForm, RegisterForm
from sanji.store import schema as t
from tests.trust.trust_net import TrustNet, certified_net


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[TrustNet]:
    built = await certified_net(tmp_path, towns=2, villages=1)
    try:
        yield built
    finally:
        await built.close()


async def register(net: TrustNet, village: str) -> str:
    proj = await net.service(village).register(RegisterForm(matter="低保", applicant_name="张三", actor="李"))
    await net.service(village).act(proj.errand, ActionForm(kind="submit", actor="李"))
    return proj.errand


async def test_another_townships_certificate_for_a_village_is_refused_at_the_county(net: TrustNet) -> None:
    await register(net, "T01V01")
    await net.sync("T01V01")
    await net.sync("T01")  # up to the county; T02 has not exchanged since (it would learn every id used)
    genuine = net.stores["T01V01"].key.key_id
    # T02 (a stolen township key, or a mistyped id) enrolls a machine as T01V01: T02 has never heard of it.
    await net.enroll("T01V01", VILLAGE, "T02", machine="-impostor")
    await net.sync("T02")  # the certificate goes up with T02's next exchange ... and is refused there
    county = net.stores["C"]
    assert county.directory.parent("T01V01") == "T01"
    assert genuine in {k.key_id for k in county.directory.get("T01V01").keys}
    async with county.db.reader.connect() as conn:
        kinds = [str(k) for k in (await conn.execute(select(t.events.c.kind))).scalars()]
    assert "place_conflict" in kinds


async def test_the_genuine_village_keeps_syncing_and_verifying(net: TrustNet, tmp_path: Path) -> None:
    await register(net, "T01V01")
    await net.sync("T01V01")
    await net.sync("T01")  # T02 has not exchanged since: it has never heard of T01V01
    genuine_store = net.stores["T01V01"]
    genuine_transport, genuine_trust = net.transports["T01V01"], net.child_trust["T01V01"]
    await net.enroll("T01V01", VILLAGE, "T02", machine="-impostor")
    await net.sync("T02")
    net.stores["T01V01"], net.transports["T01V01"], net.child_trust["T01V01"] = (
        genuine_store,
        genuine_transport,
        genuine_trust,
    )
    later = await register(net, "T01V01")
    await net.sync("T01V01")
    await net.sync("T01")
    assert await net.stores["C"].errand(later) is not None
    async with net.stores["C"].db.reader.connect() as conn:
        quarantined = list((await conn.execute(select(t.quarantine.c.reason))).scalars())
    assert quarantined == []


async def test_a_token_for_an_id_certified_under_another_parent_is_refused_at_issue(net: TrustNet) -> None:
    await net.sync_all()
    # T01 learns T02's subtree (as a deeper tree's upper level would): then it refuses to enroll T02V01.
    t02_docs = [raw for raw in net.books["T02"].state.documents()]  # type: ignore[union-attr]
    await net.books["T01"].add(t02_docs)
    assert net.books["T01"].state is not None and net.books["T01"].state.current("T02V01") is not None
    with pytest.raises(EnrollmentError, match="already certified under T02"):
        await net.books["T01"].issue_token(node="T02V01", role=VILLAGE)
    # A replacement laptop under the same parent is still allowed.
    await net.books["T01"].issue_token(node="T01V01", role=VILLAGE)
