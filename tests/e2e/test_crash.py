"""Kill any process at any moment: nothing accepted with 202 is lost (Kafka and NATS).

control, ingress and dispatcher run as separate processes on a real backend; events go to a real
loopback subscriber. Duplicates are allowed (at least once) and printed, never asserted away.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.support import manifests
from tests.support.crash import Producer, all_delivered, kill_dispatcher_mid_run
from tests.support.receiver import Receiver
from tests.support.services import Cluster, api_token, http_json

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


def _subscribed_channel(name: str, url: str) -> list[dict[str, Any]]:
    channel = {"apiVersion": "messaging.knative.dev/v1", "kind": "Channel",
               "metadata": {"name": name, "namespace": "e2e"}}
    subscription = {"apiVersion": "messaging.knative.dev/v1", "kind": "Subscription",
                    "metadata": {"name": f"{name}-sink", "namespace": "e2e"},
                    "spec": {"channel": {"apiVersion": "messaging.knative.dev/v1", "kind": "Channel", "name": name},
                             "subscriber": {"uri": url}}}
    return [channel, subscription]


@pytest.mark.parametrize("via", ["broker", "channel"])
async def test_events_accepted_while_no_dispatcher_runs_are_delivered_once_it_does(
        cluster: Cluster, receiver: Receiver, via: str) -> None:
    """A Trigger or Subscription made while the dispatcher is down (or slower than the ingress to see the
    contract): its consumer group does not exist yet, yet every event answered 202 meanwhile must arrive."""
    await asyncio.to_thread(cluster.dispatcher.kill)
    name = f"late-{uuid.uuid4().hex[:6]}"
    if via == "broker":
        manifests_ = [manifests.broker(name, "e2e"), manifests.trigger("sink", receiver.url, namespace="e2e",
                                                                       broker=name)]
        path = f"/e2e/{name}"
    else:
        manifests_ = _subscribed_channel(name, receiver.url)
        path = f"/channels/e2e/{name}"
    status, body = await asyncio.to_thread(http_json, f"{cluster.api_url}/api/v1/apply", {"items": manifests_},
                                           token=api_token(cluster.workdir / "state"))
    assert status == 200, body
    await asyncio.to_thread(cluster.ingress.wait_ready, cluster.generation())
    producer = Producer(f"{cluster.ingress_url}{path}", 200)
    await producer.run()
    assert producer.refused == {} and len(producer.accepted) == 200
    await asyncio.to_thread(cluster.dispatcher.start)
    await asyncio.to_thread(cluster.dispatcher.wait_ready)
    await all_delivered(receiver, producer.accepted, timeout=60)
