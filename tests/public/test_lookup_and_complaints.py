"""The public face without a login: lookups need a second factor and are rate-limited; complaints are filed.

A village node (open demo mode, so the errand can be registered through the API) holding the
catalogue; every lookup and complaint goes through HTTP routes a villager's phone would use.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from protocol.lookup import lookup_code, second_factor_matches
from protocol.receipts import make_receipt
from sanji.config import NodeSettings
from sanji.web.public import LookupRefused, PublicLimits, find_errand
from sanji.web.throttle import Throttle
from tests.screens.screens_kit import make_app, prepared_node, served

APPLICANT = {
    "matter": "MZ-001",
    "applicant_name": "张秀英",
    "applicant_id_number": "430621195007307791",
    "applicant_phone": "13812345678",
    "materials": ["身份证复印件"],
    "actor": "李建国",
}
NO_MATCH = "回执号与查询码（或手机号后四位）不符"


@pytest.fixture
def village(tmp_path: Path) -> Iterator[tuple[TestClient[Litestar], str]]:
    _, settings = prepared_node(tmp_path, "T01V01")
    with TestClient(make_app(settings)) as client:
        yield client, settings.node.public_url


def registered(client: httpx.Client) -> tuple[str, str]:
    r = client.post("/api/errands", json=APPLICANT)
    assert r.status_code == 201, r.text
    errand = r.json()["errand"]
    receipt = client.get(f"/api/errands/{errand}").json()["receipt"]
    return errand, receipt


@dataclass(frozen=True)
class ServedVillage:
    url: str  # the node served over real HTTP, on loopback
    settings: NodeSettings
    errand: str  # one errand registered there, and its receipt number
    receipt: str


@pytest.fixture
def served_village(tmp_path: Path) -> Iterator[ServedVillage]:
    """A village node served by uvicorn, holding one registered errand: requests sent at once really overlap
    there, as a burst from phones would (the bursts' tests)."""
    _, settings = prepared_node(tmp_path, "T01V01")
    with served(make_app(settings), name="village") as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            errand, receipt = registered(client)
        yield ServedVillage(url=url, settings=settings, errand=errand, receipt=receipt)


def test_a_lookup_needs_the_query_code_or_the_phones_last_four_digits(
    village: tuple[TestClient[Litestar], str],
) -> None:
    client, _ = village
    errand, receipt = registered(client)
    code = lookup_code(errand)
    assert client.get(f"/api/lookup/{receipt}").status_code == 400  # the receipt alone opens nothing
    by_code = client.get(f"/api/lookup/{receipt}", params={"code": code.lower()})
    assert by_code.status_code == 200, by_code.text
    assert by_code.json()["matter"] and by_code.json()["stage"].startswith("已登记")
    assert "张秀英" not in by_code.text and "5678" not in by_code.text  # no personal data
    assert client.get(f"/api/lookup/{receipt}", params={"code": "5678"}).status_code == 200
    page = client.get("/lookup", params={"receipt": receipt, "code": "5678"})
    assert page.status_code == 200 and "已登记" in page.text


def test_a_wrong_factor_and_an_unknown_receipt_get_the_same_answer(village: tuple[TestClient[Litestar], str]) -> None:
    client, _ = village
    errand, receipt = registered(client)
    wrong = client.get(f"/api/lookup/{receipt}", params={"code": "1234"})
    other = make_receipt("T01V01", date(2026, 1, 5), 77)  # well-formed, never issued
    unknown = client.get(f"/api/lookup/{other}", params={"code": "5678"})
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json() == unknown.json() and NO_MATCH in wrong.json()["message"]
    page = client.get("/lookup", params={"receipt": receipt, "code": "ABCDEFGH"})
    assert page.status_code == 404 and NO_MATCH in page.text
    assert 'aria-describedby="code-error"' in page.text  # the message is tied to the field it is about
    assert not second_factor_matches("", errand_id=errand, phone="13812345678")
    assert not second_factor_matches("345678", errand_id=errand, phone="13812345678")  # four digits, not six


def test_lookups_from_one_address_are_rate_limited(village: tuple[TestClient[Litestar], str]) -> None:
    client, _ = village
    errand, receipt = registered(client)
    for _ in range(5):
        assert client.get(f"/api/lookup/{receipt}", params={"code": "0000"}).status_code == 404
    refused = client.get(f"/api/lookup/{receipt}", params={"code": lookup_code(errand)})  # even the right code
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert refused.json()["retryable"] is True and refused.json()["message_zh"].startswith("查询过于频繁")
    page = client.get("/lookup", params={"receipt": receipt, "code": lookup_code(errand)})
    assert page.status_code == 429 and "查询过于频繁" in page.text


def test_wrong_factors_sent_all_at_once_are_limited_as_if_sent_one_by_one(served_village: ServedVillage) -> None:
    """A lookup is counted as a miss while it is checked: 25 guesses at a receipt's four digits sent together
    over real HTTP get five answers (as five in a row would), the rest 429 before the store is read."""
    village = served_village

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=village.url, timeout=30) as guesser:
            answers = await asyncio.gather(
                *(guesser.get(f"/api/lookup/{village.receipt}", params={"code": f"{n:04d}"}) for n in range(25))
            )
        return [a.status_code for a in answers]

    statuses = asyncio.run(burst())
    # Exactly the five misses an address may make (``PublicLimits.failures``), each a real answer: not fewer
    # (the throttle would be refusing what it should let through), not more (the burst would outrun it).
    assert (statuses.count(404), statuses.count(429)) == (5, 20), statuses


def test_misses_at_one_receipt_from_many_addresses_at_once_are_limited_per_receipt() -> None:
    class SlowStore:
        """Answers as a store does, a turn of the event loop later (where the guesses overlapped)."""

        async def errands(self, **_: object) -> tuple[list[dict[str, object]], int]:
            await asyncio.sleep(0.01)
            return [{"id": "T01V01-0123456789abcdef"}], 1

        async def applicant_phone(self, _: str) -> str:
            await asyncio.sleep(0.01)
            return "13812345678"

    receipt = make_receipt("T01V01", date(2026, 1, 5), 7)
    limits = PublicLimits.default()

    async def guess(n: int) -> str:
        try:
            await find_errand(SlowStore(), limits, f"10.0.{n // 250}.{n % 250}", receipt, f"{n:04d}")  # type: ignore[arg-type]
        except LookupRefused as refused:
            return refused.code
        return "found"

    async def burst() -> list[str]:
        return await asyncio.gather(*(guess(n) for n in range(1000)))

    codes = asyncio.run(burst())
    # Exactly the ten misses one receipt may take (``PublicLimits.receipt_failures``), from whatever addresses.
    assert (codes.count("no_match"), codes.count("too_many_lookups")) == (10, 990), codes.count("no_match")


def test_a_lookup_the_store_fails_to_answer_charges_no_miss() -> None:
    class BusyStore:
        """A store that fails as SQLite does when another writer holds it past the busy timeout."""

        async def errands(self, **_: object) -> tuple[list[dict[str, object]], int]:
            raise sqlite3.OperationalError("database is locked")

    receipt = make_receipt("T01V01", date(2026, 1, 5), 7)
    limits = PublicLimits.default()
    for _ in range(20):  # four times what five misses would allow
        with pytest.raises(sqlite3.OperationalError):
            asyncio.run(find_errand(BusyStore(), limits, "10.0.0.1", receipt, "1234"))  # type: ignore[arg-type]
    assert limits.failures.retry_after("10.0.0.1") == 0
    assert limits.receipt_failures.retry_after(receipt.replace("-", "")) == 0
    assert limits.receipt_failures.retry_after(receipt) == 0


def test_the_throttle_forgets_after_its_window_and_bounds_its_memory() -> None:
    now = [0.0]
    throttle = Throttle(2, 60.0, max_keys=3, clock=lambda: now[0])
    throttle.hit("a")
    throttle.hit("a")
    assert throttle.retry_after("a") == 60.0
    now[0] = 59.0
    assert throttle.retry_after("a") == 1.0
    now[0] = 60.0
    assert throttle.retry_after("a") == 0.0
    for key in ("b", "c", "d", "e"):
        throttle.hit(key)
    assert len(throttle._hits) == 3


def test_the_receipt_carries_the_query_code_and_a_qr_to_the_public_url(
    village: tuple[TestClient[Litestar], str],
) -> None:
    client, public_url = village
    errand, receipt = registered(client)
    page = client.get(f"/print/{errand}/receipt")
    assert page.status_code == 200
    assert lookup_code(errand) in page.text
    url = re.search(r"(http://[A-Za-z0-9.:/_-]+/lookup\?[A-Za-z0-9=&;%_-]+)", page.text)
    assert url is not None
    target = urlparse(url.group(1).replace("&amp;", "&"))
    assert f"{target.scheme}://{target.netloc}" == public_url.rstrip("/")
    assert "testserver" not in url.group(1)  # never the desk's own address
    assert parse_qs(target.query) == {"receipt": [receipt], "code": [lookup_code(errand)]}
    assert "<svg" in page.text


def _csrf(html: str) -> str:
    found = re.search(r'name="_public_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_a_public_complaint_is_filed_and_keeps_what_was_typed_when_refused(
    village: tuple[TestClient[Litestar], str],
) -> None:
    client, _ = village
    errand, receipt = registered(client)
    form = client.get("/complain")
    assert form.status_code == 200
    bad = client.post(
        "/complain",
        data={"_public_token": _csrf(form.text), "receipt": receipt, "code": "", "text": "窗口推诿", "name": "王五"},
    )
    assert bad.status_code == 400 and 'aria-describedby="code-error"' in bad.text
    assert "窗口推诿" in bad.text and 'value="王五"' in bad.text
    nul = client.post(  # a character no store keeps: said beside the field, not the rule's JSON refusal
        "/complain",
        data={"_public_token": _csrf(bad.text), "receipt": receipt, "code": "5678", "text": "bad\x00text"},
    )
    assert nul.status_code == 400 and nul.headers["content-type"].startswith("text/html")
    assert "无法保存的字符" in nul.text and 'aria-describedby="text-error"' in nul.text
    no_token = client.post("/complain", data={"receipt": receipt, "code": "5678", "text": "x"})
    assert no_token.status_code == 403
    good = client.post(
        "/complain",
        data={
            "_public_token": _csrf(no_token.text),  # each page sent carries a fresh token
            "receipt": receipt,
            "code": "5678",
            "kind": "投诉",
            "against": "李建国",
            "text": "代办员收取了20元",
            "name": "王五",
            "phone": "13900001111",
        },
    )
    assert good.status_code == 200, good.text
    assert "受理编号" in good.text and "只有县监察室能打开" in good.text
    # In the open demo mode anyone sees the complaint; its complainant is sealed to the county, not this village.
    report = client.get("/api/supervision").json()
    mine = [c for c in report["complaints"] if c["errand"] == errand]
    assert len(mine) == 1 and mine[0]["text"] == "【投诉】代办员收取了20元" and mine[0]["channel"] == "public"
    assert mine[0]["complainant"] == {"status": "sealed"}
    assert "13900001111" not in client.get(f"/api/errands/{errand}").text
    # the supervision screen names the node it was filed at, the id small beside the name (not the id alone)
    row = re.search(r"<td data-label=\"节点 Node\">(.*?)</td>", client.get("/supervision").text)
    assert row is not None and row.group(1) == '东村代办点 <span class="muted">T01V01</span>', row


def test_the_public_guide_lists_this_centres_matters_with_limits_and_fees(
    village: tuple[TestClient[Litestar], str],
) -> None:
    client, _ = village
    page = client.get("/public")
    assert page.status_code == 200
    assert "办事指南" in page.text and "监督电话" in page.text and "/print/guide/" in page.text
    everything = client.get("/public", params={"levels": "all"})
    assert everything.text.count("/print/guide/") >= page.text.count("/print/guide/")
    found = client.get("/public", params={"q": "低保", "levels": "all"})
    assert "低保" in found.text


def test_complaints_sent_all_at_once_are_limited_as_if_sent_one_by_one(served_village: ServedVillage) -> None:
    """Five complaints an hour from one address, however they are sent: 20 posted together over real HTTP file
    exactly five annotations on the errand (each one travels up to the county), the rest 429."""
    village = served_village
    with httpx.Client(base_url=village.url, timeout=30) as client:
        form = client.get("/complain")
        token, cookies = _csrf(form.text), dict(form.cookies)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=village.url, timeout=60, cookies=cookies) as villager:
            data = {"_public_token": token, "receipt": village.receipt, "code": "5678", "text": "窗口推诿"}
            answers = await asyncio.gather(*(villager.post("/complain", data=data) for _ in range(20)))
        return [a.status_code for a in answers]

    statuses = asyncio.run(burst())
    settings = village.settings
    with sqlite3.connect(settings.path(settings.node.data_dir) / "node.db") as db:
        query = "SELECT count(*) FROM actions WHERE errand = ? AND kind = 'complain'"
        (filed,) = db.execute(query, (village.errand,)).fetchone()
    # Exactly the five an address may file an hour (``PublicLimits.complaints``), each filed once: a burst
    # answered 429 throughout would file none.
    assert (statuses.count(200), filed, statuses.count(429)) == (5, 5, 15), statuses
