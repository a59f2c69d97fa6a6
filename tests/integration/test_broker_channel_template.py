"""An MTChannelBasedBroker sits on the channel kind its `spec.config` ConfigMap's `channel-template-spec`
names (Knative's `config-br-default-channel`): InMemoryChannel, KafkaChannel or NatsJetStreamChannel."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import nats
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from channels.nats import stream_name
from tests.support.manifests import trigger
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event, eventually, running_stack


def channel_broker(name: str, template: str, namespace: str = "ns1") -> str:
    """A template ConfigMap and a Broker on it, as Knative's channel configuration docs write them."""
    body = "\n".join(f"    {line}" for line in template.strip().splitlines())
    return f"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-channel
  namespace: knative-eventing
data:
  channel-template-spec: |
{body}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: {name}
  namespace: {namespace}
  annotations:
    eventing.knative.dev/broker.class: MTChannelBasedBroker
spec:
  config:
    apiVersion: v1
    kind: ConfigMap
    name: {name}-channel
    namespace: knative-eventing
"""


IN_MEMORY = """
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
"""
KAFKA = """
apiVersion: messaging.knative.dev/v1beta1
kind: KafkaChannel
spec:
  numPartitions: 3
  replicationFactor: 1
"""
NATS = """
apiVersion: messaging.knative.dev/v1alpha1
kind: NatsJetStreamChannel
spec:
  stream:
    config:
      maxAge: 1h
      maxBytes: 1048576
"""


def unique_topics() -> str:
    return f"ct-{uuid.uuid4().hex[:6]}.{{namespace}}.{{name}}"


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


async def send_to(stack: Stack, broker: dict[str, Any], ids: list[str]) -> None:
    path = urlparse(broker["status"]["address"]["url"]).path
    for i in ids:
        assert await stack.send(path, event(i)) == 202


@pytest.mark.kafka
async def test_one_broker_on_an_inmemorychannel_and_one_on_a_kafkachannel(
        tmp_path: Path, kafka_bootstrap: str) -> None:
    to_memory, to_kafka = Receiver(), Receiver()
    await to_memory.start()
    await to_kafka.start()
    topics = unique_topics()
    try:
        async with running_stack(tmp_path, kafka_bootstrap=kafka_bootstrap, topic_template=topics) as stack:
            await stack.apply(channel_broker("mem", IN_MEMORY), channel_broker("kafka", KAFKA),
                              trigger("on-mem", to_memory.url, broker="mem"),
                              trigger("on-kafka", to_kafka.url, broker="kafka"))
            mem, kafka = await stack.get("broker", "ns1", "mem"), await stack.get("broker", "ns1", "kafka")
            for broker in (mem, kafka):
                assert condition(broker, "Ready")["status"] == "True", broker["status"]
            for name in ("on-mem", "on-kafka"):
                t = await stack.get("trigger", "ns1", name)
                assert condition(t, "Ready")["status"] == "True", t["status"]
            assert {k: v for k, v in mem["status"]["annotations"].items() if k.startswith("knative.dev/")} == {
                "knative.dev/channelAPIVersion": "messaging.knative.dev/v1",
                "knative.dev/channelKind": "InMemoryChannel",
                "knative.dev/channelName": "mem-kne-trigger",
                "knative.dev/channelNamespace": "ns1",
            }
            assert kafka["status"]["annotations"]["knative.dev/channelKind"] == "KafkaChannel"
            assert kafka["status"]["annotations"]["knative.dev/channelAPIVersion"] == "messaging.knative.dev/v1beta1"
            assert kafka["status"]["annotations"]["bootstrap.servers"] == kafka_bootstrap

            mem_ids, kafka_ids = [f"m{i}" for i in range(5)], [f"k{i}" for i in range(5)]
            await send_to(stack, mem, mem_ids)
            await send_to(stack, kafka, kafka_ids)
            await to_memory.wait_for(5)
            await to_kafka.wait_for(5)
            await to_memory.settle()
            await to_kafka.settle()
            assert sorted(to_memory.ids) == mem_ids
            assert sorted(to_kafka.ids) == kafka_ids

            # The KafkaChannel's numPartitions made the topic; the InMemoryChannel Broker has none on Kafka.
            kafka_topic = kafka["status"]["annotations"]["nerve.dev/topic"]
            admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
            await admin.start()
            try:
                [described] = await admin.describe_topics([kafka_topic])
                assert len(described["partitions"]) == 3
                assert mem["status"]["annotations"]["nerve.dev/topic"] not in await admin.list_topics()
            finally:
                await admin.close()

            # Deleting the Broker deletes its Kafka topic (clean-up knows which backend it sat on).
            await stack.delete("broker", "ns1", "kafka")

            async def topic_gone() -> bool:
                admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
                await admin.start()
                try:
                    return kafka_topic not in await admin.list_topics()
                finally:
                    await admin.close()

            await eventually(topic_gone, timeout=30, interval=0.5)
    finally:
        await to_memory.stop()
        await to_kafka.stop()


@pytest.mark.nats
async def test_a_broker_on_a_natsjetstreamchannel_is_a_nats_stream(tmp_path: Path, nats_url: str,
                                                                   receiver: Receiver) -> None:
    async with running_stack(tmp_path, nats_url=nats_url, topic_template=unique_topics()) as stack:
        await stack.apply(channel_broker("js", NATS), trigger("on-js", receiver.url, broker="js"))
        broker = await stack.get("broker", "ns1", "js")
        assert condition(broker, "Ready")["status"] == "True", broker["status"]
        annotations = broker["status"]["annotations"]
        assert (annotations["knative.dev/channelKind"], annotations["nerve.dev/backend"]) == (
            "NatsJetStreamChannel", "nats")
        stream = stream_name(annotations["nerve.dev/topic"])
        nc = await nats.connect(nats_url)
        try:
            info = await nc.jetstream().stream_info(stream)
            assert (info.config.max_age, info.config.max_bytes) == (3600, 1048576)

            await send_to(stack, broker, ["n1", "n2", "n3"])
            await receiver.wait_for(3)
            assert sorted(receiver.ids) == ["n1", "n2", "n3"]
            info = await nc.jetstream().stream_info(stream)
            assert info.state.messages == 3

            await stack.delete("broker", "ns1", "js")

            async def stream_gone() -> bool:
                names = [s.config.name for s in await nc.jetstream().streams_info()]
                return stream not in names

            await eventually(stream_gone, timeout=20, interval=0.2)
        finally:
            await nc.close()


async def test_a_template_naming_a_kind_nerve_does_not_run_is_a_clear_status(tmp_path: Path,
                                                                             receiver: Receiver) -> None:
    rabbit = "apiVersion: messaging.knative.dev/v1\nkind: RabbitChannel\n"
    async with running_stack(tmp_path, topic_template=unique_topics()) as stack:
        await stack.apply(channel_broker("odd", rabbit), trigger("on-odd", receiver.url, broker="odd"))
        broker = await stack.get("broker", "ns1", "odd")
        ready = condition(broker, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "ChannelTemplateFailed")
        assert ready["message"].startswith(
            "ConfigMap knative-eventing/odd-channel key channel-template-spec: channel kind 'RabbitChannel'")
        assert "expected one of InMemoryChannel (messaging.knative.dev/v1), KafkaChannel" in ready["message"]
        assert "address" not in broker["status"]
        t = await stack.get("trigger", "ns1", "on-odd")
        assert (condition(t, "Ready")["status"], condition(t, "Ready")["reason"]) == ("False", "ChannelTemplateFailed")
        # No channel, no ingress: it never falls back to memory.
        assert await stack.send("/ns1/odd", event("x")) == 404

        # Fixing the ConfigMap brings the Broker up on the kind it now names.
        await stack.apply(channel_broker("odd", IN_MEMORY))

        async def ready_now() -> bool:
            return condition(await stack.get("broker", "ns1", "odd"), "Ready")["status"] == "True"

        await eventually(ready_now, timeout=15)
        await eventually(lambda: _ready(stack, "on-odd"), timeout=15)
        assert await stack.send("/ns1/odd", event("y")) == 202
        await receiver.wait_for(1)
        assert receiver.ids == ["y"]


async def _ready(stack: Stack, trigger_name: str) -> bool:
    return condition(await stack.get("trigger", "ns1", trigger_name), "Ready")["status"] == "True"


async def test_a_broker_whose_template_configmap_is_missing_waits_for_it(tmp_path: Path) -> None:
    async with running_stack(tmp_path, topic_template=unique_topics()) as stack:
        manifest = channel_broker("early", KAFKA)
        await stack.apply(manifest.split("---", 1)[1])  # the Broker alone
        ready = condition(await stack.get("broker", "ns1", "early"), "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "ChannelTemplateFailed")
        assert "ConfigMap knative-eventing/early-channel does not exist" in ready["message"]
