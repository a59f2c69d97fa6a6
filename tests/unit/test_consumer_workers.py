"""The consumer's delivery tasks: at most a window at once, each handed the next message when its delivery
ends, a failing handle costing no later message, and a stop neither held up nor leaving tasks behind."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from core.delivery.consumer import Consumer, Inbound
from core.events import Event


class _Message:
    def __init__(self, n: int) -> None:
        self.event = Event({"specversion": "1.0", "id": f"e-{n}", "source": "/t", "type": "t"}, b"")
        self.ordering_key = ""

    async def ack(self) -> None:
        return None


def _feed(messages: list[_Message]) -> tuple[asyncio.Event, object]:
    exhausted = asyncio.Event()

    async def receive(room: int) -> Sequence[Inbound]:
        if not messages:
            exhausted.set()
            await asyncio.sleep(3600)  # nothing more: the loop waits, as a reader with no records does
        batch, messages[:] = messages[:room], messages[room:]
        return batch

    return exhausted, receive


async def test_at_most_a_window_delivers_at_once_and_every_message_is_delivered() -> None:
    _, receive = _feed([_Message(n) for n in range(50)])
    running, most, done, all_done = 0, 0, [], asyncio.Event()

    async def handle(message: Inbound) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001 * (int(message.event.id[2:]) % 3))
        running -= 1
        done.append(message.event.id)
        if len(done) == 50:
            all_done.set()

    consumer = Consumer("t", receive, handle, window=4, ordered=lambda: False)  # type: ignore[arg-type]
    consumer.start()
    await asyncio.wait_for(all_done.wait(), 5)
    await consumer.stop(1.0)
    assert most == 4
    assert sorted(done) == sorted(f"e-{n}" for n in range(50))


async def test_a_failing_delivery_is_logged_and_the_messages_after_it_are_delivered(
        caplog: pytest.LogCaptureFixture) -> None:
    _, receive = _feed([_Message(n) for n in range(10)])
    done, nine = [], asyncio.Event()

    async def handle(message: Inbound) -> None:
        await asyncio.sleep(0)
        if message.event.id == "e-3":
            raise RuntimeError("boom")
        done.append(message.event.id)
        if len(done) == 9:
            nine.set()

    consumer = Consumer("t", receive, handle, window=2, ordered=lambda: False)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="nerve.delivery"):
        consumer.start()
        await asyncio.wait_for(nine.wait(), 5)
        await consumer.stop(1.0)
    assert "e-3" not in done and len(set(done)) == 9
    assert any("handling event e-3 failed" in r.getMessage() for r in caplog.records)


async def test_stopped_with_nothing_in_flight_it_ends_at_once_and_leaves_no_task_running() -> None:
    exhausted, receive = _feed([_Message(n) for n in range(30)])

    async def handle(_: Inbound) -> None:
        await asyncio.sleep(0.001)

    before = asyncio.all_tasks()
    consumer = Consumer("t", receive, handle, window=8, ordered=lambda: False)  # type: ignore[arg-type]
    consumer.start()
    await exhausted.wait()
    await asyncio.sleep(0.05)  # every delivery over: its task now waits for the next message
    loop = asyncio.get_running_loop()
    started = loop.time()
    await consumer.stop(5.0)
    assert loop.time() - started < 1.0  # the waiting tasks end; they do not sit out the drain timeout
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert left == []
