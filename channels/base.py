"""The backend seam: the Protocols every storage backend (memory, Kafka, NATS) implements.

Names here never collide with Knative's kinds: a *Backend* is one connection to a store, a *topic*
holds the events of one Broker or Channel, and a *Reader* reads a topic as one consumer group (one
per Trigger or Subscription). Each group sees every event once, and within a group a *Message*
counts as done only when `Message.ack()` is called, after the subscriber answered 2xx or the
event went to the dead-letter sink. Durable backends redeliver whatever was not acked when a process
dies; the memory backend is best effort, as Knative's InMemoryChannel is.

A *SharedReader* (FanoutBackend) reads a topic once for many groups, each keeping its own progress
through a *Cursor*: the dispatcher reads a Broker's topic once however many Triggers it has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from core.events import Event


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """What a topic should look like; backend-specific knobs travel in `config`."""

    name: str
    partitions: int = 1
    replication_factor: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Message(Protocol):
    """One event handed to one consumer group."""

    @property
    def event(self) -> Event: ...

    @property
    def ordering_key(self) -> str:
        """Events that share this key are kept in order when the egress asks for ordered delivery."""
        ...

    async def ack(self) -> None:
        """The event is done for this group (delivered or dead-lettered); called at most once."""
        ...


@runtime_checkable
class Lagging(Protocol):
    """A reader that knows, from what it has already fetched, how far its group is behind."""

    def lag(self) -> int | None:
        """Events stored on the topic that the group has not acked (delivered or given up on) yet; None
        while it cannot tell (nothing fetched so far). Read at scrape time: no I/O."""
        ...


@runtime_checkable
class Reader(Protocol):
    """A consumer group reading one topic."""

    async def start(self) -> None: ...

    async def receive(self, max_records: int) -> Sequence[Message]:
        """Wait for at least one delivery and return up to `max_records`; `[]` once stopped."""
        ...

    async def stop(self) -> None:
        """Stop reading; unacked deliveries come back to the group later on durable backends."""
        ...


@runtime_checkable
class Record(Protocol):
    """One event a SharedReader read once for every consumer group attached to it."""

    @property
    def event(self) -> Event: ...

    @property
    def ordering_key(self) -> str: ...


@runtime_checkable
class Cursor(Protocol):
    """One consumer group's own progress through what a SharedReader reads (a Trigger's offsets)."""

    @property
    def group(self) -> str: ...

    def take(self, record: Record) -> Message | None:
        """This group's message for `record`, whose ack counts for this group alone; None when the group
        needs no delivery of it (it committed past it before, or was handed it already)."""
        ...

    def lag(self) -> int | None:
        """As `Lagging.lag`, for this group alone."""
        ...

    def leave(self) -> None:
        """No record will be offered to it any more (its Trigger left the fan-out; `detach` follows once its
        deliveries in flight are done). What it commits from now on covers only what it was offered: the
        reader reads on for the others meanwhile, and a record it was never offered is still its to get."""
        ...


@runtime_checkable
class SharedReader(Protocol):
    """A topic read once for many consumer groups (the dispatcher's Broker reader, dispatcher/fanout.py).

    Each attached group keeps its own position, committed as that group's own (Kafka: its consumer
    group's offsets), so a restart resumes every group where it was and none depends on another's
    progress: a record is delivered to a group unless that group committed past it. `receive` hands out
    each record once; the caller offers it to every cursor (`Cursor.take`, or not at all: a group
    that does not want it moves past it), then calls `done()`.
    """

    @property
    def resumable(self) -> bool:
        """True when a group can leave (`detach`) and read on from its own committed position with its
        own Reader: a durable backend. The memory backend keeps no history, so it is False there and a
        slow group is bounded by the backend's own capacity instead."""
        ...

    async def start(self) -> None: ...

    async def attach(self, group: str, *, since: float | None = None) -> Cursor:
        """Start tracking `group` from its committed position (a new group: as `Backend.open_reader`
        positions one). The reader goes back if the group is behind what it already read."""
        ...

    async def detach(self, cursor: Cursor) -> None:
        """Commit what the group acked and stop tracking it; its unacked records come back to it later."""
        ...

    def open_alone(self, group: str, *, since: float | None = None) -> Reader:
        """A Reader of `group` alone, from its committed position, over what this shared reader reads and
        no more (Kafka: the partitions this process holds, so a group detached in one dispatcher process
        does not also read the partitions another process still delivers for it). Only when `resumable`."""
        ...

    async def receive(self, max_records: int) -> Sequence[Record]:
        """Wait for records (at least one, up to `max_records`); `[]` once stopped."""
        ...

    def done(self) -> None:
        """Every record of the last `receive` was offered to every attached cursor."""
        ...

    async def stop(self) -> None: ...


def shared_reader_group(topic: str) -> str:
    """The consumer group through which every dispatcher process reading `topic` for many Triggers
    shares its partitions (nothing is committed there). Named in the backend seam because deleting the
    topic deletes this group too, and control, which deletes topics, knows no dispatcher."""
    return f"nerve-dispatcher.{topic}"


@runtime_checkable
class FanoutBackend(Protocol):
    """A backend whose topics can be read once for many consumer groups."""

    def open_shared_reader(self, topic: str, name: str) -> SharedReader:
        """A reader of `topic` for this process; `name` is what it joins to share the topic's partitions
        with other dispatcher processes (Kafka: a consumer group of its own that never commits)."""
        ...


@runtime_checkable
class Backend(Protocol):
    """One backend connection: topics, publishing and readers (consumer groups)."""

    @property
    def name(self) -> str:
        """The registry name: memory, kafka or nats."""
        ...

    @property
    def durable(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ensure_topic(self, spec: TopicSpec) -> None:
        """Create the topic if missing; raise BackendError when the backend cannot."""
        ...

    async def delete_topic(self, name: str) -> None: ...

    async def publish(self, topic: str, event: Event) -> None:
        """Return only once the backend holds the event; raise BackendError (503) otherwise.

        Concurrent calls must share round trips (producer batches, pipelined publishes): a caller
        awaits only its own acknowledgement.
        """
        ...

    def open_reader(self, topic: str, group: str, *, from_start: bool = False, since: float | None = None) -> Reader:
        """A reader for `group`. A new group starts at the end of the topic, or with the first event stored
        at or after `since` (epoch seconds: when its Trigger or Subscription was made, so events accepted
        while no dispatcher ran yet are not skipped), or at the start with `from_start`. An existing
        group keeps its position. A backend that keeps no history (memory) starts at the end."""
        ...

    async def delete_group(self, topic: str, group: str) -> None:
        """Forget a consumer group (its Trigger was deleted)."""
        ...


@runtime_checkable
class RecordBackend(Protocol):
    """A backend whose topics may hold records that are not CloudEvents (KafkaSource reads them)."""

    def open_record_reader(
        self, topic: str, group: str, *, from_start: bool, source: str, overrides: Mapping[str, str]
    ) -> Reader:
        """Like `Backend.open_reader`, but records that are not CloudEvents are wrapped into events whose
        source is `source#<topic>`; every event gets the `overrides` extensions."""
        ...


@runtime_checkable
class TopicInspector(Protocol):
    """A backend that can say which topics exist (control probes a KafkaSource's cluster with it)."""

    async def missing_topics(self, topics: Sequence[str]) -> list[str]:
        """Those of `topics` the cluster does not have; BackendError when the cluster does not answer."""
        ...


@runtime_checkable
class AtomicBatch(Protocol):
    """A backend that stores a batch of events whole or not at all (the memory backend); the ingress
    uses it for a batch request so that a 503 means none of the batch was stored."""

    async def publish_all(self, topic: str, events: Sequence[Event]) -> None:
        """Store every event or none (BackendFull, BackendError)."""
        ...


@runtime_checkable
class TypeFilteredBackend(Protocol):
    """A backend whose server can leave out, per consumer group, the events of other types (NATS: events
    are published to a subject per type and a group's consumer filters on one): the group is never sent
    what its Trigger's exact `type` filter would drop."""

    def open_typed_reader(self, topic: str, group: str, event_type: str, *, from_start: bool = False,
                          since: float | None = None) -> Reader:
        """Like `Backend.open_reader`, for a group that wants only events of `event_type`; the caller still
        runs its whole filter on what arrives. An existing group's filter follows `event_type`."""
        ...
