"""A step that must not hold up what comes after it: run it, wait a bound, go on without it if it is late.

A Trigger that stops its own Kafka reader to come back to the shared one must not wait for ever on a
client library's shutdown: while it waits it reads nothing, and every event answered 202 meanwhile waits
with it (a comparator run saw one Trigger get none of 4,000 events that way). `finish_within` waits for
the step up to a bound; a late step is left running (cancelling a library's shutdown half way can leave
it worse), kept referenced until it ends, and logged with the chain of coroutines it is waiting in, so
the log says where it hangs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("nerve.bounded")

T = TypeVar("T")

_late: set[asyncio.Task[Any]] = set()
"""Steps that ran past their bound and are still running (referenced so they are not collected)."""


def awaiting(task: asyncio.Task[Any]) -> str:
    """Where a pending task waits: each coroutine of its await chain as `qualname:line`, outermost first."""
    where = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            if isinstance(awaited, asyncio.Task):
                awaited = awaited.get_coro()  # a task it awaits: follow it
                continue
            where.append(type(awaited).__name__)  # a Future or an object of a library's own
            break
        where.append(f"{frame.f_code.co_qualname}:{frame.f_lineno}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return " > ".join(where)


async def finish_within(step: Coroutine[Any, Any, None], seconds: float, what: str) -> bool:
    """Run `step` for at most `seconds`: True when it ended in time (its error, if any, logged), False
    when it is still running; then it goes on in the background and its end is logged."""
    task = asyncio.create_task(step, name=what)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        _late.add(task)  # the caller went away (a shutdown): the step still ends on its own
        task.add_done_callback(_late.discard)
        raise
    if done:
        _report(task, what, late=False)
        return True
    log.warning("%s: not done after %g s, going on without it (waiting in %s)", what, seconds, awaiting(task))
    _late.add(task)

    def ended(t: asyncio.Task[Any]) -> None:
        _late.discard(t)
        _report(t, what, late=True)

    task.add_done_callback(ended)
    return False


async def told_if_slow(step: Coroutine[Any, Any, T], seconds: float, what: str) -> T:
    """Run `step` to its end, as `await step` does (its result, its error, its cancellation), but when it
    takes longer than `seconds`, log once where it waits: a step that cannot be left to the background
    (a Trigger attaching to the shared reader) still says so in the log when it hangs."""
    task = asyncio.create_task(step, name=what)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if not done:
            log.warning("%s: not done after %g s (waiting in %s)", what, seconds, awaiting(task))
        result: T = await task
    except asyncio.CancelledError:
        task.cancel()
        raise
    return result


def _report(task: asyncio.Task[Any], what: str, *, late: bool) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.warning("%s failed: %r", what, exc)
    elif late:
        log.info("%s: done after all", what)


async def stragglers(seconds: float) -> None:
    """At shutdown: give the late steps still running up to `seconds`, then cancel what is left."""
    pending = set(_late)
    if not pending:
        return
    _, still = await asyncio.wait(pending, timeout=seconds)
    for task in still:
        task.cancel()
