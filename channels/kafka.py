"""The Kafka backend (aiokafka): one topic per Broker, one consumer group per Trigger, manual commits.

Storage: CloudEvents Kafka *binary* content mode as the cloudevents SDK's Kafka binding writes it: `ce_`
headers, `content-type`, data as the record value, the `partitionkey` extension as the record key.
`encode` writes the binding's record itself (byte for byte, tests/unit/test_kafka_codec.py: the loop
costs a third of reaching the binding's); `decode` reads through the binding. The SDK's JSON format
would parse and re-serialize JSON payloads, so the binding is given a format that passes bytes through
untouched. An event without data is a record with an empty value and no content type, read back as "no
data" (as HTTP binary mode reads it). Pass-through transport headers ride along as `nerve_h_<name>`
record headers.

Publishing: one shared producer, acks=all; each caller awaits only its own record's acknowledgement
while concurrent callers share batches (records that arrive while a produce request is in flight go
out together in the next one). Keyless records stay on one partition until 16 KiB went to it, as Kafka's
Java producer does (channels/kafka_sticky.py), so that next one is one big batch, not one per partition.
A failure or timeout is BackendError: the ingress answers 503, never
202. Writing a record costs about 2 µs (`encode`; 6.8 µs through the SDK's binding, which was 44 % of
`publish` at 64 callers), reading one back through the binding 8 µs (26 µs if it parsed `time`, which
`decode` avoids).

Consuming (the dispatcher reads a Broker's topic once for all its Triggers through
channels/kafka_fanout.py, committing each Trigger's offsets to its own group; this per-group reader
serves KafkaSource, `--no-shared-reader` and a Trigger detached for being slow): a subscription is one
AIOKafkaConsumer with auto-commit off. Each partition keeps the
offsets handed out and not yet acked; the committed offset only ever moves up to the first unacked
record, so a crash redelivers from there (at least once, never lost). Commits happen every
`commit_interval_s`, on rebalance and on stop. A new group starts at the end of the topic (Knative's
default for a new Trigger); `start()` returns only once the group was joined and the positions of the
partitions it got are resolved, so an event published after that is never missed. Those starting
positions are committed at once: a partition that later moves to another member (a rebalance before
the first ack) then resumes there instead of jumping to the end again and skipping what came between.
Every later reset reads from the start of the partition (auto_offset_reset "earliest", the new group's
end being an explicit seek while `start()` runs): a partition without a committed offset by then belongs
to a topic deleted and made again (Kafka drops a deleted topic's offsets) or was added, and an offset out
of range means the log was recreated or truncated; resetting to the end would skip events the ingress
had answered 202 for. A consumer refreshes its metadata every `metadata_max_age_ms`, which is how one
whose topic vanished (no partitions left, so no fetch errors to notice by) finds the topic made again.
Commits are bounded by `commit_timeout_s` because aiokafka retries a commit forever while the broker is
unreachable; a commit that did not happen only means redelivery. Deleting a Trigger deletes its group
(a DeleteGroups request: aiokafka's admin client has no call for it); a group that still has members is
left to Kafka's offsets retention.

Errors: everything aiokafka raises on the way to Kafka becomes BackendError with the operation and the
cause, so callers handle one type (the ingress answers 503, the reconciler marks the Broker not Ready).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.protocol.admin import DeleteGroupsRequest
from cloudevents.core.bindings import kafka as ce_kafka

from channels.base import (
    Backend,
    FanoutBackend,
    Message,
    Reader,
    RecordBackend,
    SharedReader,
    TopicInspector,
    TopicSpec,
    shared_reader_group,
)
from channels.kafka_batches import BatchAppender
from channels.kafka_sticky import StickyPartitions
from core.backend_security import KafkaSecurity, SecurityError, ssl_context
from core.errors import BackendError, InvalidEvent
from core.events import STRUCTURED_CONTENT_TYPE, AttrValue, Event, attr_to_string, from_structured, validate

log = logging.getLogger("nerve.channels.kafka")

HEADER_PREFIX = "nerve_h_"
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
TOPIC_ALREADY_EXISTS = 36
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap_servers: str
    acks: str | int = "all"
    """"all" is what makes a 202 mean "durable"; 1 or 0 trade that away for latency (benchmarks only)."""
    linger_ms: int = 0
    """Extra wait to fill a batch. 0 because aiokafka keeps one produce request in flight per broker:
    records sent meanwhile already share the next batch. Measured on 2 cores, 3 partitions: linger 0
    gives 630 ev/s at 1 caller (p50 1.1 ms) and 20k ev/s at 128 callers; linger 5 gives 150 ev/s at 1
    caller (p50 6.2 ms) and 16k ev/s at 128. Raise it only for many brokers and tiny records."""
    request_timeout_ms: int = 5000
    """A publish that Kafka did not acknowledge by then fails with 503 instead of hanging: aiokafka has
    no separate delivery timeout, this bounds both the metadata wait and the produce request."""
    sticky_bytes: int = 16 * 1024
    """Keyless records stay on one partition until this many bytes went to it (channels/kafka_sticky.py,
    Kafka's Java producer's `batch.size` and Knative's); 0 leaves aiokafka's random partition per record."""
    max_batch_bytes: int = 1024 * 1024
    """Per-partition batch size. aiokafka sends one batch per partition per request, so this (not a
    max-in-flight count, which aiokafka does not have) bounds how much one round trip carries."""
    max_request_size: int = 1024 * 1024
    """The largest record accepted; bigger events fail the publish (Kafka's default message.max.bytes)."""
    compression_type: str | None = None
    """None, "gzip", "snappy", "lz4" or "zstd" (the last three need their Python codecs installed)."""
    fetch_max_wait_ms: int = 500
    """How long Kafka holds a fetch of a quiet topic. With fetch.min.bytes 1 a fetch is answered as soon as
    one record arrives, so this bounds only the empty answers: 10 ms cost each idle Broker's reader 100
    fetches a second (about 4 % of a core each, docs/performance.md "An idle reader"); 500 is Kafka's
    default and Knative's. fetch.min.bytes stays Kafka's 1: 64 KiB and 4 KiB were measured ("Fetch size")
    and made the latency at 1,000 ev/s grow."""
    max_partition_fetch_bytes: int = 1024 * 1024
    fetch_max_bytes: int = 16 * 1024 * 1024
    """Per-fetch caps: a Trigger's consumer buffers at most this much ahead of its subscriber."""
    commit_interval_s: float = 0.5
    """How often contiguous acks become a committed offset: the most a crash can redeliver is this long."""
    commit_timeout_s: float = 5.0
    session_timeout_ms: int = 10000
    heartbeat_interval_ms: int = 1000
    max_poll_interval_ms: int = 30 * 60 * 1000
    """A Trigger may hold records through long retries; only this long without polling leaves the group."""
    metadata_max_age_ms: int = 5000
    """How often a Trigger's consumer refreshes its topic's metadata. A consumer left with no partitions
    (its topic was deleted) fetches nothing and so notices the topic made again only on this refresh:
    aiokafka's 5-minute default would leave events the ingress answered 202 for unread that long."""
    assignment_timeout_s: float = 30.0
    """How long `Reader.start()` waits to join its group before failing with BackendError."""
    admin_timeout_ms: int = 10000
    """Topic and group administration (create, delete) gives up after this long."""
    security: KafkaSecurity | None = None
    """TLS and SASL for every client of this cluster (producer, consumers, admin); None is PLAINTEXT."""


def consumer_options(settings: KafkaSettings) -> dict[str, Any]:
    """What every consumer of Nerve's takes from the settings (a Trigger's own reader and the shared
    reader): the fetch and group timings, and the cluster's security."""
    return {
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "metadata_max_age_ms": settings.metadata_max_age_ms,
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_interval_ms": settings.max_poll_interval_ms,
        "max_partition_fetch_bytes": settings.max_partition_fetch_bytes,
        "fetch_max_bytes": settings.fetch_max_bytes,
        # The group's requests (JoinGroup waits up to a session) must not time out before the group does.
        "request_timeout_ms": max(settings.request_timeout_ms, settings.session_timeout_ms + 5000),
        **client_security(settings.security),
    }


def client_security(security: KafkaSecurity | None) -> dict[str, Any]:
    """aiokafka's keyword arguments for `security`: one place, so producer, consumers and the admin
    client of a cluster always connect alike. BackendError when the TLS material cannot be used."""
    if security is None or security.protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": security.protocol}
    if security.tls:
        try:
            options["ssl_context"] = ssl_context(security.ca_pem, security.cert_pem, security.key_pem)
        except SecurityError as exc:
            raise BackendError(f"Kafka TLS: {exc}") from None
    if security.sasl:
        options.update(sasl_mechanism=security.mechanism, sasl_plain_username=security.user,
                       sasl_plain_password=security.password)
    return options


async def _unreachable(settings: KafkaSettings, exc: BaseException) -> str:
    """Why a client could not bootstrap. aiokafka says only "Unable to bootstrap" and logs the cause; with
    TLS or SASL the cause is what a user needs (a wrong password, an untrusted certificate), so one
    connection to the first bootstrap server is made by hand to get it."""
    text = f"Kafka at {settings.bootstrap_servers} is unreachable: {_describe(exc)}"
    if settings.security is None or settings.security.protocol == "PLAINTEXT":
        return text
    host, _, port = settings.bootstrap_servers.split(",")[0].strip().rpartition(":")
    try:
        conn = await create_conn(host, int(port), request_timeout_ms=settings.request_timeout_ms,
                                 **client_security(settings.security))
    except (KafkaError, OSError, TimeoutError, ValueError, BackendError) as cause:
        return f"{text} ({_describe(cause)})"
    conn.close()
    return text


def _describe(exc: BaseException) -> str:
    # Several aiokafka errors (connection, timeout) have an empty message: the type is the information.
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text and not text.startswith(name) else (text or name)


class _RawFormat:
    """A cloudevents Format that leaves data bytes exactly as they are."""

    def read(self, event_factory: Any, data: str | bytes) -> Any:
        raise NotImplementedError("binary content mode only")

    def write(self, event: Any) -> bytes:
        raise NotImplementedError("binary content mode only")

    def write_data(self, data: Any, datacontenttype: str | None) -> bytes:
        return b"" if data is None else bytes(data)

    def read_data(self, body: bytes, datacontenttype: str | None) -> Any:
        return body

    def get_content_type(self) -> str:
        return "application/octet-stream"


_FORMAT = _RawFormat()


def encode(event: Event) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
    """Value, key and headers of the record for an event: the cloudevents SDK's Kafka binary mode
    (`ce_kafka.to_binary`), byte for byte, written here without it.

    The binding is a loop over the attributes, but reaching it costs an adapter object, a dict of the
    canonical texts, a dict of headers, a KafkaMessage and a copy into the list aiokafka takes: 6.8 µs
    per event against 2.3 µs for this loop (tests/unit/test_kafka_codec.py holds the two equal), and the
    encode was 44 % of `publish` at 64 callers (docs/performance.md, "The ingress's own CPU"). As the
    binding does: `ce_<name>` for every attribute in order, `datacontenttype` as `content-type`, each
    value's canonical CloudEvents text in UTF-8 (a Boolean as true/false); the value is the data bytes
    (empty when there is none); the key is the `partitionkey` extension, a non-string one as Python's
    `str` of it (as the binding's key mapper writes it). Pass-through headers follow as `nerve_h_<name>`."""
    headers: list[tuple[str, bytes]] = []
    add = headers.append
    for name, value in event.attributes.items():
        text = value if type(value) is str else attr_to_string(value)
        add(("content-type" if name == "datacontenttype" else "ce_" + name, text.encode()))
    for name, passed in event.headers.items():
        add((HEADER_PREFIX + name, passed.encode()))
    partition_key = event.attributes.get("partitionkey")
    key = None if partition_key is None else (
        partition_key if type(partition_key) is str else str(partition_key)).encode()
    data = event.data
    return (b"" if data is None else bytes(data)), key, headers


def decode(value: bytes | None, key: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Event:
    """The event of a binary-mode record, attributes as stored (not validated again: see `wrap_record`)."""
    ce_headers: dict[str, bytes] = {}
    raw_time: bytes | None = None
    for name, raw in headers:
        if name.startswith(HEADER_PREFIX):
            continue
        if name.lower() == "ce_time":
            # The binding would parse `time` into a datetime with dateutil: 18 of its 26 µs per record,
            # paid once per Trigger, and a loss of precision. The text stays exactly as stored instead.
            raw_time = raw
            continue
        ce_headers[name] = raw
    attributes: dict[str, AttrValue] = {}

    def factory(attrs: dict[str, Any], data: Any) -> Any:
        attributes.update(attrs)
        return None

    message = ce_kafka.KafkaMessage(headers=ce_headers, key=key, value=value or b"")
    ce_kafka.from_binary(message, _FORMAT, factory)
    if raw_time is not None:
        attributes["time"] = raw_time.decode()
    passed = {name[len(HEADER_PREFIX) :]: raw.decode() for name, raw in headers if name.startswith(HEADER_PREFIX)}
    # As on HTTP in binary mode: an empty value without a content type is an event with no data.
    data = value if value or "datacontenttype" in attributes else None
    return Event(attributes, data, passed)


def wrap_record(record: Any, source: str, overrides: Mapping[str, str]) -> Event:
    """A Kafka record as KafkaSource delivers it (Knative's rules).

    A record with `ce_` headers (binary) or a `content-type: application/cloudevents+json` value
    (structured) is that CloudEvent, validated here because any client may have written it (Nerve's own
    topics hold only events its ingress validated). Any other record becomes `dev.knative.kafka.event` with
    source `<source>#<topic>`, id `partition:<p>/offset:<o>`, subject `partition:<p>#<o>`, the record
    time, the key as `key` and `partitionkey`, and each header as `kafkaheader<name>`.
    """
    headers: list[tuple[str, bytes]] = list(record.headers or ())
    lower = {name.lower(): value for name, value in headers}
    if "ce_specversion" in lower:
        event = decode(record.value, record.key, headers)
        validate(event.attributes)
    elif lower.get("content-type", b"").decode(errors="replace").startswith(STRUCTURED_CONTENT_TYPE):
        event = from_structured(record.value or b"")
    else:
        stamp = datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat(timespec="milliseconds")
        attributes: dict[str, AttrValue] = {
            "specversion": "1.0",
            "id": f"partition:{record.partition}/offset:{record.offset}",
            "source": f"{source}#{record.topic}",
            "type": "dev.knative.kafka.event",
            "subject": f"partition:{record.partition}#{record.offset}",
            "time": stamp.replace("+00:00", "Z"),
        }
        if record.key is not None:
            key = record.key.decode(errors="replace") if isinstance(record.key, bytes) else str(record.key)
            attributes["key"] = attributes["partitionkey"] = key
        for name, value in headers:
            if name.lower() == "content-type":
                attributes["datacontenttype"] = value.decode(errors="replace")
                continue
            extension = "kafkaheader" + _NOT_ALNUM.sub("", name.lower())
            attributes[extension] = value.decode(errors="replace")
        event = Event(attributes, record.value)
    event.attributes.update(overrides)
    # A producer's W3C trace context (an OpenTelemetry-instrumented Kafka client writes it as record headers)
    # travels with the event, so the source's delivery continues the producer's trace (core/tracing.py).
    for name, value in headers:
        lowered = name.lower()
        if lowered in ("traceparent", "tracestate"):
            event.headers[lowered] = value.decode(errors="replace")
    return event


class _KafkaMessage(Message):
    __slots__ = ("_event", "_offset", "_partition", "_subscription")

    def __init__(self, subscription: _KafkaReader, partition: _Partition, offset: int, event: Event) -> None:
        self._subscription = subscription
        self._partition = partition
        self._offset = offset
        self._event = event

    @property
    def event(self) -> Event:
        return self._event

    @property
    def ordering_key(self) -> str:
        return str(self._partition.tp.partition)

    async def ack(self) -> None:
        self._partition.ack(self._offset)


class _Partition:
    """Offsets handed out on one partition; `committable` is one past the last contiguous ack."""

    __slots__ = ("acked", "committable", "committed", "last", "outstanding", "tp")

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.outstanding: deque[int] = deque()
        self.acked: set[int] = set()
        self.committable: int | None = None
        self.committed: int | None = None
        self.last: int | None = None

    def hand_out(self, offset: int) -> None:
        self.outstanding.append(offset)
        self.last = offset

    def restarted(self, offset: int) -> bool:
        """Offsets only grow on one log: a smaller one means the partition's log began again."""
        return self.last is not None and offset <= self.last

    def ack(self, offset: int) -> None:
        self.acked.add(offset)
        while self.outstanding and self.outstanding[0] in self.acked:
            done = self.outstanding.popleft()
            self.acked.discard(done)
            self.committable = done + 1


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, subscription: _KafkaReader) -> None:
        self._subscription = subscription

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._subscription.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._subscription.partitions_assigned(assigned)
        # Set even when empty: a group with more members than partitions gives some of them nothing,
        # and those have still joined.
        self._subscription.assigned.set()


class _KafkaReader(Reader):
    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        group: str,
        from_start: bool,
        wrap: Callable[[Any], Event] | None = None,
        since: float | None = None,
        partitions: frozenset[int] | None = None,
    ) -> None:
        self._settings = settings
        self._only = partitions
        """Read only these partitions, assigned by hand (no group membership; commits are standalone):
        a Trigger reading alone over its dispatcher process's share of the topic (kafka_fanout.py)."""
        self._since_ms = None if since is None else int(since * 1000)
        self._wrap = wrap
        self._topic = topic
        self._group = group
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
            # Every reset reads from the start: a partition without a committed offset once this reader
            # is positioned is a recreated topic or an added partition, and an offset out of range is a
            # recreated or truncated topic; "latest" would skip what the ingress answered 202 for. Only a
            # brand-new group starts at the end, by an explicit seek while it is positioned (start()).
            auto_offset_reset="earliest",
            **consumer_options(settings),
        )
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._from_start = from_start
        self._positioning = True
        self._position_error: KafkaError | None = None
        self.assigned = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._stopped = False
        self._commit_lock = asyncio.Lock()

    async def start(self) -> None:
        try:
            await self._consumer.start()
            await asyncio.wait_for(self._partitions_known(), min(5.0, self._settings.assignment_timeout_s))
            if self._only is None:
                self._consumer.subscribe([self._topic], listener=_Rebalance(self))
            else:
                self._consumer.assign([TopicPartition(self._topic, p) for p in sorted(self._only)])
                await self.partitions_assigned(list(self._consumer.assignment()))
                self.assigned.set()
            await asyncio.wait_for(self._positioned(), self._settings.assignment_timeout_s)
            self._positioning = False
        except (KafkaError, OSError, TimeoutError) as exc:
            with contextlib.suppress(KafkaError, OSError):
                await self._consumer.stop()
            raise BackendError(
                f"Kafka consumer group {self._group!r} on {self._topic!r} did not start: {_describe(exc)}"
            ) from None
        self._committer = asyncio.create_task(self._commit_loop(), name=f"kafka-commit-{self._group}")

    async def _partitions_known(self) -> None:
        # A topic control has only just created can be missing from the broker's metadata for a moment. A
        # group joined then is assigned no partitions until aiokafka's next metadata refresh (5 minutes),
        # and a new group starts at the end: every event sent meanwhile would be skipped (seen in the
        # compose walkthrough). So join only once the metadata lists the topic's partitions.
        while True:
            cluster = await self._consumer._client.fetch_all_metadata()
            if cluster.available_partitions_for_topic(self._topic):
                return
            await asyncio.sleep(0.1)

    async def _positioned(self) -> None:
        # Joining happens in the consumer's background task; the listener says when it is done. Then
        # each position is resolved (for a new group: the end of the partition) so later publishes are
        # always seen, and committed so that no later owner of the partition resets past them.
        await self.assigned.wait()
        if self._position_error is not None:
            raise self._position_error
        positions: dict[TopicPartition, int] = {}
        for tp in self._consumer.assignment():
            try:
                positions[tp] = await self._consumer.position(tp)
            except IllegalStateError:
                continue  # revoked by a rebalance meanwhile: its new owner resolves it
        if positions:
            try:
                await asyncio.wait_for(self._consumer.commit(positions), self._settings.commit_timeout_s)
            except KafkaError as exc:
                # A rebalance already moved on; the new owners hold positions of their own.
                log.info("%s: starting positions not committed: %s", self._group, _describe(exc))

    async def receive(self, max_records: int) -> Sequence[Message]:
        while not self._stopped:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=max_records)
            except KafkaError as exc:
                raise BackendError(f"Kafka fetch failed: {exc}") from None
            deliveries: list[Message] = []
            for tp, records in batches.items():
                partition = self._partitions.get(tp)
                if partition is None:
                    partition = self._partitions[tp] = _Partition(tp)
                for record in records:
                    if partition.restarted(record.offset):
                        # The topic was deleted and made again (or truncated) without this member losing
                        # the partition: the fetch went out of range and reset to the start. What the old
                        # log handed out must not be committed as positions of the new one, so its acks go
                        # to the old bookkeeping and the new log is counted afresh.
                        log.warning("%s: %s began again at offset %d", self._group, tp, record.offset)
                        partition = self._partitions[tp] = _Partition(tp)
                    partition.hand_out(record.offset)
                    try:
                        if self._wrap is not None:
                            event = self._wrap(record)
                        else:
                            event = decode(record.value, record.key, record.headers)
                    except (ValueError, UnicodeDecodeError, InvalidEvent) as exc:
                        log.warning(
                            "%s: record %s@%d is not a CloudEvent, skipped: %s", self._group, tp, record.offset, exc
                        )
                        partition.ack(record.offset)
                        continue
                    deliveries.append(_KafkaMessage(self, partition, record.offset, event))
            if deliveries:
                return deliveries
        return []

    def lag(self) -> int | None:
        """Per assigned partition, its end offset (as last fetched) minus one past the last contiguous ack."""
        total, known = 0, False
        for tp in self._consumer.assignment():
            end = self._consumer.highwater(tp)
            partition = self._partitions.get(tp)
            if end is None or partition is None:
                continue
            base = partition.committable
            if base is None:
                base = partition.outstanding[0] if partition.outstanding else partition.committed
            if base is None:
                continue
            total, known = total + max(end - base, 0), True
        return total if known else None

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.commit_interval_s)
            await self.commit()

    async def commit(self, only: list[TopicPartition] | None = None) -> None:
        async with self._commit_lock:
            offsets = {
                tp: p.committable
                for tp, p in self._partitions.items()
                if p.committable is not None
                and p.committable != p.committed
                and (only is None or tp in only)
                and tp in self._consumer.assignment()
            }
            if not offsets:
                return
            try:
                await asyncio.wait_for(self._consumer.commit(offsets), self._settings.commit_timeout_s)
            except (KafkaError, TimeoutError) as exc:
                # The next commit carries the same or a later offset; redelivery covers the gap.
                log.warning("%s: commit failed: %s", self._group, _describe(exc))
                return
            for tp, offset in offsets.items():
                self._partitions[tp].committed = offset

    async def partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # While start() runs, a partition the group never committed is a new Trigger's: it begins with
        # the first record stored since the Trigger was made (so what the ingress took while no dispatcher
        # read is not skipped), else at the end (Knative's default), never at the "earliest" every later
        # reset uses.
        if not self._positioning or self._from_start:
            return
        for tp in assigned:
            try:
                if await self._consumer.committed(tp) is None:
                    await self._seek_new(tp)
            except IllegalStateError:
                continue  # revoked again by a rebalance meanwhile: its new owner positions it
            except KafkaError as exc:
                # aiokafka only logs what a listener raises; start() fails with it instead of reading
                # a new Trigger's partition from the start.
                self._position_error = exc
                return

    async def _seek_new(self, tp: TopicPartition) -> None:
        if self._since_ms is not None:
            found = (await self._consumer.offsets_for_times({tp: self._since_ms})).get(tp)
            if found is not None:
                self._consumer.seek(tp, found.offset)
                return
        await self._consumer.seek_to_end(tp)

    async def partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.commit(revoked)
        for tp in revoked:
            # Acks still in flight for these belong to the old assignment; the new owner redelivers.
            self._partitions.pop(tp, None)

    async def stop(self) -> None:
        self._stopped = True
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer
        await self.commit()
        with contextlib.suppress(KafkaError, OSError):
            await self._consumer.stop()


def open_group_reader(settings: KafkaSettings, topic: str, group: str, *, since: float | None = None,
                      partitions: frozenset[int] | None = None) -> Reader:
    """`KafkaBackend.open_reader`, optionally over some partitions only (assigned, not group-managed)."""
    return _KafkaReader(settings, topic, group, False, since=since, partitions=partitions)


class KafkaBackend(Backend, RecordBackend, TopicInspector, FanoutBackend):
    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._batches: BatchAppender | None = None
        self._sticky = StickyPartitions(settings.sticky_bytes)
        self._admin: AIOKafkaAdminClient | None = None

    @property
    def name(self) -> str:
        return "kafka"

    @property
    def durable(self) -> bool:
        return True

    async def start(self) -> None:
        s = self._settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers,
            acks=s.acks,
            linger_ms=s.linger_ms,
            request_timeout_ms=s.request_timeout_ms,
            max_batch_size=s.max_batch_bytes,
            max_request_size=s.max_request_size,
            compression_type=s.compression_type,
            # Idempotence would dedupe producer retries, but aiokafka then waits for a producer id
            # first; duplicates are already allowed by at-least-once delivery.
            enable_idempotence=False,
            **client_security(s.security),
        )
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()
            raise BackendError(await _unreachable(s, exc)) from None
        except BaseException:
            # Cancelled mid-start (the request that needed it went away, a shutdown): close it all the
            # same, or its sockets stay open and aiokafka warns of an unclosed producer.
            with contextlib.suppress(Exception):
                await asyncio.shield(producer.stop())
            raise
        self._producer = producer
        self._batches = BatchAppender(producer, s.max_request_size, self._failed)

    async def stop(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(KafkaError, OSError):
                await self._producer.stop()
            self._producer = None
        if self._batches is not None:
            await self._batches.stop()
            self._batches = None
        if self._admin is not None:
            with contextlib.suppress(KafkaError, OSError):
                await self._admin.close()
            self._admin = None

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._settings.bootstrap_servers,
                request_timeout_ms=self._settings.admin_timeout_ms,
                **client_security(self._settings.security),
            )
            try:
                await admin.start()
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(KafkaError, OSError):
                    await admin.close()
                raise BackendError(await _unreachable(self._settings, exc)) from None
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.shield(admin.close())
                raise
            self._admin = admin
        return self._admin

    async def ensure_topic(self, spec: TopicSpec) -> None:
        admin = await self._admin_client()
        topic = NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            topic_configs=dict(spec.config),
        )
        try:
            response = await admin.create_topics([topic])
        except (KafkaError, OSError) as exc:
            raise BackendError(f"cannot create Kafka topic {spec.name!r}: {_describe(exc)}") from None
        for entry in response.topic_errors:
            code = entry[1]
            if code not in (0, TOPIC_ALREADY_EXISTS):
                message = entry[2] if len(entry) > 2 else ""
                raise BackendError(f"cannot create Kafka topic {spec.name!r}: error {code} {message}")

    async def delete_topic(self, name: str) -> None:
        # The dispatchers' shared group for the topic goes first, while the topic is still there: a
        # failure leaves both, and the finalizer that called this retries both.
        await self.delete_group(name, shared_reader_group(name))
        self._sticky.forget(name)
        admin = await self._admin_client()
        try:
            await admin.delete_topics([name])
        except (KafkaError, OSError) as exc:
            raise BackendError(f"cannot delete Kafka topic {name!r}: {_describe(exc)}") from None

    async def missing_topics(self, topics: Sequence[str]) -> list[str]:
        admin = await self._admin_client()
        try:
            present = set(await admin.list_topics())
        except (KafkaError, OSError) as exc:
            servers = self._settings.bootstrap_servers
            raise BackendError(f"Kafka at {servers} did not answer: {_describe(exc)}") from None
        return [t for t in topics if t not in present]

    async def publish(self, topic: str, event: Event) -> None:
        producer, batches = self._producer, self._batches
        if producer is None or batches is None:
            raise BackendError("Kafka channel used before start()")
        value, key, headers = encode(event)
        try:
            partition = None
            if key is None:
                size = len(value) + sum([len(name) + len(v) for name, v in headers])
                cluster = producer.client.cluster
                partition = self._sticky.pick(topic, size, cluster.available_partitions_for_topic)
                if partition is None and self._sticky.enabled and cluster.partitions_for_topic(topic) is None:
                    # A topic this producer has not sent to yet: learn its partitions first (send waits for
                    # them anyway), or its first record would go where aiokafka's random choice puts it.
                    await producer.partitions_for(topic)
                    partition = self._sticky.pick(topic, size, cluster.available_partitions_for_topic)
            if partition is not None:
                # A keyless record on the partition Nerve chose: appended to that partition's open batch
                # (channels/kafka_batches.py), a fifth of the Python of `send` per record.
                await batches.append(topic, partition, value, headers)
                return
            acked = await producer.send(topic, value=value, key=key, headers=headers, partition=partition)
            await acked
        except (KafkaError, OSError, TimeoutError) as exc:
            raise self._failed(topic, exc) from None

    def _failed(self, topic: str, exc: BaseException) -> BackendError:
        # The partition may have lost its leader: the next record chooses among those that have one.
        self._sticky.forget(topic)
        return BackendError(f"Kafka did not take the event on {topic!r}: {_describe(exc)}")

    def open_reader(self, topic: str, group: str, *, from_start: bool = False, since: float | None = None) -> Reader:
        return _KafkaReader(self._settings, topic, group, from_start, since=since)

    def open_shared_reader(self, topic: str, name: str) -> SharedReader:
        # Imported here: the shared reader builds on this module's codec and settings.
        from channels.kafka_fanout import KafkaSharedReader

        return KafkaSharedReader(self._settings, topic, name, self._admin_client)

    def open_record_reader(
        self, topic: str, group: str, *, from_start: bool, source: str, overrides: Mapping[str, str]
    ) -> Reader:
        extensions = dict(overrides)
        return _KafkaReader(
            self._settings, topic, group, from_start, wrap=lambda record: wrap_record(record, source, extensions)
        )

    async def delete_group(self, topic: str, group: str) -> None:
        admin = await self._admin_client()
        try:
            coordinator = await admin.find_coordinator(group)
            response = await admin._send_request(DeleteGroupsRequest([group]), coordinator)
        except (KafkaError, OSError) as exc:
            raise BackendError(f"cannot delete Kafka consumer group {group!r}: {_describe(exc)}") from None
        for _name, code in response.results:
            if code == NON_EMPTY_GROUP:
                # A consumer of the old generation is still closing; retention removes the group later.
                log.info("consumer group %s of %s still has members; left to offsets retention", group, topic)
            elif code not in (0, GROUP_ID_NOT_FOUND):
                raise BackendError(f"cannot delete Kafka consumer group {group!r}: error {code}")
