"""Kill any process at any moment: nothing accepted with 202 is lost (Kafka and NATS).

control, ingress and dispatcher run as separate processes on a real backend; events go to a real
loopback subscriber. Duplicates are allowed (at least once) and printed, never asserted away.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support import manifests
from tests.support.crash import Producer, all_delivered, kill_dispatcher_mid_run
from tests.support.receiver import Receiver
from tests.support.services import Cluster

pytestmark = pytest.mark.e2e


BROKER = manifests.broker("crash", "e2e")


def trigger(url: str) -> dict[str, Any]:
    return manifests.trigger(
        "sink",
        url,
        namespace="e2e",
        broker="crash",
        delivery={"retry": 5, "backoffPolicy": "linear", "backoffDelay": "PT0.05S"},
    )


def _report(name: str, cluster: Cluster, producer: Producer, receiver: Receiver) -> None:
    duplicates = len(receiver.ids) - len(set(receiver.ids))
    print(
        f"\n[{cluster.backend}] {name}: accepted={len(producer.accepted)} refused={len(producer.refused)} "
        f"delivered={len(set(receiver.ids))} duplicates={duplicates}"
    )


async def test_kill_the_dispatcher_mid_run(cluster: Cluster, receiver: Receiver) -> None:
    await asyncio.to_thread(cluster.apply, BROKER, trigger(receiver.url))
    producer = Producer(f"{cluster.ingress_url}/e2e/crash", 5000)
    producer.milestone = 2000
    await kill_dispatcher_mid_run(cluster, producer)
    assert producer.refused == {}
    await all_delivered(receiver, producer.accepted)
    _report("dispatcher killed", cluster, producer, receiver)


async def test_kill_the_ingress_under_load(cluster: Cluster, receiver: Receiver) -> None:
    await asyncio.to_thread(cluster.apply, BROKER, trigger(receiver.url))
    producer = Producer(f"{cluster.ingress_url}/e2e/crash", 4000)
    producer.milestone = 1500
    sending = asyncio.create_task(producer.run())
    await asyncio.wait_for(producer.progress.wait(), 120)
    await asyncio.to_thread(cluster.ingress.kill)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(cluster.ingress.start)
    await asyncio.to_thread(cluster.ingress.wait_ready)
    await sending
    # While the ingress was down the producer saw it: requests failed without an answer (or with a 503 that
    # asks for a retry), never with an answer that tells a producer to give up (4xx) or a 500.
    assert producer.refused, "the ingress was killed mid-run, yet every request got a 202"
    gave_up = {i: why for i, why in producer.refused.items() if why[0].isdigit() and why != "503"}
    assert gave_up == {}, gave_up
    # Once it is back, each refused event sent again is accepted, and then every event is delivered.
    assert await producer.retry_refused() == dict.fromkeys(sorted(producer.refused), "202")
    await all_delivered(receiver, producer.accepted | set(producer.refused))
    _report("ingress killed", cluster, producer, receiver)
