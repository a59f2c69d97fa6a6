"""Consume a stream of messages and deliver them: the in-flight window and the ordered lanes.

Unordered targets deliver up to `window` events at once. Ordered ones (Knative's
`kafka.eventing.knative.dev/delivery.order: ordered`) keep one lane per ordering key (a Kafka
partition, a partition key) and deliver a lane's events one after the other, retries included, while
other lanes go on. `handle` acks; a delivery abandoned by shutdown is never acked, so durable backends
bring it back.

The receive loop is supervised (core/supervisor.py): a BackendError is an outage, logged and retried
in place; any other exception restarts the loop with back-off and reports the part down on /readyz
until it receives again. The window, the lanes and the deliveries in flight survive a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

from core.errors import BackendError
from core.events import Event
from core.supervisor import Supervisor

log = logging.getLogger("nerve.delivery")


class Inbound(Protocol):
    """What delivery needs of a message a reader handed out (channels.base.Message is one)."""

    @property
    def event(self) -> Event: ...

    @property
    def ordering_key(self) -> str: ...

    async def ack(self) -> None: ...


Receive = Callable[[int], Awaitable[Sequence[Inbound]]]
Admit = Callable[[Inbound], Awaitable[bool]]
Handle = Callable[[Inbound], Awaitable[None]]


async def _admit_all(_: Inbound) -> bool:
    return True


class Consumer:
    """Feeds `handle` from `receive`. `admit` decides per message, before a task is made, whether it
    is delivered at all (a Trigger's filter: it acks what it refuses); `ordered` is read per batch,
    so a contract change applies from the next batch on."""

    def __init__(
        self,
        part: str,
        receive: Receive,
        handle: Handle,
        *,
        window: int,
        ordered: Callable[[], bool],
        admit: Admit = _admit_all,
        backend_retry_s: float = 1.0,
    ) -> None:
        self.part = part
        self._receive = receive
        self._handle = handle
        self._admit = admit
        self._ordered = ordered
        self._window = window
        self._backend_retry_s = backend_retry_s
        self._workers: set[asyncio.Task[None]] = set()
        self._idle: list[asyncio.Future[Inbound | None]] = []
        """Unordered delivery tasks waiting to be handed a message, the last one to finish at the end."""
        self._inflight = 0
        self._slot_free = asyncio.Event()
        self._lanes: dict[str, deque[Inbound]] = {}
        self._stopping = False
        self._supervisor = Supervisor(part, self._loop)

    def start(self) -> None:
        self._supervisor.start()

    async def stop(self, drain_timeout_s: float) -> None:
        """Stop receiving, give deliveries in flight `drain_timeout_s` to finish, cancel the rest (unacked)."""
        self._stopping = True
        self._slot_free.set()
        await self._supervisor.stop()
        for waiter in self._idle:
            if not waiter.done():
                waiter.set_result(None)  # no more messages: the idle tasks end
        self._idle.clear()
        if self._workers:
            _, pending = await asyncio.wait(self._workers, timeout=drain_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _loop(self) -> None:
        window = self._window
        while not self._stopping:
            while self._inflight >= window:
                self._slot_free.clear()
                await self._slot_free.wait()
            self._supervisor.ok()
            try:
                batch = await self._receive(window - self._inflight)
            except BackendError as exc:
                log.warning("%s: receive failed, retrying: %s", self.part, exc)
                await asyncio.sleep(self._backend_retry_s)
                continue
            if not batch:
                continue  # stopped, or a spurious wake-up: the loop condition decides
            ordered = self._ordered()
            for message in batch:
                # Most events match few of a Broker's Triggers: decided here, without a task.
                if not await self._admit(message):
                    continue
                self._inflight += 1
                if ordered:
                    key = message.ordering_key
                    lane = self._lanes.get(key)
                    if lane is not None:
                        lane.append(message)
                        continue
                    self._lanes[key] = deque([message])
                    self._spawn(self._run_lane(key))
                else:
                    self._hand(message)

    def _hand(self, message: Inbound) -> None:
        idle = self._idle
        while idle:
            waiter = idle.pop()
            if not waiter.done():  # not cancelled with its task
                waiter.set_result(message)
                return
        self._spawn(self._work(message))

    async def _work(self, message: Inbound | None) -> None:
        """Deliver `message`, then wait to be handed the next instead of ending: a task made and ended per
        delivery cost about 1 us more than handing a waiting task its next message (the consumer loop alone,
        docs/performance.md).
        At most `window` wait, as many as were running at the busiest moment (about a kilobyte each;
        the memory of that moment seldom goes back to the system anyway); a smaller bound measured no
        better than a task per delivery, as a window's answers come back in bursts."""
        loop = asyncio.get_running_loop()
        idle = self._idle
        while message is not None:
            await self._one(message)
            if self._stopping or len(idle) >= self._window:
                return
            waiter: asyncio.Future[Inbound | None] = loop.create_future()
            idle.append(waiter)
            message = await waiter

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _run_lane(self, key: str) -> None:
        lane = self._lanes[key]
        try:
            while lane:
                await self._one(lane[0])
                lane.popleft()
        finally:
            self._lanes.pop(key, None)

    async def _one(self, message: Inbound) -> None:
        try:
            await self._handle(message)
        except Exception:  # `handle` keeps the delivery invariant; this is the last line, never silent
            log.exception("%s: handling event %s failed", self.part, message.event.id)
        finally:
            self._inflight -= 1
            self._slot_free.set()
