"""The Kafka channel against a real broker: what a user of a Kafka-backed Broker would notice.

The shared contract suite (tests/contract) covers what every backend does; these tests cover what only
Kafka does: committed offsets that never pass an unacked record, topics with the requested partitions
and configs, consumer groups that can be deleted, and a broker that dies and comes back. Tests that kill
a broker start a private one with the project's launcher, so the session broker stays up for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from channels.base import Message, Reader, TopicSpec
from channels.kafka import KafkaBackend, KafkaSettings, encode
from core.errors import BackendError
from core.events import Event
from tests.support.backends import event, ids, nothing_within, publish_until_accepted, receive, unique_name
from tests.support.launchers import free_port, kafka_launcher

pytestmark = pytest.mark.kafka


async def _spread(channel: KafkaBackend, topic: str, sub: Reader, count: int) -> dict[str, list[Message]]:
    """Publish `count` events with distinct partition keys; their deliveries by partition (every one used)."""
    for i in range(count):
        await channel.publish(topic, event(i, partitionkey=f"key-{i}"))
    by_partition: dict[str, list[Message]] = {}
    for d in await receive(sub, count):
        by_partition.setdefault(d.ordering_key, []).append(d)
    assert len(by_partition) > 1, "the keys should spread over the partitions"
    return by_partition


@pytest.fixture
async def channel(kafka_bootstrap: str) -> AsyncIterator[KafkaBackend]:
    ch = KafkaBackend(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    await ch.start()
    try:
        yield ch
    finally:
        await ch.stop()


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[Any]:
    """A broker of this test's own, free to be killed."""
    launcher = kafka_launcher()
    try:
        kafka = launcher.start(tmp_path / "kafka")
    except launcher.KafkaError as exc:
        pytest.fail(f"no private Kafka for the test: {exc}", pytrace=False)
    try:
        yield kafka
    finally:
        kafka.kill()


async def test_commits_never_pass_an_unacked_record(channel: KafkaBackend) -> None:
    topic, group = unique_name("commits"), unique_name("g")
    await channel.ensure_topic(TopicSpec(topic))
    sub = channel.open_reader(topic, group)
    await sub.start()
    for i in (1, 2, 3):
        await channel.publish(topic, event(i))
    first, second, third = await receive(sub, 3)
    assert ids([first, second, third]) == ["id-1", "id-2", "id-3"]
    await first.ack()
    await third.ack()
    await sub.stop()

    again = channel.open_reader(topic, group)
    await again.start()
    try:
        # 1 was acked before the gap: it is done. 3 was acked after an unacked 2: it comes back with it.
        redelivered = await receive(again, 2)
        assert ids(redelivered) == ["id-2", "id-3"]
        for delivery in redelivered:
            await delivery.ack()
        await nothing_within(again)
    finally:
        await again.stop()

    # Once everything is acked the group is done with the topic.
    last = channel.open_reader(topic, group)
    await last.start()
    try:
        await nothing_within(last)
    finally:
        await last.stop()


async def test_a_new_group_that_stops_before_its_first_ack_loses_nothing(channel: KafkaBackend) -> None:
    # A new Trigger starts at the end of the topic. If its dispatcher dies before anything was acked, the
    # restarted one must resume at that starting point, not at the (by then later) end of the topic.
    topic, group = unique_name("first-ack"), unique_name("g")
    await channel.ensure_topic(TopicSpec(topic))
    await channel.publish(topic, event(0))  # before the group existed: never delivered to it
    sub = channel.open_reader(topic, group)
    await sub.start()
    try:
        for i in (1, 2, 3):
            await channel.publish(topic, event(i))
        assert ids(await receive(sub, 3)) == ["id-1", "id-2", "id-3"]
    finally:
        await sub.stop()

    again = channel.open_reader(topic, group)
    await again.start()
    try:
        assert ids(await receive(again, 3)) == ["id-1", "id-2", "id-3"]
    finally:
        await again.stop()


async def test_acks_in_any_order_commit_up_to_the_first_gap_per_partition(channel: KafkaBackend) -> None:
    topic, group = unique_name("order"), unique_name("g")
    await channel.ensure_topic(TopicSpec(topic, partitions=2))
    sub = channel.open_reader(topic, group)
    await sub.start()
    try:
        by_partition = await _spread(channel, topic, sub, 10)
        expected_back: set[str] = set()
        for records in by_partition.values():
            # Ack every record of the partition but its second one, newest first.
            for d in reversed(records):
                if d is not records[1]:
                    await d.ack()
            expected_back |= set(ids(records[1:]))
    finally:
        await sub.stop()

    again = channel.open_reader(topic, group)
    await again.start()
    try:
        redelivered = await receive(again, len(expected_back))
        assert set(ids(redelivered)) == expected_back
    finally:
        await again.stop()


async def test_keyless_events_fill_one_partition_a_batch_at_a_time_and_every_partition_in_turn(
    channel: KafkaBackend,
) -> None:
    # Kafka's Java producer does the same (sticky partitioning): one big batch per round trip instead
    # of a small one for every partition. 60 events of 1 KiB and the 16 KiB turn: about 15 in a row.
    topic, group = unique_name("sticky"), unique_name("g")
    await channel.ensure_topic(TopicSpec(topic, partitions=3))
    sub = channel.open_reader(topic, group)
    await sub.start()
    try:
        for i in range(60):
            await channel.publish(topic, Event(event(i).attributes, b"x" * 1024))
        got = await receive(sub, 60)
    finally:
        await sub.stop()
    partition_of = {str(m.event.attributes["id"]): m.ordering_key for m in got}
    in_order = [partition_of[f"id-{i}"] for i in range(60)]
    runs = [len(list(run)) for _, run in itertools.groupby(in_order)]
    assert len(set(in_order)) == 3, in_order  # the turns went round all of them
    assert all(12 <= n <= 16 for n in runs[:-1]), runs
    assert [p for p, _ in itertools.groupby(in_order)][:3] == sorted(set(in_order))


async def test_a_topic_gets_the_requested_partitions_and_configs(channel: KafkaBackend, kafka_bootstrap: str) -> None:
    topic = unique_name("spec")
    # retention.ms is what a KafkaChannel's retentionDuration becomes; every entry reaches the topic.
    wanted = {"retention.ms": "3600000", "max.message.bytes": "2097152", "cleanup.policy": "delete"}
    spec = TopicSpec(topic, partitions=3, replication_factor=1, config=wanted)
    await channel.ensure_topic(spec)
    await channel.ensure_topic(spec)  # a second reconcile finds it there: fine
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        assert len(described["partitions"]) == 3
        configs = await admin.describe_configs([_topic_config_resource(topic)])
        values = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
        assert {key: values[key] for key in wanted} == wanted
    finally:
        await admin.close()

    # Every partition is used: events spread over them by partition key.
    sub = channel.open_reader(topic, unique_name("g"))
    await sub.start()
    try:
        for i in range(30):
            await channel.publish(topic, event(i, partitionkey=f"key-{i}"))
        keys = {d.ordering_key for d in await receive(sub, 30)}
        assert keys == {"0", "1", "2"}
    finally:
        await sub.stop()


def _topic_config_resource(topic: str) -> Any:
    # Not re-exported by aiokafka.admin in 0.14.
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    return ConfigResource(ConfigResourceType.TOPIC, topic)


async def test_a_bad_topic_config_is_a_backend_error_naming_the_topic(channel: KafkaBackend) -> None:
    topic = unique_name("bad")
    with pytest.raises(BackendError, match=topic):
        await channel.ensure_topic(TopicSpec(topic, config={"retention.ms": "not-a-number"}))
    with pytest.raises(BackendError, match="replication"):
        await channel.ensure_topic(TopicSpec(unique_name("bad"), replication_factor=3))


async def test_unreachable_kafka_fails_fast_with_backend_error() -> None:
    nobody = free_port()
    channel = KafkaBackend(KafkaSettings(bootstrap_servers=f"127.0.0.1:{nobody}"))
    started = time.monotonic()
    with pytest.raises(BackendError, match="unreachable"):
        await channel.start()
    assert time.monotonic() - started < 15
    await channel.stop()


async def test_deleting_a_subscription_forgets_the_groups_offsets(channel: KafkaBackend) -> None:
    topic, group = unique_name("delete"), unique_name("g")
    await channel.ensure_topic(TopicSpec(topic))
    sub = channel.open_reader(topic, group)
    await sub.start()
    await channel.publish(topic, event(1))
    [first] = await receive(sub, 1)
    await first.ack()
    # While its consumer still runs the group cannot go: not an error, Kafka's retention removes it.
    await channel.delete_group(topic, group)
    await sub.stop()
    await channel.publish(topic, event(2))

    await channel.delete_group(topic, group)
    await channel.delete_group(topic, group)  # gone already: fine

    # A group of the same name is a new Trigger now: it starts at the end, as Knative's new Triggers do,
    # instead of resuming at event 2 where the deleted group had stopped.
    sub = channel.open_reader(topic, group)
    await sub.start()
    try:
        await channel.publish(topic, event(3))
        assert ids(await receive(sub, 1)) == ["id-3"]
        await nothing_within(sub, 1.0)
    finally:
        await sub.stop()


async def test_a_second_member_takes_over_partitions_without_losing_unacked_records(channel: KafkaBackend) -> None:
    topic, group = unique_name("rebalance"), unique_name("g")
    await channel.ensure_topic(TopicSpec(topic, partitions=2))
    first = channel.open_reader(topic, group)
    await first.start()
    by_partition = await _spread(channel, topic, first, 8)
    # Each partition: its first record delivered, the rest still in flight when a second dispatcher joins.
    unacked: set[str] = set()
    for records in by_partition.values():
        await records[0].ack()
        unacked |= set(ids(records[1:]))

    seen_first: set[str] = set()
    seen_second: set[str] = set()
    all_back = asyncio.Event()

    async def pump(sub: Reader, into: set[str]) -> None:
        while True:
            into |= set(ids(list(await sub.receive(10))))
            if (seen_first | seen_second) >= unacked:
                all_back.set()

    second = channel.open_reader(topic, group)
    pumps = [asyncio.create_task(pump(first, seen_first))]
    try:
        await second.start()
        pumps.append(asyncio.create_task(pump(second, seen_second)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_back.wait(), 30)
        await asyncio.sleep(1.0)  # room for anything that should not come back
        # The partitions were split: the revoked one's unacked records reached the new member, the kept
        # one's came back to the old member, and no acked record was delivered again.
        assert seen_first | seen_second == unacked
        assert seen_second, "the second member got no partition"
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        await second.stop()
        await first.stop()


async def test_a_dead_broker_fails_publish_in_bounded_time_and_recovers_after_restart(
    private_kafka: Any, tmp_path: Path
) -> None:
    settings = KafkaSettings(bootstrap_servers=private_kafka.bootstrap, request_timeout_ms=3000)
    channel = KafkaBackend(settings)
    await channel.start()
    topic, group = unique_name("outage"), unique_name("g")
    try:
        await channel.ensure_topic(TopicSpec(topic))
        sub = channel.open_reader(topic, group)
        await sub.start()
        await channel.publish(topic, event(1))
        [before] = await receive(sub, 1)
        await before.ack()

        private_kafka.kill()
        started = time.monotonic()
        with pytest.raises(BackendError, match=topic):
            await channel.publish(topic, event(2))
        assert time.monotonic() - started < 10, "a dead broker must be a quick 503, not a hang"

        # The same data dir and port: the broker comes back with its topics and the group's offsets.
        restarted = kafka_launcher().start(private_kafka.data_dir)
        try:
            assert restarted.bootstrap == private_kafka.bootstrap
            await publish_until_accepted(channel, topic, event(3), within=60.0, pause=0.5)
            got = await receive(sub, 1, timeout=60.0)
            assert ids(got) == ["id-3"]
            await got[0].ack()
            stopping = time.monotonic()
            await sub.stop()
            assert time.monotonic() - stopping < 10
        finally:
            restarted.kill()
    finally:
        await channel.stop()


async def test_stopping_a_subscription_with_the_broker_gone_does_not_hang(private_kafka: Any) -> None:
    channel = KafkaBackend(KafkaSettings(bootstrap_servers=private_kafka.bootstrap, commit_timeout_s=2.0))
    await channel.start()
    topic = unique_name("gone")
    try:
        await channel.ensure_topic(TopicSpec(topic))
        sub = channel.open_reader(topic, unique_name("g"))
        await sub.start()
        await channel.publish(topic, event(1))
        [delivery] = await receive(sub, 1)
        private_kafka.kill()
        await delivery.ack()
        started = time.monotonic()
        await sub.stop()
        assert time.monotonic() - started < 15
    finally:
        await channel.stop()


async def _made_again(channel: KafkaBackend, spec: TopicSpec) -> None:
    """Delete the topic behind the reader's back and create it anew once Kafka has let the old one go."""
    await channel.delete_topic(spec.name)
    deadline = time.monotonic() + 30
    while not await channel.missing_topics([spec.name]):
        assert time.monotonic() < deadline, f"{spec.name} still listed 30s after its deletion"
        await asyncio.sleep(0.2)
    await channel.ensure_topic(spec)


async def test_a_topic_deleted_and_made_again_is_read_from_its_start(channel: KafkaBackend) -> None:
    # Issue 9, defect 6: control's resync recreates a Broker's vanished topic and the ingress answers 202
    # again; the Trigger's consumer lost its partition with the old topic, Kafka dropped the group's
    # offsets with it, and a reset to "latest" skipped what was published before the consumer came back.
    spec = TopicSpec(unique_name("again"), partitions=2)
    await channel.ensure_topic(spec)
    sub = channel.open_reader(spec.name, unique_name("g"))
    await sub.start()
    try:
        await channel.publish(spec.name, event(0))
        [before] = await receive(sub, 1)
        await before.ack()
        await asyncio.sleep(1.0)  # committed past it
        await _made_again(channel, spec)
        for i in range(1, 11):
            await publish_until_accepted(channel, spec.name, event(i, partitionkey=f"key-{i}"))
        got = await receive(sub, 10, timeout=45.0)
        assert sorted(ids(got), key=lambda x: int(x[3:])) == [f"id-{i}" for i in range(1, 11)]
        for d in got:
            await d.ack()
        await nothing_within(sub, 1.0)
    finally:
        await sub.stop()


async def test_a_committed_offset_past_the_end_of_the_log_reads_the_log_from_its_start(
    channel: KafkaBackend, kafka_bootstrap: str,
) -> None:
    # A group whose position lies beyond its partition's end (the topic was made again or truncated while
    # its dispatcher was down) gets the events that log holds, instead of jumping to its end past them.
    topic, group = unique_name("past-end"), unique_name("g")
    await channel.ensure_topic(TopicSpec(topic))
    for i in (1, 2):
        await channel.publish(topic, event(i))
    stale = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await stale.start()
    try:
        stale.assign([TopicPartition(topic, 0)])
        await stale.commit({TopicPartition(topic, 0): 1000})
    finally:
        await stale.stop()
    sub = channel.open_reader(topic, group)
    await sub.start()
    try:
        assert ids(await receive(sub, 2)) == ["id-1", "id-2"]
    finally:
        await sub.stop()


async def test_partitions_added_to_a_topic_are_read_from_their_start(
    channel: KafkaBackend, kafka_bootstrap: str,
) -> None:
    # An added partition has no committed offset: by the time the consumer is assigned it (its next
    # metadata refresh), records may already be there, and they are the group's to read.
    topic = unique_name("grown")
    await channel.ensure_topic(TopicSpec(topic))
    sub = channel.open_reader(topic, unique_name("g"))
    await sub.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await admin.create_partitions({topic: NewPartitions(total_count=2)})
        deadline = time.monotonic() + 30
        while 1 not in await producer.partitions_for(topic):
            assert time.monotonic() < deadline, "the producer never saw the new partition"
            await producer.client.force_metadata_update()
        value, key, headers = encode(event(1))
        await producer.send_and_wait(topic, value=value, key=key, headers=headers, partition=1)
        [got] = await receive(sub, 1, timeout=30.0)
        assert (ids([got]), got.ordering_key) == (["id-1"], "1")
    finally:
        await producer.stop()
        await admin.close()
        await sub.stop()


# ---- keyless records appended to one open batch per partition (channels/kafka_batches.py)

async def test_concurrent_keyless_events_share_batches_and_each_caller_gets_its_own_acknowledgement(
    channel: KafkaBackend,
) -> None:
    topic, group = unique_name("batched"), unique_name("g")
    await channel.ensure_topic(TopicSpec(topic, partitions=3))
    sub = channel.open_reader(topic, group)
    await sub.start()
    try:
        await channel.publish(topic, event(0))  # the topic's metadata: from here on Nerve picks the partition
        callers = [asyncio.ensure_future(channel.publish(topic, event(i))) for i in range(1, 41)]
        await asyncio.sleep(0)  # every record appended, no acknowledgement yet
        callers[5].cancel()  # a caller that goes away cancels its own wait, not its batch's
        results = await asyncio.gather(*callers, return_exceptions=True)
        assert isinstance(results[5], asyncio.CancelledError)
        assert [r for i, r in enumerate(results) if i != 5] == [None] * 39
        got = await receive(sub, 41)
    finally:
        await sub.stop()
    assert sorted(ids(got)) == sorted(f"id-{i}" for i in range(41))  # the cancelled one was stored all the same
    assert all(m.event.data == event(int(str(m.event.attributes["id"])[3:])).data for m in got)


async def test_a_record_too_large_for_a_request_is_refused_alone(kafka_bootstrap: str) -> None:
    channel = KafkaBackend(KafkaSettings(bootstrap_servers=kafka_bootstrap, max_request_size=20_000))
    await channel.start()
    topic = unique_name("large")
    try:
        await channel.ensure_topic(TopicSpec(topic, partitions=1))
        await channel.publish(topic, event(0))
        small = [asyncio.ensure_future(channel.publish(topic, event(i))) for i in range(1, 6)]
        with pytest.raises(BackendError, match="maximum request size"):
            await channel.publish(topic, Event(event(9).attributes, b"x" * 30_000))
        assert await asyncio.gather(*small) == [None] * 5  # it never joined their batch
    finally:
        await channel.stop()


async def test_stopping_with_batches_in_flight_leaves_no_caller_waiting(kafka_bootstrap: str) -> None:
    channel = KafkaBackend(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    await channel.start()
    topic = unique_name("stopping")
    await channel.ensure_topic(TopicSpec(topic, partitions=2))
    await channel.publish(topic, event(0))
    callers = [asyncio.ensure_future(channel.publish(topic, event(i))) for i in range(1, 200)]
    await asyncio.sleep(0)
    await channel.stop()
    results = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 10)
    assert all(r is None or isinstance(r, BackendError) for r in results), results
