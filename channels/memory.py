"""The in-memory backend (Knative's InMemoryChannel): best effort, bounded, never a silent drop.

Each topic keeps one queue per consumer group. A publish appends the event to every group's queue,
or to none. It raises BackendFull (the ingress answers 503, so the producer knows to retry) when
storing it would take the backend past `memory_limit` bytes (events held by any group, queued or
unacked, each counted once however many groups hold it), or any group of the topic past `capacity`
events. A batch (`publish_all`) is checked whole before any event is stored: all or nothing.

Why a full Trigger refuses its whole Broker: every event is queued for every Trigger of the Broker
before any filter runs (filters are the dispatcher's), so the backend cannot tell which Trigger an
event is for. The 503 names the full consumer group. Events live in this process only; a restart loses
what was not delivered, as with InMemoryChannel.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from channels.base import Backend, Cursor, FanoutBackend, Message, Reader, Record, SharedReader, TopicSpec
from core.errors import BackendError, BackendFull
from core.events import Event
from core.settings import setting

DEFAULT_CAPACITY = 10_000
DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024
EVENT_OVERHEAD_BYTES = 512
"""What one held event costs beyond its data, attributes and headers (the objects around them)."""


@dataclass(frozen=True, slots=True)
class MemorySettings:
    memory_limit: int = setting(
        DEFAULT_MEMORY_LIMIT, "--memory-limit", "NERVE_MEMORY_LIMIT",
        "Bytes of events the memory backend holds in all (queued or unacked, each event counted once); "
        "past it the ingress answers 503.", minimum=1)
    capacity: int = DEFAULT_CAPACITY
    """Most events one consumer group may hold (queued and unacked) before publishes get 503."""


def held_size(event: Event) -> int:
    """An estimate of the bytes an event keeps alive while it is held."""
    size = EVENT_OVERHEAD_BYTES + len(event.data or b"")
    size += sum(len(k) + len(str(v)) for k, v in event.attributes.items())
    return size + sum(len(k) + len(v) for k, v in event.headers.items())


class _Held:
    """One stored event and how many groups still hold it; its bytes are freed when the last lets go."""

    __slots__ = ("event", "refs", "size")

    def __init__(self, event: Event, size: int, refs: int) -> None:
        self.event = event
        self.size = size
        self.refs = refs


class _Group:
    __slots__ = ("backend", "deleted", "inflight", "queue", "wakeup")

    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend
        self.deleted = False
        self.queue: deque[_Held] = deque()
        self.inflight = 0
        self.wakeup = asyncio.Event()

    @property
    def held(self) -> int:
        return len(self.queue) + self.inflight

    def release_queued(self) -> None:
        """The group is gone: what it still queued is no longer held on its behalf."""
        self.deleted = True
        for held in self.queue:
            self.backend._release(held)
        self.queue.clear()
        self.wakeup.set()


class _MemoryMessage(Message):
    __slots__ = ("_acked", "_group", "_held")

    def __init__(self, group: _Group, held: _Held) -> None:
        self._group = group
        self._held = held
        self._acked = False

    @property
    def event(self) -> Event:
        return self._held.event

    @property
    def ordering_key(self) -> str:
        return str(self._held.event.attributes.get("partitionkey", ""))

    async def ack(self) -> None:
        self.done()

    def done(self) -> None:
        if not self._acked:
            self._acked = True
            self._group.inflight -= 1
            self._group.backend._release(self._held)

    def requeue(self) -> None:
        if not self._acked:
            self._acked = True
            self._group.inflight -= 1
            if self._group.deleted:
                self._group.backend._release(self._held)
                return
            self._group.queue.appendleft(self._held)
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


class _SharedRecord(Record):
    """One event of the shared group, held until the reader and every group that took it let go."""

    __slots__ = ("_message", "refs")

    def __init__(self, message: _MemoryMessage) -> None:
        self._message = message
        self.refs = 1  # the reader's own, until `done()`

    @property
    def event(self) -> Event:
        return self._message.event

    @property
    def ordering_key(self) -> str:
        return self._message.ordering_key

    def release(self) -> None:
        self.refs -= 1
        if self.refs == 0:
            self._message.done()


class _FannedMessage(Message):
    __slots__ = ("_acked", "_cursor", "_record")

    def __init__(self, cursor: _MemoryCursor, record: _SharedRecord) -> None:
        self._cursor = cursor
        self._record = record
        self._acked = False

    @property
    def event(self) -> Event:
        return self._record.event

    @property
    def ordering_key(self) -> str:
        return self._record.ordering_key

    async def ack(self) -> None:
        self.release()

    def release(self) -> None:
        if not self._acked:
            self._acked = True
            self._cursor.outstanding.discard(self)
            self._record.release()


class _MemoryCursor(Cursor):
    __slots__ = ("_group", "detached", "outstanding")

    def __init__(self, group: str) -> None:
        self._group = group
        self.outstanding: set[_FannedMessage] = set()
        self.detached = False

    @property
    def group(self) -> str:
        return self._group

    def take(self, record: Record) -> Message | None:
        if self.detached or not isinstance(record, _SharedRecord):
            return None
        record.refs += 1
        message = _FannedMessage(self, record)
        self.outstanding.add(message)
        return message

    def lag(self) -> int | None:
        return None

    def leave(self) -> None:
        # Nothing is committed here: what it holds is let go of at detach (release_all).
        pass

    def release_all(self) -> None:
        """The group left: what it still held is no longer held on its behalf (best effort, as ever)."""
        self.detached = True
        for message in list(self.outstanding):
            message.release()


class _MemorySharedReader(SharedReader):
    """One memory group read for many Triggers: an event stays held (and counts against the backend's
    capacity and memory limit) until every Trigger that took it acked it, which is what bounds a slow one."""

    def __init__(self, backend: MemoryBackend, topic: str, name: str) -> None:
        self._reader = _MemoryReader(backend, topic, name)
        self._last: list[_SharedRecord] = []
        self.cursors: list[_MemoryCursor] = []
        """The groups reading through it: a full channel's refusal names the one holding the most."""

    @property
    def resumable(self) -> bool:
        return False

    def open_alone(self, group: str, *, since: float | None = None) -> Reader:
        raise BackendError("the memory backend keeps no history: a Trigger cannot read on alone")

    async def start(self) -> None:
        await self._reader.start()

    async def attach(self, group: str, *, since: float | None = None) -> Cursor:
        cursor = _MemoryCursor(group)
        self.cursors.append(cursor)
        return cursor

    async def detach(self, cursor: Cursor) -> None:
        if isinstance(cursor, _MemoryCursor):
            cursor.release_all()
            if cursor in self.cursors:
                self.cursors.remove(cursor)

    async def receive(self, max_records: int) -> Sequence[Record]:
        messages = await self._reader.receive(max_records)
        self._last = [_SharedRecord(m) for m in messages if isinstance(m, _MemoryMessage)]
        return self._last

    def done(self) -> None:
        for record in self._last:
            record.release()
        self._last = []

    async def stop(self) -> None:
        await self._reader.stop()


class MemoryBackend(Backend, FanoutBackend):
    def __init__(self, settings: MemorySettings | None = None) -> None:
        self._settings = settings or MemorySettings()
        self._topics: dict[str, dict[str, _Group]] = {}
        self._shared: dict[tuple[str, str], _MemorySharedReader] = {}
        self.held_bytes = 0
        """Bytes of the events held now (queued or unacked in any group), each counted once."""

    def _release(self, held: _Held) -> None:
        held.refs -= 1
        if held.refs == 0:
            self.held_bytes -= held.size

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
            group.release_queued()
        for key in [k for k in self._shared if k[0] == name]:
            del self._shared[key]

    def _group(self, topic: str, group: str) -> _Group:
        groups = self._topics.setdefault(topic, {})
        if group not in groups:
            groups[group] = _Group(self)
        return groups[group]

    async def publish(self, topic: str, event: Event) -> None:
        await self.publish_all(topic, [event])

    async def publish_all(self, topic: str, events: Sequence[Event]) -> None:
        """Store every event of `events` for every group of `topic`, or none of them (BackendFull)."""
        groups = self._topics.get(topic)
        if groups is None:
            raise BackendError(f"topic {topic!r} does not exist")
        if not groups:
            return  # no Trigger yet: nothing holds the events, as a Knative channel without subscribers
        capacity = self._settings.capacity
        for name, group in groups.items():
            if group.held + len(events) > capacity:
                holder = self._holder(topic, name)
                if holder is not None:
                    raise BackendFull(
                        f"in-memory channel {topic!r} is full: consumer group {holder[0]!r} holds {holder[1]} "
                        f"of {capacity} events unacknowledged (read through {name!r}, which holds {group.held})"
                    )
                raise BackendFull(
                    f"in-memory channel {topic!r} is full: consumer group {name!r} holds {group.held} of "
                    f"{capacity} events"
                )
        sizes = [held_size(event) for event in events]
        limit = self._settings.memory_limit
        if self.held_bytes + sum(sizes) > limit:
            fullest = max(groups, key=lambda n: groups[n].held)
            raise BackendFull(
                f"in-memory backend is full: it holds {self.held_bytes} of {limit} bytes (--memory-limit); "
                f"consumer group {fullest!r} of {topic!r} holds {groups[fullest].held} events"
            )
        for event, size in zip(events, sizes, strict=True):
            held = _Held(event, size, len(groups))
            self.held_bytes += size
            for group in groups.values():
                group.queue.append(held)
        for group in groups.values():
            group.wakeup.set()

    def open_reader(self, topic: str, group: str, *, from_start: bool = False, since: float | None = None) -> Reader:
        # A memory topic keeps no history, so from_start, since and latest are the same point (and
        # embedded, the dispatcher subscribes before the ingress routes: nothing comes before it).
        return _MemoryReader(self, topic, group)

    def open_shared_reader(self, topic: str, name: str) -> SharedReader:
        reader = self._shared[(topic, name)] = _MemorySharedReader(self, topic, name)
        return reader

    def _holder(self, topic: str, name: str) -> tuple[str, int] | None:
        """For the group a shared reader reads: the Trigger's group holding the most of its events (what
        a user has to look at), with how many; None for a group of its own."""
        reader = self._shared.get((topic, name))
        if reader is None or not reader.cursors:
            return None
        fullest = max(reader.cursors, key=lambda c: len(c.outstanding))
        return fullest.group, len(fullest.outstanding)

    async def delete_group(self, topic: str, group: str) -> None:
        removed = self._topics.get(topic, {}).pop(group, None)
        self._shared.pop((topic, group), None)
        if removed is not None:
            removed.release_queued()
