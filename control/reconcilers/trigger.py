"""The Trigger reconciler: status and egress; on deletion, delete its consumer group.

What a Trigger's builder made is kept per uid and reused while nothing it read changed (`_inputs`): the
Trigger as stored (its resourceVersion, which moves with spec, annotations and status), its Broker as
stored, the Broker's contract entry, and which Trigger holds its group. Only a Trigger whose subscriber,
dead-letter sink and dependency name no other object is kept (a `uri`, no `ref`): what a ref resolves to
lives in other objects. A pass over 10,000 unchanged Triggers then builds none of them, and a pass that
adds one builds that one.
"""

from __future__ import annotations

from typing import Any

from channels.registry import BackendPool
from control.api.trigger import dependency_of
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
        self._built: dict[str, tuple[tuple[Any, ...], Resource | None, build.Built]] = {}
        self.builds = 0
        """How many times a builder ran (the cache's misses), for the tests and the bench."""

    def forget(self, live_uids: set[str]) -> None:
        """Drop what was kept for Triggers that are gone."""
        for uid in [u for u in self._built if u not in live_uids]:
            del self._built[uid]

    async def reconcile(self, trigger: dict[str, Any], broker: dict[str, Any] | None, resource: Resource | None,
                        resolver: Resolver, writes: Writes, snapshot: Snapshot | None = None,
                        holders: build.GroupHolders | None = None, shared: build.Shared | None = None) -> Egress | None:
        # The data plane creates the group once the egress is in the contract: the finalizer comes first.
        if not await writes.add_finalizer(trigger):
            return None
        if holders is None and snapshot is not None:
            holders = build.GroupHolders(snapshot.all("Trigger"), self._settings)
        holder = holders.holder(trigger) if holders is not None else None
        uid = trigger["metadata"].get("uid", "")
        kept = self._built.get(uid)
        inputs = _inputs(trigger, broker, holder)
        if kept is not None and inputs is not None and kept[0] == inputs and kept[1] == resource:
            return kept[2].egress
        built = build.build(trigger, broker, resource, resolver, self._settings, holder=holder, objects=snapshot,
                            shared=shared)
        self.builds += 1
        # Handed over: nothing changes a built status after (the cache below only compares it), and the Trigger
        # is as the pass read it, so it takes the status itself rather than a parse of what was stored.
        await writes.status(trigger, built.status, handed_over=True)
        # The status write gave the Trigger a new resourceVersion, and nothing else of what `_inputs` reads: it
        # succeeds only on the version the pass read (else nothing but the status changes in `trigger`).
        if inputs is not None:
            inputs = (trigger["metadata"].get("resourceVersion"), *inputs[1:])
        if inputs is None or trigger.get("status") != built.status:
            self._built.pop(uid, None)  # refers to other objects, or the write lost a race: build again
        else:
            self._built[uid] = (inputs, resource, built)
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
        if where.auth_problem is not None:
            return  # its Broker's Secret is gone: the group cannot be reached (offsets retention removes it)
        backend = await self._pool.get(where.backend, where.connection, where.security)
        await backend.delete_group(where.topic.name, group)


def _self_contained(dest: Any) -> bool:
    return dest is None or (isinstance(dest, dict) and dest.get("ref") is None)


def _inputs(trigger: dict[str, Any], broker: dict[str, Any] | None,
            holder: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """What the builder reads of the store for `trigger`, or None when it reads other objects too."""
    spec = trigger.get("spec") or {}
    delivery = spec.get("delivery") or (broker or {}).get("spec", {}).get("delivery") or {}
    if not _self_contained(spec.get("subscriber")) or not _self_contained(delivery.get("deadLetterSink")) \
            or dependency_of(trigger) is not None:
        return None
    meta = trigger["metadata"]
    broker_meta = (broker or {}).get("metadata") or {}
    return (meta.get("resourceVersion"), broker_meta.get("uid"), broker_meta.get("resourceVersion"),
            (holder or {}).get("metadata", {}).get("uid"))
