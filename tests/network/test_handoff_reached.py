"""Whether a hand-off in transit has reached its receiver (``Store.handoffs``): queued while it waits at the node
that wrote it (in the outbox, or in a batch the receiver has not acknowledged), delivered once the receiver holds
it — up to the parent (报送, 上报) and down to a child (结果下送), real stores over LocalTransport."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.network.test_inprocess_sync import act, register

Net = Any  # tests/conftest.py Network
NetworkFactory = Callable[..., Awaitable[Net]]


async def handoff(net: Net, node: str, errand: str) -> str:
    store = net.stores[node]
    row = await store.errand(errand)
    assert row is not None
    return (await store.handoffs([row])).get(errand, "")


async def test_a_submission_is_queued_until_the_township_acknowledges_it(network: NetworkFactory) -> None:
    net = await network(1, 1)
    village, town = "T01V01", "T01"
    (first,) = await register(net, village, 1)
    assert await handoff(net, village, first) == "queued"  # unsealed, in the outbox

    await net.sync_node(village)
    assert await handoff(net, village, first) == "delivered"
    assert (await net.stores[town].errand(first) or {})["stage"] == "submitted"  # delivered, not yet received
    assert await handoff(net, town, first) == ""  # the township did not write the hand-off

    # sealed into a batch the township has not acknowledged: still queued; the earlier one stays delivered
    (second,) = await register(net, village, 1)
    assert await net.stores[village].seal_outbox() == 1
    assert await handoff(net, village, second) == "queued"
    assert await handoff(net, village, first) == "delivered"

    await net.sync_node(village)
    assert await handoff(net, village, second) == "delivered"

    await act(net, town, first, "receive")
    await net.sync_all()  # the township seals once its own parent has confirmed its streams
    assert (await net.stores[village].errand(first) or {})["stage"] == "received"
    assert await handoff(net, village, first) == ""  # received: no longer in transit


async def test_escalation_and_results_down(network: NetworkFactory) -> None:
    net = await network(1, 1)
    village, town, county = "T01V01", "T01", "C"
    (errand,) = await register(net, village, 1)
    await net.sync_all()
    await act(net, town, errand, "receive")
    await act(net, town, errand, "accept", errand_kind="上报件")
    await act(net, town, errand, "escalate", department="县民政局")
    assert await handoff(net, town, errand) == "queued"
    await net.sync_node(town)
    assert await handoff(net, town, errand) == "delivered"

    await act(net, county, errand, "receive")
    await act(net, county, errand, "decide", outcome="approved", department="县民政局", document="民政〔2024〕1号")
    await act(net, county, errand, "send_result")
    assert await handoff(net, county, errand) == "queued"
    await net.sync_node(town)  # the township pulls the result down ...
    assert (await net.stores[town].errand(errand) or {})["stage"] == "result_down"
    assert await handoff(net, county, errand) == "queued"  # ... and says it holds it only as its next session opens
    await net.sync_node(town)
    assert await handoff(net, county, errand) == "delivered"

    await act(net, town, errand, "receive")
    await act(net, town, errand, "send_result")
    assert await handoff(net, town, errand) == "queued"
    await net.sync_node(village)  # the village pulls it, and says so in its next session
    await net.sync_node(village)
    assert await handoff(net, town, errand) == "delivered"


async def test_a_receiver_far_behind_is_not_read_at_every_page(network: NetworkFactory, monkeypatch: Any) -> None:
    """A parent that has not acknowledged more than ``HANDOFF_SCAN`` batches (a link down for months): a page does
    not decode that backlog; what waits in the outbox is still queued, a hand-off already sealed is not guessed."""
    from sanji.store import views

    monkeypatch.setattr(views, "HANDOFF_SCAN", 2)
    net = await network(1, 1)
    village = "T01V01"
    (first,) = await register(net, village, 1)
    await net.sync_node(village)  # the township has confirmed the village's stream: it seals from now on
    assert await handoff(net, village, first) == "delivered"
    sealed = []
    for _ in range(3):  # three batches the township never acknowledged
        (errand,) = await register(net, village, 1)
        assert await net.stores[village].seal_outbox() == 1
        sealed.append(errand)
    (unsealed,) = await register(net, village, 1)
    assert [await handoff(net, village, e) for e in sealed] == ["", "", ""]
    assert await handoff(net, village, unsealed) == "queued"
    await net.sync_node(village)
    assert [await handoff(net, village, e) for e in [*sealed, unsealed]] == ["delivered"] * 4
