"""Which partition keyless records go to: one until a batch's worth of bytes, then the next in turn."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from channels.kafka_sticky import StickyPartitions


def ten(topic: str) -> Collection[int]:
    return set(range(10))


def picks(sticky: StickyPartitions, sizes: list[int], available: object = ten, topic: str = "t") -> list[int | None]:
    return [sticky.pick(topic, size, available) for size in sizes]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("batch", "sizes", "expected"),
    [
        # 1,000-byte records and a 4,000-byte batch: four to a partition, then the next.
        (4000, [1000] * 9, [0, 0, 0, 0, 1, 1, 1, 1, 2]),
        # A record bigger than the batch ends its partition's turn by itself.
        (4000, [5000, 10, 5000], [0, 1, 1]),
        # The bytes are counted, not the records.
        (100, [60, 60, 60, 60], [0, 0, 1, 1]),
    ],
)
def test_records_stay_until_a_batch_went_to_the_partition(batch: int, sizes: list[int], expected: list[int]) -> None:
    assert picks(StickyPartitions(batch), sizes) == expected


def test_every_partition_gets_its_turn_and_the_turns_wrap() -> None:
    assert picks(StickyPartitions(1), [1] * 12) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_partitions_without_a_leader_are_passed_over() -> None:
    def some(topic: str) -> Collection[int]:
        return {1, 4, 7}

    assert picks(StickyPartitions(1), [1] * 5, some) == [1, 4, 7, 1, 4]


def test_no_metadata_or_no_leader_leaves_the_choice_to_the_client() -> None:
    sticky = StickyPartitions(100)
    assert picks(sticky, [1], lambda topic: None) == [None]
    assert picks(sticky, [1], lambda topic: set()) == [None]
    assert picks(sticky, [1], ten) == [0]


def test_zero_batch_bytes_turns_sticking_off() -> None:
    assert picks(StickyPartitions(0), [1, 1], ten) == [None, None]


def test_topics_are_counted_apart_and_forget_starts_afresh() -> None:
    sticky = StickyPartitions(100)
    assert [sticky.pick("a", 60, ten), sticky.pick("b", 60, ten), sticky.pick("a", 60, ten)] == [0, 0, 0]
    assert sticky.pick("a", 60, ten) == 1  # a's first partition took 120 bytes: a's turn moved on
    sticky.forget("a")
    assert sticky.pick("a", 60, ten) == 0
    assert sticky.pick("b", 60, ten) == 0  # b had 60 bytes of 100
