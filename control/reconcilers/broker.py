"""The Broker reconciler: make its topic exist, write its status; on deletion, delete the topic."""

from __future__ import annotations

import logging
from typing import Any

from channels.registry import BackendPool
from control.reconcilers import topics
from control.reconcilers.resources import broker as build
from control.reconcilers.resources.address import features_of
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes
from control.resolver import Resolver
from control.settings import ControlSettings
from core.contract import Resource

log = logging.getLogger("nerve.control")


class BrokerReconciler:
    kind = "Broker"

    def __init__(self, pool: BackendPool, settings: ControlSettings) -> None:
        self._pool = pool
        self._settings = settings

    def placement(self, broker: dict[str, Any], snapshot: Snapshot) -> build.Placement | None:
        return build.placement(broker, snapshot, self._settings, self._pool.settings)

    async def _ensure_topic(self, broker: dict[str, Any], where: build.Placement) -> topics.TopicOutcome:
        if where.problem:
            return topics.TopicOutcome(False, "TopicNotReady", where.problem)
        return await topics.ensure_topic(self._pool, broker, where.backend, where.connection, where.topic,
                                         where.security)

    async def reconcile(self, broker: dict[str, Any], snapshot: Snapshot, resolver: Resolver,
                        writes: Writes) -> Resource | None:
        """The Broker's contract entry (no egresses yet), or None when it has none."""
        # The finalizer goes on before the topic exists, so no topic is ever left without its owner's clean-up.
        if not await writes.add_finalizer(broker):
            return None
        where = self.placement(broker, snapshot)
        if where is None:
            await writes.status(broker, build.status(broker, None, None, resolver, self._settings))
            return None
        if where.refused:
            # No contract entry: a template Nerve cannot run never falls back to another backend.
            await writes.status(broker, build.status(broker, where, build.refusal(where), resolver, self._settings))
            return None
        features = features_of(snapshot, self._settings)  # transport-encryption decides the addresses
        if where.auth_problem is not None:
            # No contract entry: no client connects without the security the Broker asked for.
            await writes.status(broker, build.status(broker, where, build.auth_refusal(where.auth_problem),
                                                     resolver, self._settings, features=features))
            return None
        holder = build.topic_holder(broker, where, snapshot, self._settings, self._pool.settings)
        if holder is not None:
            # No contract entry: its events would land on, and be delivered from, the other Broker's topic.
            await writes.status(broker, build.status(broker, where, build.conflict(holder, where), resolver,
                                                     self._settings, features=features))
            return None
        outcome = await self._ensure_topic(broker, where)
        await writes.status(broker, build.status(broker, where, outcome, resolver, self._settings, features=features))
        return build.resource(broker, where)

    async def finalize(self, broker: dict[str, Any], snapshot: Snapshot) -> None:
        """Delete the Broker's topic or stream; BackendError keeps the finalizer for a later pass."""
        where = build.cleanup_placement(broker, snapshot, self._settings, self._pool.settings)
        if where is None or not self._settings.delete_topics:
            return
        if build.topic_shared(broker, where, snapshot, self._settings, self._pool.settings):
            return  # another Broker's topic too (a template that is not injective): it stays theirs
        if where.auth_problem is not None:
            # Its Secret went first (`nerve delete -f dir/`): the topic cannot be reached, and waiting for a
            # Secret that is not coming back would leave the Broker undeletable.
            meta = broker["metadata"]
            log.warning("Broker %s/%s: topic %s left on %s: %s", meta["namespace"], meta["name"], where.topic.name,
                        where.connection, where.auth_problem.message)
            return
        backend = await self._pool.get(where.backend, where.connection, where.security)
        await backend.delete_topic(where.topic.name)
