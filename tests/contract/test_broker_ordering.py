"""Ordered delivery (`kafka.eventing.knative.dev/delivery.order: ordered`), on every backend.

Events that share a partition key reach the subscriber in the order they were sent, even when the
subscriber fails some attempts and they are retried: a key's next event waits for the one before.
"""

from __future__ import annotations

from typing import Any

from tests.support import manifests
from tests.support.manifests import BROKER
from tests.support.receiver import Answer, Receiver
from tests.support.stack import Stack, event, eventually


def trigger(url: str, order: str) -> dict[str, Any]:
    return manifests.trigger(
        "ordered",
        url,
        annotations={manifests.ORDER_ANNOTATION: order},
        delivery={"retry": 5, "backoffPolicy": "linear", "backoffDelay": "PT0.02S"},
    )


async def test_same_key_arrives_in_send_order_through_retries(stack: Stack) -> None:
    # Every third attempt fails with 503, so about a third of the events are retried.
    flaky = Receiver(lambda i, e: Answer(503 if i % 3 == 1 else 202))
    await flaky.start()
    try:
        await stack.apply(BROKER, trigger(flaky.url, "ordered"))
        for i in range(45):
            assert await stack.send("/ns1/default", event(i, partitionkey=f"k{i % 3}")) == 202
        # Wait for all 45 successes (every third attempt fails), then make sure nothing more comes.
        await eventually(lambda: sum(1 for i in range(len(flaky.received)) if i % 3 != 1) >= 45, timeout=60)
        await flaky.settle(0.5)
        accepted = [r for i, r in enumerate(flaky.received) if i % 3 != 1]
        assert {r.event.id for r in accepted} == {str(i) for i in range(45)}
        assert len(flaky.received) > 45  # some attempts were retries
        for key in ("k0", "k1", "k2"):
            lane = [int(r.event.id) for r in accepted if r.event.attributes.get("partitionkey") == key]
            assert lane == sorted(lane), f"{key} delivered out of order: {lane}"
    finally:
        await flaky.stop()
