"""The sources service: one adapter per entry of the contract's `sources`, by kind.

`apply(contract)` brings the adapters in line with a new generation without a restart, as the
dispatcher does for Triggers: removed sources are drained and stopped, new ones started, and a source
whose reading config is unchanged is updated in place (sink, delivery). A source whose backend is
unreachable is reported down on /readyz (core/supervisor.py) and started again with back-off.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from channels.registry import BackendPool
from core.contract import Contract, Source
from core.delivery import Deliverer, Sender, pooled_session
from core.errors import BackendError
from core.oidc import TokenSource
from core.supervisor import HEALTH, describe
from core.watch import ResourceWatch
from sources.apiserver import api_server_source
from sources.base import Adapter, AdapterFactory, SourceContext, WatchProvider, part_name
from sources.kafka import kafka_source
from sources.ping import ping_source
from sources.settings import SourcesSettings

log = logging.getLogger("nerve.sources")

ADAPTERS: dict[str, AdapterFactory] = {"KafkaSource": kafka_source, "PingSource": ping_source,
                                       "ApiServerSource": api_server_source}
"""Adapter factories by contract `reference.kind`; PingSource and ContainerSource plug in here."""


class Sources:
    def __init__(self, pool: BackendPool, settings: SourcesSettings | None = None, *,
                 retry_initial_s: float = 1.0, retry_max_s: float = 30.0) -> None:
        self._pool = pool
        self.watch: ResourceWatch | None = None
        """The store ApiServerSources watch; `nerve up` sets it to the embedded store before any contract."""
        self.watches: WatchProvider | None = None
        """Or, with `--watch kubernetes`, what makes each ApiServerSource a watch of the API server."""
        self._settings = settings or SourcesSettings()
        self._retry = (retry_initial_s, retry_max_s)
        self._session: aiohttp.ClientSession | None = None
        self._deliverer: Deliverer | None = None
        self.tokens: TokenSource | None = None
        """Where OIDC tokens for the sources' identities come from (set before start)."""
        self._adapters: dict[str, Adapter] = {}
        self._pending: dict[str, tuple[asyncio.Task[None], str]] = {}
        self._desired: dict[str, Source] = {}
        self._unknown: set[str] = set()
        self._lock = asyncio.Lock()
        self.generation = 0

    async def start(self) -> None:
        self._session = pooled_session(per_destination=self._settings.max_connections_per_host)
        self._deliverer = Deliverer(Sender(self._session, max_response_bytes=self._settings.max_reply_bytes),
                                    tokens=self.tokens)

    async def stop(self) -> None:
        async with self._lock:
            for uid in list(self._pending):
                self._cancel_pending(uid)
            await asyncio.gather(*(adapter.stop() for adapter in self._adapters.values()))
            self._adapters.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def apply(self, contract: Contract) -> None:
        async with self._lock:
            desired = {s.uid: s for s in contract.sources if self._known(s)}
            self._desired = desired
            for uid in [u for u, a in self._adapters.items() if u not in desired or a.must_restart(desired[u])]:
                await self._adapters.pop(uid).stop()
            for uid in [u for u in self._pending if u not in desired]:
                self._cancel_pending(uid)
            starts = []
            for uid, source in desired.items():
                adapter = self._adapters.get(uid)
                if adapter is not None:
                    adapter.update(source)
                elif uid not in self._pending:
                    starts.append(self._start(source))
            await asyncio.gather(*starts)
            self.generation = contract.generation

    def _known(self, source: Source) -> bool:
        if source.kind in ADAPTERS:
            return True
        if source.kind not in self._unknown:
            self._unknown.add(source.kind)
            log.error("%s: no adapter for kind %r in this version; it produces nothing", part_name(source),
                      source.kind)
        return False

    async def _start(self, source: Source) -> None:
        try:
            await self._start_once(source)
        except BackendError as exc:
            # The backend is down: keep trying in the background, never block the contract apply.
            log.warning("%s: cannot start yet (%s); retrying", part_name(source), exc.reason)
            HEALTH.mark_down(part_name(source), describe(exc))
            task = asyncio.create_task(self._start_later(source.uid), name=f"start-{part_name(source)}")
            self._pending[source.uid] = (task, part_name(source))

    async def _start_once(self, source: Source) -> None:
        assert self._deliverer is not None, "Sources.start() first"
        adapter = ADAPTERS[source.kind](source, SourceContext(self._pool, self._deliverer, self._settings,
                                                                       self.watch, self.watches))
        await adapter.start()
        self._adapters[source.uid] = adapter
        HEALTH.mark_up(part_name(source))

    async def _start_later(self, uid: str) -> None:
        delay, cap = self._retry
        while True:
            await asyncio.sleep(delay)
            async with self._lock:
                source = self._desired.get(uid)
                if self._pending.get(uid, (None,))[0] is not asyncio.current_task() or source is None:
                    return
                try:
                    await self._start_once(source)
                except BackendError as exc:
                    log.warning("%s: still cannot start: %s", part_name(source), exc.reason)
                    HEALTH.mark_down(part_name(source), describe(exc))
                    delay = min(delay * 2, cap)
                    continue
                self._pending.pop(uid, None)
                return

    def _cancel_pending(self, uid: str) -> None:
        task, part = self._pending.pop(uid)
        task.cancel()
        HEALTH.mark_up(part)
