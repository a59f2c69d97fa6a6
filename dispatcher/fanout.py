"""Read once, fan out: one reader per topic in this dispatcher process, every Trigger fed from it.

A `Fanout` reads its topic through the backend's SharedReader (channels.base.FanoutBackend) and puts
each event to the Triggers that can match it: a FilterIndex (core/filters/index.py) looks up the
event's exact attributes, so only Triggers filed under its `type`/`source`/... values, and those with
no exact value to file under, run their filter. A match is taken by the Trigger's Cursor (its own
progress and commits) and put in the Trigger's Inbox, from which core.delivery.Consumer delivers with
its window and ordered lanes as before.

One slow subscriber never holds back the others: the reader never waits for one Trigger's Inbox. A
Trigger with more than `backlog` events waiting is detached (it goes on alone through its own Reader
from its own committed position, and comes back when caught up: dispatcher/egress.py) on a backend
where it can (`SharedReader.resumable`, Kafka). The memory backend keeps no history to go on from; there
a slow Trigger is bounded, as before, by the backend's capacity (every event stays held until each
Trigger that took it acked it) and a full backend answers 503. The reader waits only when every Trigger
is past the backlog: then there is no one to hold back. Triggers that are all behind together (each
with at least half the backlog waiting) stay too, up to twice the backlog (`held_back`).

`nerve_dispatcher_filtered_out` counts, per Trigger, the events it was offered and did not take, added
up once a second rather than per event and Trigger (that per-event work is what the index saves).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

from channels.base import Backend, Cursor, FanoutBackend, Message, Reader, SharedReader, shared_reader_group
from core.delivery import metrics
from core.delivery.metrics import TargetMetrics
from core.errors import BackendError
from core.filters import EventFilter
from core.filters.index import FilterIndex
from core.supervisor import Supervisor

log = logging.getLogger("nerve.dispatcher")

FETCH_RECORDS = 500
"""Records asked of the shared reader at once."""
FLUSH_S = 1.0
ATTACH_PAUSE_S = 2.0
"""How long the reader waits, at most, for Triggers attaching at once before it reads on (`_wait_for_room`)."""


class Inbox:
    """One Trigger's events taken from the shared reader, waiting for its Consumer (FIFO)."""

    __slots__ = ("_closed", "_items", "_ready", "_room", "bound")

    def __init__(self, bound: int, room: asyncio.Event) -> None:
        self.bound = bound
        self._items: deque[Message] = deque()
        self._ready = asyncio.Event()
        self._room = room
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        return len(self._items) > self.bound

    def put(self, message: Message) -> None:
        self._items.append(message)
        self._ready.set()

    async def receive(self, max_records: int) -> list[Message]:
        """core.delivery.Consumer's `receive`: at least one message, `[]` once closed."""
        items = self._items
        while not items and not self._closed:
            self._ready.clear()
            await self._ready.wait()
        if self._closed:
            return []
        batch = [items.popleft() for _ in range(min(max_records, len(items)))]
        if len(items) <= self.bound:
            self._room.set()
        return batch

    def close(self) -> list[Message]:
        """No more receiving; what was still waiting (never delivered, never acked) is handed back."""
        self._closed = True
        self._ready.set()
        rest = list(self._items)
        self._items.clear()
        return rest


def held_back(waiting: int, least: int, backlog: int) -> bool:
    """Whether a Trigger with `waiting` events (past `backlog`) holds the others back, given the fewest
    that any attached Trigger of the fan-out (itself included) has waiting: then it goes on alone.

    Not while every Trigger is past the backlog: the reader waits for room, nobody is held back. Not
    while every Trigger has at least half the backlog waiting: they are behind together, this process
    being what is slow, and reading alone would read the topic once more per Trigger for nothing (in
    the comparator's 10-Trigger scenario 8 of 10 Triggers went alone that way); a Trigger that gets to
    twice the backlog goes alone all the same, so memory stays bounded."""
    if waiting <= backlog or least > backlog:
        return False
    return waiting > 2 * backlog or 2 * least < backlog


class Subscriber(Protocol):
    """What the fan-out needs of a Trigger's egress (dispatcher.egress.EgressRunner)."""

    @property
    def group(self) -> str: ...

    @property
    def since(self) -> float | None: ...

    @property
    def filter(self) -> EventFilter: ...

    @property
    def requirements(self) -> dict[str, str]: ...

    @property
    def target_metrics(self) -> TargetMetrics: ...

    def overflowed(self) -> None:
        """Its Inbox passed the backlog and it left the fan-out: it goes on with its own reader."""
        ...


class _Entry:
    """One attached Trigger, as the index files it: its filter is read once per generation."""

    __slots__ = ("cursor", "errors", "filter", "flushed", "inbox", "seen_base", "subscriber", "taken")

    def __init__(self, subscriber: Subscriber, cursor: Cursor, inbox: Inbox, seen: int) -> None:
        self.subscriber = subscriber
        self.cursor = cursor
        self.inbox = inbox
        self.filter = subscriber.filter
        self.seen_base = seen
        self.taken = 0
        self.errors = 0
        self.flushed = 0


class Fanout:
    def __init__(self, reader: SharedReader, name: str, *, backlog: int, on_empty: Callable[[Fanout], None]) -> None:
        self.name = name
        self._reader = reader
        self._backlog = backlog
        self._on_empty = on_empty
        self._entries: dict[int, _Entry] = {}
        self._index: FilterIndex[_Entry] = FilterIndex(())
        self._dirty = False
        self._room = asyncio.Event()
        self._attaching = 0
        """Attaches in flight: a dispatcher's start (or a contract adding many Triggers) attaches them all at
        once, and the reader waits until they are in (`_wait_for_room`)."""
        self._attaching_since = 0.0
        """When the attaches in flight began (the count went up from 0): the reader waits ATTACH_PAUSE_S from
        then at most, however often it asks, so one attach that hangs never stalls it again and again."""
        self._seen = 0
        self._started: asyncio.Task[None] | None = None
        self._supervisor = Supervisor(name, self._loop)
        self._flusher: asyncio.Task[None] | None = None
        self.index_builds = 0
        """How often the index was built (a contract change that adds one Trigger builds it once)."""

    async def ready(self) -> None:
        """Started (once, by whoever asks first); BackendError when the reader could not start."""
        if self._started is None:
            self._started = asyncio.create_task(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        await self._reader.start()
        self._supervisor.start()
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"fanout-flush-{self.name}")

    def __len__(self) -> int:
        return len(self._entries)

    async def attach(self, subscriber: Subscriber) -> tuple[Cursor, Inbox]:
        if not self._attaching:
            self._attaching_since = asyncio.get_running_loop().time()
        self._attaching += 1
        try:
            cursor = await self._reader.attach(subscriber.group, since=subscriber.since)
        finally:
            self._attaching -= 1
            self._room.set()
        inbox = Inbox(self._backlog, self._room)
        self._entries[id(subscriber)] = _Entry(subscriber, cursor, inbox, self._seen)
        self.reindex()
        return cursor, inbox

    def open_alone(self, group: str, *, since: float | None) -> Reader:
        """The Reader a Trigger that left for being slow reads on with (SharedReader.open_alone)."""
        return self._reader.open_alone(group, since=since)

    def leave(self, subscriber: Subscriber) -> None:
        """Stop feeding it (at once, between two records). Its Inbox stays as it is: the caller closes it,
        lets what it has in flight finish, then calls `release` with its cursor to commit."""
        entry = self._entries.pop(id(subscriber), None)
        if entry is not None:
            entry.cursor.leave()
            self._flush(entry)
            self.reindex()

    def reindex(self) -> None:
        """A Trigger came, went or changed its filter: the index is built again from the compiled filters
        before the next record is matched (once for a generation that changed many Triggers)."""
        self._dirty = True
        self._room.set()

    def index(self) -> FilterIndex[_Entry]:
        if self._dirty:
            self._dirty = False
            for entry in self._entries.values():
                entry.filter = entry.subscriber.filter
            self._index = FilterIndex((entry, entry.subscriber.requirements) for entry in self._entries.values())
            self.index_builds += 1
        return self._index

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self._supervisor.stop()
        started = self._started
        if started is not None and started.done() and not started.cancelled() and started.exception() is None:
            await self._reader.stop()

    async def _wait_for_room(self) -> None:
        # Wait only when no Trigger could take more: reading on would hold no one back, but grow memory.
        # And while Triggers attach (up to ATTACH_PAUSE_S): reading a backlog for the first ones in fills
        # their Inboxes while the rest are still fetching their offsets; each later one then makes the
        # reader go back, and once it reads past where the first ones were, those pass twice the backlog
        # and go to read alone (bench/bench_dispatch.py counted 5-9 of 10 at every start with a backlog).
        loop = asyncio.get_running_loop()
        while True:
            if self._attaching:
                pause_until = self._attaching_since + ATTACH_PAUSE_S
                if loop.time() < pause_until:
                    self._room.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout_at(pause_until):
                            await self._room.wait()
                    continue
            if self._entries and not all(e.inbox.full for e in self._entries.values()):
                return
            self._room.clear()
            await self._room.wait()

    async def _loop(self) -> None:
        reader = self._reader
        over: dict[int, _Entry] = {}
        while True:
            await self._wait_for_room()
            self._supervisor.ok()
            try:
                records = await reader.receive(FETCH_RECORDS)
            except BackendError as exc:
                log.warning("%s: receive failed, retrying: %s", self.name, exc)
                await asyncio.sleep(1.0)
                continue
            if not records:
                continue
            index = self.index()
            self._seen += len(records)
            for record in records:
                attributes = record.event.attributes
                for entry in index.candidates(attributes):
                    try:
                        matched = entry.filter.matches(attributes)
                    except Exception:
                        log.exception("%s: filter failed on event %s, dropped", entry.subscriber.group, record.event.id)
                        entry.subscriber.target_metrics.dropped(metrics.FILTER_ERROR).inc()
                        entry.errors += 1
                        continue
                    if matched:
                        message = entry.cursor.take(record)
                        if message is not None:
                            entry.taken += 1
                            inbox = entry.inbox
                            inbox.put(message)
                            if len(inbox) > inbox.bound:
                                over[id(entry)] = entry
            reader.done()
            if over and reader.resumable:
                self._detach_the_slow([e for e in over.values() if e.inbox.full])
                over.clear()

    def _detach_the_slow(self, slow: list[_Entry]) -> None:
        # Those that went past the backlog in this batch (found while putting: no pass over every Trigger).
        if not slow or not self._entries:
            return
        least = min(len(e.inbox) for e in self._entries.values())
        for entry in slow:
            if not held_back(len(entry.inbox), least, self._backlog):
                continue
            log.warning("%s: %d events wait for delivery (more than %d): it reads on alone until it caught up",
                        entry.subscriber.group, len(entry.inbox), self._backlog)
            # Out of the index at once; the Trigger detaches itself (drain, commit, own reader) off this loop.
            self.leave(entry.subscriber)
            entry.subscriber.overflowed()

    async def release(self, cursor: Cursor) -> None:
        """A Trigger that left: its last commit, once its deliveries in flight were done."""
        await self._reader.detach(cursor)
        if not self._entries:
            self._on_empty(self)

    def _flush(self, entry: _Entry) -> None:
        refused = self._seen - entry.seen_base - entry.taken
        if refused > entry.flushed:
            entry.subscriber.target_metrics.filtered_out.inc(refused - entry.flushed)
            entry.flushed = refused

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            for entry in list(self._entries.values()):
                self._flush(entry)


class Fanouts:
    """This process's Fanouts, one per backend connection and topic, made on first use and stopped when
    their last Trigger leaves."""

    def __init__(self, backlog: int) -> None:
        self._backlog = backlog
        self._fanouts: dict[tuple[int, str], Fanout] = {}
        self._retired: set[asyncio.Task[None]] = set()

    @staticmethod
    def shares(channel: Backend) -> bool:
        return isinstance(channel, FanoutBackend)

    def get(self, channel: Backend, topic: str, part: str) -> Fanout:
        """`part` names it in logs, /readyz and nerve_supervised_restarts_total: Broker/<ns>/<name>."""
        key = (id(channel), topic)
        fanout = self._fanouts.get(key)
        if fanout is None:
            assert isinstance(channel, FanoutBackend)
            # One name per topic: every dispatcher process reading it shares its partitions through it.
            reader = channel.open_shared_reader(topic, shared_reader_group(topic))
            fanout = self._fanouts[key] = Fanout(reader, part, backlog=self._backlog,
                                                 on_empty=lambda f: self._empty(key, f))
        return fanout

    def _empty(self, key: tuple[int, str], fanout: Fanout) -> None:
        if self._fanouts.get(key) is fanout:
            del self._fanouts[key]
            task = asyncio.create_task(fanout.stop())
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)

    def forget(self, channel: Backend, topic: str, fanout: Fanout) -> None:
        """A reader that never started is not kept for the next attempt."""
        key = (id(channel), topic)
        if self._fanouts.get(key) is fanout and not len(fanout):
            del self._fanouts[key]

    async def stop(self) -> None:
        fanouts = list(self._fanouts.values())
        self._fanouts.clear()
        await asyncio.gather(*(f.stop() for f in fanouts), *self._retired, return_exceptions=True)
