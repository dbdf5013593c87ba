"""Kinds of errands through real node processes on loopback (county, one township, one village).

Four errands run side by side, each step taken through a node's own JSON API the moment the
errand reaches that node by the nodes' own sync: a 即办件, a 上报件 on which the county
department asks for more materials, a 容缺 provisional acceptance, and a 不予受理 notice.
At the end every node on the path holds the same digest and the expected final stage, the
village holds the county's catalogue, and anyone can look the errand up by its receipt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sanji.client import NodeApiError, NodeClient
from sanji.demo.cluster import Cluster

pytestmark = pytest.mark.processes

C, TOWN, VILLAGE = "C", "T01", "T01V01"
PATH = (C, TOWN, VILLAGE)
STAFF = {C: "县民政局 审批员 赵敏", TOWN: "综合窗口 A岗 王芳", VILLAGE: "代办员 李建国"}
WAIT = 30.0
PHONE, PHONE_TAIL = "13907301234", "1234"  # the public lookup asks for the phone's last four digits


class County:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.clients = {n: NodeClient(p.url) for n, p in cluster.nodes.items()}
        self.http = {n: httpx.AsyncClient(base_url=p.url, timeout=10.0) for n, p in cluster.nodes.items()}

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
        for http in self.http.values():
            await http.aclose()

    async def act(self, node: str, errand: str, kind: str, **fields: Any) -> dict[str, Any]:
        return await self.clients[node].act(errand, kind=kind, actor=STAFF[node], **fields)

    async def refused(self, node: str, errand: str, kind: str, fragment: str, **fields: Any) -> None:
        with pytest.raises(NodeApiError) as info:
            await self.act(node, errand, kind, **fields)
        assert info.value.status == 409, info.value.body
        assert fragment in info.value.body["message"], info.value.body

    async def wait(self, node: str, errand: str, ready: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Poll ``node`` until its copy of the errand satisfies ``ready`` (it travels by the nodes' own sync)."""
        deadline = time.monotonic() + WAIT
        seen: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            try:
                seen = await self.clients[node].errand(errand)
            except NodeApiError as exc:
                if exc.status != 404:
                    raise
            if seen is not None and ready(seen):
                return seen
            await asyncio.sleep(0.1)
        raise AssertionError(f"{errand} at {node}: never {what}; last seen {seen and seen['stage']}")

    async def arrives(self, node: str, errand: str) -> None:
        """Wait until the errand is handed to ``node``, then acknowledge it."""
        await self.wait(node, errand, lambda e: e["pending_to"] == node, f"handed to {node}")
        await self.act(node, errand, "receive")

    async def agree(self, errand: str, stage: str, outcome: str) -> dict[str, Any]:
        """Every node on the path converges on the same digest, stage and outcome."""
        deadline = time.monotonic() + WAIT
        views: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            views = {}
            for node in PATH:
                try:
                    views[node] = await self.clients[node].errand(errand)
                except NodeApiError as exc:
                    if exc.status != 404:
                        raise
            done = len(views) == len(PATH) and len({v["digest"] for v in views.values()}) == 1
            if done and all((v["stage"], v["outcome"]) == (stage, outcome) for v in views.values()):
                return views[VILLAGE]
            await asyncio.sleep(0.1)
        raise AssertionError(
            f"{errand}: no agreement on {stage}/{outcome}: "
            + repr({n: (v["stage"], v["digest"][:8]) for n, v in views.items()})
        )

    async def register(self, matter: str, name: str) -> tuple[str, str]:
        result = await self.clients[VILLAGE].register(
            matter=matter,
            applicant_name=name,
            applicant_phone=PHONE,
            materials=["申请书", "身份证复印件", "户口簿复印件"],
            actor=STAFF[VILLAGE],
            role="代办员",
        )
        errand = result["errand"]
        detail = await self.clients[VILLAGE].errand(errand)
        await self.act(VILLAGE, errand, "submit")
        await self.arrives(TOWN, errand)
        return errand, detail["receipt"]

    async def deliver(self, errand: str, name: str, *, close: bool = True) -> None:
        await self.arrives(VILLAGE, errand)
        await self.act(VILLAGE, errand, "deliver", confirmed_by=name, signature=f"签名:{name}")
        if close:
            await self.act(VILLAGE, errand, "close", archive_no=f"DA-{errand[-6:]}")


@pytest.fixture
async def county(tmp_path: Path) -> AsyncIterator[County]:
    cluster = Cluster.prepare(
        tmp_path / "county", towns=1, villages_per_town=1, interval=0.3, max_backoff=1.0, open_demo=True
    )
    kit = County(cluster)
    try:
        await asyncio.to_thread(cluster.start)  # inside the try: a node slow to start is still stopped
        await asyncio.to_thread(cluster.wait_catalogues)
        yield kit
    finally:
        await kit.close()
        await asyncio.to_thread(cluster.stop)


async def immediate(county: County) -> str:
    """即办件: accepted and decided the same day at the township."""
    errand, receipt = await county.register("RS-001", "王秀英")
    await county.act(TOWN, errand, "accept", errand_kind="即办件", window="综合窗口")
    await county.act(TOWN, errand, "decide", outcome="approved", document="参保登记回执")
    await county.act(TOWN, errand, "send_result")
    await county.deliver(errand, "王秀英")
    view = await county.agree(errand, "closed", "approved")
    assert view["errand_kind"] == "即办件" and view["responsible"] == TOWN
    return receipt


async def reported_with_county_supplement(county: County) -> str:
    """上报件: the township accepts and reports up; the county department asks for more materials once."""
    errand, receipt = await county.register("MZ-001", "刘建华")
    await county.act(TOWN, errand, "accept", errand_kind="上报件", window="社会救助窗口")
    await county.act(TOWN, errand, "escalate", department="县民政局")
    await county.arrives(C, errand)
    owed = ["家庭收入及财产状况声明", "患病或残疾证明"]
    await county.act(C, errand, "request_supplement", items=owed, text="一次性告知")
    view = await county.agree(errand, "supplement", "")
    assert view["holder"] == C and view["responsible"] == TOWN
    await county.refused(C, errand, "materials_received", "患病或残疾证明", items=owed[:1])
    await county.act(C, errand, "materials_received", items=owed)
    await county.refused(C, errand, "request_supplement", "一次性告知", items=["村委会证明"])
    await county.act(C, errand, "decide", outcome="approved", department="县民政局", document="民低〔2026〕8号")
    await county.act(C, errand, "send_result")
    await county.arrives(TOWN, errand)
    await county.act(TOWN, errand, "send_result")
    await county.deliver(errand, "刘建华")
    view = await county.agree(errand, "closed", "approved")
    assert (view["department"], view["responsible"], view["errand_kind"]) == ("县民政局", TOWN, "上报件")
    return receipt


async def provisional(county: County) -> str:
    """容缺受理: main materials complete, the secondary one promised; approval waits for it."""
    errand, receipt = await county.register("MZ-003", "陈桂兰")
    await county.act(
        TOWN, errand, "accept", errand_kind="承诺件", provisional=["困难情况证明材料"], promise_by="2030-01-10"
    )
    await county.refused(TOWN, errand, "decide", "容缺", outcome="approved")
    await county.act(VILLAGE, errand, "supply", items=["困难情况证明材料"], text="代办员已收齐")
    await county.act(TOWN, errand, "materials_received", items=["困难情况证明材料"])
    await county.act(TOWN, errand, "decide", outcome="approved", document="临时救助审批表")
    await county.act(TOWN, errand, "send_result")
    await county.deliver(errand, "陈桂兰")
    await county.agree(errand, "closed", "approved")
    return receipt


async def not_accepted(county: County) -> str:
    """不予受理: the written notice goes back down and is signed for."""
    errand, receipt = await county.register("MZ-003", "赵德明")
    await county.act(TOWN, errand, "not_accept", reasons="申请人户籍不在本乡镇,不属本机关受理范围")
    await county.act(TOWN, errand, "send_result")
    await county.deliver(errand, "赵德明", close=False)
    await county.agree(errand, "delivered", "not_accepted")
    return receipt


async def test_four_kinds_of_errand_through_real_processes(county: County) -> None:
    started = time.monotonic()
    receipts = await asyncio.gather(
        immediate(county), reported_with_county_supplement(county), provisional(county), not_accepted(county)
    )
    # every node on the path holds exactly the same four errands with the same digests
    digests = {n: await county.clients[n].digests() for n in PATH}
    assert len(digests[C]) == 4 and digests[C] == digests[TOWN] == digests[VILLAGE]

    # the village holds the county's catalogue, the same version
    county_catalogue = (await county.http[C].get("/api/catalogue")).json()
    response = await county.http[VILLAGE].get("/api/catalogue")
    assert response.status_code == 200, response.text
    village_catalogue = response.json()
    assert village_catalogue["version"] == county_catalogue["version"] >= 1
    assert village_catalogue["county"] == county_catalogue["county"]
    assert len(village_catalogue["matters"]) == len(county_catalogue["matters"])
    node = await county.clients[VILLAGE].node()
    assert node["catalogue_version"] == county_catalogue["version"]

    # anyone can look an errand up at the village by its receipt number: status, never personal data
    closed = ("已归档 closed", "准予 approved")
    expected = [
        ("RS-001", "王秀英", closed),
        ("MZ-001", "刘建华", closed),
        ("MZ-003", "陈桂兰", closed),
        ("MZ-003", "赵德明", ("已送达 delivered", "不予受理 not accepted")),
    ]
    names = {m["code"]: m["name"] for m in village_catalogue["matters"]}
    for receipt, (code, person, (stage, outcome)) in zip(receipts, expected, strict=True):
        # the receipt alone opens nothing: the applicant's phone's last four digits (or the query code) too
        assert (await county.http[VILLAGE].get(f"/api/lookup/{receipt}")).status_code == 400
        response = await county.http[VILLAGE].get(f"/api/lookup/{receipt}", params={"code": PHONE_TAIL})
        assert response.status_code == 200, response.text
        status = response.json()
        assert (status["receipt"], status["stage"], status["outcome"]) == (receipt, stage, outcome)
        assert status["matter"] == names[code]
        assert person not in response.text
    bad = await county.http[VILLAGE].get(
        f"/api/lookup/{receipts[0][:-1]}{'0' if receipts[0][-1] != '0' else '1'}", params={"code": PHONE_TAIL}
    )
    assert bad.status_code == 400  # the check character catches the typo
    assert time.monotonic() - started < 60
