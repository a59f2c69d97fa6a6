"""Server-side fan-out on NATS against a real nats-server: events go to a subject per type, a group whose
Trigger wants one exact type is sent only that type, and what an older Nerve stored is still read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamConfig

from channels.base import TopicSpec
from channels.nats import NatsBackend, NatsSettings, consumer_name, stream_name, subject, type_token
from core.events import Event
from tests.support.backends import event, nothing_within, receive, unique_name

pytestmark = pytest.mark.nats


@pytest.fixture
async def channel(nats_url: str) -> AsyncIterator[NatsBackend]:
    ch = NatsBackend(NatsSettings(url=nats_url))
    await ch.start()
    try:
        yield ch
    finally:
        await ch.stop()


def typed(i: int, event_type: str) -> Event:
    e = event(i)
    e.attributes["type"] = event_type
    return e


async def test_a_typed_group_is_sent_only_its_type_and_a_plain_one_everything(
    channel: NatsBackend, nats_url: str,
) -> None:
    topic = unique_name("typed")
    await channel.ensure_topic(TopicSpec(topic))
    wanted = channel.open_typed_reader(topic, "wanted", "dev.knative.a.b")
    everything = channel.open_reader(topic, "everything")
    await wanted.start()
    await everything.start()
    try:
        for i, t in enumerate(["dev.knative.a.b", "dev.knative.a_b", "other", "dev.knative.a.b"]):
            await channel.publish(topic, typed(i, t))
        assert [m.event.id for m in await receive(wanted, 2)] == ["id-0", "id-3"]
        assert [m.event.id for m in await receive(everything, 4)] == ["id-0", "id-1", "id-2", "id-3"]
        await nothing_within(wanted, 1.0)
        # The server holds only the matching events for the typed group: its lag counts those alone.
        nc = await nats.connect(nats_url)
        try:
            stored = await nc.jetstream().get_last_msg(stream_name(topic), f"{subject(topic)}.{type_token('other')}")
            assert stored.headers is not None and stored.headers["ce-type"] == "other"
        finally:
            await nc.close()
    finally:
        await wanted.stop()
        await everything.stop()
        await channel.delete_topic(topic)


async def test_a_stream_and_groups_an_older_nerve_made_are_still_read_and_follow_typed_subjects(
    channel: NatsBackend, nats_url: str,
) -> None:
    topic = unique_name("older")
    name, bare = stream_name(topic), subject(topic)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        # What Nerve made before typed subjects: one subject per stream, each group filtered on it.
        await js.add_stream(StreamConfig(name=name, subjects=[bare]))
        for group in ("plain", "typed"):
            await js.add_consumer(name, ConsumerConfig(durable_name=consumer_name(group), filter_subject=bare,
                                                       deliver_policy=DeliverPolicy.ALL, ack_policy="explicit"))
        await js.publish(bare, b"", headers={"ce-specversion": "1.0", "ce-id": "old", "ce-source": "/s",
                                              "ce-type": "wanted"})
        # The new ingress publishes before control updated the stream: stored on the bare subject.
        await channel.publish(topic, typed(1, "wanted"))
        await channel.ensure_topic(TopicSpec(topic))  # control's next pass: the stream takes typed subjects
        assert sorted((await js.stream_info(name)).config.subjects or []) == sorted([bare, f"{bare}.>"])
        await channel.publish(topic, typed(2, "wanted"))
        await channel.publish(topic, typed(3, "unwanted"))
        plain, typed_group = channel.open_reader(topic, "plain"), channel.open_typed_reader(topic, "typed", "wanted")
        await plain.start()
        await typed_group.start()
        try:
            assert [m.event.id for m in await receive(plain, 4)] == ["old", "id-1", "id-2", "id-3"]
            got = await receive(typed_group, 3)
            assert [m.event.id for m in got] == ["old", "id-1", "id-2"]
            for m in got:
                await m.ack()
            await nothing_within(typed_group, 1.0)
        finally:
            await plain.stop()
            await typed_group.stop()
        # The Trigger's exact type changes: the same group now reads the other type from its position on
        # (id-3 was passed over while it filtered on `wanted`).
        await channel.publish(topic, typed(4, "unwanted"))
        again = channel.open_typed_reader(topic, "typed", "unwanted")
        await again.start()
        try:
            assert [m.event.id for m in await receive(again, 1)] == ["id-4"]
        finally:
            await again.stop()
    finally:
        await nc.close()
        await channel.delete_topic(topic)
