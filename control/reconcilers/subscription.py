"""The Subscription reconciler: status, egress and channel entry; on deletion, delete its consumer group."""

from __future__ import annotations

from typing import Any

from channels.registry import BackendPool
from control.reconcilers.resources import channel as channel_build
from control.reconcilers.resources import subscription as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes
from control.resolver import Resolver
from control.settings import ControlSettings
from core.contract import Resource


class SubscriptionReconciler:
    kind = "Subscription"

    def __init__(self, pool: BackendPool, settings: ControlSettings) -> None:
        self._pool = pool
        self._settings = settings

    async def reconcile(self, subscription: dict[str, Any], found: build.ChannelOf, resource: Resource | None,
                        resolver: Resolver, writes: Writes) -> build.Built | None:
        # The data plane creates the group once the egress is in the contract: the finalizer comes first.
        if not await writes.add_finalizer(subscription):
            return None
        built = build.build(subscription, found, resource, resolver, self._settings)
        await writes.status(subscription, built.status)
        return built

    async def finalize(self, subscription: dict[str, Any], snapshot: Snapshot) -> None:
        """Delete the consumer group on the channel's backend. A channel already gone took its topic and
        the groups of its Subscriptions with it (its own finalizer deletes them)."""
        found = build.channel_of(subscription, snapshot, live=False)
        if found.concrete is None:
            return
        where = channel_build.cleanup_placement(found.concrete, self._settings, self._pool.settings, snapshot)
        if where.auth_problem is not None:
            return  # the channel's Secret is gone: the group cannot be reached (offsets retention removes it)
        backend = await self._pool.get(where.backend, where.connection, where.security)
        await backend.delete_group(where.topic.name, build.consumer_group(subscription, self._settings))
