"""`python -m sources` as its own process: it follows the contract file control writes and runs the
KafkaSources in it, as compose and Kubernetes will run it; its /readyz names a source it cannot start."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.receiver import Receiver
from tests.support.services import Service, api_token, free_port, http_json

pytestmark = pytest.mark.kafka


class _Plane:
    def __init__(self, control: Service, sources: Service, api: str, contract: Path) -> None:
        self.control, self.sources, self.api, self.contract = control, sources, api, contract

    def apply(self, *manifests: dict[str, Any]) -> int:
        status, body = http_json(f"{self.api}/api/v1/apply", {"items": list(manifests)},
                                 token=api_token(self.contract.parent))
        assert status == 200, body
        generation = int(json.loads(self.contract.read_text())["generation"])
        return generation


@pytest.fixture
def plane(tmp_path: Path, kafka_bootstrap: str) -> Iterator[_Plane]:
    state = tmp_path / "state"
    api, port = free_port(), free_port()
    control = Service("control", "control", [
        "--host", "127.0.0.1", "--port", str(api), "--state-dir", str(state), "--backend", "kafka",
        "--kafka-bootstrap", kafka_bootstrap], tmp_path, api)
    sources = Service("sources", "sources", [
        "--host", "127.0.0.1", "--port", str(port), "--contract", str(state / "contract.json"),
        "--kafka-bootstrap", kafka_bootstrap], tmp_path, port)
    control.start()
    sources.start()
    try:
        control.wait_ready()
        yield _Plane(control, sources, f"http://127.0.0.1:{api}", state / "contract.json")
    finally:
        sources.stop()
        control.stop()


def _source(name: str, bootstrap: str, topic: str, sink: str) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1", "kind": "KafkaSource",
            "metadata": {"name": name, "namespace": "ns1"},
            "spec": {"bootstrapServers": [bootstrap], "topics": [topic], "sink": {"uri": sink},
                     "initialOffset": "earliest"}}


async def test_the_sources_process_delivers_a_kafkasource_and_names_one_it_cannot_start(
    plane: _Plane, kafka_bootstrap: str, receiver: Receiver
) -> None:
    topic = f"user-topic-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=b"hello", key=b"k1")
    finally:
        await producer.stop()

    generation = await asyncio.to_thread(plane.apply, _source("orders", kafka_bootstrap, topic, receiver.url))
    await asyncio.to_thread(plane.sources.wait_ready, generation)
    [delivered] = await receiver.wait_for(1, timeout=60)
    assert delivered.type == "dev.knative.kafka.event"
    assert delivered.attributes["source"] == f"/apis/v1/namespaces/ns1/kafkasources/orders#{topic}"
    assert delivered.data == b"hello"

    await asyncio.to_thread(plane.apply, _source("nowhere", "127.0.0.1:1", topic, receiver.url))
    readyz = f"http://127.0.0.1:{plane.sources.port}/readyz"
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        status, body = await asyncio.to_thread(http_json, readyz)
        if status == 503 and "KafkaSource/ns1/nowhere" in (body.get("down") or {}):
            break
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.2)
    assert "127.0.0.1:1" in body["down"]["KafkaSource/ns1/nowhere"]
    assert "KafkaSource/ns1/orders" not in body["down"]
