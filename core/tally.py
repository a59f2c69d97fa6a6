"""Metric updates counted in plain Python on the delivery path, added to prometheus_client when read.

prometheus_client takes a lock for each value it changes, and its `Histogram.observe` walks the buckets
in Python: per delivery (two histograms, two more with the older family on, a counter, the in-flight
gauge up and down) that was 8-10 % of the dispatcher's CPU (docs/performance.md, "Per-delivery CPU").
Every update here happens on the service's one event loop, so a tally needs no lock: an observation is a
`bisect` and two additions, and a tally with something pending puts itself on a list once. `flush()`
adds what is pending to the prometheus_client children; `/metrics` calls it before it renders
(core/observability.py), so a scrape sees every update made before it, as it did when the children were
written directly. Values stay in prometheus_client's children, which remain the only thing exposed.

The bucket arithmetic reads the histogram child's `_upper_bounds`, `_buckets` and `_sum`: private, but
stable across prometheus_client's releases and the version is pinned (core/observability.forget reads
`_metrics` likewise). tests/unit/test_tally.py holds a tallied histogram to what `observe` gives.
"""

from __future__ import annotations

import weakref
from bisect import bisect_left
from typing import Any

_PENDING: list[_Tally] = []
"""Every tally with updates not yet added to its child."""
_PENDING_MAX = 10_000
"""Past this many, pending tallies are flushed at once: a caller past its cache of children makes a tally
per update, and with nobody scraping the list would grow without end."""


def flush() -> None:
    """Add every pending update to its prometheus_client child (before /metrics renders)."""
    pending = _PENDING[:]
    _PENDING.clear()
    for tally in pending:
        tally.flush()


class _Tally:
    """What every tally shares: its child, and being on the pending list at most once until flushed."""

    __slots__ = ("_child", "_pending")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._pending = False

    def _note(self) -> None:
        """Something is pending (callers test `_pending` first, so the common update makes no call)."""
        self._pending = True
        _PENDING.append(self)
        if len(_PENDING) > _PENDING_MAX:
            flush()

    def flush(self) -> None:
        self._pending = False
        self._add()

    def _add(self) -> None:
        """Add what is pending to the child, and forget it here."""
        raise NotImplementedError


class HistogramTally(_Tally):
    """`observe` for one labelled child of a prometheus_client Histogram."""

    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, child: Any) -> None:
        super().__init__(child)
        self._bounds: tuple[float, ...] = tuple(child._upper_bounds)  # ends with +Inf
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        # The first bound >= value is the value's bucket, as prometheus_client's `amount <= bound` walk finds.
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value
        if not self._pending:
            self._note()

    def _add(self) -> None:
        child, counts = self._child, self._counts
        for index, count in enumerate(counts):
            if count:
                child._buckets[index].inc(count)
                counts[index] = 0
        child._sum.inc(self._sum)
        self._sum = 0.0


class CounterTally(_Tally):
    """`inc` for one labelled child of a prometheus_client Counter."""

    __slots__ = ("_count",)

    def __init__(self, child: Any) -> None:
        super().__init__(child)
        self._count = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self._count += amount
        if not self._pending:
            self._note()

    def _add(self) -> None:
        count, self._count = self._count, 0.0
        self._child.inc(count)


class Level:
    """A gauge's value kept here and read by prometheus_client at each scrape (`set_function`).

    One per gauge child (`Level.of`): a Trigger's next generation compiles a new target while the old
    one's deliveries are still in flight, and both must move the one value the scrape reads."""

    __slots__ = ("__weakref__", "value")

    def __init__(self) -> None:
        self.value = 0

    @classmethod
    def of(cls, child: Any) -> Level:
        level = _LEVELS.get(child)
        if level is None:
            level = _LEVELS[child] = cls()
            child.set_function(level._get)
        return level

    def _get(self) -> float:
        return float(self.value)

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1


_LEVELS: weakref.WeakKeyDictionary[Any, Level] = weakref.WeakKeyDictionary()
"""Each gauge child's Level; an entry goes with its child (a forgotten series)."""
