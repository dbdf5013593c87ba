"""A county restored from an older copy takes back the catalogue versions it lost from a township that holds them.

The county published v1 and v3 (never v2), was backed up, then published v4 and v5, which the township took up;
put back from the copy, it lacks both (``catalogue_versions_lost`` "4-"), so an errand bound to v4 cannot be
checked. The township's kept copies, carried up as files, are taken back when the county's own key signed them
and their version lies in the lost range: v5 becomes the newest again (what lies above stays open), v4 narrows
the range to nothing, and the errand is checked again. A byte altered, the same catalogue signed by the
township's key, a county-signed v2 (the copy knows v2 was never published), and v4 a second time change nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from protocol.catalogue import sign_catalogue
from sanji.backup import backup, restore
from sanji.catalogue.recover import RecoveryRefused, recover_catalogue
from sanji.context import NodeContext, bound_of
from sanji.store import Store, open_database
from sanji.workcalendar import load_calendar
from tests.conftest import NetworkFactory
from tests.rules.test_binding_tampered import (
    CATALOGUE,
    COUNTY,
    TOWN,
    VILLAGE,
    contexts,
    publish_newer,
    registered_and_received,
)


async def test_a_restored_county_takes_back_lost_versions_from_below(network: NetworkFactory, tmp_path: Path) -> None:
    await recover_case(network, tmp_path, None)


async def test_a_restored_county_on_postgres_takes_back_lost_versions(
    network: NetworkFactory, tmp_path: Path, pg_url: str
) -> None:
    await recover_case(network, tmp_path, pg_url)


async def recover_case(network: NetworkFactory, tmp_path: Path, pg_url: str | None) -> None:
    net = await network(1, 1, county_url=pg_url)
    ctx = await contexts(net)
    v1 = CATALOGUE.version
    v3 = await publish_newer(net, ctx, v1 + 2)  # v2 never published
    store = net.stores[COUNTY]
    url = pg_url or str(store.db.url)
    copy = await asyncio.to_thread(backup, url, tmp_path / "backups", node=COUNTY)
    v4 = await publish_newer(net, ctx, v1 + 3)
    genuine = await registered_and_received(net, ctx[VILLAGE], ctx[TOWN], in_person=True)  # bound to v4
    entry = bound_of(await net.stores[TOWN].errand_state_blob(genuine)).matter_entry
    v5 = await publish_newer(net, ctx, v4.version + 1)
    town = net.stores[TOWN]
    held_below = {v: await town.document_version("catalogue", v) for v in (v4.version, v5.version)}
    assert all(held_below.values())
    await store.db.dispose()
    await asyncio.to_thread(restore, url, copy.path)

    async def county_now() -> tuple[Store, NodeContext]:
        back = Store(await open_database(url), node_id=COUNTY, key=net.layout.keys[COUNTY], directory=net.directory)
        await back.start()
        county = NodeContext(back, load_calendar())
        await county.load()
        return back, county

    back, county = await county_now()
    try:
        assert await back.meta_value("catalogue_versions_lost") == f"{v4.version}-"
        assert county.catalogue_version == v3.version

        async def refused(blob: bytes, said: str) -> None:
            before = await back.meta_value("catalogue_versions_lost"), await back.document("catalogue")
            with pytest.raises(RecoveryRefused) as caught:
                await recover_catalogue(back, blob)
            assert said in caught.value.zh, caught.value.zh
            assert (await back.meta_value("catalogue_versions_lost"), await back.document("catalogue")) == before

        genuine4 = held_below[v4.version]
        assert genuine4 is not None
        altered = bytearray(genuine4)
        altered[-3] ^= 1
        await refused(bytes(altered), "不是本县签发的目录")
        await refused(sign_catalogue(v4, net.layout.keys[TOWN]), "不是本县签发的目录")
        never = sign_catalogue(msgspec.structs.replace(v4, version=v1 + 1), net.layout.keys[COUNTY])
        await refused(never, "不在恢复后无法核对的版本之内")
        assert await back.document_version("catalogue", v4.version) is None

        # v5, above the newest the copy holds: the newest again; above it may have been published too
        five = held_below[v5.version]
        assert five is not None
        done = await recover_catalogue(back, five)
        assert (done.version, done.lost_after) == (v5.version, f"{v4.version}-{v4.version},{v5.version + 1}-")
        done = await recover_catalogue(back, genuine4)
        assert done.lost_after == f"{v5.version + 1}-"
        assert await back.document_version("catalogue", v4.version) == genuine4  # kept as signed
        await refused(genuine4, "无需找回")
    finally:
        await back.db.dispose()

    back, county = await county_now()
    try:
        assert county.catalogue_version == v5.version
        assert await county.binding_status(entry, v4.version, VILLAGE) is None  # checked again, and it binds
        await county.publish(msgspec.structs.replace(v5, version=v5.version + 1))
        assert await back.meta_value("catalogue_versions_lost") == ""  # the next version kept: nothing lost
    finally:
        await back.db.dispose()
