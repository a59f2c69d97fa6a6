"""Which partition a keyless record goes to: the same one until a batch's worth of bytes went there.

aiokafka's DefaultPartitioner picks a random partition for every record without a key. aiokafka also
keeps one produce request in flight per broker, so the records of one round trip (the 64 requests a
client has in flight, say) were spread over nearly every partition of the topic: ten partitions, ten
batches of six records each, and every batch costs its own framing and CRC in the producer, its own
append and index entry in Kafka, and its own parse in every consumer. Kafka's Java producer stopped
doing that in 2.4 (KIP-480, "sticky"; KIP-794 made it switch by bytes in 3.3): keyless records stay on
one partition until `batch.size` bytes (16 KiB by default, and in Knative's data plane) were produced
to it, then move on. This module does the same, moving to the next available partition in turn, so
the partitions are still filled evenly over time.

A record with a key (the `partitionkey` extension) is not chosen here: aiokafka hashes its key as
Kafka's Java client does, so the same key keeps its partition and its order.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

Available = Callable[[str], Collection[int] | None]
"""The partitions of a topic that have a leader now; None while the topic's metadata is not known."""


@dataclass(slots=True)
class _Stuck:
    partition: int
    left: int


class StickyPartitions:
    """Per topic, the partition keyless records go to and how many bytes it takes before the switch."""

    def __init__(self, batch_bytes: int) -> None:
        self._batch_bytes = batch_bytes
        self._topics: dict[str, _Stuck] = {}

    @property
    def enabled(self) -> bool:
        return self._batch_bytes > 0

    def pick(self, topic: str, size: int, available: Available) -> int | None:
        """The partition for a keyless record of `size` bytes, or None to leave the choice to the client
        (no metadata yet, no partition with a leader, or sticking turned off with batch_bytes 0)."""
        stuck = self._topics.get(topic)
        if stuck is None or stuck.left <= 0:
            if self._batch_bytes <= 0:
                return None
            partitions = available(topic)
            if not partitions:
                return None
            after = -1 if stuck is None else stuck.partition
            # The next one after the last, in partition order: every partition gets its turn.
            following = [p for p in partitions if p > after]
            partition = min(following) if following else min(partitions)
            if stuck is None:
                stuck = self._topics[topic] = _Stuck(partition, self._batch_bytes)
            else:
                stuck.partition, stuck.left = partition, self._batch_bytes
        stuck.left -= size
        return stuck.partition

    def forget(self, topic: str) -> None:
        """Choose afresh next time: the topic was deleted, or a send to its partition failed."""
        self._topics.pop(topic, None)
