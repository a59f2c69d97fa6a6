"""Supervised parts: a long-running task that fails is logged, restarted with capped back-off, and
reported, never left dead in silence.

Each part has a name that says what it is (`contract-watch`, `Trigger/ns1/orders`). While a part is
down (from its failure until it reports `ok()` again after a restart), `HEALTH` lists it with the
reason and every service's `/readyz` answers 503 naming it; `nerve_supervised_restarts_total{part}`
counts the restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

log = logging.getLogger("nerve.supervisor")

RESTARTS = Counter("nerve_supervised_restarts", "Restarts of a supervised part after it failed", ("part",))

Sleep = Callable[[float], Awaitable[None]]


class Health:
    """Which supervised parts of this process are down, and why: what /readyz reports."""

    def __init__(self) -> None:
        self._down: dict[str, str] = {}

    def mark_down(self, part: str, reason: str) -> None:
        self._down[part] = reason

    def mark_up(self, part: str) -> None:
        self._down.pop(part, None)

    def down(self) -> dict[str, str]:
        return dict(self._down)


HEALTH = Health()
"""The process's health: like Prometheus's default registry, every service of a process shares it, so
`nerve up` reports a failed dispatcher part on the control API's /readyz too."""


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Supervisor:
    """Runs `body` until it returns or is stopped; restarts it after an exception (back-off doubling
    from `initial_s` to `max_s`, reset once the part reports `ok()`)."""

    def __init__(
        self,
        part: str,
        body: Callable[[], Awaitable[None]],
        *,
        health: Health = HEALTH,
        initial_s: float = 0.5,
        max_s: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.part = part
        self._body = body
        self._health = health
        self._initial = initial_s
        self._max = max_s
        self._delay = initial_s
        self._sleep = sleep
        self._down = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.part)

    def mark_down(self, reason: str) -> None:
        """The part failed outside its body (e.g. its first step, run before start); `ok()` clears it."""
        self._down = True
        self._health.mark_down(self.part, reason)

    def ok(self) -> None:
        """The part works again (called by the body once it made progress after a restart)."""
        if self._down:
            self._down = False
            self._delay = self._initial
            self._health.mark_up(self.part)
            log.info("%s is running again", self.part)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._down = False
        self._health.mark_up(self.part)

    async def _run(self) -> None:
        while True:
            try:
                await self._body()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.mark_down(describe(exc))
                RESTARTS.labels(self.part).inc()
                log.exception("%s failed; restarting in %.1fs", self.part, self._delay)
                await self._sleep(self._delay)
                self._delay = min(self._delay * 2, self._max)
