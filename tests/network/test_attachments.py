"""Attachments: content-addressed, after every batch, in resumable chunks, within a daily budget."""

from __future__ import annotations

import hashlib
import os

from protocol.session import BLOB_CHUNK_BYTES, BlobPut
from sanji.context import NodeContext
from sanji.forms import ActionForm, RegisterForm
from sanji.sync.driver import sync_once
from tests.conftest import CALENDAR, NetworkFactory


async def attach(net: object, node: str, errand: str, data: bytes) -> str:
    service = net.service(node)  # type: ignore[attr-defined]
    form = ActionForm(kind="attach", actor="代办", name="身份证正面.jpg", mime="image/jpeg")
    await service.attach(errand, form, data)  # the bytes kept with the step, as a desk's upload
    return hashlib.sha256(data).hexdigest()


async def test_an_attachment_travels_up_whole_and_verified(network: NetworkFactory) -> None:
    net = await network(1, 1)
    village = net.service("T01V01")
    errand = (await village.register(RegisterForm(matter="MZ-001", applicant_name="王芳", actor="代办"))).errand
    scan = os.urandom(5 * BLOB_CHUNK_BYTES + 123)
    digest = await attach(net, "T01V01", errand, scan)
    assert digest == hashlib.sha256(scan).hexdigest()
    await net.sync_all(2)
    for node in ("T01", "C"):
        state = await net.stores[node].blob_state(digest)
        assert state == (len(scan), len(scan), True), node
        _, _, data = await net.stores[node].blob_read(digest, 0, len(scan))
        assert data == scan
    assert await net.stores["T01V01"].blobs_to_send("T01") == {}


async def test_a_dropped_transfer_resumes_where_it_stopped(network: NetworkFactory) -> None:
    net = await network(1, 1)
    village = net.service("T01V01")
    errand = (await village.register(RegisterForm(matter="MZ-001", applicant_name="王芳", actor="代办"))).errand
    scan = os.urandom(4 * BLOB_CHUNK_BYTES)
    digest = await attach(net, "T01V01", errand, scan)
    await sync_once(net.stores["T01V01"], net.transports["T01V01"])  # moves everything
    town = net.stores["T01"]
    assert (await town.blob_state(digest)) == (len(scan), len(scan), True)
    # A second copy arriving in pieces: a chunk at the wrong offset changes nothing.
    other = os.urandom(3 * BLOB_CHUNK_BYTES)
    digest2 = await attach(net, "T01V01", errand, other)
    await net.stores["T01V01"].seal_outbox(force=True)
    frames, _ = await net.stores["T01V01"].frames_for_parent({}, 1 << 20)
    await town.receive(frames, peer="T01V01")
    link = net.signed("T01V01")
    first = await link.blob_put(
        BlobPut(sender="T01V01", hash=digest2, size=len(other), offset=0, data=other[:BLOB_CHUNK_BYTES])
    )
    assert first.received == BLOB_CHUNK_BYTES and not first.complete
    skip = await link.blob_put(
        BlobPut(sender="T01V01", hash=digest2, size=len(other), offset=2 * BLOB_CHUNK_BYTES, data=b"x" * 10)
    )
    assert skip.received == BLOB_CHUNK_BYTES  # told where to resume
    await sync_once(net.stores["T01V01"], net.transports["T01V01"])  # the driver resumes from there
    assert (await town.blob_state(digest2)) == (len(other), len(other), True)


async def test_corrupted_content_is_thrown_away(network: NetworkFactory) -> None:
    net = await network(1, 1)
    village = net.service("T01V01")
    errand = (await village.register(RegisterForm(matter="MZ-001", applicant_name="王芳", actor="代办"))).errand
    scan = os.urandom(1000)
    digest = await attach(net, "T01V01", errand, scan)
    await net.stores["T01V01"].seal_outbox(force=True)
    frames, _ = await net.stores["T01V01"].frames_for_parent({}, 1 << 20)
    await net.stores["T01"].receive(frames, peer="T01V01")
    bad = await net.signed("T01V01").blob_put(
        BlobPut(sender="T01V01", hash=digest, size=1000, offset=0, data=b"\x00" * 1000)
    )
    assert not bad.complete and bad.received == 0


async def test_daily_budget_defers_attachments_but_never_batches(network: NetworkFactory) -> None:
    net = await network(1, 1)
    village = net.service("T01V01")
    errand = (await village.register(RegisterForm(matter="MZ-001", applicant_name="王芳", actor="代办"))).errand
    scan = os.urandom(3 * BLOB_CHUNK_BYTES)
    digest = await attach(net, "T01V01", errand, scan)
    ctx = NodeContext(net.stores["T01V01"], CALENDAR)
    ctx.daily_blob_budget = BLOB_CHUNK_BYTES  # one chunk a day
    report = await sync_once(net.stores["T01V01"], net.transports["T01V01"], context=ctx)
    assert report.deferred_blobs == 1
    assert sorted(await net.stores["T01"].digests()) == [errand]  # the errand itself went
    state = await net.stores["T01"].blob_state(digest)
    assert state is not None and state[1] == BLOB_CHUNK_BYTES and not state[2]
    assert await net.stores["T01V01"].blobs_to_send("T01") == {digest: len(scan)}
