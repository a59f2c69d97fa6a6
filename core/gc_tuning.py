"""The cyclic garbage collector's thresholds for services that handle events in batches.

CPython 3.11 collects its youngest generation after every 700 net allocations of container objects. The
dispatcher decodes a fetched batch of records at a time (hundreds of Events, each with its dicts), so one
batch crosses that count several times while it is alive: each young collection walks the whole batch,
promotes what survives, and the promoted batches soon add up to a full collection of the heap. Measured
with `gc.callbacks` in the dispatcher of `bench/bench_dispatch.py --triggers 10 --events 10000 --pin`
(2026-12-03, docs/performance.md "The garbage collector"): collections took 16-17 % of its time
(young 0.39-0.57 s, middle 0.35-0.43 s, full 0.36-0.50 s of about 7 s), and each of the 6-8 full
collections held the loop for about 60 ms. With a young threshold of 10,000 and the objects of start-up
frozen: 0.5 %, and one full collection of 1 ms. A young collection then takes 2-4 ms instead of
0.5 ms, and runs about once a second at the dispatcher's full rate. 50,000 bought no more (1.6 %) and
held the loop 17 ms per young collection.
"""

from __future__ import annotations

import gc

YOUNG = 10_000
"""Net container allocations between young collections (CPython's default is 700)."""
OLDER = 20
"""Young collections per middle one, and middle ones per full one (CPython's: 10 and 10)."""


def tune() -> None:
    """Freeze what start-up made (modules, classes, settings: never garbage, and no full collection need
    walk them again) and raise the thresholds. Called once per process, before its loop starts."""
    gc.freeze()
    gc.set_threshold(YOUNG, OLDER, OLDER)
