"""Live changes while events flow: the contract changes without losing or duplicating events."""

from __future__ import annotations

import asyncio
import contextlib

from tests.support.manifests import BROKER, trigger
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event, eventually


async def test_adding_a_trigger_while_events_flow_loses_and_duplicates_nothing(stack: Stack) -> None:
    steady, newcomer = Receiver(), Receiver()
    await steady.start()
    await newcomer.start()
    try:
        await stack.apply(BROKER, trigger("steady", steady.url))
        sent: list[str] = []
        after_ready: list[str] = []
        newcomer_ready = asyncio.Event()

        async def produce() -> None:
            for i in range(300):
                assert await stack.send("/ns1/default", event(i)) == 202
                sent.append(str(i))
                if newcomer_ready.is_set():
                    after_ready.append(str(i))
                await asyncio.sleep(0)

        producer = asyncio.create_task(produce())
        await eventually(lambda: len(sent) >= 100)
        await stack.apply(trigger("newcomer", newcomer.url))
        newcomer_ready.set()
        await stack.apply(trigger("steady", steady.url, delivery={"retry": 2}))  # an in-place update too
        await producer
        await steady.wait_for(300)
        await steady.settle()
        assert sorted(steady.ids, key=int) == sent
        await eventually(lambda: set(after_ready) <= set(newcomer.ids))
        await newcomer.settle()
        assert len(newcomer.ids) == len(set(newcomer.ids))
    finally:
        with contextlib.suppress(Exception):
            await steady.stop()
            await newcomer.stop()
