"""Keyless records appended to one open batch per partition and handed to aiokafka a batch at a time.

`AIOKafkaProducer.send` costs 8-9 µs of Python per record before anything goes to Kafka (the metadata wait,
the size check, the partition check, which builds a set of the topic's partitions, a TopicPartition, the
accumulator's coroutine, a future and a RecordMetadata per record), against 1-1.5 µs for appending the same
record to a `BatchBuilder` (measured on this machine kind, 2,000 records a round, 5 rounds;
docs/performance.md, "The ingress's own CPU"). aiokafka's public batch API, `create_batch` and
`send_batch`, takes whole batches, and this module keeps aiokafka's own batching with it:

- one open batch per (topic, partition); a record goes into it while aiokafka has not taken it yet (a batch
  handed over stays open until the sender drains it into a produce request, exactly as aiokafka's own
  accumulator appends to its last batch), and into a new one once it was drained or is full;
- each new batch is handed over at once (`send_batch`, in a task): with linger 0 the sender takes it as
  soon as the broker has no request in flight, so what arrives meanwhile shares the next request, as before;
- every caller awaits a future of its own (a cancelled caller cancels only its own wait), resolved when
  Kafka acknowledged the batch, or failed with the batch.

Keyed records and records for a partition Nerve did not choose stay on `producer.send` (aiokafka's
partitioner hashes the key), and so does everything while sticking is off. A record too large for a
request is refused before it joins a batch, as `send` refuses it, so it never fails the records beside it.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

Failed = Callable[[str, BaseException], BaseException]
"""What a caller of a failed batch gets, given the topic and the cause (the backend's BackendError)."""


class _Open:
    __slots__ = ("builder", "waiters")

    def __init__(self, builder: Any) -> None:
        self.builder = builder
        """aiokafka's BatchBuilder."""
        self.waiters: list[asyncio.Future[None]] = []


class BatchAppender:
    """Records to one producer, appended to open batches by (topic, partition)."""

    def __init__(self, producer: AIOKafkaProducer, max_request_size: int, failed: Failed) -> None:
        self._producer = producer
        self._max_request_size = max_request_size
        self._failed = failed
        self._loop = asyncio.get_running_loop()
        self._open: dict[tuple[str, int], _Open] = {}
        self._handing: set[asyncio.Task[None]] = set()

    def append(self, topic: str, partition: int, value: bytes,
               headers: list[tuple[str, bytes]]) -> asyncio.Future[None]:
        """The future of the record's acknowledgement; MessageSizeTooLargeError for a record no request holds."""
        if DefaultRecordBatchBuilder.estimate_size_in_bytes(None, value, headers) > self._max_request_size:
            raise MessageSizeTooLargeError(
                f"the record is larger than the maximum request size ({self._max_request_size} bytes)")
        waiter: asyncio.Future[None] = self._loop.create_future()
        key = (topic, partition)
        batch = self._open.get(key)
        if batch is None or batch.builder.append(timestamp=None, key=None, value=value, headers=headers) is None:
            # None open, or the sender took it (a drained batch is closed to appends), or it is full.
            batch = _Open(self._producer.create_batch())
            if batch.builder.append(timestamp=None, key=None, value=value, headers=headers) is None:
                # An empty batch takes its first record whatever its size (aiokafka's builder): never here.
                raise KafkaError("an empty batch refused a record")
            self._open[key] = batch
            task = self._loop.create_task(self._hand_over(topic, partition, batch))
            self._handing.add(task)
            task.add_done_callback(self._handing.discard)
        batch.waiters.append(waiter)
        return waiter

    async def _hand_over(self, topic: str, partition: int, batch: _Open) -> None:
        try:
            delivered = await self._producer.send_batch(batch.builder, topic, partition=partition)
            await delivered
        except BaseException as exc:
            self._close(topic, partition, batch)
            cause: BaseException = exc
            if isinstance(exc, asyncio.CancelledError):
                cause = KafkaError("the producer stopped before Kafka acknowledged the batch")
            known = isinstance(cause, (KafkaError, OSError, TimeoutError))
            for waiter in batch.waiters:
                if not waiter.done():
                    # One exception each: a shared one would carry every caller's traceback.
                    waiter.set_exception(self._failed(topic, cause) if known else copy.copy(cause))
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self._close(topic, partition, batch)
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _close(self, topic: str, partition: int, batch: _Open) -> None:
        # Acknowledged or failed: nothing more joins it (a failed batch's partition is chosen afresh).
        if self._open.get((topic, partition)) is batch:
            del self._open[(topic, partition)]

    async def stop(self) -> None:
        """After the producer stopped: whatever was still being handed over fails its callers."""
        tasks = list(self._handing)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
