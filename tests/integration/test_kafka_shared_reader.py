"""The Kafka shared reader (channels/kafka_fanout.py) against a real broker: where each Trigger resumes.

A Broker's topic is read once for all its Triggers; each Trigger resumes from its own consumer group's
committed offset. These tests attach Triggers at different committed positions to one reader, in an
order that makes it go back more than once, and check that each Trigger is handed every record from its
own position on, once: what a restarted dispatcher (or Triggers back from reading alone) must deliver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from channels.base import Cursor, Message, SharedReader, TopicSpec, shared_reader_group
from channels.kafka import KafkaBackend, KafkaSettings
from dispatcher import fanout
from tests.support.backends import FanoutSubscriber, event, unique_name
from tests.support.stack import eventually

pytestmark = pytest.mark.kafka


async def _commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    """`group` committed `offset` on partition 0, as a Trigger that read that far and stopped."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=[TopicPartition(topic, 0)])
        return int(offsets[TopicPartition(topic, 0)].offset)
    finally:
        await admin.close()


class _Taken:
    """What one attached Trigger was handed, by event number, as the fan-out would deliver it."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor
        self.numbers: list[int] = []
        self.messages: list[Message] = []


async def _read(reader: SharedReader, taken: list[_Taken], batch: int, until: int, timeout: float = 30.0) -> None:
    """Read batches of at most `batch` records, offering each to every cursor, until the one past the
    highest event number read is `until`."""
    async def loop() -> None:
        high = -1
        while high + 1 < until:
            for record in await reader.receive(batch):
                number = int(str(record.event.attributes["id"]).removeprefix("id-"))
                high = max(high, number)
                for t in taken:
                    message = t.cursor.take(record)
                    if message is not None:
                        t.numbers.append(number)
                        t.messages.append(message)
            reader.done()

    await asyncio.wait_for(loop(), timeout)


async def test_triggers_attached_at_different_positions_each_get_everything_from_their_own(
        kafka_bootstrap: str) -> None:
    channel = KafkaBackend(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    await channel.start()
    topic = unique_name("shared")
    await channel.ensure_topic(TopicSpec(topic))
    for i in range(30):
        await channel.publish(topic, event(i))
    positions = {"a": 20, "b": 10, "c": 5, "e": 12, "f": 3}
    groups = {name: unique_name(f"g-{name}") for name in positions}
    for name, offset in positions.items():
        await _commit(kafka_bootstrap, groups[name], topic, offset)

    # A reader with no Trigger yet starts at the end, as a restarted dispatcher's does when its Triggers
    # attach one after another; each one behind the read position makes it go back.
    reader = channel.open_shared_reader(topic, shared_reader_group(topic))
    await reader.start()
    try:
        taken: dict[str, _Taken] = {}

        async def attach(name: str) -> None:
            taken[name] = _Taken(await reader.attach(groups[name]))

        await attach("a")  # back from the end to 20
        await attach("b")  # back to 10: a was offered nothing yet
        await _read(reader, list(taken.values()), batch=5, until=15)
        await attach("c")  # back to 5: b was offered 10..14, a nothing
        await attach("e")  # at 12, ahead of the read position: no seek
        await _read(reader, list(taken.values()), batch=5, until=10)
        await attach("f")  # back to 3: e was offered nothing of its own yet
        await _read(reader, list(taken.values()), batch=5, until=30)

        for i in range(30, 40):
            await channel.publish(topic, event(i))
        await _read(reader, list(taken.values()), batch=5, until=40)

        for name, offset in positions.items():
            assert taken[name].numbers == list(range(offset, 40)), name  # every one from its own, once

        for t in taken.values():
            for message in t.messages:
                await message.ack()
            await reader.detach(t.cursor)
        for name in positions:
            assert await _committed(kafka_bootstrap, groups[name], topic) == 40, name
    finally:
        await reader.stop()
        await channel.stop()


async def _count_for(seconds: float, receive: Callable[[], Awaitable[list[Message]]], into: dict[str, int]) -> None:
    """Receive for `seconds`, acking each message; event id -> times received."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        try:
            messages = await asyncio.wait_for(receive(), max(0.1, end - loop.time()))
        except TimeoutError:
            return
        for message in messages:
            event_id = str(message.event.attributes["id"])
            into[event_id] = into.get(event_id, 0) + 1
            await message.ack()


async def _take_all(reader: SharedReader, cursor: Cursor, into: dict[str, int], seconds: float) -> None:
    """Read the shared reader for `seconds`, counting and acking what `cursor` takes."""
    async def taken() -> list[Message]:
        records = await reader.receive(100)
        messages = [m for m in map(cursor.take, records) if m is not None]
        reader.done()
        return messages

    await _count_for(seconds, taken, into)


async def test_a_trigger_reading_alone_in_one_dispatcher_process_reads_only_that_process_s_partitions(
        kafka_bootstrap: str) -> None:
    """Two dispatcher processes share a Broker topic's partitions; a Trigger too slow in one of them reads
    on alone there, while the other still delivers it from its shared reader: each event once, not twice."""
    channel = KafkaBackend(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    await channel.start()
    topic, trigger = unique_name("two-processes"), unique_name("g-slow")
    await channel.ensure_topic(TopicSpec(topic, partitions=4))
    first = channel.open_shared_reader(topic, shared_reader_group(topic))
    second = channel.open_shared_reader(topic, shared_reader_group(topic))
    alone = None
    try:
        await first.start()
        await second.start()  # the group's second member: the partitions are split between the two
        await asyncio.sleep(1.0)
        in_first, in_second = await first.attach(trigger), await second.attach(trigger)
        for i in range(40):
            await channel.publish(topic, event(i, partitionkey=f"key-{i}"))
        got: dict[str, int] = {}
        await asyncio.gather(_take_all(first, in_first, got, 5.0), _take_all(second, in_second, got, 5.0))
        assert set(got) == {f"id-{i}" for i in range(40)}

        # Slow in the first process: it leaves that shared reader and reads on alone there.
        await first.detach(in_first)
        alone = first.open_alone(trigger)
        await alone.start()
        for i in range(40, 80):
            await channel.publish(topic, event(i, partitionkey=f"key-{i}"))
        later: dict[str, int] = {}
        reader = alone

        async def from_alone() -> list[Message]:
            return list(await reader.receive(100))

        await asyncio.gather(_count_for(8.0, from_alone, later), _take_all(second, in_second, later, 8.0))
        assert set(later) == {f"id-{i}" for i in range(40, 80)}  # none lost
        twice = sorted(k for k, n in later.items() if n > 1)
        assert twice == [], f"{len(twice)} of 40 events delivered twice, e.g. {twice[:5]}"
    finally:
        if alone is not None:
            await alone.stop()
        await first.stop()
        await second.stop()
        await channel.stop()


async def test_a_trigger_that_left_commits_only_what_it_was_offered(kafka_bootstrap: str) -> None:
    """A Trigger leaves the fan-out (its dispatcher stops, or it reads on alone) and waits for its deliveries
    in flight before it detaches; the reader reads on for the other Trigger meanwhile. What it commits at
    detach must stop at what it was offered, or the records read in between are never delivered to it."""
    channel = KafkaBackend(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    await channel.start()
    topic = unique_name("shared")
    await channel.ensure_topic(TopicSpec(topic))
    groups = {name: unique_name(f"g-{name}") for name in ("leaving", "staying")}
    for name in groups.values():
        await _commit(kafka_bootstrap, name, topic, 0)
    for i in range(10):
        await channel.publish(topic, event(i))
    reader = channel.open_shared_reader(topic, shared_reader_group(topic))
    await reader.start()
    try:
        leaving = _Taken(await reader.attach(groups["leaving"]))
        staying = _Taken(await reader.attach(groups["staying"]))
        await _read(reader, [leaving, staying], batch=5, until=10)
        leaving.cursor.leave()  # out of the fan-out, all it took acked only later (in flight)
        for i in range(10, 20):
            await channel.publish(topic, event(i))
        await _read(reader, [staying], batch=5, until=20)
        for message in leaving.messages:
            await message.ack()
        await reader.detach(leaving.cursor)
        assert await _committed(kafka_bootstrap, groups["leaving"], topic) == 10

        # Back (a restart, or back from reading alone): the ten it was never offered come to it.
        back = _Taken(await reader.attach(groups["leaving"]))
        await _read(reader, [back, staying], batch=5, until=20)
        assert back.numbers == list(range(10, 20))
        assert staying.numbers == list(range(20))  # the reader went back; nothing came twice to the other
    finally:
        await reader.stop()
        await channel.stop()


async def test_triggers_attaching_at_once_to_a_backlog_are_fed_together_and_none_goes_alone(
        kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dispatcher starting with a backlog waiting attaches all its Triggers at once. The reader must not
    read for the first ones in while the rest still fetch their positions: each later one would make it go
    back, the first ones would get every partition not read yet as well, pass twice the backlog and be
    sent to read the topic alone (bench/bench_dispatch.py saw 5 to 9 of 10 go at every such start)."""
    backlog = 100
    monkeypatch.setattr(fanout, "FETCH_RECORDS", 50)  # the backlog and the fetch, both a tenth of the defaults
    channel = KafkaBackend(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    await channel.start()
    topic = unique_name("backlog")
    await channel.ensure_topic(TopicSpec(topic, partitions=10))
    since = time.time() - 1.0
    for start in range(0, 3000, 100):
        await asyncio.gather(*(channel.publish(topic, event(i)) for i in range(start, start + 100)))
    reader = channel.open_shared_reader(topic, shared_reader_group(topic))
    shared = fanout.Fanout(reader, "test", backlog=backlog, on_empty=lambda _: None)
    subscribers = [FanoutSubscriber(unique_name(f"g{n}"), since) for n in range(10)]
    try:
        await shared.ready()
        attached = await asyncio.gather(*(shared.attach(s) for s in subscribers))
        inboxes = [inbox for _cursor, inbox in attached]
        await eventually(lambda: all(inbox.full for inbox in inboxes), timeout=30)
        await asyncio.sleep(1.0)  # the reader waits now: nothing more may come, nobody may be sent away
        assert [s.overflows for s in subscribers] == [0] * 10
        assert max(len(inbox) for inbox in inboxes) <= 2 * backlog, [len(inbox) for inbox in inboxes]
    finally:
        for subscriber in subscribers:
            shared.leave(subscriber)
        for _cursor, inbox in attached:
            inbox.close()
        await shared.stop()
        await channel.stop()
