"""core/tally.py: what a tally adds to a prometheus_client child is what the child's own methods give."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core import tally
from core.tally import CounterTally, HistogramTally, Level

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 1, 10)
VALUES = [0.0, -1.0, 0.005, 0.0050001, 0.004999, 0.01, 0.3, 1.0, 10.0, 10.5, 1e9, math.inf, 0.025, 0.025]


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    return {(sample.name, sample.labels.get("le", "")): sample.value
            for family in registry.collect() if family.name == name for sample in family.samples
            if not sample.name.endswith("_created")}


@pytest.mark.parametrize("values", [VALUES, VALUES[:1], [], [0.02] * 1000])
def test_a_tallied_histogram_exposes_what_observe_gives(values: list[float]) -> None:
    registry = CollectorRegistry()
    direct = Histogram("direct", "d", ["t"], buckets=BUCKETS, registry=registry).labels("x")
    tallied = Histogram("tallied", "d", ["t"], buckets=BUCKETS, registry=registry).labels("x")
    counted = HistogramTally(tallied)
    for value in values:
        direct.observe(value)
        counted.observe(value)
    tally.flush()
    got = {(name.replace("tallied", "direct"), le): v for (name, le), v in _samples(registry, "tallied").items()}
    assert got == _samples(registry, "direct")


def test_nothing_reaches_the_child_until_flush_and_nothing_twice() -> None:
    registry = CollectorRegistry()
    child = Counter("c", "c", ["t"], registry=registry).labels("x")
    counted = CounterTally(child)
    counted.inc()
    counted.inc(2.5)
    assert registry.get_sample_value("c_total", {"t": "x"}) == 0.0
    tally.flush()
    tally.flush()
    assert registry.get_sample_value("c_total", {"t": "x"}) == 3.5
    counted.inc()
    tally.flush()
    assert registry.get_sample_value("c_total", {"t": "x"}) == 4.5


def test_two_targets_of_one_gauge_child_move_one_value() -> None:
    """A Trigger's next generation and the old one's deliveries still in flight share the gauge."""
    registry = CollectorRegistry()
    gauge = Gauge("g", "g", ["t"], registry=registry)
    old, new = Level.of(gauge.labels("x")), Level.of(gauge.labels("x"))
    assert old is new
    old.inc()
    new.inc()
    old.dec()
    assert registry.get_sample_value("g", {"t": "x"}) == 1.0
    assert Level.of(gauge.labels("y")) is not old


def test_tallies_made_per_update_are_flushed_before_they_pile_up() -> None:
    """Past a caller's cache of children each update makes a tally; unscraped, they must not grow forever."""
    registry = CollectorRegistry()
    child = Counter("many", "m", ["t"], registry=registry).labels("x")
    for _ in range(tally._PENDING_MAX * 3):
        CounterTally(child).inc()
    assert len(tally._PENDING) <= tally._PENDING_MAX
    tally.flush()
    assert registry.get_sample_value("many_total", {"t": "x"}) == tally._PENDING_MAX * 3
