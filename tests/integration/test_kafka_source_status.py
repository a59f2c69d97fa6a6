"""A KafkaSource's status says whether its cluster answers and has its topics; its contract entry is one
`sources[]` item that the sources service runs."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from core.contract import read
from tests.support.stack import Stack, running_stack


def source(name: str, bootstrap: list[str], topics: list[str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1beta1", "kind": "KafkaSource",
            "metadata": {"name": name, "namespace": "ns1"},
            "spec": {"bootstrapServers": bootstrap, "topics": topics, "sink": {"uri": "http://127.0.0.1:9/sink"},
                     **spec}}


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


async def test_a_source_whose_kafka_is_unreachable_is_not_ready_and_says_why(stack: Stack) -> None:
    started = time.monotonic()
    await stack.apply(source("nowhere", ["127.0.0.1:1"], ["orders"]))
    assert time.monotonic() - started < 10  # the probe is bounded: apply does not wait for a client timeout
    obj = await stack.get("kafkasource", "ns1", "nowhere")
    ready = _condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ClientCreationFailed")
    assert "127.0.0.1:1" in ready["message"]
    assert _condition(obj, "ConnectionEstablished")["status"] == "False"
    assert obj["status"]["sinkUri"] == "http://127.0.0.1:9/sink"
    # A source that never reached its cluster holds no consumer group there: it deletes at once.
    await stack.delete("kafkasource", "ns1", "nowhere")
    async with stack.session.get(f"{stack.api}/api/v1/resources/kafkasource/ns1/nowhere") as r:
        assert r.status == 404


async def test_each_kafka_source_is_one_entry_of_the_contracts_sources(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.apply(
            source("orders", ["127.0.0.1:1", "127.0.0.1:2"], ["a", "b"], initialOffset="earliest",
                   ordering="unordered", ceOverrides={"extensions": {"team": "payments"}},
                   delivery={"retry": 3}),
            source("plain", ["127.0.0.1:1"], ["c"]),
        )
        contract = read(tmp_path / "contract.json")
    assert not [r for r in contract.resources if r.kind == "KafkaSource"]
    by_name = {s.reference.name: s for s in contract.sources}
    assert set(by_name) == {"orders", "plain"}
    orders = by_name["orders"]
    assert orders.kind == "KafkaSource"
    assert orders.config == {"bootstrapServers": "127.0.0.1:1,127.0.0.1:2", "topics": ["a", "b"],
                             "initialOffset": "earliest", "source": "/apis/v1/namespaces/ns1/kafkasources/orders",
                             "ceOverrides": {"team": "payments"}}
    assert (orders.egress.destination, orders.egress.consumer_group, orders.egress.delivery_order,
            orders.egress.egress_config.retry) == (
        "http://127.0.0.1:9/sink", "knative-kafka-source-ns1-orders", "unordered", 3)
    plain = by_name["plain"]
    assert (plain.config["initialOffset"], plain.egress.delivery_order, plain.config["ceOverrides"]) == (
        "latest", "ordered", {})


@pytest.mark.kafka
async def test_a_source_on_a_live_cluster_is_ready_once_its_topics_exist(tmp_path: Path, kafka_bootstrap: str) -> None:
    topic = f"user-topic-{uuid.uuid4().hex[:8]}"
    async with running_stack(tmp_path) as stack:
        await stack.apply(source("early", [kafka_bootstrap], [topic]))
        obj = await stack.get("kafkasource", "ns1", "early")
        assert _condition(obj, "ConnectionEstablished")["status"] == "True"
        ready = _condition(obj, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "TopicsNotFound")
        assert topic in ready["message"] and kafka_bootstrap in ready["message"]
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()
        await stack.apply(source("early", [kafka_bootstrap], [topic], consumers=2))  # a change reconciles again
        assert _condition(await stack.get("kafkasource", "ns1", "early"), "Ready")["status"] == "True"
