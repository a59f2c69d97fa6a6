"""Broker status follows its backend: not Ready with a reason while Kafka is away, Ready again by
itself when it returns; a NatsJetStreamBroker's ConfigMap shapes its stream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.support.launchers import kafka_launcher
from tests.support.stack import running_stack


def kafka_broker(bootstrap: str) -> str:
    return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: kafka-broker-config, namespace: knative-eventing}}
data: {{bootstrap.servers: "{bootstrap}", default.topic.partitions: "3"}}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: k
  namespace: ns1
  annotations: {{eventing.knative.dev/broker.class: Kafka}}
spec:
  config: {{apiVersion: v1, kind: ConfigMap, name: kafka-broker-config, namespace: knative-eventing}}
"""


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


@pytest.mark.kafka
async def test_a_kafka_broker_is_not_ready_while_kafka_is_away_and_recovers(tmp_path: Path) -> None:
    launcher = kafka_launcher()
    kafka = await asyncio.to_thread(launcher.start, tmp_path / "kafka")
    await asyncio.to_thread(kafka.stop)
    try:
        async with running_stack(tmp_path / "nerve", resync_seconds=1.0) as stack:
            await stack.apply(kafka_broker(kafka.bootstrap))
            broker = await stack.get("broker", "ns1", "k")
            assert _condition(broker, "Ready")["status"] == "False"
            channel = _condition(broker, "TriggerChannelReady")
            assert channel["reason"] == "TopicNotReady"
            assert kafka.bootstrap in channel["message"]
            kafka = await asyncio.to_thread(launcher.start, tmp_path / "kafka", kafka.port)
            for _ in range(60):
                broker = await stack.get("broker", "ns1", "k")
                if _condition(broker, "Ready")["status"] == "True":
                    break
                await asyncio.sleep(0.5)
            assert _condition(broker, "Ready")["status"] == "True", broker["status"]
    finally:
        await asyncio.to_thread(kafka.stop)


async def test_a_nats_brokers_configmap_shapes_its_stream(tmp_path: Path, nats_url: str) -> None:
    async with running_stack(tmp_path, backend="nats", nats_url=nats_url,
                             topic_template="tuned-{namespace}-{name}") as stack:
        await stack.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: stream-config, namespace: ns1}
data: {max.bytes: "1048576", max.age.seconds: "3600"}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: tuned, namespace: ns1, annotations: {eventing.knative.dev/broker.class: NatsJetStreamBroker}}
spec:
  config: {apiVersion: v1, kind: ConfigMap, name: stream-config}
""")
        assert _condition(await stack.get("broker", "ns1", "tuned"), "Ready")["status"] == "True"
        nc = await nats.connect(nats_url)
        try:
            info = await nc.jetstream().stream_info("tuned-ns1-tuned")
        finally:
            await nc.close()
        assert info.config.max_bytes == 1048576
        assert info.config.max_age == 3600
