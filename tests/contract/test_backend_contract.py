"""The backend seam's behaviour, the same for memory, Kafka and NATS.

Each test uses a fresh topic name so backends with real servers need no clean-up between tests.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from channels.base import Backend, Message, Reader, TopicSpec
from core.events import Event, attr_to_string


def _topic() -> str:
    return f"nerve-test-{uuid.uuid4().hex[:12]}"


def _event(i: int, **extra: str | int | bool) -> Event:
    attributes: dict[str, str | int | bool] = {
        "specversion": "1.0",
        "id": f"id-{i}",
        "source": "/contract",
        "type": "dev.nerve.test",
        "datacontenttype": "application/octet-stream",
        **extra,
    }
    return Event(attributes, bytes([i % 256]) * 10)


async def _drain(sub: Reader, count: int, *, ack: bool = True, timeout: float = 30.0) -> list[Message]:
    got: list[Message] = []

    async def loop() -> None:
        while len(got) < count:
            batch = await sub.receive(count - len(got))
            for delivery in batch:
                if ack:
                    await delivery.ack()
            got.extend(batch)

    await asyncio.wait_for(loop(), timeout)
    return got


async def _subscribe(backend: Backend, topic: str, group: str) -> Reader:
    sub = backend.open_reader(topic, group)
    await sub.start()
    return sub


async def test_every_attribute_and_the_data_round_trip(backend: Backend) -> None:
    topic = _topic()
    await backend.ensure_topic(TopicSpec(topic))
    sub = await _subscribe(backend, topic, "g1")
    try:
        sent = Event(
            {
                "specversion": "1.0",
                "id": "abc",
                "source": "/a/b?c=d",
                "type": "t.ü",
                "subject": "with space, comma and \"quote\"",
                "time": "2026-01-02T03:04:05.123456Z",
                "datacontenttype": "application/json",
                "dataschema": "https://example.com/s",
                "knativearrivaltime": "2026-01-02T03:04:05Z",
                "knativebrokerttl": 255,
                "extflag": True,
            },
            b'{"msg": "Hello \xc3\xbc", "n": [1, 2]}',
        )
        await backend.publish(topic, sent)
        [delivery] = await _drain(sub, 1)
        got = delivery.event
        assert {k: attr_to_string(v) for k, v in got.attributes.items()} == {
            k: attr_to_string(v) for k, v in sent.attributes.items()
        }
        assert got.data == sent.data
    finally:
        await sub.stop()


async def test_an_event_without_data_stays_without_data(backend: Backend) -> None:
    topic = _topic()
    await backend.ensure_topic(TopicSpec(topic))
    sub = await _subscribe(backend, topic, "g1")
    try:
        await backend.publish(topic, Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}))
        [delivery] = await _drain(sub, 1)
        assert not delivery.event.data
        assert "datacontenttype" not in delivery.event.attributes
    finally:
        await sub.stop()


async def test_each_group_receives_every_event_once(backend: Backend) -> None:
    topic = _topic()
    await backend.ensure_topic(TopicSpec(topic, partitions=3))
    one = await _subscribe(backend, topic, "one")
    two = await _subscribe(backend, topic, "two")
    try:
        await asyncio.gather(*(backend.publish(topic, _event(i)) for i in range(50)))
        ids_one = sorted(d.event.id for d in await _drain(one, 50))
        ids_two = sorted(d.event.id for d in await _drain(two, 50))
        expected = sorted(f"id-{i}" for i in range(50))
        assert ids_one == expected
        assert ids_two == expected
    finally:
        await one.stop()
        await two.stop()


async def test_many_concurrent_publishes_all_arrive(backend: Backend) -> None:
    topic = _topic()
    await backend.ensure_topic(TopicSpec(topic, partitions=2))
    sub = await _subscribe(backend, topic, "bulk")
    try:
        await asyncio.gather(*(backend.publish(topic, _event(i)) for i in range(1000)))
        got = await _drain(sub, 1000, timeout=60)
        assert len({d.event.id for d in got}) == 1000
    finally:
        await sub.stop()


async def test_same_partition_key_keeps_publish_order(backend: Backend) -> None:
    topic = _topic()
    await backend.ensure_topic(TopicSpec(topic, partitions=3))
    sub = await _subscribe(backend, topic, "ordered")
    try:
        for i in range(30):
            await backend.publish(topic, _event(i, partitionkey=f"k{i % 3}"))
        got = await _drain(sub, 30)
        for key in ("k0", "k1", "k2"):
            lane = [d for d in got if d.event.attributes.get("partitionkey") == key]
            assert len({d.ordering_key for d in lane}) == 1
            assert [d.event.id for d in lane] == [f"id-{i}" for i in range(30) if f"k{i % 3}" == key]
    finally:
        await sub.stop()


async def test_unacked_events_come_back_to_the_group(backend: Backend) -> None:
    topic = _topic()
    await backend.ensure_topic(TopicSpec(topic))
    sub = await _subscribe(backend, topic, "redeliver")
    await backend.publish(topic, _event(1))
    await backend.publish(topic, _event(2))
    first = await _drain(sub, 2, ack=False)
    await first[0].ack()
    await sub.stop()
    again = await _subscribe(backend, topic, "redeliver")
    seen: set[str] = set()

    async def until_redelivered() -> None:
        # Kafka commits offsets, so it may hand back the acked event too: at least once, never lost.
        while first[1].event.id not in seen:
            for delivery in await again.receive(10):
                seen.add(delivery.event.id)
                await delivery.ack()

    try:
        await asyncio.wait_for(until_redelivered(), 30)
    finally:
        await again.stop()


async def _maybe_more(sub: Reader) -> list[Message]:
    try:
        return list(await asyncio.wait_for(sub.receive(10), 2.0))
    except TimeoutError:
        return []


async def test_a_group_created_after_publishing_starts_at_the_end(backend: Backend) -> None:
    topic = _topic()
    await backend.ensure_topic(TopicSpec(topic))
    early = await _subscribe(backend, topic, "early")
    try:
        await backend.publish(topic, _event(1))
        await _drain(early, 1)
        late = await _subscribe(backend, topic, "late")
        try:
            await backend.publish(topic, _event(2))
            got = await _drain(late, 1)
            assert [d.event.id for d in got] == ["id-2"]
            assert await _maybe_more(late) == []
        finally:
            await late.stop()
    finally:
        await early.stop()


async def test_a_new_group_with_since_starts_with_what_was_stored_from_then_on(backend: Backend) -> None:
    """A Trigger made while no dispatcher read: the events the ingress took since are delivered once the
    dispatcher subscribes. The memory backend keeps no history (embedded, its dispatcher subscribes before
    the ingress routes), so there a group starts at the end whatever `since` says."""
    topic = _topic()
    await backend.ensure_topic(TopicSpec(topic))
    keeper = await _subscribe(backend, topic, "keeper")  # so the memory backend holds the events at all
    try:
        await backend.publish(topic, _event(1))
        await asyncio.sleep(1.2)
        since = time.time()
        await backend.publish(topic, _event(2))
        await backend.publish(topic, _event(3))
        await _drain(keeper, 3)
        late = backend.open_reader(topic, "made-before-its-dispatcher", since=since)
        await late.start()
        try:
            await backend.publish(topic, _event(4))
            durable = type(backend).__module__ != "channels.memory"
            expected = ["id-2", "id-3", "id-4"] if durable else ["id-4"]
            got = await _drain(late, len(expected))
            assert [d.event.id for d in got] == expected
            assert await _maybe_more(late) == []
        finally:
            await late.stop()
    finally:
        await keeper.stop()
