"""Channels on the real Kafka and NATS servers, checked on the servers themselves: the topic or stream a
channel gets and its shape, and what deleting a Channel or a Subscription removes there."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from channels.nats import consumer_name, stream_name
from tests.support.manifests import channel, subscription
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event, eventually, running_stack

BACKENDS = [pytest.param("kafka", marks=pytest.mark.kafka), pytest.param("nats", marks=pytest.mark.nats)]
KIND = {"kafka": "KafkaChannel", "nats": "NatsJetStreamChannel"}


@pytest.fixture
async def on_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str, str, Stack]]:
    """(backend, connection, tag, stack): Channels that name no template land on the backend; the
    topics and groups are named c<tag>-<ns>-<name> and s<tag>-<ns>-<channel>-<uid>."""
    backend: str = request.param
    connection = str(request.getfixturevalue("kafka_bootstrap" if backend == "kafka" else "nats_url"))
    tag = uuid.uuid4().hex[:8]
    where = {"kafka_bootstrap": connection} if backend == "kafka" else {"nats_url": connection}
    async with running_stack(tmp_path, backend=backend, channel_topic_template=f"c{tag}-{{namespace}}-{{name}}",
                             subscription_consumer_group_template=f"s{tag}-{{namespace}}-{{channel}}-{{uid}}",
                             **where) as stack:
        yield backend, connection, tag, stack


async def _kafka_names(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics()) | {g[0] for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()


async def _nats_names(url: str) -> set[str]:
    """Streams, and each stream's consumers as <stream>/<consumer>."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        names: set[str] = set()
        for info in await js.streams_info():
            stream = info.config.name or ""
            names.add(stream)
            names |= {f"{stream}/{c.name}" for c in await js.consumers_info(stream)}
        return names
    finally:
        await nc.close()


async def _names(backend: str, connection: str) -> set[str]:
    return await (_kafka_names(connection) if backend == "kafka" else _nats_names(connection))


def _on_server(backend: str, topic: str, group: str | None = None) -> str:
    """How the server names a channel's topic (or one of its groups)."""
    if backend == "kafka":
        return group or topic
    return f"{stream_name(topic)}/{consumer_name(group)}" if group else stream_name(topic)


@pytest.mark.parametrize("on_backend", BACKENDS, indirect=True)
async def test_deleting_a_channel_deletes_its_topic_and_its_subscriptions_groups(
    on_backend: tuple[str, str, str, Stack]
) -> None:
    backend, connection, tag, stack = on_backend
    one, two = Receiver(), Receiver()
    await one.start()
    await two.start()
    try:
        await stack.apply(channel(), subscription("sub-1", one.url), subscription("sub-2", two.url))
        ch = await stack.get("channel", "ns1", "my-channel")
        assert ch["spec"]["channelTemplate"]["kind"] == KIND[backend]
        uids = [(await stack.get("subscription", "ns1", s))["metadata"]["uid"] for s in ("sub-1", "sub-2")]
        assert await stack.send("/channels/ns1/my-channel", event("e1")) == 202
        await one.wait_for(1)
        await two.wait_for(1)
        topic = f"c{tag}-ns1-my-channel"
        expected = {_on_server(backend, topic), *(_on_server(backend, topic, f"s{tag}-ns1-my-channel-{uid}")
                                                  for uid in uids)}

        async def present() -> bool:
            return expected <= await _names(backend, connection)

        await eventually(present, timeout=20)  # a Kafka group is listed once it has joined
        await stack.delete("channel", "ns1", "my-channel")
        left = expected & await _names(backend, connection)
        assert left == set(), left
        # The Subscriptions stay, not Ready, until their channel comes back.
        for name in ("sub-1", "sub-2"):
            ready = next(c for c in (await stack.get("subscription", "ns1", name))["status"]["conditions"]
                         if c["type"] == "Ready")
            assert ready["reason"] == "ChannelReferenceFailed"
    finally:
        await one.stop()
        await two.stop()


@pytest.mark.parametrize("on_backend", BACKENDS, indirect=True)
async def test_deleting_a_subscription_deletes_its_group_and_keeps_the_others(
    on_backend: tuple[str, str, str, Stack]
) -> None:
    backend, connection, tag, stack = on_backend
    gone, kept = Receiver(), Receiver()
    await gone.start()
    await kept.start()
    try:
        await stack.apply(channel(), subscription("gone", gone.url), subscription("kept", kept.url))
        uid = {s: (await stack.get("subscription", "ns1", s))["metadata"]["uid"] for s in ("gone", "kept")}
        assert await stack.send("/channels/ns1/my-channel", event("e1")) == 202
        await gone.wait_for(1)
        await kept.wait_for(1)
        topic = f"c{tag}-ns1-my-channel"
        groups = {s: _on_server(backend, topic, f"s{tag}-ns1-my-channel-{u}") for s, u in uid.items()}

        async def present() -> bool:
            return set(groups.values()) <= await _names(backend, connection)

        await eventually(present, timeout=20)
        await stack.delete("subscription", "ns1", "gone")
        names = await _names(backend, connection)
        assert groups["gone"] not in names
        assert {groups["kept"], _on_server(backend, topic)} <= names
    finally:
        await gone.stop()
        await kept.stop()


@pytest.mark.kafka
async def test_a_kafka_channel_topic_has_the_partitions_and_retention_it_asks_for(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    tag = uuid.uuid4().hex[:8]
    async with running_stack(tmp_path, kafka_bootstrap=kafka_bootstrap,
                             channel_topic_template=f"c{tag}-{{namespace}}-{{name}}") as stack:
        kc = channel("orders", kind="KafkaChannel", api_version="messaging.knative.dev/v1beta1",
                     numPartitions=3, replicationFactor=1, retentionDuration="PT1H")
        await stack.apply(kc)
        stored = await stack.get("kafkachannel", "ns1", "orders")
        assert next(c for c in stored["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            topic = f"c{tag}-ns1-orders"
            [described] = await admin.describe_topics([topic])
            assert len(described["partitions"]) == 3
            configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            values = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
            assert values["retention.ms"] == "3600000"
        finally:
            await admin.close()


@pytest.mark.nats
async def test_a_nats_jetstream_channel_stream_has_the_name_and_limits_it_asks_for(
    nats_url: str, tmp_path: Path
) -> None:
    name = f"ORDERS-{uuid.uuid4().hex[:8]}"
    async with running_stack(tmp_path, nats_url=nats_url) as stack:
        await stack.apply(channel("orders", kind="NatsJetStreamChannel",
                                  api_version="messaging.knative.dev/v1alpha1",
                                  stream={"overrideName": name,
                                          "config": {"storage": "Memory", "maxAge": "1h30m", "maxBytes": 1048576}}))
        stored = await stack.get("natsjetstreamchannel", "ns1", "orders")
        assert next(c for c in stored["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
        nc = await nats.connect(nats_url)
        try:
            config: Any = (await nc.jetstream().stream_info(name)).config
            assert (str(config.storage), config.max_age, config.max_bytes) == ("memory", 5400.0, 1048576)
        finally:
            await nc.close()
        await stack.delete("natsjetstreamchannel", "ns1", "orders")
        nc = await nats.connect(nats_url)
        try:
            assert name not in {i.config.name for i in await nc.jetstream().streams_info()}
        finally:
            await nc.close()
