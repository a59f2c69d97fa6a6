"""One read of a Broker's topic for many Triggers: each Trigger gets exactly what its filter matches, a
Trigger added mid-stream changes nothing for the others, and a slow subscriber holds no other back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from core.bounded import awaiting
from dispatcher.settings import DispatcherSettings
from tests.support.launchers import backend_params
from tests.support.manifests import BROKER, trigger
from tests.support.receiver import Answer, Receiver
from tests.support.stack import Stack, event, eventually, running_stack

# Each Trigger's filter, and which of the events below it matches (by type and source).
FILTERS: dict[str, dict[str, Any]] = {
    "legacy-a": {"filter": {"attributes": {"type": "a"}}},
    "exact-b": {"filters": [{"exact": {"type": "b"}}]},
    "source-x": {"filter": {"attributes": {"source": "/x"}}},
    "prefix": {"filters": [{"prefix": {"type": "c"}}]},
    "cesql": {"filters": [{"cesql": "type = 'a' AND source = '/x'"}]},
    "everything": {},
}


def _matches(name: str, type_: str, source: str) -> bool:
    return {
        "legacy-a": type_ == "a",
        "exact-b": type_ == "b",
        "source-x": source == "/x",
        "prefix": type_.startswith("c"),
        "cesql": type_ == "a" and source == "/x",
        "everything": True,
        "newcomer": type_ == "b",
    }[name]


def _shape(i: int) -> tuple[str, str]:
    return ("a", "b", "cat", "d")[i % 4], ("/x", "/y", "/z")[i % 3]


async def test_each_trigger_gets_what_it_matches_and_one_added_mid_stream_changes_nothing_for_the_others(
        stack: Stack) -> None:
    receivers = {name: Receiver() for name in [*FILTERS, "newcomer"]}
    for receiver in receivers.values():
        await receiver.start()
    try:
        await stack.apply(BROKER, *(trigger(name, receivers[name].url, **spec) for name, spec in FILTERS.items()))
        sent: list[int] = []
        after_ready: list[int] = []
        ready = asyncio.Event()

        async def produce() -> None:
            for i in range(240):
                type_, source = _shape(i)
                assert await stack.send("/ns1/default", event(i, type_=type_, source=source)) == 202
                sent.append(i)
                if ready.is_set():
                    after_ready.append(i)
                await asyncio.sleep(0)

        producing = asyncio.create_task(produce())
        await eventually(lambda: len(sent) >= 80)
        await stack.apply(trigger("newcomer", receivers["newcomer"].url, filters=[{"exact": {"type": "b"}}]))
        ready.set()
        await producing
        for name in FILTERS:
            expected = [str(i) for i in sent if _matches(name, *_shape(i))]
            await receivers[name].wait_for(len(expected))
        for receiver in receivers.values():
            await receiver.settle()
        for name in FILTERS:
            expected = [str(i) for i in sent if _matches(name, *_shape(i))]
            assert sorted(receivers[name].ids, key=int) == expected, name  # none lost, none twice
        newcomer = receivers["newcomer"].ids
        assert len(newcomer) == len(set(newcomer))
        assert {str(i) for i in after_ready if _matches("newcomer", *_shape(i))} <= set(newcomer)
        assert all(_matches("newcomer", *_shape(int(i))) for i in newcomer)
    finally:
        for receiver in receivers.values():
            with contextlib.suppress(Exception):
                await receiver.stop()


@pytest.fixture(params=backend_params("kafka"))
async def small_backlog(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    """Kafka, with a backlog of 20 events per Trigger before a slow one reads on alone."""
    unique = uuid.uuid4().hex[:8]
    async with running_stack(
        tmp_path, backend="kafka", kafka_bootstrap=str(request.getfixturevalue("kafka_bootstrap")),
        topic_template=f"t{unique}-{{namespace}}-{{name}}", consumer_group_template=f"g{unique}-{{namespace}}-{{name}}",
        dispatcher=DispatcherSettings(drain_timeout_s=2.0, max_inflight=5, fanout_backlog=20),
    ) as s:
        yield s


async def test_a_slow_subscriber_holds_no_other_back_and_loses_nothing(
        small_backlog: Stack, caplog: pytest.LogCaptureFixture) -> None:
    stack = small_backlog
    fast = Receiver()
    slow = Receiver(lambda index, event: Answer(delay_s=0.02))
    await fast.start()
    await slow.start()
    try:
        with caplog.at_level(logging.INFO, logger="nerve"):
            await stack.apply(BROKER, trigger("fast", fast.url), trigger("slow", slow.url))
            ids = [str(i) for i in range(400)]
            for start in range(0, 400, 20):  # over a second or two, so the reader reads many batches
                await asyncio.gather(*(stack.send("/ns1/default", event(i)) for i in ids[start:start + 20]))
                await asyncio.sleep(0.05)
            await fast.wait_for(400, timeout=30)
            # The fast one got everything while the slow one (5 at a time, 20 ms each: 1.6 s) still works.
            assert len(slow.ids) < 400
            await slow.wait_for(400, timeout=60)
            await fast.settle()
            await slow.settle()
            assert sorted(fast.ids, key=int) == ids
            assert set(slow.ids) == set(ids)  # at least once: detaching may repeat what was in flight
            assert any("reads on alone" in r.getMessage() for r in caplog.records)
            # Caught up, it comes back to the shared reader and is fed from it again.
            await eventually(lambda: any("back on the shared reader" in r.getMessage() for r in caplog.records),
                             timeout=20)
            # Its own reader still runs while the switch drains it, and may deliver this one itself: wait for
            # the event by its id (counting arrivals from after the send raced with that delivery, which
            # is how this test failed in CI), then once the switch is over, for one the shared reader feeds.
            assert await stack.send("/ns1/default", event("after")) == 202
            try:
                await eventually(lambda: "after" in slow.ids, timeout=20)
                await eventually(lambda: not any(t.get_name().startswith("rejoin-") and not t.done()
                                                 for t in asyncio.all_tasks()), timeout=20)
                assert await stack.send("/ns1/default", event("after-rejoined")) == 202
                await eventually(lambda: "after-rejoined" in slow.ids, timeout=20)
            except AssertionError:
                # Once in CI it got nothing more: say where the dispatcher's tasks wait (it runs in this process).
                tasks = "\n".join(f"  {t.get_name()}: {awaiting(t)}" for t in asyncio.all_tasks() if not t.done())
                raise AssertionError(f"slow got nothing after it came back (its ids end {slow.ids[-3:]}); fast has "
                                     f"{len(fast.ids)}; tasks:\n"
                                     f"{tasks}") from None
            await fast.wait_for(402)
        print(f"\nslow subscriber: {len(slow.ids) - len(set(slow.ids))} duplicates of 400")
    finally:
        await fast.stop()
        await slow.stop()


@pytest.fixture(params=backend_params("kafka"))
async def kafka_stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Stack, str]]:
    unique = uuid.uuid4().hex[:8]
    bootstrap = str(request.getfixturevalue("kafka_bootstrap"))
    async with running_stack(
        tmp_path, backend="kafka", kafka_bootstrap=bootstrap,
        topic_template=f"t{unique}-{{namespace}}-{{name}}", consumer_group_template=f"g{unique}-{{namespace}}-{{name}}",
    ) as s:
        yield s, bootstrap


async def test_a_topic_made_again_under_the_shared_reader_is_read_from_its_start(
        kafka_stack: tuple[Stack, str], receiver: Receiver) -> None:
    """Deleted behind Nerve's back after events went through (control's resync makes it again): the new
    log's offsets start below what was read, and an event answered 202 on it must still arrive. (Here the
    reader usually sees the partition go and come back, a rebalance that reads each Trigger's position
    afresh; one that kept the partition sees offsets go back without a seek and starts the new log.)"""
    stack, bootstrap = kafka_stack
    await stack.apply(BROKER, trigger("t", receiver.url))
    for i in range(5):
        assert await stack.send("/ns1/default", event(i)) == 202
    await receiver.wait_for(5)
    topic = (await stack.get("brokers", "ns1", "default"))["status"]["annotations"]["nerve.dev/topic"]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()
    deadline = asyncio.get_running_loop().time() + 30
    while await stack.send("/ns1/default", event("after")) != 202:  # 503 until the topic is back
        assert asyncio.get_running_loop().time() < deadline, "the topic was never made again"
        await asyncio.sleep(0.5)
    await eventually(lambda: "after" in receiver.ids, timeout=30)
