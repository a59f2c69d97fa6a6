"""The Trigger reconciler: status and egress; on deletion, delete its consumer group."""

from __future__ import annotations

from typing import Any

from channels.registry import BackendPool
from control.reconcilers.resources import broker as broker_build
from control.reconcilers.resources import trigger as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes
from control.resolver import Resolver
from control.settings import ControlSettings
from core.contract import Egress, Resource


class TriggerReconciler:
    kind = "Trigger"

    def __init__(self, pool: BackendPool, settings: ControlSettings) -> None:
        self._pool = pool
        self._settings = settings

    async def reconcile(self, trigger: dict[str, Any], broker: dict[str, Any] | None, resource: Resource | None,
                        resolver: Resolver, writes: Writes, snapshot: Snapshot | None = None,
                        holders: build.GroupHolders | None = None) -> Egress | None:
        # The data plane creates the group once the egress is in the contract: the finalizer comes first.
        if not await writes.add_finalizer(trigger):
            return None
        if holders is None and snapshot is not None:
            holders = build.GroupHolders(snapshot.all("Trigger"), self._settings)
        holder = holders.holder(trigger) if holders is not None else None
        built = build.build(trigger, broker, resource, resolver, self._settings, holder=holder, objects=snapshot)
        await writes.status(trigger, built.status)
        return built.egress

    async def finalize(self, trigger: dict[str, Any], snapshot: Snapshot) -> None:
        """Delete the consumer group on the Broker's backend. A Broker already gone took its topic, and
        with it the groups that read it (Kafka drops a deleted topic's offsets, NATS a stream's consumers)."""
        meta = trigger["metadata"]
        broker = snapshot.find("Broker", meta["namespace"], trigger["spec"]["broker"])
        if broker is None:
            return
        where = broker_build.cleanup_placement(broker, snapshot, self._settings, self._pool.settings)
        if where is None:
            return
        group = build.consumer_group(trigger, self._settings)
        if any(build.consumer_group(t, self._settings) == group for t in snapshot.live("Trigger")):
            return  # another live Trigger's group too (a template that is not injective): it stays theirs
        backend = await self._pool.get(where.backend, where.connection)
        await backend.delete_group(where.topic.name, group)
