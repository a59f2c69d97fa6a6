"""Filter micro-benchmark: how fast compiled Trigger filters evaluate, per dialect and for 1,000 Triggers.

    .venv/bin/python bench/bench_filters.py

Prints mean microseconds per evaluation and evaluations per second, plus what compiling costs (once
per Trigger generation, never per event). Targets (issue 5): under 5 µs per evaluation for
exact/prefix/suffix, under 20 µs for typical CESQL. A benchmark prints figures; it is never a test.

It also times LIKE on hostile subjects (issue 9, defect 5). Before the fix, LIKE was one backtracking
regex: '%/orders/%/items/%' on 100 KB took 1.9 s and '%a%a%b' on 3,000 characters 4.7 s. Now (2 cores,
shared; milliseconds): 100 KB 0.08, 1 MB 1.5, 3,000 characters 0.004, '%a_a%a_b%' on 1 MB 14.
"""

from __future__ import annotations

import random
import time
from typing import Any

from core.filters import EventFilter, compile_trigger_filter

# Half the stream as binary mode leaves it (every extension a string), half as structured mode (typed).
EVENTS: list[dict[str, Any]] = [
    {"specversion": "1.0", "id": str(i), "source": f"https://example.com/{['orders', 'users', 'billing'][i % 3]}",
     "type": f"com.example.{['created', 'updated', 'deleted', 'archived'][i % 4]}", "subject": f"item-{i}",
     "time": "2026-01-02T03:04:05Z", "region": ["eu", "us", "ap"][i % 3],
     "priority": str(i % 10) if i % 2 else i % 10, "knativearrivaltime": "2026-01-01T00:00:00Z"}
    for i in range(1000)
]

DIALECTS: dict[str, tuple[dict[str, str] | None, list[dict[str, Any]] | None]] = {
    "legacy attributes": ({"type": "com.example.created", "region": "eu"}, None),
    "exact": (None, [{"exact": {"type": "com.example.created"}}]),
    "prefix": (None, [{"prefix": {"source": "https://example.com/ord"}}]),
    "suffix": (None, [{"suffix": {"type": ".deleted"}}]),
    "exact, 2 attributes": (None, [{"exact": {"type": "com.example.created", "region": "eu"}}]),
    "cesql typical": (None, [{"cesql": "type = 'com.example.created' AND source LIKE '%/orders'"}]),
    "cesql heavier": (None, [{"cesql": "region IN ('eu', 'us') AND INT(priority) > 3 AND "
                                       "LOWER(subject) LIKE 'item-1%'"}]),
    "cesql missing attr": (None, [{"cesql": "tenant = 'acme' OR priority > 8"}]),
    "any/all/not": (None, [{"any": [{"exact": {"region": "ap"}},
                                    {"all": [{"prefix": {"type": "com."}}, {"not": {"suffix": {"type": "d"}}}]}]}]),
}


def measure(filters: list[EventFilter], seconds: float = 1.0) -> tuple[float, int, int]:
    """Mean µs per evaluation, matches and evaluations, evaluating every filter against the event stream."""
    evaluations = matched = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for event in EVENTS:
            for f in filters:
                matched += f.matches(event)
            evaluations += len(filters)
    elapsed = time.perf_counter() - started
    return elapsed / evaluations * 1e6, matched, evaluations


# Subjects a producer could send to make a backtracking LIKE freeze the process.
HOSTILE_LIKE = [
    ("%/orders/%/items/%", "/orders/" * 12_500, "100 KB"),
    ("%/orders/%/items/%", "/orders/" * 125_000, "1 MB"),
    ("%a%a%b", "a" * 3_000, "3,000 chars"),
    ("%a_a%a_b%", "a" * 1_000_000, "1 MB"),
]


def hostile_like() -> None:
    print(f"\n{'LIKE pattern':22} {'subject':>12} {'ms/eval':>10}")
    for pattern, subject, size in HOSTILE_LIKE:
        compiled = compile_trigger_filter(None, [{"cesql": f"subject LIKE '{pattern}'"}])
        event = {**EVENTS[0], "subject": subject}
        started = time.perf_counter()
        for _ in range(5):
            compiled.matches(event)
        print(f"{pattern:22} {size:>12} {(time.perf_counter() - started) / 5 * 1e3:10.3f}")


# Functions on a 1 MB value: each is one pass, so milliseconds (the bound in core.filters.cesql.compiler).
BIG_FUNCTIONS = ["LOWER(subject) = 'x'", "UPPER(subject) LIKE '%SS'", "LENGTH(TRIM(subject)) > 0",
                 "LENGTH(CONCAT(subject, subject, subject)) > 0", "subject IN ('a', 'b')", "INT(subject) = 7"]


def big_functions() -> None:
    event = {**EVENTS[0], "subject": " ab" * 350_000}
    print(f"\n{'on a 1 MB subject':42} {'ms/eval':>10}")
    for text in BIG_FUNCTIONS:
        compiled = compile_trigger_filter(None, [{"cesql": text}])
        started = time.perf_counter()
        for _ in range(5):
            compiled.matches(event)
        print(f"{text:42} {(time.perf_counter() - started) / 5 * 1e3:10.3f}")


def main() -> None:
    print(f"{'dialect':22} {'µs/eval':>8} {'evals/s':>12} {'compile µs':>11}")
    for name, (attributes, filters) in DIALECTS.items():
        started = time.perf_counter()
        for _ in range(200):
            compiled = compile_trigger_filter(attributes, filters)
        compile_micros = (time.perf_counter() - started) / 200 * 1e6
        micros, _, _ = measure([compiled])
        print(f"{name:22} {micros:8.2f} {1e6 / micros:12,.0f} {compile_micros:11.0f}")
    rng = random.Random(7)
    started = time.perf_counter()
    mixed = [compile_trigger_filter(*rng.choice(list(DIALECTS.values()))) for _ in range(1000)]
    compile_ms = (time.perf_counter() - started) * 1e3
    micros, matched, evaluations = measure(mixed, seconds=3.0)
    print(f"\n1,000 Triggers of mixed dialects (compiled in {compile_ms:.0f} ms): {micros:.2f} µs/eval, "
          f"{1e6 / micros:,.0f} evals/s; one event against all 1,000 Triggers: {micros:.2f} ms "
          f"({1000 / micros:,.0f} events/s on one core); {matched / evaluations:.0%} of evaluations matched")
    hostile_like()
    big_functions()


if __name__ == "__main__":
    main()
