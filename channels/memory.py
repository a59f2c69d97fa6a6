"""The in-memory backend (Knative's InMemoryChannel): best effort, bounded, never a silent drop.

Each topic keeps one queue per consumer group. A publish appends the event to every group's queue,
or to none: when any group already holds `capacity` events (queued plus unacked) the publish raises
BackendFull and the ingress answers 503, so the producer knows to retry. Events live in this process
only; a restart loses what was not delivered, as with InMemoryChannel.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from channels.base import Backend, Message, Reader, TopicSpec
from core.errors import BackendError, BackendFull
from core.events import Event

DEFAULT_CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class MemorySettings:
    capacity: int = DEFAULT_CAPACITY
    """Most events one consumer group may hold (queued and unacked) before publishes get 503."""


class _Group:
    __slots__ = ("inflight", "queue", "wakeup")

    def __init__(self) -> None:
        self.queue: deque[Event] = deque()
        self.inflight = 0
        self.wakeup = asyncio.Event()

    @property
    def held(self) -> int:
        return len(self.queue) + self.inflight


class _MemoryMessage(Message):
    __slots__ = ("_acked", "_event", "_group")

    def __init__(self, group: _Group, event: Event) -> None:
        self._group = group
        self._event = event
        self._acked = False

    @property
    def event(self) -> Event:
        return self._event

    @property
    def ordering_key(self) -> str:
        return str(self._event.attributes.get("partitionkey", ""))

    async def ack(self) -> None:
        if not self._acked:
            self._acked = True
            self._group.inflight -= 1

    def requeue(self) -> None:
        if not self._acked:
            self._acked = True
            self._group.inflight -= 1
            self._group.queue.appendleft(self._event)
            self._group.wakeup.set()


class _MemoryReader(Reader):
    def __init__(self, channel: MemoryBackend, topic: str, group: str) -> None:
        self._channel = channel
        self._topic = topic
        self._group_name = group
        self._group: _Group | None = None
        self._stopped = False
        self._outstanding: list[_MemoryMessage] = []

    async def start(self) -> None:
        self._group = self._channel._group(self._topic, self._group_name)

    async def receive(self, max_records: int) -> Sequence[Message]:
        group = self._group
        if group is None:
            raise BackendError("subscription used before start()")
        while not self._stopped and not group.queue:
            group.wakeup.clear()
            await group.wakeup.wait()
        if self._stopped:
            return []
        batch: list[_MemoryMessage] = []
        while group.queue and len(batch) < max_records:
            batch.append(_MemoryMessage(group, group.queue.popleft()))
        group.inflight += len(batch)
        # Keep the batch so stop() can hand back what was never acked.
        self._outstanding = [d for d in self._outstanding if not d._acked]
        self._outstanding.extend(batch)
        return batch

    async def stop(self) -> None:
        self._stopped = True
        for delivery in reversed(self._outstanding):
            delivery.requeue()
        self._outstanding.clear()
        if self._group is not None:
            self._group.wakeup.set()


class MemoryBackend(Backend):
    def __init__(self, settings: MemorySettings | None = None) -> None:
        self._settings = settings or MemorySettings()
        self._topics: dict[str, dict[str, _Group]] = {}

    @property
    def name(self) -> str:
        return "memory"

    @property
    def durable(self) -> bool:
        return False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for groups in self._topics.values():
            for group in groups.values():
                group.wakeup.set()

    async def ensure_topic(self, spec: TopicSpec) -> None:
        self._topics.setdefault(spec.name, {})

    async def delete_topic(self, name: str) -> None:
        for group in self._topics.pop(name, {}).values():
            group.wakeup.set()

    def _group(self, topic: str, group: str) -> _Group:
        groups = self._topics.setdefault(topic, {})
        if group not in groups:
            groups[group] = _Group()
        return groups[group]

    async def publish(self, topic: str, event: Event) -> None:
        groups = self._topics.get(topic)
        if groups is None:
            raise BackendError(f"topic {topic!r} does not exist")
        capacity = self._settings.capacity
        for name, group in groups.items():
            if group.held >= capacity:
                raise BackendFull(
                    f"in-memory channel {topic!r} is full: consumer group {name!r} holds {capacity} events"
                )
        for group in groups.values():
            group.queue.append(event)
            group.wakeup.set()

    def open_reader(self, topic: str, group: str, *, from_start: bool = False) -> Reader:
        # A memory topic keeps no history, so from_start and latest are the same point.
        return _MemoryReader(self, topic, group)

    async def delete_group(self, topic: str, group: str) -> None:
        removed = self._topics.get(topic, {}).pop(group, None)
        if removed is not None:
            removed.wakeup.set()
