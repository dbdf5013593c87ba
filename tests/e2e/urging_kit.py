"""A county of real node processes (C ── T01 ── T01V01) with one errand accepted at the township.

Shared by the urging tests: the e2e test drives 督办 and its answer through the nodes' JSON API and
screens; the browser test opens the township's home page in Chromium.
"""

from __future__ import annotations

from typing import Any

from sanji.demo.cluster import Cluster
from tests.e2e.process_kit import TOWN, VILLAGE, C, ProcessKit

__all__ = ["STAFF", "TOWN", "VILLAGE", "C", "Urged", "kinds"]

STAFF = {C: "监察督查 督查员 孙丽", TOWN: "综合窗口 A岗 王芳", VILLAGE: "代办员 李建国"}


class Urged(ProcessKit):
    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster, STAFF)

    async def refused(self, node: str, errand: str, kind: str, **fields: Any) -> str:
        """The step is refused (409) at ``node``; the refusal's stable code."""
        return str((await self.refusal(node, errand, kind, **fields))["error_code"])

    async def accepted_errand(self) -> str:
        """Registered at the village, submitted, received and accepted at the township; the county holds it."""
        result = await self.clients[VILLAGE].register(
            matter="MZ-003",
            applicant_name="陈桂兰",
            materials=["申请书", "身份证复印件", "户口簿复印件"],
            actor=STAFF[VILLAGE],
            role="代办员",
        )
        errand = str(result["errand"])
        await self.act(VILLAGE, errand, "submit")
        await self.arrives(TOWN, errand)
        await self.act(TOWN, errand, "accept", errand_kind="承诺件", window="社会救助窗口")
        await self.wait(C, errand, lambda e: e["stage"] == "accepted", "accepted (at the county)")
        return errand


def kinds(errand: dict[str, Any]) -> list[str]:
    return [h["kind"] for h in errand["history"] if h.get("status", "applied") == "applied"]
