"""A refused errand's words come from the entry it was registered under, on every surface alike.

``protocol.errand.errand_category`` prefers the errand's bound entry (``ErrandState.matter_entry``) to the
catalogue held, which may since have dropped the matter or changed its category. Here a 临时救助 (给付) is
refused, then the catalogue held drops it or re-files it as a licence (许可): the API lookup, the /lookup
screen, the result SMS (both senders), the ledger, the errand page and the printed decision all still say
不予办理, never 不予许可.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from screens_kit import act, register

from sanji.duties import queue_result_messages
from sanji.notify.events import applicant_messages
from sanji.notify.settings import SmsSection

Client = TestClient[Litestar]
MATTER = "MZ-003"  # 临时救助, a benefit (给付) in the illustrative catalogue


def hold_catalogue_without(client: Client, change: str) -> None:
    """Make the node's held catalogue a newer one that dropped ``MATTER`` or re-filed it as a licence."""
    context = client.app.state.runtime.get_context()
    catalogue = context.catalogue
    entry = catalogue.get(MATTER)
    assert entry is not None and entry.category == "给付"
    if change == "dropped":
        matters = tuple(m for m in catalogue.matters if m.code != MATTER)
    else:
        matters = tuple(
            msgspec.structs.replace(m, category="许可") if m.code == MATTER else m for m in catalogue.matters
        )
    context.catalogue = msgspec.structs.replace(catalogue, version=catalogue.version + 1, matters=matters)
    assert context.matter(MATTER) is None if change == "dropped" else context.matter(MATTER).category == "许可"


@pytest.mark.parametrize("change", ["dropped", "licence"])
def test_every_surface_says_the_registered_entrys_words(town: Client, change: str) -> None:
    runtime = town.app.state.runtime
    town.blocking_portal.call(runtime.duties.stop)  # the SMS is queued below, once the catalogue has changed
    errand_id = register(town, in_person=True, applicant_phone="13812345678")
    act(town, errand_id, "accept")
    act(town, errand_id, "decide", outcome="refused", reasons="家庭收入超过本县临时救助标准")
    receipt = town.get(f"/api/errands/{errand_id}").json()["receipt"]
    hold_catalogue_without(town, change)
    store, context = runtime.get_store(), runtime.get_context()

    api = town.get(f"/api/lookup/{receipt}", params={"code": "5678"}).json()
    assert api["outcome"] == "不予办理 refused", api
    screen = town.get("/lookup", params={"receipt": receipt, "code": "5678"}).text
    assert "不予办理 refused" in screen and "不予许可" not in screen

    # The result SMS, from the gateway's list of owed messages and from the file sender's queue.
    owed = town.blocking_portal.call(applicant_messages, store, context, SmsSection())
    (result,) = [m for m in owed if m["event"] == "result" and m["errand"] == errand_id]
    assert "已办结：不予办理。" in result["text"], result
    assert town.blocking_portal.call(queue_result_messages, store, context) == 1
    queued: list[dict[str, Any]] = town.blocking_portal.call(store.unsent_notifications)
    (sms,) = [n for n in queued if n["errand"] == errand_id]
    assert "已办结:不予办理。" in sms["text"] and "不予许可" not in sms["text"], sms

    ledger = town.get("/office/ledger").text
    assert "不予办理" in ledger and "不予许可" not in ledger
    (row,) = [r for r in town.get("/api/office/ledger").json()["items"] if r["errand"] == errand_id]
    assert row["category"] == "给付" and row["outcome"] == "refused"

    page = town.get(f"/errands/{errand_id}").text
    assert "不予办理" in page.split("办理记录")[0]  # the stage line
    assert "结果：不予办理 refused" in page  # the history's decision line
    assert "不予许可决定书" not in page and "不予办理决定书" in page  # the document's link
    decision = town.get(f"/print/{errand_id}/decision").text
    assert "不予办理决定书" in decision and "不予许可决定书" not in decision


def test_the_registered_entry_comes_before_the_one_held() -> None:
    from protocol.errand import errand_category, outcome_words
    from sanji.catalogue import default_catalogue

    benefit = default_catalogue().get(MATTER)
    assert benefit is not None and benefit.category == "给付"
    licence = msgspec.structs.replace(benefit, category="许可")
    assert (
        errand_category(benefit, licence) == "给付" and outcome_words("refused", benefit, licence) == "不予办理 refused"
    )
    assert outcome_words("refused", licence, benefit) == "不予许可 refused"  # the bound entry decides, either way
    assert outcome_words("refused", None, benefit) == "不予办理 refused"  # bound to none: the entry held
    assert errand_category(None, None) == "" and outcome_words("refused", None, None) == "不予许可 refused"
    assert outcome_words("approved", benefit, None) == "准予 approved"
