"""A Kafka topic read once for many Triggers, each with its own consumer group's offsets (FanoutBackend).

One AIOKafkaConsumer per dispatcher process and topic joins a group of its own (`name`, one per Broker
topic) only to share the topic's partitions with other dispatcher processes; it never commits there.
Each Trigger's progress is a Cursor: per assigned partition, the offsets handed to it and not yet acked,
and the first offset it still needs. What a Trigger acked is committed to *its own* consumer group with
a standalone OffsetCommit (generation -1, no member: the group has no members while the shared reader
serves it), so `kafka-consumer-groups --describe --group <trigger group>` shows its offsets and lag as
before, and a restart resumes each Trigger where it was.

Positions: when partitions are assigned, each Trigger's committed offsets are fetched (OffsetFetch) and
the partition is read from the smallest; a Trigger skips records below its own position. A group that
never committed is a new Trigger's and starts as `open_reader` starts one (the first record stored since
its Trigger was made, else the end), committed at once. A Trigger attached later whose position is
behind what was already read makes the reader go back (a seek); the others, which saw those records
already, skip them, so none of their deliveries is repeated.

A Trigger's committable offset on a partition is its first unacked record, or, with none outstanding,
the reader's position there (records it did not want count as done). Commits go every
`commit_interval_s` for a Trigger that took a record since its last commit, and every IDLE_COMMIT_S for
one that only moved past records it did not want: a thousand Triggers would otherwise be a thousand
OffsetCommit requests per interval, and re-reading records a Trigger does not want after a crash costs
a lookup, never a delivery.

A topic deleted and made again under a member that kept its partitions shows as offsets going back
without a seek: every Trigger then reads the new log from its start (as the per-Trigger reader does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.commit import OffsetCommitRequest

from channels.base import Cursor, Message, Reader, Record, SharedReader
from channels.kafka import KafkaSettings, _describe, consumer_options, decode, open_group_reader
from core.errors import BackendError, InvalidEvent
from core.events import Event

log = logging.getLogger("nerve.channels.kafka")

IDLE_COMMIT_S = 10.0
"""How often a Trigger that took nothing commits the position it moved to (see the module doc)."""
COMMITS_AT_ONCE = 32
"""OffsetCommit / OffsetFetch requests in flight at once (one per Trigger group)."""

AdminFactory = Callable[[], Awaitable[AIOKafkaAdminClient]]


class _Track:
    """One Trigger's position on one partition."""

    __slots__ = ("acked", "committed", "floor", "live", "outstanding")

    def __init__(self, floor: int, committed: int | None) -> None:
        self.floor = floor
        """The first offset this Trigger still needs: records below it are not handed to it."""
        self.committed = committed
        self.outstanding: deque[int] = deque()
        self.acked: set[int] = set()
        self.live = True

    def hand_out(self, offset: int) -> None:
        self.outstanding.append(offset)
        self.floor = offset + 1

    def ack(self, offset: int) -> None:
        if not self.live:
            return  # the partition moved to another member, or the Trigger left: its owner redelivers
        self.acked.add(offset)
        outstanding = self.outstanding
        while outstanding and outstanding[0] in self.acked:
            self.acked.discard(outstanding.popleft())

    def committable(self, at: int) -> int:
        return self.outstanding[0] if self.outstanding else max(self.floor, at)


class _SharedRecord(Record):
    __slots__ = ("_event", "offset", "partition")

    def __init__(self, partition: int, offset: int, event: Event) -> None:
        self.partition = partition
        self.offset = offset
        self._event = event

    @property
    def event(self) -> Event:
        return self._event

    @property
    def ordering_key(self) -> str:
        return str(self.partition)


class _CursorMessage(Message):
    __slots__ = ("_record", "_track")

    def __init__(self, track: _Track, record: _SharedRecord) -> None:
        self._track = track
        self._record = record

    @property
    def event(self) -> Event:
        return self._record.event

    @property
    def ordering_key(self) -> str:
        return self._record.ordering_key

    async def ack(self) -> None:
        self._track.ack(self._record.offset)


class _KafkaCursor(Cursor):
    def __init__(self, reader: KafkaSharedReader, group: str, since_ms: int | None) -> None:
        self._reader = reader
        self._group = group
        self.since_ms = since_ms
        self.tracks: dict[int, _Track] = {}
        self.took = False
        """Took a record since its last commit: commit at the next interval, not the idle one."""
        self.last_commit = time.monotonic()
        self.left: dict[int, int] | None = None
        """The read position when it left the fan-out (`leave`); None while it is fed."""

    @property
    def group(self) -> str:
        return self._group

    def _read_to(self) -> dict[int, int]:
        """Per partition, how far every record was offered to it: the reader's position while it is fed,
        the position it had at `leave` after. The reader reads on for the other Triggers until this one
        detaches (its deliveries in flight take a while), and committing that later position would skip,
        for good, the records it was never offered (an event lost at every dispatcher stop)."""
        return self._reader.at if self.left is None else self.left

    def leave(self) -> None:
        if self.left is None:
            self.left = dict(self._reader.at)

    def take(self, record: Record) -> Message | None:
        if not isinstance(record, _SharedRecord):
            return None
        track = self.tracks.get(record.partition)
        if track is None or record.offset < track.floor:
            return None
        track.hand_out(record.offset)
        self.took = True
        return _CursorMessage(track, record)

    def offsets(self, only: set[int] | None = None) -> dict[int, int]:
        """What to commit: per partition, the committable offset where it moved since the last commit."""
        at = self._read_to()
        found = {}
        for partition, track in self.tracks.items():
            if only is not None and partition not in only:
                continue
            offset = track.committable(at.get(partition, track.floor))
            if offset != track.committed:
                found[partition] = offset
        return found

    def lag(self) -> int | None:
        total, known = 0, False
        at = self._read_to()
        for partition, track in self.tracks.items():
            end = self._reader.highwater(partition)
            if end is None:
                continue
            total, known = total + max(end - track.committable(at.get(partition, track.floor)), 0), True
        return total if known else None


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, reader: KafkaSharedReader) -> None:
        self._reader = reader

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._reader.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._reader.partitions_assigned(assigned)


class KafkaSharedReader(SharedReader):
    def __init__(self, settings: KafkaSettings, topic: str, name: str, admin: AdminFactory) -> None:
        self._settings = settings
        self._topic = topic
        self._name = name
        self._admin = admin
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=name,
            enable_auto_commit=False,
            # Positions are always set by a seek on assignment; "earliest" only answers an offset out of
            # range (a truncated or recreated log), where "latest" would skip accepted events.
            auto_offset_reset="earliest",
            **consumer_options(settings),
        )
        self._cursors: dict[str, _KafkaCursor] = {}
        self.at: dict[int, int] = {}
        """Per assigned partition, one past the last record offered to every cursor (the read position)."""
        self._fetched: dict[int, int] = {}
        self._assigned: set[int] = set()
        self._coordinators: dict[str, int] = {}
        self._limit = asyncio.Semaphore(COMMITS_AT_ONCE)
        self._joined = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def resumable(self) -> bool:
        return True

    def open_alone(self, group: str, *, since: float | None = None) -> Reader:
        # Only the partitions this process holds: the group's own consumer, were it to join the group,
        # would be its only member and get every partition, including those another dispatcher process
        # still delivers for the same Trigger from its shared reader (each event twice). A partition that
        # moves to another process while this Trigger reads alone is read by both until it rejoins.
        # Holding none (yet): the group's own consumer, group-managed, as before the shared reader.
        return open_group_reader(self._settings, self._topic, group, since=since,
                                 partitions=frozenset(self._assigned) or None)

    def highwater(self, partition: int) -> int | None:
        end: int | None = self._consumer.highwater(TopicPartition(self._topic, partition))
        return end

    async def start(self) -> None:
        try:
            await self._consumer.start()
            await asyncio.wait_for(self._partitions_known(), min(5.0, self._settings.assignment_timeout_s))
            self._consumer.subscribe([self._topic], listener=_Rebalance(self))
            await asyncio.wait_for(self._joined.wait(), self._settings.assignment_timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            with contextlib.suppress(KafkaError, OSError):
                await self._consumer.stop()
            raise BackendError(f"Kafka reader {self._name!r} on {self._topic!r} did not start: {_describe(exc)}") \
                from None
        self._committer = asyncio.create_task(self._commit_loop(), name=f"kafka-commit-{self._name}")

    async def _partitions_known(self) -> None:
        # As _KafkaReader: join only once the metadata lists the topic's partitions (else no assignment
        # until the next metadata refresh).
        while True:
            cluster = await self._consumer._client.fetch_all_metadata()
            if cluster.available_partitions_for_topic(self._topic):
                return
            await asyncio.sleep(0.1)

    # --- positions -------------------------------------------------------------------------------

    async def _positions(self, cursor: _KafkaCursor, partitions: set[int]) -> dict[int, tuple[int, int | None]]:
        """Per partition, where `cursor` starts and what its group has committed (None: nothing yet)."""
        if not partitions:
            return {}
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        async with self._limit:
            admin = await self._admin()
            committed = await admin.list_consumer_group_offsets(cursor.group, partitions=tps)
        found: dict[int, tuple[int, int | None]] = {}
        new: list[TopicPartition] = []
        for tp in tps:
            meta = committed.get(tp)
            if meta is not None and meta.offset >= 0:
                found[tp.partition] = (meta.offset, meta.offset)
            else:
                new.append(tp)
        if new:
            # A new Trigger: the first record stored since it was made, else the end (Knative's default).
            start: dict[int, int] = {}
            if cursor.since_ms is not None:
                times = await self._consumer.offsets_for_times(dict.fromkeys(new, cursor.since_ms))
                start = {tp.partition: t.offset for tp, t in times.items() if t is not None}
            rest = [tp for tp in new if tp.partition not in start]
            if rest:
                ends = await self._consumer.end_offsets(rest)
                start |= {tp.partition: offset for tp, offset in ends.items()}
            # Committed at once, so that a later owner of the partition (or this one after a crash)
            # resumes here instead of positioning the group again past what came between.
            if await self._commit_group(cursor.group, start):
                found |= {p: (offset, offset) for p, offset in start.items()}
            else:
                found |= {p: (offset, None) for p, offset in start.items()}
        return found

    async def _positions_retried(self, cursor: _KafkaCursor, partitions: set[int]) -> dict[int, tuple[int, int | None]]:
        delay = 0.2
        while True:
            try:
                return await self._positions(cursor, partitions)
            except (KafkaError, OSError, TimeoutError) as exc:
                if self._stopped:
                    raise BackendError(f"{cursor.group}: positions not read: {_describe(exc)}") from None
                log.warning("%s: cannot read its positions on %s yet: %s", cursor.group, self._topic, _describe(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _seek(self, partition: int, offset: int) -> None:
        # aiokafka drops whatever it fetched from before the seek (it checks each result against the
        # position), and a seek can only happen while `receive` waits: no record offered is stale.
        self._consumer.seek(TopicPartition(self._topic, partition), offset)
        self.at[partition] = offset

    async def attach(self, group: str, *, since: float | None = None) -> Cursor:
        cursor = _KafkaCursor(self, group, None if since is None else int(since * 1000))
        try:
            while True:
                assigned = set(self._assigned)
                positions = await self._positions(cursor, assigned)
                if assigned == self._assigned:
                    break
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BackendError(f"Kafka consumer group {group!r} on {self._topic!r}: {_describe(exc)}") from None
        for partition, (floor, committed) in positions.items():
            cursor.tracks[partition] = _Track(floor, committed)
        for partition, (floor, _) in positions.items():
            at = self.at.get(partition)
            if at is not None and floor < at:
                # Behind the read position: read it again; the cursors attached now skip what they were
                # offered. Each was offered every record from its floor up to `at` (no further: a record is
                # offered only once read, and an earlier seek back raised each floor the same way), so
                # `at` is where each one goes on. Not the partition's end or the furthest point ever
                # read: a reader that began at the end with no Trigger attached had offered nothing, and
                # raising the floors there skipped every record the Triggers attached before still needed.
                for other in self._cursors.values():
                    track = other.tracks.get(partition)
                    if track is not None and other.left is None:
                        track.floor = max(track.floor, at)
                self._seek(partition, floor)
        self._cursors[group] = cursor
        return cursor

    async def detach(self, cursor: Cursor) -> None:
        if not isinstance(cursor, _KafkaCursor) or self._cursors.get(cursor.group) is not cursor:
            return
        del self._cursors[cursor.group]
        await self._commit_cursor(cursor, cursor.offsets())
        for track in cursor.tracks.values():
            track.live = False

    async def partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        mine = {tp.partition for tp in self._consumer.assignment()}
        new = mine - self._assigned
        self._assigned = mine
        # Not those that left the fan-out: they are offered nothing more, and detach soon.
        cursors = [c for c in self._cursors.values() if c.left is None]
        positions = await asyncio.gather(*(self._positions_retried(c, new) for c in cursors))
        for cursor, found in zip(cursors, positions, strict=True):
            for partition, (floor, committed) in found.items():
                cursor.tracks[partition] = _Track(floor, committed)
        # From every cursor now attached: one that attached while this ran has positions of its own.
        targets: dict[int, int] = {}
        for cursor in self._cursors.values():
            if cursor.left is not None:
                continue
            for partition in new:
                track = cursor.tracks.get(partition)
                if track is not None:
                    targets[partition] = min(targets.get(partition, track.floor), track.floor)
        missing = [TopicPartition(self._topic, p) for p in new if p not in targets]
        if missing:
            # No Trigger yet: the end; the first one attached makes the reader go back if it must.
            ends = await self._consumer.end_offsets(missing)
            targets |= {tp.partition: offset for tp, offset in ends.items()}
        for partition, offset in targets.items():
            self._seek(partition, offset)
        self._joined.set()

    async def partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in revoked}
        await self._commit_all(force=True, only=gone)
        for cursor in self._cursors.values():
            for partition in gone:
                track = cursor.tracks.pop(partition, None)
                if track is not None:
                    track.live = False
        for partition in gone:
            self.at.pop(partition, None)
        self._assigned -= gone

    # --- reading ---------------------------------------------------------------------------------

    async def receive(self, max_records: int) -> Sequence[Record]:
        while not self._stopped:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=max_records)
            except KafkaError as exc:
                raise BackendError(f"Kafka fetch failed: {exc}") from None
            records: list[Record] = []
            fetched: dict[int, int] = {}
            for tp, batch in batches.items():
                partition = tp.partition
                if partition not in self._assigned:
                    continue  # revoked meanwhile: its new owner reads it
                at = self.at.get(partition)
                if batch and at is not None and batch[0].offset < at:
                    self._began_again(partition, batch[0].offset)
                for record in batch:
                    fetched[partition] = record.offset + 1
                    try:
                        event = decode(record.value, record.key, record.headers)
                    except (ValueError, UnicodeDecodeError, InvalidEvent) as exc:
                        log.warning("%s: record %s@%d is not a CloudEvent, skipped: %s", self._name, tp,
                                    record.offset, exc)
                        continue
                    records.append(_SharedRecord(partition, record.offset, event))
            self._fetched = fetched
            if records:
                return records
            self.done()
        return []

    def _began_again(self, partition: int, offset: int) -> None:
        """Offsets only grow on one log, and every seek sets `at`: a smaller one means the topic was deleted
        and made again (or truncated) while this member kept the partition, and the fetch reset to the
        start. Every cursor reads the new log from there; acks of the old log's records go nowhere."""
        log.warning("%s: partition %d of %s began again at offset %d", self._name, partition, self._topic, offset)
        for cursor in self._cursors.values():
            old = cursor.tracks.pop(partition, None)
            if old is not None:
                old.live = False
                if cursor.left is None:  # one that left commits nothing of the new log: it reads it later
                    cursor.tracks[partition] = _Track(offset, None)
        self.at[partition] = offset

    def done(self) -> None:
        for partition, offset in self._fetched.items():
            if partition in self._assigned:
                self.at[partition] = offset
        self._fetched = {}

    # --- commits ---------------------------------------------------------------------------------

    async def _commit_group(self, group: str, offsets: dict[int, int]) -> bool:
        """A standalone OffsetCommit for `group`; False (logged) when it did not happen: only redelivery."""
        if not offsets:
            return True
        request = OffsetCommitRequest(group, OffsetCommitRequest.DEFAULT_GENERATION_ID, "",
                                      OffsetCommitRequest.DEFAULT_RETENTION_TIME,
                                      [(self._topic, [(p, offset, "") for p, offset in sorted(offsets.items())])])
        try:
            async with self._limit:
                admin = await self._admin()
                node = self._coordinators.get(group)
                if node is None:
                    node = self._coordinators[group] = await admin.find_coordinator(group)
                response = await asyncio.wait_for(admin._send_request(request, node), self._settings.commit_timeout_s)
        except (KafkaError, OSError, TimeoutError, BackendError) as exc:
            self._coordinators.pop(group, None)
            log.warning("%s: commit failed: %s", group, _describe(exc))
            return False
        codes = {code for _topic, parts in response.topics for _p, code in parts if code}
        if codes:
            # 25 unknown member / 22 illegal generation: the group has members (a Trigger detached to
            # its own reader in another process); 14-16: the coordinator moved. Retried next time.
            self._coordinators.pop(group, None)
            log.warning("%s: commit refused with error %s", group, ", ".join(map(str, sorted(codes))))
            return False
        return True

    async def _commit_cursor(self, cursor: _KafkaCursor, offsets: dict[int, int]) -> None:
        cursor.took = False
        cursor.last_commit = time.monotonic()
        if not offsets or not await self._commit_group(cursor.group, offsets):
            return
        for partition, offset in offsets.items():
            track = cursor.tracks.get(partition)
            if track is not None:
                track.committed = offset

    async def _commit_all(self, *, force: bool, only: set[int] | None = None) -> None:
        now = time.monotonic()
        jobs = []
        for cursor in list(self._cursors.values()):
            if not force and not cursor.took and now - cursor.last_commit < IDLE_COMMIT_S:
                continue
            offsets = cursor.offsets(only)
            if offsets:
                jobs.append(self._commit_cursor(cursor, offsets))
        await asyncio.gather(*jobs)

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.commit_interval_s)
            await self._commit_all(force=False)

    async def stop(self) -> None:
        self._stopped = True
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer
        await self._commit_all(force=True)
        with contextlib.suppress(KafkaError, OSError):
            await self._consumer.stop()
