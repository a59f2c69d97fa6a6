"""The multi-process topology on loopback: 1 control, 2 ingress and 2 dispatcher processes (`nerve
control|ingress|dispatcher`) on real Kafka and on real NATS, one Broker, one Trigger, a real subscriber.
The first replica of each follows the contract file, the second long-polls control's API for it.

5,000 events go to both ingress replicas in turn (a producer that sees no 202 from one tries the other,
as a load balancer would). Mid-run one dispatcher and then one ingress are killed with SIGKILL and not
restarted: the surviving replicas carry the rest. Every event answered 202 is delivered; duplicates
(at least once) are counted and printed, never asserted away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import manifests
from tests.support.launchers import backend_params, free_port
from tests.support.receiver import Receiver
from tests.support.services import Cluster, Service, api_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

NS, BROKER, TOTAL = "topology", "b", 5000


def nerve_command(service: Service) -> Service:
    service.args = [service.module, *service.args]
    service.module = "nerve"
    return service


class Topology:
    def __init__(self, workdir: Path, backend: str, connection: str) -> None:
        self.cluster = Cluster(workdir, backend, connection)
        c = self.cluster
        for service in (c.control, c.ingress, c.dispatcher):
            nerve_command(service)
        common = c.ingress.args[1:-2]  # all but "ingress" and its --port
        # The second replicas share no file with control: they long-poll its API for the contract
        # (--contract-from control), so the run also shows both feeds carry the same generations.
        at = common.index("--contract")
        from_control = [*common[:at], *common[at + 2:], "--contract-from", "control", "--control-url", c.api_url]
        port_i, port_d = free_port(), free_port()
        self.ingress2 = nerve_command(
            Service("ingress2", "ingress", [*from_control, "--port", str(port_i)], workdir, port_i))
        self.dispatcher2 = nerve_command(
            Service("dispatcher2", "dispatcher", [*from_control, "--port", str(port_d)], workdir, port_d))
        self.ingresses = [c.ingress, self.ingress2]
        self.dispatchers = [c.dispatcher, self.dispatcher2]

    def start(self) -> None:
        self.cluster.start()
        token = api_token(self.cluster.workdir / "state")  # control made it on its first start
        for service in (self.ingress2, self.dispatcher2):
            service.args.append(f"--control-token={token}")  # a token may start with "-"
            service.start()

    def apply(self, *manifests_: dict[str, Any]) -> None:
        self.cluster.apply(*manifests_)
        generation = self.cluster.generation()
        self.ingress2.wait_ready(generation)
        self.dispatcher2.wait_ready(generation)

    def stop(self) -> None:
        for service in (self.ingress2, self.dispatcher2):
            service.stop()
        self.cluster.stop()


@pytest.fixture(params=backend_params("kafka", "nats"))
def topology(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Topology]:
    backend: str = request.param
    connection = request.getfixturevalue("kafka_bootstrap" if backend == "kafka" else "nats_url")
    t = Topology(tmp_path, backend, str(connection))
    t.start()
    yield t
    t.stop()


async def test_two_ingress_and_two_dispatchers_lose_nothing_when_one_of_each_is_killed(
        topology: Topology, receiver: Receiver) -> None:
    docs: list[dict[str, Any]] = [manifests.broker(BROKER, NS)]
    if topology.cluster.backend == "kafka":
        # Knative's Kafka Broker with 4 partitions, so both members of the consumer group have work.
        config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kafka-broker-config", "namespace": NS},
                  "data": {"default.topic.partitions": "4", "default.topic.replication.factor": "1"}}
        docs = [config, manifests.broker(BROKER, NS, **{"eventing.knative.dev/broker.class": "Kafka"})]
        docs[1]["spec"] = {"config": {"apiVersion": "v1", "kind": "ConfigMap", "name": "kafka-broker-config",
                                      "namespace": NS}}
    await asyncio.to_thread(topology.apply, *docs, manifests.trigger(
        "sink", receiver.url, namespace=NS, broker=BROKER,
        delivery={"retry": 5, "backoffPolicy": "linear", "backoffDelay": "PT0.05S"}))
    urls = [f"http://127.0.0.1:{s.port}/{NS}/{BROKER}" for s in topology.ingresses]
    accepted: set[str] = set()
    refused: dict[str, str] = {}
    per_ingress = [0, 0]
    kills: list[str] = []

    async def post(session: aiohttp.ClientSession, url: str, n: int) -> str:
        headers = {"ce-specversion": "1.0", "ce-id": f"e{n}", "ce-source": "/topology", "ce-type": "t",
                   "Content-Type": "application/json"}
        try:
            async with session.post(url, data=b'{"n": %d}' % n, headers=headers) as r:
                await r.read()
                return str(r.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__

    async def kill(service: Service) -> None:
        kills.append(f"{service.name} after {len(accepted)}")
        await asyncio.to_thread(service.kill)

    async def produce() -> None:
        queue = iter(range(TOTAL))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def worker() -> None:
                for n in queue:
                    first = n % 2
                    outcome = await post(session, urls[first], n)
                    used = first
                    if outcome != "202":  # the other replica, as a load balancer retries
                        outcome = await post(session, urls[1 - first], n)
                        used = 1 - first
                    if outcome == "202":
                        accepted.add(f"e{n}")
                        per_ingress[used] += 1
                    else:
                        refused[f"e{n}"] = outcome
                    if len(accepted) == 1500 and len(kills) == 0:
                        await kill(topology.dispatchers[0])
                    elif len(accepted) == 3000 and len(kills) == 1:
                        await kill(topology.ingresses[0])

            await asyncio.gather(*(worker() for _ in range(32)))

    started = time.monotonic()
    await produce()
    sent = time.monotonic() - started
    assert len(kills) == 2, kills
    assert refused == {}, f"{len(refused)} events got no 202 from either ingress, e.g. {list(refused.items())[:5]}"
    deadline = time.monotonic() + 180
    while not accepted <= set(receiver.ids):
        missing = accepted - set(receiver.ids)
        assert time.monotonic() < deadline, \
            f"{len(missing)} accepted events never delivered, e.g. {sorted(missing)[:5]}"
        await asyncio.sleep(0.5)
    duplicates = len(receiver.ids) - len(set(receiver.ids))
    print(f"\n[{topology.cluster.backend}] topology 2 ingress + 2 dispatchers: accepted={len(accepted)} "
          f"(by ingress {per_ingress}) in {sent:.1f}s, all delivered after {time.monotonic() - started:.1f}s; "
          f"killed: {', '.join(kills)}; duplicates={duplicates}")
