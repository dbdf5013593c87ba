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
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from sanji.demo.cluster import Cluster
from tests.e2e.process_kit import PATH, TOWN, VILLAGE, C, ProcessKit, prepared, running

# 容缺: the secondary materials are promised within the deadline the acceptance counts from today (rules 2).
PROMISED = (date.today() + timedelta(days=2)).isoformat()

pytestmark = pytest.mark.processes

STAFF = {C: "县民政局 审批员 赵敏", TOWN: "综合窗口 A岗 王芳", VILLAGE: "代办员 李建国"}
PHONE, PHONE_TAIL = "13907301234", "1234"  # the public lookup asks for the phone's last four digits


class County(ProcessKit):
    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster, STAFF)

    async def refused(self, node: str, errand: str, kind: str, fragment: str, **fields: Any) -> None:
        body = await self.refusal(node, errand, kind, **fields)
        assert fragment in body["message"], body

    async def agree(self, errand: str, stage: str, outcome: str) -> dict[str, Any]:
        """Every node on the path converges on the same digest, stage and outcome."""
        views: dict[str, dict[str, Any]] = {}

        async def agreed() -> dict[str, Any] | None:
            views.clear()
            for node in PATH:
                if (copy := await self.copy(node, errand)) is not None:
                    views[node] = copy
            same = len(views) == len(PATH) and len({v["digest"] for v in views.values()}) == 1
            return (
                views[VILLAGE]
                if same and all((v["stage"], v["outcome"]) == (stage, outcome) for v in views.values())
                else None
            )

        try:
            return await self.until(agreed, f"agreement on {stage}/{outcome}")
        except AssertionError:
            seen = {n: (v["stage"], v["digest"][:8]) for n, v in views.items()}
            raise AssertionError(f"{errand}: no agreement on {stage}/{outcome}: {seen!r}") from None

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
    cluster = prepared(tmp_path)
    async with running(cluster, County(cluster)) as kit:
        yield kit


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
        TOWN, errand, "accept", errand_kind="承诺件", provisional=["困难情况证明材料"], promise_by=PROMISED
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
