"""Kill any process at any moment: nothing accepted with 202 is lost (Kafka and NATS).

control, ingress and dispatcher run as separate processes on a real backend; events go to a real
loopback subscriber. Duplicates are allowed (at least once) and printed, never asserted away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import manifests
from tests.support.launchers import backend_params
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


@pytest.fixture(params=backend_params("kafka", "nats"))
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    backend: str = request.param
    connection = request.getfixturevalue("kafka_bootstrap" if backend == "kafka" else "nats_url")
    c = Cluster(tmp_path, backend, str(connection))
    c.start()
    yield c
    c.stop()


class Producer:
    """Sends numbered events with bounded concurrency; records which got 202 and which failed how."""

    def __init__(self, url: str, total: int, concurrency: int = 32) -> None:
        self.url, self.total, self.concurrency = url, total, concurrency
        self.accepted: set[str] = set()
        self.refused: dict[str, str] = {}
        self.progress = asyncio.Event()
        self.milestone = total

    async def send(self, session: aiohttp.ClientSession, i: int) -> str:
        """POST event e<i>; the status, or the name of the error when no answer came."""
        headers = {
            "ce-specversion": "1.0",
            "ce-id": f"e{i}",
            "ce-source": "/crash",
            "ce-type": "crash.test",
            "Content-Type": "application/json",
        }
        try:
            async with session.post(self.url, data=b'{"n": %d}' % i, headers=headers) as r:
                await r.read()
                return str(r.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__

    async def run(self) -> None:
        queue = iter(range(self.total))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def worker() -> None:
                for i in queue:
                    outcome = await self.send(session, i)
                    if outcome == "202":
                        self.accepted.add(f"e{i}")
                    else:
                        self.refused[f"e{i}"] = outcome
                        await asyncio.sleep(0.05)
                    if len(self.accepted) + len(self.refused) >= self.milestone:
                        self.progress.set()

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    async def retry_refused(self) -> dict[str, str]:
        """Send every refused event once more, as a producer that saw no 202 does; the outcomes by id."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            return {event_id: await self.send(session, int(event_id[1:])) for event_id in sorted(self.refused)}


async def _all_delivered(receiver: Receiver, accepted: set[str], timeout: float = 180.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not accepted <= set(receiver.ids):
        if asyncio.get_running_loop().time() > deadline:
            missing = accepted - set(receiver.ids)
            raise AssertionError(f"{len(missing)} accepted events never delivered, e.g. {sorted(missing)[:5]}")
        await asyncio.sleep(0.2)


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
    sending = asyncio.create_task(producer.run())
    await asyncio.wait_for(producer.progress.wait(), 120)
    await asyncio.to_thread(cluster.dispatcher.kill)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(cluster.dispatcher.start)
    await asyncio.to_thread(cluster.dispatcher.wait_ready)
    await sending
    assert producer.refused == {}
    await _all_delivered(receiver, producer.accepted)
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
    await _all_delivered(receiver, producer.accepted | set(producer.refused))
    _report("ingress killed", cluster, producer, receiver)
