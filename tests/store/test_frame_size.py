"""A backlog is sealed into small frames, so a dropped transfer redoes at most one of them."""

from __future__ import annotations

from sqlalchemy import select

from protocol import limits
from sanji.forms import RegisterForm
from sanji.store import schema as t
from tests.conftest import NetworkFactory


async def test_a_large_backlog_is_sealed_into_frames_under_the_target(network: NetworkFactory) -> None:
    net = await network(1, 1)
    village = net.service("T01V01")
    for i in range(300):
        # Long, varied text so the batch does not compress away.
        summary = "".join(chr(0x4E00 + (i * 7919 + k * 104729) % 20000) for k in range(600))
        await village.register(RegisterForm(matter="MZ-001", applicant_name=f"村民{i}", actor="代办", summary=summary))
    made = await net.stores["T01V01"].seal_outbox(force=True)
    async with net.stores["T01V01"].db.reader.connect() as conn:
        sizes = list((await conn.execute(select(t.batches.c.size))).scalars())
    assert made == len(sizes) > 1
    assert max(sizes) <= limits.TARGET_FRAME_BYTES
    await net.sync_all(1, budget=64 * 1024)
    assert sorted(await net.stores["T01"].digests()) == sorted(await net.stores["T01V01"].digests())
