"""kill -9 of the dispatcher mid-stream with 10 Triggers on one Broker: nothing lost for any Trigger.

On Kafka the Broker's topic is read once for the 10 Triggers, each keeping its own consumer group's
offsets; the restarted dispatcher starts from the smallest of them and skips, per Trigger, what that
Trigger had committed. NATS reads per Trigger (docs/performance.md). Duplicates are printed, not asserted.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.support import manifests
from tests.support.crash import Producer, all_delivered, kill_dispatcher_mid_run
from tests.support.receiver import Answer, Receiver
from tests.support.services import Cluster

# 3,000 events to each of 10 Triggers (30,000 deliveries) across a kill -9 and a restart: on a loaded
# 2-core machine that runs past pytest's default 120 s, while the bound that matters is all_delivered's
# own deadline (180 s per receiver after the restart), which says what never arrived.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

TRIGGERS = 10


async def test_kill_the_dispatcher_mid_run_with_ten_triggers(cluster: Cluster) -> None:
    receivers = [Receiver() for _ in range(TRIGGERS)]
    for receiver in receivers:
        await receiver.start()
    try:
        # Half filter on the type (exact, looked up in the index), half on a prefix of the source.
        triggers = [
            manifests.trigger(f"sink{n}", receiver.url, namespace="e2e", broker="fanout",
                              delivery={"retry": 5, "backoffPolicy": "linear", "backoffDelay": "PT0.05S"},
                              **({"filter": {"attributes": {"type": "crash.test"}}} if n % 2 == 0
                                 else {"filters": [{"prefix": {"source": "/cra"}}]}))
            for n, receiver in enumerate(receivers)
        ]
        await asyncio.to_thread(cluster.apply, manifests.broker("fanout", "e2e"), *triggers)
        producer = Producer(f"{cluster.ingress_url}/e2e/fanout", 3000)
        producer.milestone = 1200
        await kill_dispatcher_mid_run(cluster, producer)
        assert producer.refused == {}
        for receiver in receivers:
            await all_delivered(receiver, producer.accepted)
        duplicates = [len(r.ids) - len(set(r.ids)) for r in receivers]
        print(f"\n[{cluster.backend}] dispatcher killed, {TRIGGERS} Triggers: accepted={len(producer.accepted)} "
              f"delivered to each={[len(set(r.ids)) for r in receivers]} duplicates per Trigger={duplicates}")
    finally:
        for receiver in receivers:
            with contextlib.suppress(Exception):
                await receiver.stop()


async def test_stop_the_dispatcher_mid_run_while_a_slow_trigger_has_deliveries_in_flight(cluster: Cluster) -> None:
    """SIGTERM mid-stream, as `podman restart` or a rolling update does: each Trigger leaves the shared
    reader, the slow one waits for its deliveries in flight, and the reader reads on meanwhile for the
    other. What the slow one then commits must not cover those records (it once did: an event lost
    in the compose restart test)."""
    fast = Receiver()
    slow = Receiver(lambda _i, _e: Answer(delay_s=0.05))
    for receiver in (fast, slow):
        await receiver.start()
    try:
        await asyncio.to_thread(
            cluster.apply, manifests.broker("fanout", "e2e"),
            *(manifests.trigger(name, receiver.url, namespace="e2e", broker="fanout",
                                filter={"attributes": {"type": "crash.test"}})
              for name, receiver in (("fast", fast), ("slow", slow))))
        producer = Producer(f"{cluster.ingress_url}/e2e/fanout", 2000, concurrency=8)
        producer.milestone = 600
        await kill_dispatcher_mid_run(cluster, producer, graceful=True)
        assert producer.refused == {}
        for receiver in (fast, slow):
            await all_delivered(receiver, producer.accepted)
        print(f"\n[{cluster.backend}] dispatcher stopped: accepted={len(producer.accepted)} duplicates="
              f"{[len(r.ids) - len(set(r.ids)) for r in (fast, slow)]}")
    finally:
        for receiver in (fast, slow):
            with contextlib.suppress(Exception):
                await receiver.stop()
