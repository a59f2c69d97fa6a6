"""The NATS channel against a real nats-server: what a user of a NATS-backed Broker would notice.

The shared contract suite (tests/contract) covers what every backend does; these tests cover what only
NATS does: a server that goes away and comes back (same port, same store), redelivery of what a dead
consumer held, in-progress marking of what a live one holds through long retries, and pipelined
publishes. Tests that stop or kill a server start a private one with the project's launcher, so the
session server stays up for the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import StreamInfo

from channels.base import TopicSpec
from channels.nats import NatsBackend, NatsSettings, stream_name
from core.errors import BackendError
from core.events import Event
from tests.support.backends import event, nothing_within, publish_until_accepted, receive, unique_name
from tests.support.launchers import free_port, nats_launcher

pytestmark = pytest.mark.nats


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[Any]:
    """A nats-server of this test alone, which it may stop, kill and restart."""
    server = nats_launcher().start(tmp_path / "nats")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def channel(nats_url: str) -> AsyncIterator[NatsBackend]:
    ch = NatsBackend(NatsSettings(url=nats_url))
    await ch.start()
    try:
        yield ch
    finally:
        await ch.stop()


async def test_publish_while_the_server_is_down_fails_fast_and_works_again_after(private_server: Any) -> None:
    channel = NatsBackend(NatsSettings(url=private_server.url, publish_timeout_s=3.0))
    await channel.start()
    topic = unique_name("down")
    try:
        await channel.ensure_topic(TopicSpec(topic))
        await channel.publish(topic, event(0))
        await asyncio.to_thread(private_server.stop)
        for i in range(1, 4):
            started = time.monotonic()
            with pytest.raises(BackendError):
                await channel.publish(topic, event(i))
            took = time.monotonic() - started
            assert took < 4.0, f"a publish to a stopped server took {took:.1f}s to fail"
        with pytest.raises(BackendError):
            await channel.ensure_topic(TopicSpec(unique_name("other")))
        await asyncio.to_thread(private_server.restart)
        await publish_until_accepted(channel, topic, event(99))
        # The stream survived the restart: a group reading from the start finds both accepted events.
        # (A refused publish may still have reached the stream: a 503 asks for a retry, at least once.)
        sub = channel.open_reader(topic, "all", from_start=True)
        await sub.start()
        ids: list[str] = []
        try:
            while "id-99" not in ids:
                ids.extend(d.event.id for d in await asyncio.wait_for(sub.receive(10), 10))
            assert ids[0] == "id-0"
        finally:
            await sub.stop()
    finally:
        await channel.stop()


async def test_start_fails_with_backend_error_when_no_server_listens(tmp_path: Path) -> None:
    port = free_port()
    channel = NatsBackend(NatsSettings(url=f"nats://127.0.0.1:{port}", connect_timeout_s=1.0))
    started = time.monotonic()
    with pytest.raises(BackendError, match="unreachable"):
        await channel.start()
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
async def test_a_server_restart_mid_stream_loses_nothing_and_the_subscription_continues(
    private_server: Any, crash: bool
) -> None:
    channel = NatsBackend(NatsSettings(url=private_server.url))
    await channel.start()
    topic = unique_name("restart")
    seen: list[str] = []
    try:
        await channel.ensure_topic(TopicSpec(topic))
        sub = channel.open_reader(topic, "trigger")
        await sub.start()

        flowing = asyncio.Event()
        flowing.set()
        first_wave = asyncio.Event()

        async def consume() -> None:
            # Receives through the whole outage, as a dispatcher does.
            while True:
                await flowing.wait()
                for delivery in await sub.receive(50):
                    seen.append(delivery.event.id)
                    await delivery.ack()
                if len(set(seen)) >= 200:
                    first_wave.set()

        consumer = asyncio.create_task(consume())
        await asyncio.gather(*(channel.publish(topic, event(i)) for i in range(200)))
        await asyncio.wait_for(first_wave.wait(), 30)
        # The next 100 are stored but not yet consumed when the server goes down.
        flowing.clear()
        await asyncio.sleep(0.2)
        await asyncio.gather(*(channel.publish(topic, event(i)) for i in range(200, 300)))
        await asyncio.to_thread(private_server.restart, crash=crash)
        flowing.set()
        refused = 0
        for i in range(300, 400):
            refused += await publish_until_accepted(channel, topic, event(i))
        everything = {f"id-{i}" for i in range(400)}
        deadline = time.monotonic() + 60
        while not everything <= set(seen):
            missing = sorted(everything - set(seen))
            assert time.monotonic() < deadline, f"never delivered after the restart: {missing[:10]}"
            await asyncio.sleep(0.1)
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await sub.stop()
        print(f"\n{'SIGKILL' if crash else 'SIGTERM'} restart: {len(seen)} deliveries of 400 events "
              f"({len(seen) - 400} redelivered), {refused} publishes refused while reconnecting")
    finally:
        await channel.stop()


async def test_what_a_dead_consumer_held_comes_back_after_the_ack_wait(nats_url: str) -> None:
    settings = NatsSettings(url=nats_url, ack_wait_s=2.0)
    topic = unique_name("dead")
    dead, alive = NatsBackend(settings), NatsBackend(settings)
    await dead.start()
    await alive.start()
    try:
        await dead.ensure_topic(TopicSpec(topic))
        doomed = dead.open_reader(topic, "trigger")
        await doomed.start()
        await asyncio.gather(*(dead.publish(topic, event(i)) for i in range(5)))
        held = await receive(doomed, 5)
        await held[0].ack()
        # A crash: the connection is gone without a NAK (stop() would hand them back at once).
        await dead.connection().close()
        started = time.monotonic()
        survivor = alive.open_reader(topic, "trigger")
        await survivor.start()
        try:
            back = await receive(survivor, 4, timeout=15)
            assert sorted(d.event.id for d in back) == ["id-1", "id-2", "id-3", "id-4"]
            assert time.monotonic() - started >= 1.0, "redelivered before the ack wait"
            for delivery in back:
                await delivery.ack()
            await nothing_within(survivor, 3.0)
        finally:
            await survivor.stop()
    finally:
        await alive.stop()
        await dead.stop()


async def test_a_message_held_through_long_retries_is_not_redelivered_meanwhile(nats_url: str) -> None:
    channel = NatsBackend(NatsSettings(url=nats_url, ack_wait_s=1.5))
    await channel.start()
    topic = unique_name("held")
    try:
        await channel.ensure_topic(TopicSpec(topic))
        holder = channel.open_reader(topic, "trigger")
        other = channel.open_reader(topic, "trigger")
        await holder.start()
        await other.start()
        try:
            await channel.publish(topic, event(1))
            [delivery] = await receive(holder, 1)
            # Four ack waits pass while the dispatcher retries; the other reader of the group gets nothing.
            await nothing_within(other, 6.0)
            await delivery.ack()
            await nothing_within(other, 3.0)
        finally:
            await holder.stop()
            await other.stop()
    finally:
        await channel.stop()


async def test_a_stopped_subscription_hands_back_what_it_held_at_once(channel: NatsBackend) -> None:
    topic = unique_name("handback")
    await channel.ensure_topic(TopicSpec(topic))
    first = channel.open_reader(topic, "trigger")
    await first.start()
    await asyncio.gather(*(channel.publish(topic, event(i)) for i in range(10)))
    held = await receive(first, 10)
    for delivery in held[:3]:
        await delivery.ack()
    # A receive waiting on the server while the subscription stops returns [] instead of hanging.
    waiting = asyncio.create_task(first.receive(10))
    await asyncio.sleep(0.2)
    await first.stop()
    assert await asyncio.wait_for(waiting, 5) == []
    started = time.monotonic()
    second = channel.open_reader(topic, "trigger")
    await second.start()
    try:
        back = await receive(second, 7, timeout=10)
        assert sorted(d.event.id for d in back) == sorted(f"id-{i}" for i in range(3, 10))
        assert time.monotonic() - started < 3.0, "handed back only after the ack wait"
    finally:
        await second.stop()


async def test_2000_concurrent_publishes_are_pipelined(channel: NatsBackend) -> None:
    topic = unique_name("pipeline")
    await channel.ensure_topic(TopicSpec(topic))
    count = 2000
    started = time.perf_counter()
    await asyncio.gather(*(channel.publish(topic, event(i)) for i in range(count)))
    concurrent = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(count, count + 200):
        await channel.publish(topic, event(i))
    sequential = (time.perf_counter() - started) / 200
    print(f"\nNATS publish: {count} concurrent in {concurrent * 1000:.0f} ms = {count / concurrent:,.0f} events/s "
          f"(one awaited at a time: {1 / sequential:,.0f} events/s)")
    sub = channel.open_reader(topic, "count", from_start=True)
    await sub.start()
    try:
        got = await receive(sub, count + 200, timeout=60)
        assert len({d.event.id for d in got}) == count + 200
    finally:
        await sub.stop()


async def test_names_that_nats_forbids_map_to_distinct_streams_and_consumers(channel: NatsBackend) -> None:
    base = unique_name("odd")
    topics = [f"{base}.a b", f"{base}_a*b", f"{base}-a>b"]
    for topic in topics:
        await channel.ensure_topic(TopicSpec(topic))
    subs = [channel.open_reader(topic, "group.with dots") for topic in topics]
    for sub in subs:
        await sub.start()
    try:
        for n, topic in enumerate(topics):
            await channel.publish(topic, event(n))
        for n, sub in enumerate(subs):
            assert [d.event.id for d in await receive(sub, 1)] == [f"id-{n}"]
    finally:
        for sub in subs:
            await sub.stop()
        for topic in topics:
            await channel.delete_topic(topic)


async def test_a_deleted_topic_refuses_publishes(channel: NatsBackend) -> None:
    topic = unique_name("gone")
    await channel.ensure_topic(TopicSpec(topic))
    await channel.ensure_topic(TopicSpec(topic))
    await channel.publish(topic, event(1))
    await channel.delete_topic(topic)
    await channel.delete_topic(topic)
    with pytest.raises(BackendError):
        await channel.publish(topic, event(2))


async def test_what_http_binary_mode_cannot_carry_survives_the_stream(channel: NatsBackend) -> None:
    topic = unique_name("lossless")
    await channel.ensure_topic(TopicSpec(topic))
    sub = channel.open_reader(topic, "reader")
    await sub.start()
    base = {"specversion": "1.0", "source": "/s", "type": "t"}
    sent = [
        Event({**base, "id": "charset", "datacontenttype": 'text/plain; charset="utf-8"'}, b"x"),
        Event({**base, "id": "percent", "datacontenttype": "application/x+json; q=50%"}, b"{}"),
        Event({**base, "id": "type-no-data", "datacontenttype": "application/json"}, None),
        Event({**base, "id": "empty-no-type"}, b""),
        Event({**base, "id": "no-data"}, None),
        Event({**base, "id": "edges", "subject": "  padded  ", "ext": "ü,\"%"}, b"\x00\xff",
              headers={"traceparent": " 00-ab ", "x-request-id": "r-1"}),
    ]
    try:
        for event in sent:
            await channel.publish(topic, event)
        got = {d.event.id: d.event for d in await receive(sub, len(sent))}
        for event in sent:
            back = got[event.id]
            assert back.attributes == event.attributes
            assert back.data == event.data
            assert back.headers == event.headers
    finally:
        await sub.stop()


async def _stream(nats_url: str, topic: str) -> StreamInfo:
    """The stream as nats-server itself reports it (a connection of the test's own, not the backend's)."""
    nc = await nats.connect(nats_url)
    try:
        return await nc.jetstream().stream_info(stream_name(topic))
    finally:
        await nc.close()


ALL_KEYS = {
    "storage": "Memory", "retention": "Interest", "max.age.seconds": "3600", "max.bytes": "1048576",
    "max.msgs": "1000", "max.msg.size": "65536", "discard": "New", "duplicate.window.seconds": "30",
    "max.consumers": "5", "replicas": "1",
}


async def test_each_stream_setting_reaches_the_streams_config(channel: NatsBackend, nats_url: str) -> None:
    # What a NatsJetStreamChannel's spec.stream.config or a NATS Broker's ConfigMap sets, nats-server has.
    topic = unique_name("keys")
    await channel.ensure_topic(TopicSpec(topic, config=ALL_KEYS))
    try:
        config = (await _stream(nats_url, topic)).config
        assert (config.storage, config.retention, config.discard) == ("memory", "interest", "new")
        assert (config.max_age, config.max_bytes, config.max_msgs, config.max_msg_size) == (3600, 1048576, 1000, 65536)
        assert (config.duplicate_window, config.max_consumers, config.num_replicas) == (30, 5, 1)

        # A later reconcile with other limits changes them in place (what JetStream allows to change).
        changed = {**ALL_KEYS, "retention": "limits", "max.msgs": "2000", "max.msg.size": "-1", "discard": "old",
                   "duplicate.window.seconds": "10", "max.consumers": "7", "max.age.seconds": "7200"}
        await channel.ensure_topic(TopicSpec(topic, config=changed))
        config = (await _stream(nats_url, topic)).config
        assert (config.retention, config.discard, config.max_msgs, config.max_msg_size) == ("limits", "old", 2000, -1)
        assert (config.duplicate_window, config.max_consumers, config.max_age) == (10, 7, 7200)
    finally:
        await channel.delete_topic(topic)


@pytest.mark.parametrize(("value", "retention"), [("Limits", "limits"), ("interest", "interest"),
                                                  ("Work", "workqueue"), ("WorkQueue", "workqueue")])
async def test_retention_takes_jetstreams_and_knatives_spellings(
    channel: NatsBackend, nats_url: str, value: str, retention: str,
) -> None:
    topic = unique_name("retention")
    await channel.ensure_topic(TopicSpec(topic, config={"retention": value}))
    try:
        assert (await _stream(nats_url, topic)).config.retention == retention
    finally:
        await channel.delete_topic(topic)


@pytest.mark.parametrize(("key", "value"), [
    ("retention", "fifo"), ("discard", "newest"), ("storage", "disk"),
    ("max.msgs", "ten"), ("max.msgs", "0"), ("max.msgs", "-2"), ("max.bytes", "1.5"),
    ("max.msg.size", str(2**31)), ("max.consumers", "many"),
    ("duplicate.window.seconds", "-1"), ("duplicate.window.seconds", "soon"),
    ("max.age.seconds", "nan"), ("replicas", "0"),
])
async def test_a_bad_stream_setting_fails_naming_the_key(channel: NatsBackend, key: str, value: str) -> None:
    topic = unique_name("bad")
    with pytest.raises(BackendError) as caught:
        await channel.ensure_topic(TopicSpec(topic, config={key: value}))
    assert f"{key!r}" in str(caught.value) and topic in str(caught.value) and repr(value) in str(caught.value)
    assert topic not in await _stream_names(channel)


async def _stream_names(channel: NatsBackend) -> set[str]:
    return {info.config.name or "" for info in await channel.js().streams_info()}


async def test_a_full_stream_that_discards_new_refuses_publishes(channel: NatsBackend) -> None:
    # discard: new turns a full stream into 503s at the ingress instead of silently dropping the oldest.
    topic = unique_name("full")
    await channel.ensure_topic(TopicSpec(topic, config={"max.msgs": "2", "discard": "new"}))
    try:
        await channel.publish(topic, event(1))
        await channel.publish(topic, event(2))
        with pytest.raises(BackendError, match="maximum messages"):
            await channel.publish(topic, event(3))
    finally:
        await channel.delete_topic(topic)


async def test_an_interest_stream_keeps_an_event_until_every_group_acked_it(
    channel: NatsBackend, nats_url: str,
) -> None:
    # Nerve's groups are durable consumers: a Trigger whose dispatcher is away still holds its interest.
    topic = unique_name("interest")
    await channel.ensure_topic(TopicSpec(topic, config={"retention": "interest"}))
    await channel.publish(topic, event(0))  # no group yet: acked, and not kept for anyone
    assert (await _stream(nats_url, topic)).state.messages == 0
    first, second = channel.open_reader(topic, "first"), channel.open_reader(topic, "second")
    await first.start()
    await second.start()
    try:
        await channel.publish(topic, event(1))
        [a] = await receive(first, 1)
        await a.ack()
        await second.stop()  # away, not deleted
        await asyncio.sleep(0.5)
        assert (await _stream(nats_url, topic)).state.messages == 1
        second = channel.open_reader(topic, "second")
        await second.start()
        [b] = await receive(second, 1)
        assert b.event.id == "id-1"
        await b.ack()
        deadline = time.monotonic() + 10
        while (await _stream(nats_url, topic)).state.messages:
            assert time.monotonic() < deadline, "acked by every group, still stored"
            await asyncio.sleep(0.1)
    finally:
        await first.stop()
        await second.stop()
        await channel.delete_topic(topic)


async def test_a_workqueue_stream_takes_one_group_and_refuses_a_second_by_name(channel: NatsBackend) -> None:
    topic = unique_name("work")
    await channel.ensure_topic(TopicSpec(topic, config={"retention": "workqueue"}))
    await channel.publish(topic, event(0))  # nobody took it yet: the first group gets it
    only, another = channel.open_reader(topic, "only"), channel.open_reader(topic, "another")
    await only.start()
    try:
        with pytest.raises(BackendError, match="retention workqueue, which lets one consumer group"):
            await another.start()
        await channel.publish(topic, event(1))
        got = await receive(only, 2)
        assert [d.event.id for d in got] == ["id-0", "id-1"]
    finally:
        await only.stop()
        await another.stop()
        await channel.delete_topic(topic)


async def test_max_consumers_refuses_the_group_past_it_by_name(channel: NatsBackend) -> None:
    topic = unique_name("capped")
    await channel.ensure_topic(TopicSpec(topic, config={"max.consumers": "1"}))
    first, second = channel.open_reader(topic, "first"), channel.open_reader(topic, "second")
    await first.start()
    try:
        with pytest.raises(BackendError, match=r"`max\.consumers`"):
            await second.start()
    finally:
        await first.stop()
        await second.stop()
        await channel.delete_topic(topic)


async def test_retention_cannot_move_to_or_from_workqueue_in_place_and_says_so(
    channel: NatsBackend, nats_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    # JetStream refuses that change on an existing stream; the other settings still change with it.
    topic = unique_name("stays")
    await channel.ensure_topic(TopicSpec(topic, config={"retention": "workqueue"}))
    try:
        with caplog.at_level(logging.WARNING, logger="nerve.channels.nats"):
            await channel.ensure_topic(TopicSpec(topic, config={"retention": "limits", "max.msgs": "50"}))
        config = (await _stream(nats_url, topic)).config
        assert (config.retention, config.max_msgs) == ("workqueue", 50)
        assert "keeps its workqueue retention" in caplog.text
    finally:
        await channel.delete_topic(topic)
