"""Asking a KafkaSource's cluster whether it answers and has the topics, without stalling a reconcile.

Probes run concurrently, each in its own task, and a pass waits for them at most `timeout_s`. A
probe still running after that keeps running; the pass reports the last answer for that cluster (or
"no answer yet") and a later pass picks the result up. So an unreachable cluster that hangs the
connection costs a reconcile pass the bound, never the client's full timeout per source.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from channels.base import TopicInspector
from channels.registry import BackendPool
from control.reconcilers.resources.kafkasource import Probe
from core.backend_security import KafkaSecurity
from core.errors import BackendError

log = logging.getLogger("nerve.control")

ProbeKey = tuple[str, tuple[str, ...], KafkaSecurity | None]
"""Bootstrap servers ("h1:9092,h2:9092"), the topics to find there, and how to connect (spec.net)."""


class KafkaProbes:
    def __init__(self, pool: BackendPool, timeout_s: float = 2.0) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._running: dict[ProbeKey, asyncio.Task[Probe]] = {}
        self._last: dict[ProbeKey, Probe] = {}

    async def probe_all(self, keys: Iterable[ProbeKey]) -> dict[ProbeKey, Probe]:
        wanted = set(keys)
        for key in wanted:
            if key not in self._running:
                self._running[key] = asyncio.create_task(self._probe(*key), name=f"probe-kafka-{key[0]}")
        tasks = [self._running[key] for key in wanted]
        if tasks:
            await asyncio.wait(tasks, timeout=self._timeout_s)
        answers: dict[ProbeKey, Probe] = {}
        for key in wanted:
            task = self._running[key]
            if task.done():
                del self._running[key]
                self._last[key] = task.result()
            answers[key] = self._last.get(key) or Probe(
                None, f"Kafka at {key[0]} has not answered within {self._timeout_s:g}s yet")
        return answers

    async def _probe(self, servers: str, topics: tuple[str, ...], security: KafkaSecurity | None) -> Probe:
        try:
            backend = await self._pool.get("kafka", servers, security)
            missing = await backend.missing_topics(topics) if isinstance(backend, TopicInspector) else []
        except BackendError as exc:
            return Probe(False, exc.reason)
        except Exception as exc:  # a probe answers for its cluster; it must never fail the pass
            log.exception("probing Kafka at %s failed", servers)
            return Probe(False, f"Kafka at {servers}: {type(exc).__name__}: {exc}")
        return Probe(True, missing_topics=tuple(missing))

    async def stop(self) -> None:
        running, self._running = list(self._running.values()), {}
        if running:
            # Let a probe finish (so its client is closed properly) before cancelling it.
            _, pending = await asyncio.wait(running, timeout=self._timeout_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
