"""nerve_dispatcher_consumer_lag as an operator watches a Trigger fall behind and catch up: on Kafka and
NATS it counts the events stored that the Trigger has not acked; the memory backend serves no series."""

from __future__ import annotations

import asyncio
import re

from tests.support.manifests import broker, trigger
from tests.support.receiver import Answer, Receiver
from tests.support.stack import Stack, event, eventually

SERIES = re.compile(r'^nerve_dispatcher_consumer_lag\{broker_name="default",namespace_name="lag",'
                    r'trigger_name="slow"\} (\S+)$', re.MULTILINE)


async def _lag(stack: Stack) -> float | None:
    async with stack.session.get(stack.api + "/metrics") as response:
        found = SERIES.search(await response.text())
    return float(found.group(1)) if found else None


async def test_lag_counts_unacked_events_until_the_trigger_catches_up(stack: Stack) -> None:
    release = asyncio.Event()

    async def slow(index: int, _: object) -> Answer:
        await release.wait()
        return Answer(202)

    subscriber = Receiver(slow)
    await subscriber.start()
    try:
        await stack.apply(broker("default", "lag"), trigger("slow", subscriber.url, namespace="lag"))
        for i in range(5):
            assert await stack.send("/lag/default", event(f"l{i}")) == 202
        await subscriber.wait_for(5)
        if stack.nerve.settings.backend == "memory":
            assert await _lag(stack) is None
            return
        await eventually(lambda: _is(stack, 5.0), timeout=15)
        release.set()
        await eventually(lambda: _is(stack, 0.0), timeout=15)
    finally:
        release.set()
        await subscriber.stop()


async def _is(stack: Stack, expected: float) -> bool:
    return await _lag(stack) == expected
