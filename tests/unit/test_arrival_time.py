"""`knativearrivaltime` to epoch seconds for kn_eventing_process_duration_seconds: parsed once per value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.delivery import deliver


@pytest.mark.parametrize(("arrival", "expected"), [
    ("2026-12-02T01:25:43.307092Z", datetime(2026, 12, 2, 1, 25, 43, 307092, tzinfo=UTC).timestamp()),
    ("2026-12-02T02:25:43+01:00", datetime(2026, 12, 2, 1, 25, 43, tzinfo=UTC).timestamp()),
    ("yesterday", None),
    ("", None),
])
def test_arrival_times(arrival: str, expected: float | None) -> None:
    assert deliver._arrived_at(arrival) == expected
    assert deliver._arrived_at(arrival) == expected  # the second time from the cache, the same


def test_the_cache_stays_bounded() -> None:
    for second in range(deliver._ARRIVALS_MAX + 10):
        deliver._arrived_at(f"2026-12-02T01:{second // 3600 % 60:02d}:{second % 60:02d}.{second:06d}Z")
    assert 0 < len(deliver._ARRIVALS) <= deliver._ARRIVALS_MAX
