"""Kill the dispatcher mid-Sequence: nothing answered 202 at the Sequence's address is lost (Kafka, NATS).

The Sequence names no channelTemplate, so its channels follow the backend control runs with
(KafkaChannel, NatsJetStreamChannel). Every hop is a Subscription of its own: its offset or ack is
taken only once the step answered and its reply was accepted by the next channel, so a SIGKILL at any
moment at most repeats a hop. The sink must see every accepted id (duplicates allowed, printed).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.support import functions
from tests.support.crash import Producer, all_delivered, kill_dispatcher_mid_run
from tests.support.receiver import Receiver
from tests.support.services import Cluster, api_token, http_json

pytestmark = pytest.mark.e2e


def sequence(steps: list[str], reply: str) -> dict[str, Any]:
    return {"apiVersion": "flows.knative.dev/v1", "kind": "Sequence", "metadata": {"name": "crash", "namespace": "e2e"},
            "spec": {"steps": [{"uri": url, "delivery": {"retry": 5, "backoffPolicy": "linear",
                                                         "backoffDelay": "PT0.05S"}} for url in steps],
                     "reply": {"uri": reply}}}


def ready_address(c: Cluster, timeout: float = 60.0) -> str:
    """The Sequence's address once it is Ready, after the data plane runs the contract that has it."""
    deadline = time.monotonic() + timeout
    token = api_token(c.workdir / "state")
    while True:
        _, seq = http_json(f"{c.api_url}/api/v1/resources/sequences/e2e/crash", token=token)
        status = (seq or {}).get("status") or {}
        if any(x.get("type") == "Ready" and x.get("status") == "True" for x in status.get("conditions", [])):
            generation = c.generation()
            c.ingress.wait_ready(generation)
            c.dispatcher.wait_ready(generation)
            return str(status["address"]["url"])
        if time.monotonic() > deadline:
            raise AssertionError(f"Sequence not Ready: {status}")
        time.sleep(0.2)


async def test_kill_the_dispatcher_mid_sequence(cluster: Cluster) -> None:
    steps = [Receiver(functions.appender(f"-{i}")) for i in range(2)]
    sink = Receiver()
    for r in (*steps, sink):
        await r.start()
    try:
        await asyncio.to_thread(cluster.apply, sequence([s.url for s in steps], sink.url))
        url = await asyncio.to_thread(ready_address, cluster)
        producer = Producer(url, 2000)
        producer.milestone = 800
        await kill_dispatcher_mid_run(cluster, producer)
        assert producer.refused == {}
        await all_delivered(sink, producer.accepted)
        # What reached the sink went through both steps, whatever was repeated on the way.
        assert {e.data for e in sink.events} == {b'{"n": %d, "message": "-0-1"}' % int(i[1:])
                                                 for i in producer.accepted}
        duplicates = len(sink.ids) - len(set(sink.ids))
        print(f"\n[{cluster.backend}] dispatcher killed mid-Sequence: accepted={len(producer.accepted)} "
              f"delivered={len(set(sink.ids))} duplicates={duplicates} "
              f"step deliveries={[len(s.events) for s in steps]}")
    finally:
        for r in (*steps, sink):
            await r.stop()
