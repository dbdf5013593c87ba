"""A county whose nodes joined by token: certificates travel, keys rotate and are revoked, impostors are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import select

from protocol.enrollment import EnrollmentError, make_request
from protocol.errors import RouteError
from protocol.session import CursorsRequest, PullRequest
from protocol.signing import SigningKey
from protocol.topology import VILLAGE
from protocol.trust import make_root, sign_document
from sanji.forms import ActionForm, RegisterForm
from sanji.keys import NodeKey, write_key
from sanji.store import open_database
from sanji.store import schema as t
from sanji.store.repo import database_instance
from sanji.store.trustbook import CloneSuspected
from sanji.sync.requests_auth import RequestSigner, Unauthenticated
from sanji.sync.transport import LocalTransport
from sanji.sync.trust_step import next_key_path
from tests.trust.trust_net import TrustNet, certified_net


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[TrustNet]:
    built = await certified_net(tmp_path)
    try:
        yield built
    finally:
        await built.close()


async def register(net: TrustNet, village: str, n: int = 1) -> list[str]:
    ids = []
    for i in range(n):
        proj = await net.service(village).register(
            RegisterForm(
                matter="低保", applicant_name=f"村民{i}", actor="李代办", applicant_id_number="110101199003070011"
            )
        )
        await net.service(village).act(proj.errand, ActionForm(kind="submit", actor="李代办"))
        ids.append(proj.errand)
    return ids


async def quarantined(net: TrustNet, node: str) -> list[str]:
    async with net.stores[node].db.reader.connect() as conn:
        return [str(r) for r in (await conn.execute(select(t.quarantine.c.reason))).scalars()]


async def test_enrolled_villages_reach_the_county_and_the_county_learns_their_certificates(net: TrustNet) -> None:
    assert "T01V01" not in net.stores["C"].directory  # the county has not heard of the villages yet
    ids = await register(net, "T01V01", 2)
    await net.sync_all()
    assert "T01V01" in net.stores["C"].directory
    for errand in ids:
        assert await net.stores["C"].errand(errand) is not None
        # The applicant's ID number was sealed to the path, and the county can open it.
        view = await net.stores["C"].applicant(errand)
        assert view is not None and view.id_number == "110101199003070011"
    assert await quarantined(net, "C") == []


async def test_a_token_works_once_for_its_node_only(net: TrustNet, tmp_path: Path) -> None:
    issued = await net.books["T01"].issue_token(node="T01V09", role=VILLAGE)
    key = NodeKey.generate_pair()
    good = make_request(issued.token, key=key, keys=key.records("T01V09"), instance="db-1")
    await net.servers["T01"].enroll(good)
    with pytest.raises(EnrollmentError, match="already used"):
        await net.servers["T01"].enroll(good)
    other = await net.books["T01"].issue_token(node="T01V10", role=VILLAGE)
    wrong_node = make_request(
        msgspec.structs.replace(other.token, node="T01V11"), key=key, keys=key.records("T01V11"), instance="db-2"
    )
    with pytest.raises(EnrollmentError, match="issued for T01V10"):
        await net.servers["T01"].enroll(wrong_node)
    # Keys swapped on the way (a relay substituting its own): the HMAC no longer matches.
    thief = NodeKey.generate_pair()
    honest = make_request(other.token, key=key, keys=key.records("T01V10"), instance="db-3")
    swapped = msgspec.structs.replace(honest, keys=thief.records("T01V10"))
    with pytest.raises(EnrollmentError, match="secret"):
        await net.servers["T01"].enroll(swapped)
    await net.servers["T01"].enroll(honest)  # the genuine request still works after the forged one


async def test_an_unsigned_or_foreign_signed_request_is_refused(net: TrustNet) -> None:
    await register(net, "T01V01")
    await net.sync("T01V01")
    server = net.servers["T01"]
    with pytest.raises(Unauthenticated, match="not signed"):
        await server.pull(PullRequest(sender="T01V01", at=0, cursors=()))
    # T01V02 signs a pull that claims to be T01V01's, to read its sister village's errands.
    impostor = LocalTransport(server)
    impostor.signer = RequestSigner("T01V01", type("K", (), {"key": net.stores["T01V02"].key})())
    with pytest.raises(Unauthenticated, match="not a key of T01V01"):
        await impostor.pull(PullRequest(sender="T01V01", at=0, cursors=()))
    # A node outside the township's subtree is refused before any signature is looked at.
    with pytest.raises(RouteError):
        await server.cursors(CursorsRequest(sender="X99"))


async def test_a_copied_key_on_another_database_is_refused_as_a_clone(net: TrustNet, tmp_path: Path) -> None:
    db = await open_database(f"sqlite:///{tmp_path / 'copy.db'}")
    try:
        copy_instance = await database_instance(db)
    finally:
        await db.dispose()
    assert copy_instance != net.stores["T01V01"].instance_id
    transport = LocalTransport(net.servers["T01"])
    transport.signer = RequestSigner("T01V01", net.stores["T01V01"])
    with pytest.raises(CloneSuspected, match="enrolled with database"):
        await transport.cursors(CursorsRequest(sender="T01V01", instance=copy_instance))
    async with net.stores["T01"].db.reader.connect() as conn:
        kinds = list((await conn.execute(select(t.events.c.kind))).scalars())
    assert "clone_suspected" in kinds


async def test_revoked_key_is_refused_at_township_and_county_within_two_cycles(net: TrustNet) -> None:
    await register(net, "T01V01")
    await net.sync_all()
    await net.books["T01"].revoke("T01V01", reason="笔记本被盗")
    # The thief keeps the laptop: new errands signed with the revoked key.
    await register(net, "T01V01")
    with pytest.raises(Exception, match="revoked or replaced"):
        await net.sync("T01V01")  # cycle 1: the township no longer talks to that key at all
    await net.sync("T01")  # the revocation goes up with the township's next exchange
    assert net.stores["C"].directory.is_retired(net.stores["T01V01"].key.key_id)
    # Batches after the point, carried past the township on a file, are quarantined at the county.
    await net.stores["T01V01"].seal_outbox(force=True)
    frames = await net.stores["T01V01"].frames_for_node("C")
    outcome = await net.stores["C"].receive(frames, peer="file:T01V01")
    refused = [r for r in outcome.results if r.status == "refused"]
    assert refused and all(r.error == "revoked_key" for r in refused)
    assert len(await quarantined(net, "C")) == len(refused)
    # ... and so are they at the township.
    outcome = await net.stores["T01"].receive(frames, peer="file:T01V01")
    assert {r.error for r in outcome.results if r.status == "refused"} == {"revoked_key"}
    assert await quarantined(net, "T01")


async def test_rotation_completes_within_one_sync_cycle(net: TrustNet) -> None:
    village = net.stores["T01V01"]
    old = village.key.key_id
    await register(net, "T01V01")
    await net.sync_all()
    write_key(next_key_path(net.key_path("T01V01")), SigningKey.generate())
    await register(net, "T01V01")  # queued before the rotation, signed after it with the new key
    await net.sync("T01V01")
    assert village.key.key_id != old
    assert not next_key_path(net.key_path("T01V01")).exists()
    await net.sync_all()
    for node in ("T01", "C"):
        assert net.stores[node].directory.is_retired(old)
        assert await quarantined(net, node) == []
        assert len(await net.stores[node].digests()) == 2
    # The old key cannot sign new batches any more.
    assert village.key.key_id in {k.key_id for k in net.stores["C"].directory.get("T01V01").keys}


async def test_a_new_root_version_travels_down_to_every_village(net: TrustNet) -> None:
    new_keys = [SigningKey.generate() for _ in range(3)]
    v2 = sign_document(make_root(new_keys, county="C", version=2, now_ms=1), [*net.root_keys[:2], *new_keys[:2]])
    await net.books["C"].add([v2])
    await net.sync_all()
    for node in ("T01", "T01V01", "T01V02"):
        assert net.books[node].state is not None and net.books[node].state.root.version == 2


async def test_a_replacement_laptop_reenrolls_and_the_old_machine_is_cut_off(net: TrustNet) -> None:
    ids = await register(net, "T01V01", 2)
    await net.sync_all()
    old_store, old_key = net.stores["T01V01"], net.stores["T01V01"].key
    new_store = await net.enroll("T01V01", VILLAGE, "T01", machine="-new-laptop")
    assert new_store is not old_store and new_store.key.key_id != old_key.key_id
    await net.sync("T01V01")  # the new laptop takes its errands back from the township ...
    assert sorted(await new_store.digests()) == sorted(ids)
    ids += await register(net, "T01V01", 1)  # ... and goes on numbering after them
    await net.sync_all()
    assert sorted(await net.stores["C"].digests()) == sorted(ids)
    assert net.stores["C"].directory.is_retired(old_key.key_id)
    # The old machine (or a copy of it) can no longer talk to the township.
    stale = LocalTransport(net.servers["T01"])
    stale.signer = RequestSigner("T01V01", old_store)
    with pytest.raises(Unauthenticated, match="revoked or replaced"):
        await stale.cursors(CursorsRequest(sender="T01V01", instance=old_store.instance_id))
