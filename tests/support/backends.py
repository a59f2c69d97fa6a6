"""What the backend tests (tests/integration/test_kafka_backend.py, test_nats_backend.py) share: names
of their own, numbered events, and reading a Reader as a dispatcher would, with a deadline; and for the
fan-out's tests, a Trigger that delivers nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

import pytest

from channels.base import Backend, Message, Reader
from core.delivery.metrics import TargetMetrics
from core.errors import BackendError
from core.events import Event
from core.filters.build import compile_trigger_filter


def unique_name(prefix: str) -> str:
    """A topic or group name no other test (or earlier run against the same server) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def event(i: int, *, source: str = "/backend-test", **extensions: str) -> Event:
    """Event `id-<i>` with a payload that names it too."""
    return Event(
        {"specversion": "1.0", "id": f"id-{i}", "source": source, "type": "dev.nerve.test", **extensions},
        f"payload {i}".encode(),
    )


def ids(messages: Sequence[Message]) -> list[str]:
    return [str(m.event.attributes["id"]) for m in messages]


async def receive(reader: Reader, count: int, timeout: float = 30.0) -> list[Message]:
    """Exactly `count` messages (fails the test when they have not all come within `timeout`)."""
    got: list[Message] = []

    async def loop() -> None:
        while len(got) < count:
            got.extend(await reader.receive(count - len(got)))

    try:
        await asyncio.wait_for(loop(), timeout)
    except TimeoutError:
        pytest.fail(f"{len(got)} of {count} messages within {timeout:g}s: {ids(got)}")
    return got


async def nothing_within(reader: Reader, seconds: float = 2.0) -> None:
    """Fails the test when anything (a redelivery) arrives within `seconds`."""
    try:
        extra = await asyncio.wait_for(reader.receive(10), seconds)
    except TimeoutError:
        return
    pytest.fail(f"unexpected delivery: {ids(extra)}")


async def publish_until_accepted(backend: Backend, topic: str, message: Event, within: float = 30.0,
                                 pause: float = 0.1) -> int:
    """Publish as a producer that gets 503s would: retry until accepted; returns how often it was refused."""
    refused = 0
    deadline = time.monotonic() + within
    while True:
        try:
            await backend.publish(topic, message)
            return refused
        except BackendError as exc:
            refused += 1
            if time.monotonic() > deadline:
                pytest.fail(f"{message.id} still refused after {within:g}s: {exc}")
            await asyncio.sleep(pause)


class FanoutSubscriber:
    """A Trigger as the fan-out sees it (dispatcher.fanout.Subscriber), matching every event, that delivers
    nothing: whatever it is handed stays in its Inbox. `overflows` counts the times it was sent to read alone."""

    def __init__(self, group: str, since: float | None = None) -> None:
        self.group = group
        self.since = since
        self.filter = compile_trigger_filter(None, None)
        self.requirements: dict[str, str] = {}
        self.target_metrics = TargetMetrics(("fanout-test", "broker", group))
        self.overflows = 0

    def overflowed(self) -> None:
        self.overflows += 1
