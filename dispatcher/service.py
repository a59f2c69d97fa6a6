"""The dispatcher service: one EgressRunner per Trigger/Subscription in the contract, fed by one shared
reader per topic (dispatcher/fanout.py) where the backend has one.

`apply(contract)` brings the runners in line with a new contract generation without a restart:
removed egresses are drained and stopped, new ones subscribed, and an egress whose group and topic
stay the same is updated in place (filters, delivery, destination), so nothing in flight is lost or
delivered twice because of the change. An egress that did not change at all is not touched: a
generation that adds one Trigger starts that one and compiles nothing else.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from channels.registry import BackendPool
from core.bounded import stragglers
from core.contract import Contract, Egress, Resource
from core.delivery import Deliverer, Sender, pooled_session
from core.errors import BackendError
from core.eventtypes import AutoCreate
from core.oidc import TokenSource
from dispatcher.egress import EgressRunner
from dispatcher.fanout import Fanouts
from dispatcher.settings import DispatcherSettings

log = logging.getLogger("nerve.dispatcher")


class Dispatcher:
    def __init__(self, pool: BackendPool, settings: DispatcherSettings, *,
                 auto_create: AutoCreate | None = None) -> None:
        self._pool = pool
        self._settings = settings
        self._auto_create = auto_create
        """Told of every reply (EventType auto-create, off unless enabled)."""
        self._session: aiohttp.ClientSession | None = None
        self._deliverer: Deliverer | None = None
        self._runners: dict[str, EgressRunner] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._desired: dict[str, tuple[Egress, Resource]] = {}
        self._lock = asyncio.Lock()
        self._fanouts = Fanouts(settings.fanout_backlog) if settings.shared_reader else None
        self.generation = 0
        self.tokens: TokenSource | None = None
        """Where OIDC tokens for Triggers' and Subscriptions' identities come from (set before start)."""

    async def start(self) -> None:
        self._session = pooled_session(per_destination=self._settings.max_connections_per_host)
        on_reply = self._auto_create.observe if self._auto_create is not None else None
        self._deliverer = Deliverer(Sender(self._session, max_response_bytes=self._settings.max_reply_bytes),
                                    on_reply=on_reply, tokens=self.tokens)

    async def stop(self) -> None:
        async with self._lock:
            for task in self._pending.values():
                task.cancel()
            await asyncio.gather(*self._pending.values(), return_exceptions=True)
            self._pending.clear()
            await asyncio.gather(*(runner.stop() for runner in self._runners.values()))
            self._runners.clear()
            if self._fanouts is not None:
                await self._fanouts.stop()
            await stragglers(self._settings.drain_timeout_s)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def apply(self, contract: Contract) -> None:
        async with self._lock:
            desired: dict[str, tuple[Egress, Resource]] = {
                egress.uid: (egress, resource) for resource in contract.resources for egress in resource.egresses
            }
            # A subscription still waiting for its backend picks up the newest settings when it starts.
            self._desired = desired
            for uid in [u for u in self._runners if u not in desired or self._must_restart(u, *desired[u])]:
                retired = self._runners.pop(uid)
                await retired.stop()
                if uid not in desired:
                    retired.forget_metrics()
            for uid in [u for u in self._pending if u not in desired]:
                self._pending.pop(uid).cancel()
            starts = []
            for uid, (egress, resource) in desired.items():
                runner = self._runners.get(uid)
                if runner is not None:
                    if _changed(runner, egress, resource):
                        runner.update(egress, resource)
                elif uid not in self._pending:
                    starts.append(self._start(uid, egress, resource))
            await asyncio.gather(*starts)
            self.generation = contract.generation

    def _must_restart(self, uid: str, egress: Egress, resource: Resource) -> bool:
        """A new subscription is needed when what it reads changes; filters and delivery update in place."""
        current = self._runners[uid]

        def reads(e: Egress, r: Resource) -> tuple[object, ...]:
            return e.consumer_group, r.topic, r.backend, r.connection, r.security

        # A server that filters by type (NATS) reads anew when the Trigger's exact type changes.
        return (reads(current.egress, current.resource) != reads(egress, resource)
                or current.server_type != current.wanted_server_type(egress))

    async def _start(self, uid: str, egress: Egress, resource: Resource) -> None:
        try:
            await self._start_once(uid, egress, resource)
        except BackendError as exc:
            # The backend is down: keep trying in the background, never block the contract apply.
            log.warning("%s: cannot subscribe yet (%s); retrying", egress.consumer_group, exc)
            self._pending[uid] = asyncio.create_task(self._start_later(uid, egress, resource))

    async def _start_once(self, uid: str, egress: Egress, resource: Resource) -> None:
        assert self._deliverer is not None, "Dispatcher.start() first"
        # Topics are control's alone to create and shape (a NATS stream's limits come from the Broker's
        # ConfigMap): the dispatcher only reads. A topic that is not there yet fails the reader's start
        # with BackendError, and the subscription is retried in the background until it is.
        channel = await self._pool.get(resource.backend, resource.connection, resource.security)
        runner = EgressRunner(egress, resource, channel, self._deliverer, self._settings, self._fanouts)
        await runner.start()
        self._runners[uid] = runner

    async def _start_later(self, uid: str, egress: Egress, resource: Resource) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            async with self._lock:
                if self._pending.get(uid) is not asyncio.current_task():
                    return
                egress, resource = self._desired.get(uid, (egress, resource))
                try:
                    await self._start_once(uid, egress, resource)
                except BackendError as exc:
                    log.warning("%s: still cannot subscribe: %s", egress.consumer_group, exc)
                    delay = min(delay * 2, 30.0)
                    continue
                self._pending.pop(uid, None)
                return


def _changed(runner: EgressRunner, egress: Egress, resource: Resource) -> bool:
    """Whether a new generation changed anything this runner uses. Compared field by field: a Resource
    holds all its egresses, and comparing those for each of 10,000 Triggers would be quadratic."""
    current = runner.resource
    return runner.egress != egress or (current.reference, current.kind, current.topic) != (
        resource.reference, resource.kind, resource.topic)
