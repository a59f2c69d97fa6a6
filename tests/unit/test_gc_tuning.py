"""Every service process raises the collector's thresholds and freezes what start-up made (core/gc_tuning.py):
the dispatcher spent 16-17 % of its time in collections without it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from core import gc_tuning


@pytest.fixture
def collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tune_raises_the_thresholds_and_freezes_the_start_up_objects(collector: None) -> None:
    gc.unfreeze()
    tracked = len(gc.get_objects())
    gc_tuning.tune()
    assert gc.get_threshold() == (gc_tuning.YOUNG, gc_tuning.OLDER, gc_tuning.OLDER)
    assert gc.get_freeze_count() >= tracked  # what existed is out of every generation's walk


def test_a_young_collection_waits_for_more_allocations_than_cpythons_default(collector: None) -> None:
    gc_tuning.tune()
    gc.collect()
    young_before = gc.get_stats()[0]["collections"]
    kept: list[list[int]] = [[] for _ in range(5_000)]  # 5,000 live containers: seven young collections by default
    assert gc.get_stats()[0]["collections"] == young_before
    assert len(kept) == 5_000
