"""Filter micro-benchmark: how fast compiled Trigger filters evaluate, per dialect and for 1,000 Triggers.

    .venv/bin/python bench/bench_filters.py

Prints mean microseconds per evaluation and evaluations per second. Targets (issue 5): under 5 µs
for exact/prefix/suffix, under 20 µs for typical CESQL.
"""

from __future__ import annotations

import random
import time
from typing import Any

from core.filters import compile_trigger_filter

EVENTS = [
    {"specversion": "1.0", "id": str(i), "source": f"https://example.com/{['orders', 'users', 'billing'][i % 3]}",
     "type": f"com.example.{['created', 'updated', 'deleted', 'archived'][i % 4]}", "subject": f"item-{i}",
     "region": ["eu", "us", "ap"][i % 3], "priority": str(i % 10), "knativearrivaltime": "2026-01-01T00:00:00Z"}
    for i in range(1000)
]

DIALECTS: dict[str, tuple[dict[str, str] | None, list[dict[str, Any]] | None]] = {
    "legacy attributes": ({"type": "com.example.created", "region": "eu"}, None),
    "exact": (None, [{"exact": {"type": "com.example.created"}}]),
    "prefix": (None, [{"prefix": {"source": "https://example.com/ord"}}]),
    "suffix": (None, [{"suffix": {"type": ".deleted"}}]),
    "cesql typical": (None, [{"cesql": "type = 'com.example.created' AND source LIKE '%/orders'"}]),
    "cesql heavier": (None, [{"cesql": "region IN ('eu', 'us') AND INT(priority) > 3 AND "
                                       "LOWER(subject) LIKE 'item-1%'"}]),
    "any/all/not": (None, [{"any": [{"exact": {"region": "ap"}},
                                    {"all": [{"prefix": {"type": "com."}}, {"not": {"suffix": {"type": "d"}}}]}]}]),
}


def measure(filters: list[Any], seconds: float = 1.0) -> tuple[float, int]:
    """Mean µs per evaluation and matches, evaluating every filter against the event stream."""
    evaluations = matched = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for event in EVENTS:
            for f in filters:
                matched += f.matches(event)
            evaluations += len(filters)
    elapsed = time.perf_counter() - started
    return elapsed / evaluations * 1e6, matched


def main() -> None:
    print(f"{'dialect':22} {'µs/eval':>8} {'evals/s':>12}")
    for name, (attributes, filters) in DIALECTS.items():
        compiled = compile_trigger_filter(attributes, filters)
        micros, _ = measure([compiled])
        print(f"{name:22} {micros:8.2f} {1e6 / micros:12,.0f}")
    rng = random.Random(7)
    mixed = [compile_trigger_filter(*rng.choice(list(DIALECTS.values()))) for _ in range(1000)]
    micros, _ = measure(mixed, seconds=3.0)
    per_event = micros * len(mixed)
    print(f"\n1,000 Triggers of mixed dialects: {micros:.2f} µs/eval, {1e6 / micros:,.0f} evals/s, "
          f"{per_event / 1000:.2f} ms to evaluate one event against all 1,000 Triggers")


if __name__ == "__main__":
    main()
