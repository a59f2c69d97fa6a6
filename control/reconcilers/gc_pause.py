"""Python's cyclic garbage collector paused while control works through a large batch.

A reconcile pass (and an apply's admission and writes) over 10,000 Triggers allocates hundreds of thousands
of small dicts and lists that live until the pass ends: each time enough of them pile up, the collector
runs, and its full collections walk every live object again. Measured with `bench/bench_contract.py
--control-only` at 10,000 Triggers, that was about half of a resync pass and of one more Trigger. What a
pass allocates is freed by reference counting when it ends (a snapshot holds no cycles); the collector
resumes after it, and finds whatever cycles there were then.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_depth = 0
"""Nested pauses (an apply's pass inside the apply): the outermost resumes the collector."""


@contextlib.contextmanager
def paused() -> Iterator[None]:
    global _depth
    if _depth == 0 and not gc.isenabled():
        yield  # someone else disabled it: theirs to enable
        return
    _depth += 1
    gc.disable()
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            gc.enable()
